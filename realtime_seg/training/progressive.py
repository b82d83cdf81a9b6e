"""Progressive resizing (`train --progressive HxW:EPOCHS`): the first EPOCHS epochs at a smaller size.

An epoch's cost grows with its pixels, so a long run trains most epochs at HxW and only the last
ones at --input-size (fastai's progressive resizing); the network is fully convolutional, so the
weights learnt small carry over.

The full-size model stays the run's model: it is compiled, scored on val at full size, and saved
as best.keras / last.keras after every epoch of both phases, so export, eval and --resume see a
model with a static --input-size input whatever phase a checkpoint comes from. The small phase
fits `small_view(model, size)`: a functional clone at the small input that reuses every layer of
the full model, hence every variable, except the context module's global-pool broadcast (an
UpSampling2D by the bottleneck's size, without weights), remade for the small bottleneck.

The view is compiled with the full model's own optimizer instance, built beforehand on the full
model's variables. Keras 3 (checked on 3.15 with TensorFlow) keys Adam's moments by variable,
not by model, so they carry over, and `optimizer.iterations` counts on across the switch, which
keeps the per-step learning-rate schedule on its curve and is what a checkpoint saves.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import UsageError
from .backend import import_keras  # Keras loads when called
from .options import ARCHS

FORMAT = re.compile(r"(\d+)x(\d+):(\d+)", re.IGNORECASE)


@dataclass(frozen=True)
class Phase:
    """Epochs `first` (0-based) up to `end` (exclusive, as Keras's `epochs`) trained at `size`."""
    size: tuple[int, int]
    first: int
    end: int


def parse(text: str) -> tuple[tuple[int, int], int]:
    """'HxW:EPOCHS' -> ((H, W), EPOCHS); ValueError when it is not that."""
    match = FORMAT.fullmatch(text.strip())
    if not match:
        raise ValueError(text)
    h, w, epochs = (int(v) for v in match.groups())
    return (h, w), epochs


def check(cfg) -> None:
    """One UsageError line for a --progressive that cannot run (after --input-size and --epochs are checked)."""
    if not cfg.progressive:
        return
    try:
        size, epochs = parse(cfg.progressive)
    except ValueError:
        raise UsageError(f"--progressive must be HEIGHTxWIDTH:EPOCHS like 64x96:30, got {cfg.progressive!r}")
    multiple = 32 if ARCHS[cfg.arch].pretrained else 16
    if any(s <= 0 or s % multiple for s in size):
        raise UsageError(f"--progressive size must be positive multiples of {multiple} for --arch {cfg.arch}, "
                         f"got {_text(size)}")
    full = tuple(cfg.input_size)
    if size == full or any(s > f for s, f in zip(size, full)):
        raise UsageError(f"--progressive size {_text(size)} must be smaller than --input-size {_text(full)} "
                         f"(neither side larger)")
    if not 1 <= epochs < cfg.epochs:
        raise UsageError(f"--progressive EPOCHS must be at least 1 and below --epochs ({cfg.epochs}), got {epochs}")


def phases(cfg, start: int) -> list[Phase]:
    """The phases left for a run that has completed `start` epochs (the last always at --input-size)."""
    full = Phase(tuple(cfg.input_size), start, cfg.epochs)
    if not cfg.progressive:
        return [full]
    size, small_epochs = parse(cfg.progressive)
    if start >= small_epochs:
        return [full]
    return [Phase(size, start, small_epochs), Phase(full.size, small_epochs, cfg.epochs)]


def describe(cfg) -> str:
    """The schedule in one line, e.g. 'progressive resizing: epochs 1-30 at 256x352, epochs 31-45 at 352x480'."""
    size, small_epochs = parse(cfg.progressive)
    return (f"progressive resizing: {_span(1, small_epochs)} at {_text(size)}, "
            f"{_span(small_epochs + 1, cfg.epochs)} at {_text(cfg.input_size)}")


def switch_line(phase: Phase) -> str:
    return f"progressive resizing: epoch {phase.first + 1} on at full size {_text(phase.size)}"


def small_view(model, size: tuple[int, int]):
    """`model` at input `size`, sharing every layer and variable (the module docstring says how)."""
    keras = import_keras()
    from .model import POOL_UP
    full = tuple(model.inputs[0].shape[1:3])

    def share(layer):
        if not layer.name.endswith(POOL_UP):
            return layer
        config = layer.get_config()
        config["size"] = tuple(s * new // old for s, new, old in zip(config["size"], size, full))
        return layer.__class__.from_config(config)

    return keras.models.clone_model(model, input_tensors=keras.Input((*size, 3), name="image"),
                                    clone_function=share)


def fit(model, seq, phase: Phase, callbacks: list, verbose: int):
    """Fit `phase` (the full-size `model` itself, or its small view) with `seq` at that phase's size and epoch."""
    net = model
    if phase.size != tuple(model.inputs[0].shape[1:3]):
        if not model.optimizer.built:  # built on the full model's variables, in their order: what a checkpoint saves
            model.optimizer.build(model.trainable_variables)
        net = small_view(model, phase.size)
        net.compile(optimizer=model.optimizer, loss=model.loss)
    seq.size, seq.epoch = phase.size, phase.first
    seq.order = seq._order()  # each epoch shuffles and augments as an uninterrupted run's would
    return net.fit(seq, epochs=phase.end, initial_epoch=phase.first, callbacks=callbacks, verbose=verbose)


def _span(first: int, last: int) -> str:
    return f"epoch {first}" if first == last else f"epochs {first}-{last}"


def _text(size) -> str:
    return f"{size[0]}x{size[1]}"
