"""Benchmark: each stage alone, the product pipeline, a naive ONNX loop and the seed's Keras loop.

usage: python -m realtime_seg bench --video drive.mp4 [--model accurate|fast|M.onnx] [--frames 200]
       python -m realtime_seg bench --models fast accurate --json bench.json
       python -m realtime_seg bench --threads 1 --spin   (onnxruntime threads, 0: all cores; busy-waiting on)

On the first N frames of the video, in one run:
  stages alone     decode, preprocess, inference (batch 1), draw, encode: ms/frame, one after another
                   on frames decoded into memory first; bound = 1000 / the slowest stage
  pipeline         the viewer's own loop, as `--no-show --output x.mp4` runs it (threads overlap)
  naive ORT        read -> preprocess -> run -> draw -> write, one after another in one thread
  seed Keras       the same weights as a Keras model (M.keras beside M.onnx, or --keras), with
                   model.predict(x) once per frame; start-up and the first call are excluded
  model alone      latency at batch 1 (median) and images/s at larger batches
See docs/BENCHMARKS.md for what each number means.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import cv2
import numpy as np

from .engine import DEVICES, PRESETS, SegModel, load_model, preprocess, resolve_model
from .errors import ArgumentParser, UsageError, UserError
from .paths import check_output_file, write_atomic
from .pipeline import Packet, StageTimes, VideoOutput
from .render import Legend
from .sources import Source, is_url, open_video

log = logging.getLogger(__name__)

DEMO_VIDEO = Path(__file__).resolve().parent.parent / "videos" / "dashcam_highway.mp4"
STAGES = ("decode", "preprocess", "inference", "draw", "encode")
CPU_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni",
             "amx_tile", "amx_bf16", "amx_int8", "asimd", "sve")
MATMUL_N = 1024
CODEC = "mp4v"


@dataclass
class BenchConfig:
    video: str
    models: list[str]
    keras: str | None = None
    device: str = "auto"
    frames: int = 200
    threads: int = 0
    spinning: bool = False
    batches: tuple[int, ...] = (1, 4, 8)
    seed_keras: bool = True
    json: str | None = None


@dataclass
class Clip:
    """The first frames of the video, decoded into memory, with the decode time of each."""

    path: str
    frames: list[np.ndarray]
    decode_ms: list[float]
    fps: float
    size: tuple[int, int]  # (width, height)


@dataclass
class ModelResult:
    """Everything measured for one model; `asdict` of it is the model's part of the JSON."""

    model: str
    model_path: str
    input_size: tuple[int, int]
    classes: int
    output: str
    provider: str
    threads: int
    spinning: bool
    frames: int
    stages_ms: dict[str, float] = field(default_factory=dict)          # mean: what bounds FPS
    stages_ms_median: dict[str, float] = field(default_factory=dict)   # far below the mean: contention
    slowest_stage: str = ""
    bound_fps: float = 0.0
    serial_fps: float = 0.0
    pipeline_fps: float = 0.0
    pipeline_stages_ms: dict[str, float] = field(default_factory=dict)
    naive_ort_fps: float = 0.0
    seed_keras_fps: float | None = None
    seed_keras_note: str = ""
    keras_path: str | None = None
    latency_ms_b1_median: float = 0.0
    throughput_ips: dict[str, float] = field(default_factory=dict)
    flops: int | None = None
    flops_source: str = ""
    flops_onnx: int | None = None
    flops_keras: int | None = None
    inference_gflops_per_s: float | None = None
    ratios: dict[str, float | None] = field(default_factory=dict)


# ---------------------------------------------------------------- timing helpers

def _ms(fn: Callable[[], object]) -> tuple[float, object]:
    """Milliseconds one call of `fn` takes, and its result."""
    t = time.perf_counter()
    out = fn()
    return (time.perf_counter() - t) * 1e3, out


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


# ---------------------------------------------------------------- machine

def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (Linux), else empty."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    info: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if info:
                break
            continue
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())
    return info


