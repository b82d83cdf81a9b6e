"""What a `bench` run reports: each model's result, built once from what was measured; the machine
it ran on (CPU, SIMD flags, GPU, BLAS rate, load, versions; model FLOPs); the printed table, the
JSON and `--plot`'s picture.

`--plot FILE.png` draws the stage times per model, one bar per row of the run: each bar stacks the
stages' one-thread CPU ms per frame (`stages_ms_1thread`: the work a frame costs, steadier than
wall time on a shared machine); its label gives the pipeline's FPS and the CPU bound
(cores x 1000 / that sum).
"""
from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from ...plots import figure, save
from ...runtime.engine import SegModel
from ...runtime.video import DEFAULT_CODEC, describe
from ...system import cpu_flags, cpu_info, usable_cores
from .measure import BenchConfig, Clip, SeedKeras

STAGES = ("decode", "preprocess", "inference", "smooth", "edges", "draw", "encode")
ENCODER = describe(DEFAULT_CODEC[".mp4"])  # what the encode stage and the pipeline write, e.g. h264 (libx264 superfast)


@dataclass
class ModelResult:
    """Everything measured for one model, built once by `build_result`; `asdict` of it is its JSON."""

    model: str
    model_path: str
    precision: str                       # fp32, fp16 or int8: the variant this row ran
    input_size: tuple[int, int]          # what the clip's frames ran at (aspect keep: their own aspect)
    aspect: str                          # keep or squash: what a frame of another aspect got
    classes: int
    output: str
    provider: str
    threads: int
    spinning: bool
    frames: int
    stages_ms: dict[str, float]          # mean: what bounds FPS
    stages_ms_median: dict[str, float]   # far below the mean: contention
    slowest_stage: str
    bound_fps: float
    serial_fps: float
    stages_ms_1thread: dict[str, float]  # each stage's work on one thread (OpenCV, FFmpeg, onnxruntime)
    cores: int
    cpu_bound_fps: float                 # cores x 1000 / sum of stages_ms_1thread: the CPU's ceiling
    pipeline_fps: float
    pipeline_stages_ms: dict[str, float]
    pipeline_cpu_ms_per_frame: float     # CPU time the process spent per frame in the pipeline (all threads)
    pipeline_cpu_share: float            # of all cores' time during the pipeline: 1.0 = every core busy with it
    pipeline_plan: dict[str, int]        # the viewer's plan it ran: onnxruntime threads per call, calls in flight
    naive_ort_fps: float
    seed_keras_fps: float | None
    seed_keras_cpu_ms_per_frame: float | None  # CPU time per frame of the seed loop (all threads)
    seed_keras_note: str
    keras_path: str | None
    latency_ms_b1_median: float
    throughput_ips: dict[str, float]
    flops: int | None
    flops_source: str
    flops_onnx: int | None
    flops_keras: int | None
    inference_gflops_per_s: float | None
    ratios: dict[str, float | None]
    flicker: dict[str, float | None]     # smooth_0, smooth_<default> (stages' maps), pipeline


def _mean(values: list[float]) -> float:
    """The mean of a stage's ms per frame (0 for a stage with no frames)."""
    return sum(values) / len(values) if values else 0.0


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def cpu_bound_fps(stages_ms_1thread: dict[str, float], cores: int) -> float:
    """The most frames/s `cores` can give when every core always works: cores x 1000 / the work per frame."""
    return cores * 1000 / sum(stages_ms_1thread.values())


