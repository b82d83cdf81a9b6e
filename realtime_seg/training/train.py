"""Train a U-Net (the seed's or the residual one) on a CARLA or CamVid folder (Keras 3; TensorFlow or JAX).

usage: python -m realtime_seg train --data DIR --out RUN_DIR [--arch resunet|seed|lite0] [--epochs 40] [--limit 16]
Writes RUN_DIR/best.keras (best val mIoU), last.keras, metrics.csv, curves.png, summary.json, config.json.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import signal
import sys
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from ..datasets.augment import VOID, resize_image
from ..datasets.readers import FORMATS, load_dataset
from ..errors import ArgumentParser, Interrupted, UsageError, UserError, check_at_least, first_line
from ..system import check_creatable, cpu_flags, on_stop_signals, signals_deferred, write_atomic, write_json
from . import curves
from .backend import accelerator, choose_precision, import_keras  # Keras loads when called
from ..datasets.metrics import iou_per_class, score, summarize
from .inputs import CLASS_WEIGHTS, decode_pairs, pixel_weights, sequence_class
from .options import ARCHS, ENCODER_BN, OPTIMIZERS, PRECISIONS, SCHEDULES, TRAIN_SPLITS

log = logging.getLogger(__name__)
_HINT = "free space or choose another --out"



@dataclass
class TrainConfig:
    data: str
    out: str
    format: str = "auto"
    classes: str = "auto"           # CARLA table: auto, carla13, carla23
    arch: str = "resunet"           # resunet | seed (the seed's exact U-Net) | lite0/1/2 (ImageNet encoder)
    epochs: int = 40
    batch_size: int = 8
    lr: float = 1e-3
    schedule: str = "poly"          # poly | cosine | constant, stepped per batch
    warmup_epochs: float = 1.0      # linear warm-up from lr/10
    optimizer: str = "adamw"        # adamw | adam
    weight_decay: float = 1e-4      # AdamW's decoupled decay (kernels only)
    input_size: tuple[int, int] = (96, 128)  # (height, width), multiples of 16
    width: int = 0                  # n_filters of the first block (0: the arch's default)
    limit: int = 0                  # use only N samples (0: all)
    class_weights: str = "median"   # none | median | sqrt (square root of median frequency)
    augment: bool = True
    scale_range: tuple[float, float] = (0.5, 2.0)  # random scale about the run's resolution
    train_split: str = "train"      # train | trainval (CamVid: also train on val; val no longer held out)
    val_fraction: float = 0.1       # CARLA held-out fraction
    seed: int = 0
    resume: bool = False
    init: str = ""                  # start from this checkpoint's weights (fine-tuning)
    precision: str = "auto"         # auto (bfloat16 where supported) | float32 | bfloat16 | float16
    mixed_precision: bool = False   # old spelling of --precision float16
    workers: int = 2
    encoder_lr: float = 0.1         # a pretrained encoder's learning rate, as a fraction of --lr
    encoder_bn: str = "frozen"      # a pretrained encoder's batch norm: frozen (ImageNet statistics) | train
    logit_adjustment: bool = True   # subtract log(class weight) from the logits at inference (model.py)
    extra: dict = field(default_factory=dict)


def keras_predictor(model, size: tuple[int, int]):
    """RGB images of any size -> class maps at the model's `size`, preprocessed as the runtime does."""
    def predict(images: list[np.ndarray]) -> np.ndarray:
        x = np.stack([resize_image(image, size) for image in images]).astype(np.float32) / 255.0
        return np.argmax(np.asarray(model(x, training=False)), axis=-1)   # (N, H, W) class ids
    return predict


def _save_atomic(model, path: Path) -> None:
    """An interrupt mid-save must not leave a half-written checkpoint that breaks --resume."""
    write_atomic(path, model.save, hint=_HINT)


@contextlib.contextmanager
def interrupts_as_keyboard_interrupt() -> Iterator[list[int]]:
    """SIGTERM ends training the way Ctrl-C does (KeyboardInterrupt); the signals received are listed."""
    received: list[int] = []

    def handler(signum: int) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    with on_stop_signals(handler):
        yield received