def _gpu_name() -> str | None:
    """The first NVIDIA GPU's name from nvidia-smi, or None."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


def matmul_gflops(n: int = MATMUL_N, reps: int = 10) -> float:
    """This machine's float32 matrix-multiply rate with NumPy's BLAS (best of `reps`), GFLOP/s."""
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), np.float32), rng.random((n, n), np.float32)
    a @ b  # warm-up: BLAS threads start
    best = min(_ms(lambda: a @ b)[0] for _ in range(reps))
    return 2 * n ** 3 / (best / 1e3) / 1e9


def load_average() -> float | None:
    """The 1-minute load average (None where the OS has none): other work distorts timings."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def machine_info(cuda: bool, load: float | None) -> dict:
    """CPU model, cores, SIMD flags of interest, GPU name (when on CUDA), matmul rate, load."""
    cpu = _cpuinfo()
    flags = set((cpu.get("flags") or cpu.get("Features") or "").split())
    return {"cpu": cpu.get("model name") or platform.processor() or platform.machine(),
            "cores": os.cpu_count(), "flags": [f for f in CPU_FLAGS if f in flags],
            "platform": platform.platform(), "gpu": _gpu_name() if cuda else None,
            "matmul_gflops": round(matmul_gflops(), 1), "matmul_n": MATMUL_N,
            "load_average_at_start": load}


def versions() -> dict[str, str]:
    """Versions of Python and of the libraries that were used (Keras/TF only if loaded)."""
    import onnxruntime
    found = {"python": platform.python_version(), "numpy": np.__version__,
             "opencv": cv2.__version__, "onnxruntime": onnxruntime.__version__}
    for name in ("onnx", "keras", "tensorflow"):
        if name in sys.modules:
            found[name] = getattr(sys.modules[name], "__version__", "?")
    return found


# ---------------------------------------------------------------- FLOPs

def onnx_conv_flops(path: str | Path) -> int | None:
    """Multiply-adds x2 of the Conv/ConvTranspose nodes for one image, by ONNX shape inference.

    None when the `onnx` package is not installed or a shape cannot be inferred.
    """
    try:
        import onnx
    except ImportError:
        return None
    proto = onnx.load(str(path))
    for inp in proto.graph.input:  # batch 1, so every shape is concrete
        dims = inp.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_value = 1
    graph = onnx.shape_inference.infer_shapes(proto).graph
    shapes = {t.name: list(t.dims) for t in graph.initializer}
    for vi in [*graph.input, *graph.value_info, *graph.output]:
        shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else None
                           for d in vi.type.tensor_type.shape.dim]
    total = 0
    for node in graph.node:
        if node.op_type not in ("Conv", "ConvTranspose"):
            continue
        x, w, y = shapes.get(node.input[0]), shapes.get(node.input[1]), shapes.get(node.output[0])
        if not (x and w and y) or None in x + w + y:
            return None
        # Conv: W (C_out, C_in/g, kh, kw), cost per output pixel; ConvTranspose: W (C_in, C_out/g, kh, kw),
        # each input pixel scatters a kernel. Either way: pixels x prod(W).
        pixels = int(np.prod(y[2:] if node.op_type == "Conv" else x[2:]))
        total += 2 * pixels * int(np.prod(w))
    return total


# ---------------------------------------------------------------- clip and stages

def check_video(video: str) -> None:
    """The product's checks and one-line errors for the video; streams are refused before opening."""
    if is_url(video):
        raise UsageError(f"bench needs a video file, not a stream ({video}); record a clip first")
    open_video(video).close()


def read_clip(video: str, n: int) -> Clip:
    """Decode the first `n` frames into memory, timing each cv2 read."""
    _status(f"decoding {n} frames of {video}")
    cap = cv2.VideoCapture(video, cv2.CAP_FFMPEG)
    frames, decode_ms = [], []
    try:
        while len(frames) < n:
            ms, (ok, frame) = _ms(cap.read)
            if not ok:
                break
            frames.append(frame)
            decode_ms.append(ms)
        fps = cap.get(cv2.CAP_PROP_FPS)
    finally:
        cap.release()
    if len(decode_ms) > 1:
        decode_ms = decode_ms[1:]  # the first read starts the decoder: warm-up, not counted
    if len(frames) < n:
        print(f"note: {video} has only {len(frames)} frames; measuring those", file=sys.stderr)
    size = (frames[0].shape[1], frames[0].shape[0])
    return Clip(video, frames, decode_ms, fps if 1 <= fps <= 240 else 30.0, size)


def _hud_args() -> tuple[StageTimes, SimpleNamespace]:
    """Stage times and a source stand-in for the HUD's text, as the viewer fills them."""
    times = StageTimes()
    for stage in ("read", "preprocess", "inference", "draw"):
        times.add(stage, 1.0)
    return times, SimpleNamespace(dropped=0)