def build_result(name: str, model: SegModel, threads: int, spinning: bool, measured: dict,
                 seed: SeedKeras) -> ModelResult:
    """The model's result, built once: what was measured, and what follows from it."""
    ms = measured["stages_ms"]
    stages_ms = {k: _mean(v) for k, v in ms.items()}
    one_thread = {k: _mean(v) for k, v in measured["stages_ms_1thread"].items()}
    cores = usable_cores()
    cpu_bound = cpu_bound_fps(one_thread, cores)
    slowest = max(stages_ms, key=stages_ms.get)
    bound_fps = 1000 / stages_ms[slowest]
    flops_onnx = onnx_conv_flops(model.path, measured["input_size"])
    at_trained = tuple(measured["input_size"]) == tuple(model.input_size)  # where Keras counted its FLOPs
    flops, source = ((seed.flops, "keras") if seed.flops and at_trained else (flops_onnx, "onnx") if flops_onnx else
                     (None, "unavailable (install onnx, or put the .keras beside the model)"))
    pipeline_fps = measured["pipeline_fps"]
    return ModelResult(
        model=name, model_path=str(model.path), precision=model.precision, input_size=measured["input_size"], aspect=model.aspect,
        classes=len(model.classes),
        output=model.output_name, provider=model.provider, threads=threads, spinning=spinning,
        frames=len(ms["inference"]), stages_ms=stages_ms,
        stages_ms_median={k: statistics.median(v) for k, v in ms.items()},
        slowest_stage=slowest, bound_fps=bound_fps, serial_fps=1000 / sum(stages_ms.values()),
        stages_ms_1thread=one_thread, cores=cores, cpu_bound_fps=cpu_bound,
        pipeline_fps=pipeline_fps, pipeline_stages_ms=measured["pipeline_stages_ms"],
        pipeline_cpu_ms_per_frame=measured["pipeline_cpu_ms"],
        pipeline_cpu_share=measured["pipeline_cpu_ms"] * pipeline_fps / (1000 * cores),
        pipeline_plan=measured["pipeline_plan"],
        naive_ort_fps=measured["naive_ort_fps"], seed_keras_fps=seed.fps, seed_keras_note=seed.note,
        seed_keras_cpu_ms_per_frame=seed.cpu_ms,
        keras_path=seed.path, latency_ms_b1_median=statistics.median(ms["inference"]),
        throughput_ips=measured["throughput_ips"], flops=flops, flops_source=source,
        flops_onnx=flops_onnx, flops_keras=seed.flops,
        inference_gflops_per_s=flops / (stages_ms["inference"] / 1e3) / 1e9 if flops else None,
        ratios={"pipeline_over_seed_keras": _ratio(pipeline_fps, seed.fps),
                "pipeline_over_naive_ort": _ratio(pipeline_fps, measured["naive_ort_fps"]),
                # CPU work per frame, seed / product: the speed-up if both kept every core busy
                "seed_keras_cpu_over_pipeline_cpu": _ratio(seed.cpu_ms, measured["pipeline_cpu_ms"]),
                "pipeline_over_bound": _ratio(pipeline_fps, bound_fps),
                "pipeline_over_cpu_bound": _ratio(pipeline_fps, cpu_bound)},
        flicker=measured["flicker"])


def _fmt(value: float | None, spec: str = ".1f", none: str = "-") -> str:
    return none if value is None else format(value, spec)