def _save_after_interrupt(model, run: Path, received: list[int]) -> Interrupted:
    """Save last.keras (further signals wait until it is written), remove temporaries; the error to raise."""
    with signals_deferred():
        for tmp in run.glob(".*.partial.*"):  # a checkpoint or state.json cut off mid-write
            tmp.unlink(missing_ok=True)
        _save_atomic(model, run / "last.keras")
    state = run / "state.json"  # what --resume will read: the epochs completed and recorded
    epoch = json.loads(state.read_text()).get("epoch", 0) + 1 if state.exists() else 1
    signum = received[0] if received else signal.SIGINT
    return Interrupted(f"interrupted ({signal.Signals(signum).name}) in epoch {epoch}; "
                       f"{run / 'last.keras'} saved: continue with --resume", signum)


def _callbacks(cfg: TrainConfig, run: Path, val_pairs, table, state: dict):
    keras = import_keras()

    class Checkpoints(keras.callbacks.Callback):
        """Validation mIoU after each epoch; keeps best.keras and last.keras (atomically)."""

        def on_epoch_end(self, epoch, logs=None):
            logs = logs if logs is not None else {}
            if val_pairs:
                cm = score(keras_predictor(self.model, cfg.input_size), val_pairs, table.num_classes)
                scores = summarize(cm)
                logs["val_miou"], logs["val_pixel_accuracy"] = scores["miou"], scores["pixel_accuracy"]
                logs["val_per_class_iou"] = iou_per_class(cm)
            state["epoch"] = epoch + 1
            if val_pairs:  # the last epoch's score: what a fixed schedule ships
                state.update(last_miou=float(logs["val_miou"]),
                             last_per_class=[float(v) for v in logs["val_per_class_iou"]])
            miou = logs.get("val_miou", -logs.get("loss", 0.0))
            if miou > state.get("best_miou", -np.inf):
                state.update(best_miou=float(miou), best_epoch=epoch + 1,
                             best_per_class=[float(v) for v in logs.get("val_per_class_iou", [])])
                _save_atomic(self.model, run / "best.keras")
            _save_atomic(self.model, run / "last.keras")
            logs.pop("val_per_class_iou", None)
            write_json(run / "state.json", state, hint=_HINT)
            if val_pairs:
                print(f"  val mIoU {logs['val_miou']:.4f}  pixel acc {logs['val_pixel_accuracy']:.4f}"
                      f"  (best {state['best_miou']:.4f} @ epoch {state['best_epoch']})", flush=True)
            curves.update(run, self.model.optimizer, epoch, logs, state.get("best_epoch"))  # curves.png

    return [Checkpoints(), keras.callbacks.CSVLogger(str(run / "metrics.csv"), append=cfg.resume)]


def _init_from(model, path: Path) -> None:
    """Start from a checkpoint's weights (fine-tuning); any input size, same width and classes."""
    keras = import_keras()
    if not path.is_file():
        raise UserError(f"--init: checkpoint {path} not found; pass a .keras file written by train")
    try:
        source = keras.models.load_model(path, compile=False)
        model.set_weights(source.get_weights())
    except Exception as e:
        raise UserError(f"--init: cannot use {path} ({first_line(e, 120)}); it needs the same --width and "
                        f"class count as this run") from None
    log.info("initialised from %s", path)