def _drawer(model: SegModel) -> Callable[[Packet], np.ndarray]:
    """The viewer's per-frame drawing (compose + legend + HUD), with its default view."""
    from .viewer import ViewState, hud_lines, render
    state, legend = ViewState(), Legend(model.classes, model.palette_bgr)
    times, source = _hud_args()
    return lambda packet: render(packet, model, legend, state, hud_lines(30.0, times, model, source, state))


def _writer(path: Path, clip: Clip) -> cv2.VideoWriter:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*CODEC), clip.fps, clip.size)
    if not writer.isOpened():
        raise UserError(f"cannot encode {CODEC} video in {path.parent}; check this OpenCV's FFmpeg")
    return writer


def measure_stages(model: SegModel, clip: Clip, tmp: Path) -> tuple[dict[str, list[float]], list]:
    """Each stage alone over the in-memory frames: ms per frame, and the class maps.

    Every stage is warmed up first (first session runs allocate, the legend and fonts are drawn
    once, the encoder starts), as in a long-running viewer.
    """
    size, draw, warm = model.input_size, _drawer(model), clip.frames[:2]
    for i, frame in enumerate(warm):
        draw(Packet(i, frame, model.infer(preprocess([frame], size))[0]))
    _encode(tmp / "warm-up.mp4", clip, [draw(Packet(0, warm[0], model.predict(warm[:1])[0]))])
    ms: dict[str, list[float]] = {"decode": clip.decode_ms}
    ms["preprocess"], xs = zip(*(_ms(lambda f=f: preprocess([f], size)) for f in clip.frames))
    ms["inference"], maps = zip(*(_ms(lambda x=x: model.infer(x)[0]) for x in xs))
    ms["draw"], images = zip(*(_ms(lambda i=i: draw(Packet(i, clip.frames[i], maps[i])))
                               for i in range(len(clip.frames))))
    ms["encode"] = _encode(tmp / "encode.mp4", clip, images)
    return {k: list(v) for k, v in ms.items()}, list(maps)


def _encode(path: Path, clip: Clip, images) -> list[float]:
    """Write `images` with a plain cv2.VideoWriter; ms per write."""
    writer = _writer(path, clip)
    try:
        return [_ms(lambda im=im: writer.write(im))[0] for im in images]
    finally:
        writer.release()


def throughput(model: SegModel, clip: Clip, batches: tuple[int, ...], seconds: float = 0.5) -> dict[str, float]:
    """Images per second of session.run alone at each batch size (real frames, time-boxed)."""
    out = {}
    for b in batches:
        x = preprocess([clip.frames[i % len(clip.frames)] for i in range(b)], model.input_size)
        model.infer(x)  # warm-up at this shape
        runs, t0 = 0, time.perf_counter()
        while runs < 3 or time.perf_counter() - t0 < seconds:
            model.infer(x)
            runs += 1
        out[str(b)] = b * runs / (time.perf_counter() - t0)
    return out


# ---------------------------------------------------------------- end to end

class FirstFrames:
    """A source that ends after `limit` frames; everything else is the wrapped source's."""

    def __init__(self, source: Source, limit: int):
        self._source, self._limit, self._count = source, limit, 0
        count = source.frame_count
        self.frame_count = min(limit, count) if count else limit

    def read(self) -> np.ndarray | None:
        if self._count >= self._limit:
            return None
        self._count += 1
        return self._source.read()

    def __getattr__(self, name: str):
        return getattr(self._source, name)


def product_pipeline(model: SegModel, clip: Clip, tmp: Path) -> tuple[float, dict[str, float]]:
    """FPS of the viewer's own loop (`--no-show --output`), from the file, encoder drained."""
    from . import viewer
    source = FirstFrames(open_video(clip.path), len(clip.frames))
    output = VideoOutput(tmp / "pipeline.mp4", source.fps, source.size)
    chatter, closed = io.StringIO(), False  # its progress bar and summary line
    try:
        with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
            t0 = time.perf_counter()
            summary = viewer._loop(model, source, output, False, viewer.ViewState(), tmp)
            output.close(ok=False)  # waits for the encoder thread to finish: part of the product
            closed, seconds = True, time.perf_counter() - t0
    finally:
        source.close()
        if not closed:
            output.close(ok=False)
    log.debug("viewer output: %s", chatter.getvalue().strip())
    stages = dict(summary["stages_ms"])
    if output.frames:
        stages["encode"] = output.encode_ms / output.frames
    return summary["frames"] / seconds, stages


