"""The one way to open a model: `--model`, `--precision`, `--aspect` and a foreign model's flags are
resolved once into a `ModelChoice` (`choose_model`), and `open_model(choice, options)` opens it with
the `RunOptions` (device, threads, spinning). `open_streams` opens it for videos running at once,
with the plan of the streams that run it (threads per session, frames in flight, frames per call).

Every command opens its models here: the viewer and its --compare, batch (its threads and its Ray
workers), eval and bench, so a preset, a file, a precision or the thread policy means the same
everywhere.

    choice = choose_model("fast", precision="int8")      # or a path, or None: the default preset
    model = open_model(choice, RunOptions(device="cpu", threads=2))
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import UsageError, UserError
from ..paths import MODELS_DIR
from ..system import usable_cores
from .adapter import imported_graph
from .engine import CUDA, RunOptions, SegModel, load_model, providers
from .foreign import ForeignSpec
from .precision import CHOICES as PRECISION_CHOICES
from .precision import candidates, family_base, suits, variants

# each preset is a family: NAME.onnx (fp32) and, where they pay off, NAME.int8.onnx and NAME.fp16.onnx
PRESETS = {"accurate": "camvid_accurate.onnx", "fast": "camvid_fast.onnx"}
DEFAULT_MODEL_ENV = "REALTIME_SEG_MODEL"


@dataclass(frozen=True)
class ModelChoice:
    """What --model, --precision and --aspect name, resolved once: the preset's fp32 file or the file given."""

    spec: str        # as given (or the default preset's name)
    path: Path
    preset: bool     # a preset family in models/: `precision` auto picks its variant
    precision: str = "auto"             # auto, fp32, fp16 or int8 (runtime/precision.py)
    foreign: ForeignSpec | None = None  # a model from another framework, imported in memory as the flags say
    aspect: str | None = None           # keep or squash a frame of another aspect (None: the file's own)

    @property
    def name(self) -> str:
        """The model's one display name (HUD, summaries, tables, JSON): the preset's, or the file's."""
        return self.spec if self.preset else self.path.name

    def files(self) -> list[Path]:
        """The files its precision may open: the family's variants for a preset or a named precision,
        else the one file (what a Ray worker needs a copy of)."""
        if self.preset or self.precision != "auto":
            return list(variants(family_base(self.path)).values())
        return [self.path]

    def moved(self, folder: Path) -> "ModelChoice":
        """The same choice with its files in `folder` (a worker's local copy)."""
        return replace(self, path=folder / self.path.name)


def choose_model(spec: str | None = None, precision: str = "auto", foreign: ForeignSpec | None = None,
                 aspect: str | None = None) -> ModelChoice:
    """--model as given: a preset's name, a file, or None for the default (REALTIME_SEG_MODEL, else
    accurate); `precision`: --precision; `foreign`: the flags that describe a model from another
    framework (--classes, --mean, ...); `aspect`: --aspect (None: the model's own)."""
    spec = spec if spec is not None else os.environ.get(DEFAULT_MODEL_ENV, "accurate")
    if precision not in PRECISION_CHOICES:
        raise UsageError(f"unknown precision {precision!r}; allowed: {', '.join(PRECISION_CHOICES)}")
    if spec in PRESETS:
        if foreign is not None:
            raise UsageError(f"--classes, --mean, --std, --bgr and --input-size describe a model from another "
                             f"framework; preset {spec} describes itself: drop them")
        return ModelChoice(spec, MODELS_DIR / PRESETS[spec], True, precision, aspect=aspect)
    if foreign is not None and precision not in ("auto", "fp32"):
        raise UsageError(f"--precision {precision}: a model imported in memory runs as it is (fp32); "
                         f"import it to a file with `python -m realtime_seg import` to make variants")
    return ModelChoice(spec, Path(spec), False, precision, foreign, aspect)


def open_model(choice: ModelChoice, options: RunOptions = RunOptions()) -> SegModel:
    """One session of the model chosen: a preset's variant picked by its precision (auto: the best for
    the device), the file given (or its precision's sibling), or a foreign model imported in memory;
    run with the choice's aspect."""
    if not choice.preset and not choice.path.exists():
        raise UserError(f"model {choice.spec} not found: neither a preset ({', '.join(PRESETS)}) nor a file; "
                        f"pass --model {'|'.join(PRESETS)} or the path of an exported .onnx file")
    if choice.foreign is not None:
        model = load_model(choice.path, options, imported_graph(choice.path, choice.foreign))
    else:
        model = _best_variant(choice, options)
    model.use_aspect(choice.aspect)
    return model


def _best_variant(choice: ModelChoice, options: RunOptions) -> SegModel:
    """The first of the precision's candidate files that suits it (auto: fp16 only on CUDA, int8 only
    where it pays off). fp32 always suits, so only a family without one gets past the loop: it runs
    the last variant tried."""
    on_cuda = providers(options.device)[0] == CUDA
    for path in candidates(choice.path, choice.precision, choice.preset, on_cuda):
        model = load_model(path, options)
        if suits(model, choice.precision, choice.preset):
            return model
    return model


@dataclass(frozen=True)
class StreamPlan:
    """How a video stream runs its model: threads per call, calls in flight, frames per call."""

    threads: int    # onnxruntime intra-op threads of the session
    workers: int    # inference calls running at once (segment_stream's workers)
    batch: int = 1  # frames per inference call


def stream_plan(threads: int = 0, cores: int | None = None) -> StreamPlan:
    """--threads N: N threads, one call at a time. Automatic (0): two calls on half the cores each.

    Two frames in flight keep the cores busy while one call waits on the other stages, and no
    call pays for splitting each layer across cores that decode and draw also need (the gain on
    2 cores: docs/BENCHMARKS.md, measurements behind the code).
    """
    cores = cores or usable_cores()
    if threads or cores < 2:
        return StreamPlan(threads or 1, 1)
    return StreamPlan(cores // 2, 2)


def _on_device(plan: StreamPlan, model: SegModel) -> StreamPlan:
    """The plan for where the session really runs: on CUDA one call at a time (the GPU runs one)
    of 8 frames (batching gained nothing on CPUs, docs/BATCH.md; GPUs need it)."""
    return replace(plan, workers=1, batch=8) if model.provider == CUDA else plan


@dataclass
class Opened:
    """The sessions of one model choice and the plan they run to: one shared by every stream
    (onnxruntime runs concurrent calls), or one copy per stream."""

    models: list[SegModel]
    plan: StreamPlan
    name: str       # the choice's display name

    @property
    def model(self) -> SegModel:
        return self.models[0]

    def get(self, slot: int) -> SegModel:
        """The session stream `slot` runs."""
        return self.models[slot % len(self.models)]


def open_streams(choice: ModelChoice, options: RunOptions = RunOptions(), streams: int = 1, copies: int = 1,
                 cores: int | None = None) -> Opened:
    """`open_model` for `streams` videos running at once on `cores` (default: this process's), each on
    its share of the cores with the viewer's plan (`stream_plan`; `options.threads` 0: automatic);
    `copies` sessions (1: shared). The viewer, batch, its Ray workers and bench's pipeline row open here."""
    cores = cores or usable_cores()
    plan = stream_plan(options.threads, max(1, cores // streams))
    planned = replace(options, threads=plan.threads)
    models = [open_model(choice, planned) for _ in range(copies)]
    return Opened(models, _on_device(plan, models[0]), choice.name)