def _build(cfg: TrainConfig, class_weights: np.ndarray, run: Path, state: dict, steps_per_epoch: int):
    """A new model (or last.keras with --resume), compiled with the run's optimizer and weighted loss."""
    keras = import_keras()
    from . import schedule  # registers the saved LR schedule before a checkpoint is loaded
    from .model import get_model, with_logit_adjustment  # registers LogitAdjustment likewise
    if cfg.resume and (run / "last.keras").exists():
        log.info("resuming from %s at epoch %d", run / "last.keras", state.get("epoch", 0))
        if not zipfile.is_zipfile(run / "last.keras"):
            raise UserError(f"--resume: {run / 'last.keras'} is not a readable .keras file (cut off or "
                            f"corrupt); restore it, or start a new run without --resume")
        try:
            return keras.models.load_model(run / "last.keras")
        except Exception as e:
            raise UserError(f"--resume: cannot load {run / 'last.keras'} ({first_line(e)}); restore it, or "
                            f"start a new run without --resume") from None
    if cfg.resume:
        raise UserError(f"--resume: {run / 'last.keras'} does not exist; start without --resume")
    model = get_model(cfg.arch, cfg.input_size, len(class_weights), cfg.width or None)
    if cfg.init:
        _init_from(model, Path(cfg.init))
    pretrained = ARCHS[cfg.arch].pretrained
    if pretrained and cfg.encoder_bn == "frozen":
        _freeze_encoder_bn(model)
    if cfg.logit_adjustment:
        model = with_logit_adjustment(model, class_weights)
    optimizer = schedule.make_optimizer(cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.schedule,
                                        total_steps=cfg.epochs * steps_per_epoch,
                                        warmup_steps=round(cfg.warmup_epochs * steps_per_epoch),
                                        encoder_lr_scale=cfg.encoder_lr if pretrained else 1.0)
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _freeze_encoder_bn(model) -> None:
    """The encoder's batch norms keep ImageNet's statistics and affine (batches of 8 are too few)."""
    keras = import_keras()
    from .encoders import PREFIX
    for layer in model.layers:
        if layer.name.startswith(PREFIX) and isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


def check_config(cfg: TrainConfig) -> None:
    """Usage errors in the settings, and a run folder that cannot be made, before any work."""
    choices = {"arch": ARCHS, "schedule": SCHEDULES, "optimizer": OPTIMIZERS,
               "train_split": TRAIN_SPLITS, "precision": PRECISIONS, "class_weights": CLASS_WEIGHTS,
               "encoder_bn": ENCODER_BN}
    for name, allowed in choices.items():
        if getattr(cfg, name) not in allowed:
            raise UsageError(f"unknown --{name.replace('_', '-')} {getattr(cfg, name)!r}; "
                             f"allowed: {', '.join(allowed)}")
    low, high = cfg.scale_range
    if not 0 < low <= high:
        raise UsageError(f"--scale-range must be LOW,HIGH with 0 < LOW <= HIGH, got {low:g},{high:g}")
    if cfg.warmup_epochs < 0 or cfg.weight_decay < 0:
        raise UsageError("--warmup-epochs and --weight-decay must be >= 0")
    if any(s <= 0 or s % 16 for s in cfg.input_size):
        raise UsageError(f"--input-size must be positive multiples of 16, got {cfg.input_size}")
    if cfg.width < 0:
        raise UsageError(f"--width must be at least 1 (or 0: the arch's default), got {cfg.width}")
    for name in ("epochs", "batch_size", "workers"):
        check_at_least(f"--{name.replace('_', '-')}", getattr(cfg, name), 1)
    if cfg.limit < 0:
        raise UsageError(f"--limit must be >= 0, got {cfg.limit}")
    if not (cfg.lr > 0 and math.isfinite(cfg.lr)):
        raise UsageError(f"--lr must be a positive number, got {cfg.lr:g}")
    if not 0 <= cfg.encoder_lr <= 1:
        raise UsageError(f"--encoder-lr is a fraction of --lr from 0 (frozen) to 1, got {cfg.encoder_lr:g}")
    if ARCHS[cfg.arch].pretrained and any(s % 32 for s in cfg.input_size):
        raise UsageError(f"--arch {cfg.arch} needs --input-size multiples of 32, got {cfg.input_size}")
    if not 0 <= cfg.val_fraction < 1:
        raise UsageError(f"--val-fraction must be at least 0 and below 1, got {cfg.val_fraction:g}")
    data, out = Path(cfg.data).resolve(), Path(cfg.out).resolve()
    if out == data or data in out.parents:
        raise UsageError(f"--out {cfg.out} is {'' if out == data else 'inside '}the dataset folder "
                         f"{cfg.data}; choose a run folder outside it")
    check_creatable(Path(cfg.out), "--out")