def sequential_fps(clip: Clip, tmp: Path, name: str, size: tuple[int, int],
                   infer: Callable[[np.ndarray], np.ndarray], draw: Callable[[Packet], np.ndarray]) -> float:
    """FPS of read -> preprocess -> infer -> draw -> write, one after another in one thread."""
    cap = cv2.VideoCapture(clip.path, cv2.CAP_FFMPEG)
    writer = _writer(tmp / f"{name}.mp4", clip)
    frames = 0
    try:
        t0 = time.perf_counter()
        while frames < len(clip.frames):
            ok, frame = cap.read()
            if not ok:
                break
            class_map = infer(preprocess([frame], size))[0]
            writer.write(draw(Packet(frames, frame, class_map)))
            frames += 1
        writer.release()
        seconds = time.perf_counter() - t0
    finally:
        cap.release()
        writer.release()
    return frames / seconds


# ---------------------------------------------------------------- seed Keras

@contextlib.contextmanager
def quiet_stderr():
    """File descriptor 2 to /dev/null inside the block (C++ logging); Python errors still propagate."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr: nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def keras_path_for(model_path: Path, override: str | None) -> Path:
    """--keras PATH, else the .keras file beside the .onnx with the same stem."""
    return Path(override) if override else model_path.with_suffix(".keras")


def seed_keras(result: ModelResult, model: SegModel, clip: Clip, tmp: Path, path: Path) -> None:
    """The seed's loop: Keras model.predict once per frame; fills fps and FLOPs, or a skip note."""
    result.keras_path = str(path)
    if not path.is_file():
        result.seed_keras_note = f"skipped: no Keras file {path.name} beside the model (pass --keras)"
        return
    try:
        from export.onnx_export import load_keras
        with quiet_stderr():  # TensorFlow's C++ start-up lines, printed despite TF_CPP_MIN_LOG_LEVEL
            kmodel = load_keras(path)  # imports Keras (and TensorFlow): only here
    except ImportError as e:
        result.seed_keras_note = f"skipped: keras not installed ({e.name or e}); pip install -r requirements-train.txt"
        return
    except UserError as e:  # a bad .keras must not throw away what was measured
        result.seed_keras_note = f"skipped: {e}"
        return
    _, h, w, n_out = kmodel.outputs[0].shape
    if ((h, w), n_out) != (model.input_size, len(model.classes)):
        result.seed_keras_note = (f"skipped: {path.name} is {h}x{w} with {n_out} classes, the ONNX model "
                                  f"{model.input_size[0]}x{model.input_size[1]} with {len(model.classes)}")
        return
    from .model import count_flops
    result.flops_keras = count_flops(kmodel)

    def infer(x: np.ndarray) -> np.ndarray:
        return np.argmax(kmodel.predict(x, verbose=0), axis=-1).astype(np.uint8)

    with quiet_stderr():
        infer(preprocess(clip.frames[:1], (h, w)))  # warm-up: graph tracing, first call
    result.seed_keras_fps = sequential_fps(clip, tmp, "seed_keras", (h, w), infer, _drawer(model))


# ---------------------------------------------------------------- one model

def bench_model(model: SegModel, name: str, cfg: BenchConfig, clip: Clip, tmp: Path) -> ModelResult:
    """Stages alone, model alone, product pipeline and naive loop for one ONNX model."""
    result = ModelResult(name, str(model.path), model.input_size, len(model.classes), model.output_name,
                         model.provider, cfg.threads, cfg.spinning, len(clip.frames))
    _status(f"{name}: stages alone")
    ms, _ = measure_stages(model, clip, tmp)
    result.stages_ms = {k: _mean(v) for k, v in ms.items()}
    result.stages_ms_median = {k: statistics.median(v) for k, v in ms.items()}
    result.latency_ms_b1_median = statistics.median(ms["inference"])
    result.slowest_stage = max(result.stages_ms, key=result.stages_ms.get)
    result.bound_fps = 1000 / result.stages_ms[result.slowest_stage]
    result.serial_fps = 1000 / sum(result.stages_ms.values())
    _status(f"{name}: model alone at batches {', '.join(map(str, cfg.batches))}")
    result.throughput_ips = throughput(model, clip, cfg.batches)
    _status(f"{name}: product pipeline")
    result.pipeline_fps, result.pipeline_stages_ms = product_pipeline(model, clip, tmp)
    _status(f"{name}: naive onnxruntime loop")
    result.naive_ort_fps = sequential_fps(clip, tmp, "naive_ort", model.input_size, model.infer, _drawer(model))
    result.flops_onnx = onnx_conv_flops(model.path)
    return result