def table(result: ModelResult, baseline: ModelResult | None = None) -> str:
    """The per-model table: stages alone, bound, end to end, ratios, model alone."""
    r = result
    gflops = f"{r.flops / 1e9:.2f} GFLOPs/frame ({r.flops_source})" if r.flops else "FLOPs unknown"
    lines = [f"model {r.model}: {r.input_size[0]}x{r.input_size[1]} ({r.aspect}), {r.classes} classes, {gflops}, "
             f"{r.provider.replace('ExecutionProvider', '')} {r.precision}, threads {r.threads or 'auto'}"
             f"{'' if r.spinning else ', no spinning'}",
             "  stage alone     ms/frame  1 thread"]
    for stage in STAGES:
        mark = ("   <- slowest" if stage == r.slowest_stage else "") + (f"   {ENCODER}" if stage == "encode" else "")
        lines.append(f"  {stage:<14} {r.stages_ms[stage]:9.2f} {r.stages_ms_1thread[stage]:9.2f}{mark}")
    lines += [f"  bound          {r.bound_fps:9.1f} FPS  (1000 / slowest stage; all in series: "
              f"{r.serial_fps:.1f} FPS)",
              f"  CPU bound      {r.cpu_bound_fps:9.1f} FPS  ({r.cores} cores x 1000 / "
              f"{sum(r.stages_ms_1thread.values()):.1f} ms of one-thread work per frame)",
              "  end to end           FPS  pipeline / this",
              f"  pipeline       {r.pipeline_fps:9.1f}  1.00x  (the product: overlapped threads, "
              f"{r.pipeline_plan['workers']} frame(s) in flight x {r.pipeline_plan['threads'] or 'auto'} thread(s))",
              f"  naive ORT      {r.naive_ort_fps:9.1f}  {_fmt(r.ratios['pipeline_over_naive_ort'], '.2f')}x",
              f"  seed Keras     {_fmt(r.seed_keras_fps, '9.1f', '        -')}  "
              f"{_fmt(r.ratios['pipeline_over_seed_keras'], '.2f')}x  {r.seed_keras_note}".rstrip()
              + (f" (CPU ms/frame: seed {r.seed_keras_cpu_ms_per_frame:.1f}, pipeline "
                 f"{r.pipeline_cpu_ms_per_frame:.1f}: "
                 f"{r.ratios['seed_keras_cpu_over_pipeline_cpu']:.2f}x)" if r.seed_keras_cpu_ms_per_frame else ""),
              f"  pipeline / bound {_fmt(r.ratios['pipeline_over_bound'], '.2f')}, "
              f"pipeline / CPU bound {_fmt(r.ratios['pipeline_over_cpu_bound'], '.2f')}; the pipeline got "
              f"{r.pipeline_cpu_share * 100:.0f}% of {r.cores} cores, {r.pipeline_cpu_ms_per_frame:.1f} CPU ms/frame "
              f"(one-thread work {sum(r.stages_ms_1thread.values()):.1f})",
              f"  model alone: batch-1 latency {r.latency_ms_b1_median:.2f} ms (median); images/s "
              + ", ".join(f"b{b} {v:.1f}" for b, v in r.throughput_ips.items())]
    if r.inference_gflops_per_s:
        lines.append(f"  inference runs at {r.inference_gflops_per_s:.1f} GFLOP/s")
    lines.append("  flicker (pixels changing class per frame): "
                 + ", ".join(f"{k.replace('_', ' ')} {_fmt(v and v * 100, '.2f')}%" for k, v in r.flicker.items()))
    if baseline is not None and baseline is not r:
        lines.append(f"  vs {baseline.model}: pipeline {r.pipeline_fps / baseline.pipeline_fps:.2f}x, "
                     f"inference {baseline.stages_ms['inference'] / r.stages_ms['inference']:.2f}x")
    return "\n".join(lines)


def report(cfg: BenchConfig, clip: Clip, results: list[ModelResult], machine: dict) -> dict:
    """The JSON document: run facts, machine, versions, every model, and the first model's keys on top."""
    doc = {"video": clip.path, "video_size": list(clip.size), "video_fps": clip.fps,
           "frames": len(clip.frames), "encoder": ENCODER, "device": cfg.options.device, "threads": cfg.options.threads,
           "spinning": cfg.options.spinning, "machine": machine, "versions": versions(),
           "models": [asdict(r) for r in results]}
    return {**asdict(results[0]), **doc}


# --- the machine ---

CPU_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni",
             "amx_tile", "amx_bf16", "amx_int8", "asimd", "asimddp", "i8mm", "sve")


MATMUL_N = 1024