def run_samples(cfg: TrainConfig, dataset) -> tuple[list, list]:
    """The (train, val) samples a run uses: --limit applied, val added to train for trainval."""
    train_s, val_s = dataset.train, dataset.val
    if cfg.limit:
        train_s, val_s = train_s[:cfg.limit], val_s[:max(1, cfg.limit // 4)]
    if cfg.train_split == "trainval":  # the shipping recipe: val still scored, but no longer held out
        train_s = train_s + val_s
    return train_s, val_s


def train(cfg: TrainConfig) -> dict:
    """Run a training job; returns the summary written to RUN_DIR/summary.json."""
    check_config(cfg)
    dataset = load_dataset(cfg.data, cfg.format, cfg.classes, cfg.val_fraction, cfg.seed)
    train_s, val_s = run_samples(cfg, dataset)
    # before the run folder and Keras (seconds to load): a bad file fails at once, leaving nothing
    train_pairs = decode_pairs(dataset, train_s, "decode train")
    val_pairs = decode_pairs(dataset, val_s, "decode val")
    weights = pixel_weights(dataset, train_pairs, cfg.class_weights)
    run = Path(cfg.out)
    try:
        run.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create run folder {run}: {e.strerror}; choose a writable --out")
    keras = import_keras()
    keras.utils.set_random_seed(cfg.seed)
    device = accelerator(keras.backend.backend())
    policy = choose_precision("float16" if cfg.mixed_precision else cfg.precision, device, cpu_flags(),
                              ARCHS[cfg.arch].cpu_bf16)
    with global_policy(keras, policy):  # the caller's policy is back when train() returns
        return _fit(cfg, keras, dataset, (train_s, val_s), (train_pairs, val_pairs), weights, run,
                    policy, device)


@contextlib.contextmanager
def global_policy(keras, policy: str) -> Iterator[None]:
    """Keras's global dtype policy set to `policy` (set either way: no earlier run leaks in), then restored."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _fit(cfg: TrainConfig, keras, dataset, samples, pairs, weights, run: Path, policy: str,
         device: str) -> dict:
    """Build (or resume) the model, fit it with checkpoints, write summary.json."""
    (train_s, val_s), (train_pairs, val_pairs) = samples, pairs
    held_out = "held out" if cfg.train_split == "train" else "also trained on: not held out"
    print(f"{dataset.format} data: {len(train_s)} train / {len(val_s)} val ({held_out}), "
          f"{dataset.table.num_classes} classes ({dataset.table.name}), backend {keras.backend.backend()} "
          f"on {device}, {policy}")
    state_path = run / "state.json"
    state = json.loads(state_path.read_text()) if cfg.resume and state_path.exists() else {}
    model = _build(cfg, weights[:dataset.table.num_classes], run, state,
                   steps_per_epoch=max(1, len(train_pairs) // cfg.batch_size))
    write_json(run / "config.json", {**asdict(cfg), "dataset": dataset.format, "table": dataset.table.name,
                                     "classes_list": list(dataset.table.classes),
                                     "palette": dataset.table.palette}, hint=_HINT)
    Seq = sequence_class()
    void = dataset.table.void if dataset.table.void is not None else VOID  # padding: weight 0
    seq = Seq(train_pairs, cfg.input_size, cfg.batch_size, weights, dataset.table.num_classes,
              cfg.augment, cfg.seed, cfg.workers, cfg.scale_range, void)
    seq.epoch = state.get("epoch", 0)
    seq.order = seq._order()  # a resumed run shuffles its first epoch as an uninterrupted one would
    start, t0 = state.get("epoch", 0), time.time()
    with interrupts_as_keyboard_interrupt() as received:
        try:
            history = model.fit(seq, epochs=cfg.epochs, initial_epoch=start,
                                callbacks=_callbacks(cfg, run, val_pairs, dataset.table, state),
                                verbose=1 if sys.stdout.isatty() else 2)
        except KeyboardInterrupt:
            raise _save_after_interrupt(model, run, received) from None
    from .model import count_flops
    losses = history.history.get("loss", [])
    summary = {
        "dataset": dataset.format, "table": dataset.table.name, "classes": list(dataset.table.classes),
        "epochs": state.get("epoch", 0), "train_samples": len(train_s), "val_samples": len(val_s),
        "best_val_miou": state.get("best_miou"), "best_epoch": state.get("best_epoch"),
        "best_per_class_iou": dict(zip(dataset.table.classes, state.get("best_per_class", []))),
        "last_val_miou": state.get("last_miou"),
        "last_per_class_iou": dict(zip(dataset.table.classes, state.get("last_per_class", []))),
        "first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None,
        "arch": cfg.arch, "params": model.count_params(), "gflops": round(count_flops(model) / 1e9, 3),
        "val_held_out": cfg.train_split == "train", "policy": policy, "seconds": round(time.time() - t0, 1),
        "backend": keras.backend.backend(), "config": asdict(cfg),
    }
    write_json(run / "summary.json", summary, hint=_HINT)
    print(f"done: {summary['epochs']} epochs in {summary['seconds']:.0f}s, best val mIoU "
          f"{summary['best_val_miou'] or 0:.4f} at epoch {summary['best_epoch']}, -> {run / 'best.keras'}")
    return summary


def _range(text: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH like 0.5,2.0, got {text!r}")
    return low, high


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH like 96x128, got {text!r}")
    return h, w


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m realtime_seg train", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="CamVid folder or CARLA capture folder(s)")
    p.add_argument("--out", required=True, help="run folder for checkpoints and metrics")
    p.add_argument("--format", default="auto", choices=FORMATS)
    p.add_argument("--classes", default="auto", choices=("auto", "carla13", "carla23"))
    p.add_argument("--arch", default="resunet", choices=ARCHS,
                   help="resunet (residual, BN, dilated context), seed (the seed's exact U-Net), or "
                        "lite0/lite1/lite2 (ImageNet-pretrained EfficientNet-Lite encoder)")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    p.add_argument("--schedule", default="poly", choices=SCHEDULES, help="decay after warm-up, per step")
    p.add_argument("--warmup-epochs", type=float, default=1.0, help="linear warm-up from lr/10")
    p.add_argument("--optimizer", default="adamw", choices=OPTIMIZERS)
    p.add_argument("--weight-decay", type=float, default=1e-4, help="AdamW decay of conv kernels")
    p.add_argument("--input-size", type=_size, default=(96, 128), help="HEIGHTxWIDTH, e.g. 96x128")
    p.add_argument("--width", type=int, default=0,
                   help="filters of the first block (default: resunet 16, seed 32 as the seed's)")
    p.add_argument("--limit", type=int, default=0, help="use only N samples (smoke runs)")
    p.add_argument("--class-weights", default="median", choices=CLASS_WEIGHTS,
                   help="sqrt: square root of median frequency balancing")
    p.add_argument("--no-logit-adjustment", dest="logit_adjustment", action="store_false",
                   help="keep the class weights' bias at inference (more rare-class pixels, lower IoU)")
    p.add_argument("--no-augment", dest="augment", action="store_false")
    p.add_argument("--scale-range", type=_range, default=(0.5, 2.0),
                   help="LOW,HIGH random scale of the frame about the run's size (log-uniform; pads with void)")
    p.add_argument("--train-split", default="train", choices=TRAIN_SPLITS,
                   help="trainval: CamVid's train+val (for shipping; val is then not held out)")
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.keras")
    p.add_argument("--init", default="", help="start from this .keras checkpoint's weights (fine-tune)")
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="auto: mixed bfloat16 on GPUs (JAX), and on CPUs with AVX512_BF16/AMX for the archs "
                        "that run faster in it there (seed, resunet); else float32")
    p.add_argument("--mixed-precision", action="store_true", help="same as --precision float16")
    p.add_argument("--workers", type=int, default=2, help="data loader threads")
    p.add_argument("--encoder-lr", type=float, default=0.1,
                   help="lite archs: the pretrained encoder's learning rate as a fraction of --lr")
    p.add_argument("--encoder-bn", default="frozen", choices=ENCODER_BN,
                   help="lite archs: frozen keeps ImageNet's batch-norm statistics; train updates them")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    train(TrainConfig(**vars(args)))
    return 0