def finish(result: ModelResult) -> None:
    """FLOPs (Keras when loaded, else the ONNX graph), achieved GFLOP/s and the ratios."""
    if result.flops_keras:
        result.flops, result.flops_source = result.flops_keras, "keras"
    elif result.flops_onnx:
        result.flops, result.flops_source = result.flops_onnx, "onnx"
    else:
        result.flops_source = "unavailable (install onnx, or put the .keras beside the model)"
    if result.flops:
        result.inference_gflops_per_s = result.flops / (result.stages_ms["inference"] / 1e3) / 1e9
    result.ratios = {"pipeline_over_seed_keras": _ratio(result.pipeline_fps, result.seed_keras_fps),
                     "pipeline_over_naive_ort": _ratio(result.pipeline_fps, result.naive_ort_fps),
                     "pipeline_over_bound": _ratio(result.pipeline_fps, result.bound_fps)}


def _status(text: str) -> None:
    print(f"bench: {text} ...", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- report

def _fmt(value: float | None, spec: str = ".1f", none: str = "-") -> str:
    return none if value is None else format(value, spec)


def table(result: ModelResult, baseline: ModelResult | None = None) -> str:
    """The per-model table: stages alone, bound, end to end, ratios, model alone."""
    r = result
    gflops = f"{r.flops / 1e9:.2f} GFLOPs/frame ({r.flops_source})" if r.flops else "FLOPs unknown"
    lines = [f"model {r.model}: {r.input_size[0]}x{r.input_size[1]}, {r.classes} classes, {gflops}, "
             f"{r.provider.replace('ExecutionProvider', '')}, threads {r.threads or 'auto'}"
             f"{'' if r.spinning else ', no spinning'}",
             "  stage alone     ms/frame"]
    for stage in STAGES:
        mark = "   <- slowest" if stage == r.slowest_stage else ""
        lines.append(f"  {stage:<14} {r.stages_ms[stage]:9.2f}{mark}")
    lines += [f"  bound          {r.bound_fps:9.1f} FPS  (1000 / slowest stage; all in series: "
              f"{r.serial_fps:.1f} FPS)",
              "  end to end           FPS  pipeline / this",
              f"  pipeline       {r.pipeline_fps:9.1f}  1.00x  (the product: overlapped threads)",
              f"  naive ORT      {r.naive_ort_fps:9.1f}  {_fmt(r.ratios['pipeline_over_naive_ort'], '.2f')}x",
              f"  seed Keras     {_fmt(r.seed_keras_fps, '9.1f', '        -')}  "
              f"{_fmt(r.ratios['pipeline_over_seed_keras'], '.2f')}x  {r.seed_keras_note}".rstrip(),
              f"  pipeline / bound {_fmt(r.ratios['pipeline_over_bound'], '.2f')}",
              f"  model alone: batch-1 latency {r.latency_ms_b1_median:.2f} ms (median); images/s "
              + ", ".join(f"b{b} {v:.1f}" for b, v in r.throughput_ips.items())]
    if r.inference_gflops_per_s:
        lines.append(f"  inference runs at {r.inference_gflops_per_s:.1f} GFLOP/s")
    if baseline is not None and baseline is not r:
        lines.append(f"  vs {baseline.model}: pipeline {r.pipeline_fps / baseline.pipeline_fps:.2f}x, "
                     f"inference {baseline.stages_ms['inference'] / r.stages_ms['inference']:.2f}x")
    return "\n".join(lines)


def report(cfg: BenchConfig, clip: Clip, results: list[ModelResult], machine: dict) -> dict:
    """The JSON document: run facts, machine, versions, every model, and the first model's keys on top."""
    doc = {"video": clip.path, "video_size": list(clip.size), "video_fps": clip.fps,
           "frames": len(clip.frames), "device": cfg.device, "threads": cfg.threads,
           "spinning": cfg.spinning, "machine": machine, "versions": versions(),
           "models": [asdict(r) for r in results]}
    return {**asdict(results[0]), **doc}


def write_json(doc: dict, path: Path) -> None:
    write_atomic(path, lambda tmp: tmp.write_text(json.dumps(doc, indent=2) + "\n"),
                 hint="choose a writable --json path")


# ---------------------------------------------------------------- command

def run(cfg: BenchConfig) -> dict:
    """Measure every model on the same clip; print the tables; return the JSON document."""
    check_video(cfg.video)
    paths = [resolve_model(m) for m in cfg.models]
    if cfg.json:  # fail before measuring, not after; never over an input
        models = {"model": paths[0]} if len(paths) == 1 else {f"model {p.name}": p for p in paths}
        inputs = {"video": cfg.video, **models}
        check_output_file(Path(cfg.json), "--json", {**inputs, **({"Keras model": cfg.keras} if cfg.keras else {})})
    models = [load_model(p, cfg.device, cfg.threads, cfg.spinning) for p in paths]
    if cfg.keras and not Path(cfg.keras).is_file():
        raise UserError(f"Keras model {cfg.keras} not found; pass --keras PATH to a .keras file")
    load = load_average()
    if load is not None and load > 0.5 * (os.cpu_count() or 1):
        print(f"warning: load average {load} on {os.cpu_count()} cores: other processes use the CPU, "
              f"timings will be low and noisy", file=sys.stderr)
    clip = read_clip(cfg.video, cfg.frames)
    results = []
    with tempfile.TemporaryDirectory(prefix="realtime_seg_bench_") as tmp:
        for model, spec in zip(models, cfg.models):
            name = spec if spec in PRESETS else Path(spec).stem
            results.append(bench_model(model, name, cfg, clip, Path(tmp)))
        for result, model, path in zip(results, models, paths):  # last: TensorFlow stays loaded after
            if cfg.seed_keras:
                _status(f"{result.model}: seed Keras loop")
                seed_keras(result, model, clip, Path(tmp), keras_path_for(path, cfg.keras))
            else:
                result.seed_keras_note = "skipped: --no-keras"
            finish(result)
    _status("matrix-multiply rate")
    machine = machine_info(any(r.provider.startswith("CUDA") for r in results), load)
    print(f"bench: {clip.path} ({clip.size[0]}x{clip.size[1]}, {len(clip.frames)} frames), "
          f"{machine['cpu']}, {machine['cores']} cores ({' '.join(machine['flags']) or 'no SIMD flags read'})"
          f"{', GPU ' + machine['gpu'] if machine['gpu'] else ''}; "
          f"NumPy float32 matmul {machine['matmul_gflops']:.0f} GFLOP/s")
    for r in results:
        print(table(r, results[0] if len(results) > 1 else None))
    doc = report(cfg, clip, results, machine)
    if cfg.json:
        write_json(doc, Path(cfg.json))
        print(f"wrote {cfg.json}")
    return doc


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m realtime_seg bench", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--video", default=str(DEMO_VIDEO), help="video file (default: the demo video)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--model", help=f"ONNX model or preset ({', '.join(PRESETS)}); default: accurate")
    which.add_argument("--models", nargs="+", metavar="M", help="several models, measured in one run")
    p.add_argument("--keras", help="the same weights as .keras (default: M.keras beside M.onnx)")
    p.add_argument("--no-keras", action="store_true", help="skip the seed Keras loop")
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--frames", type=int, default=200, help="first N frames of the video (default 200)")
    p.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0: automatic)")
    p.add_argument("--spin", action="store_true",
                   help="let onnxruntime's idle threads busy-wait (its own default; the product turns it off)")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8], help="batch sizes for model alone")
    p.add_argument("--json", help="also write the results as JSON")
    return p


def config(args: argparse.Namespace) -> BenchConfig:
    """Checked settings from the parsed arguments."""
    if args.frames < 1:
        raise UsageError(f"--frames must be at least 1, got {args.frames}")
    if args.threads < 0:
        raise UsageError(f"--threads must be 0 or more, got {args.threads}")
    if min(args.batches) < 1:
        raise UsageError(f"--batches must be at least 1, got {min(args.batches)}")
    models = args.models or [args.model or os.environ.get("REALTIME_SEG_MODEL", "accurate")]
    if args.keras and len(models) > 1:
        raise UsageError("--keras names one Keras file: use it with --model, not --models")
    return BenchConfig(args.video, models, args.keras, args.device, args.frames, args.threads,
                       args.spin, tuple(args.batches), not args.no_keras, args.json)


def main(argv: list[str]) -> int:
    run(config(parser().parse_args(argv)))
    return 0