def _gpu_name() -> str | None:
    """The first NVIDIA GPU's name from nvidia-smi, or None."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


def _seconds(fn) -> float:
    """Wall seconds one call of `fn` takes."""
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def matmul_gflops(n: int = MATMUL_N, reps: int = 10) -> float:
    """This machine's float32 matrix-multiply rate with NumPy's BLAS (best of `reps`), GFLOP/s."""
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), np.float32), rng.random((n, n), np.float32)
    a @ b  # warm-up: BLAS threads start
    best = min(_seconds(lambda: a @ b) for _ in range(reps)) * 1e3
    return 2 * n ** 3 / (best / 1e3) / 1e9


def load_average() -> float | None:
    """The 1-minute load average (None where the OS has none): other work distorts timings."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def machine_info(cuda: bool, load: float | None) -> dict:
    """CPU model, cores, SIMD flags of interest, GPU name (when on CUDA), matmul rate, load."""
    cpu, flags = cpu_info(), cpu_flags()
    return {"cpu": cpu.get("model name") or platform.processor() or platform.machine(),
            "cores": os.cpu_count(), "flags": [f for f in CPU_FLAGS if f in flags],
            "platform": platform.platform(), "gpu": _gpu_name() if cuda else None,
            "matmul_gflops": round(matmul_gflops(), 1), "matmul_n": MATMUL_N,
            "load_average_at_start": load}


def versions() -> dict[str, str]:
    """Versions of Python and of the libraries that were used (Keras/TF only if loaded)."""
    import av
    import onnxruntime
    found = {"python": platform.python_version(), "numpy": np.__version__,
             "opencv": cv2.__version__, "onnxruntime": onnxruntime.__version__, "av": av.__version__}
    for name in ("onnx", "keras", "tensorflow"):
        if name in sys.modules:
            found[name] = getattr(sys.modules[name], "__version__", "?")
    return found


def onnx_conv_flops(path: str | Path, size: tuple[int, int] | None = None) -> int | None:
    """Multiply-adds x2 of the Conv/ConvTranspose nodes for one image (at `size` (H, W) when the graph
    takes any size), by ONNX shape inference.

    None when the `onnx` package is not installed or a shape cannot be inferred.
    """
    try:
        import onnx
    except ImportError:
        return None
    proto = onnx.load(str(path))
    for inp in proto.graph.input:  # batch 1 (and `size`), so every shape is concrete
        dims = inp.type.tensor_type.shape.dim
        for axis, value in enumerate([1, *(size or ())]):
            if len(dims) > axis and not dims[axis].HasField("dim_value"):
                dims[axis].dim_value = value
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


# --- --plot's picture ---

WIDTH, HEIGHT, ROW_HEIGHT = 1000, 170, 70  # pixels: the frame of the picture, and each bar's share


def plot_stages(path: Path, results: list[ModelResult]) -> Path:
    """Draw every row's stages to `path` (PNG, WIDTH x (HEIGHT + ROW_HEIGHT per row) pixels)."""
    fig, (ax,) = figure((WIDTH, HEIGHT + ROW_HEIGHT * len(results)), sharex=False)
    stages = list(results[0].stages_ms_1thread)
    colours = dict(zip(stages, [f"C{i}" for i in range(len(stages))]))
    names = [f"{r.model} {r.precision}" for r in results][::-1]
    left = [0.0] * len(results)
    for stage in stages:
        ms = [r.stages_ms_1thread.get(stage, 0.0) for r in results][::-1]
        ax.barh(names, ms, left=left, color=colours[stage], label=stage, height=0.6)
        left = [a + b for a, b in zip(left, ms)]
    for y, (r, total) in enumerate(zip(results[::-1], left)):
        ax.text(total, y, f"  {total:.1f} ms: pipeline {r.pipeline_fps:.1f} FPS, CPU bound {r.cpu_bound_fps:.1f}",
                va="center", fontsize="small")
    ax.set_xlim(0, max(left) * 1.7)
    ax.set_xlabel("one-thread CPU ms per frame, by stage")
    fig.legend(loc="outside lower center", ncols=len(stages), frameon=False, fontsize="small")
    ax.set_title(f"bench: {results[0].frames} frames, {results[0].cores} cores")
    return save(fig, path, hint="choose a writable --plot path")
