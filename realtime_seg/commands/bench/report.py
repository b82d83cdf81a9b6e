"""One model's results, built once from what was measured; the printed table and the JSON."""
from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass

from ...runtime.engine import SegModel
from ...runtime.video import DEFAULT_CODEC, describe
from ...system import usable_cores
from .config import BenchConfig
from .loops import SeedKeras
from .machine import onnx_conv_flops, versions
from .stages import Clip, _mean

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
           "frames": len(clip.frames), "encoder": ENCODER, "device": cfg.device, "threads": cfg.threads,
           "spinning": cfg.spinning, "machine": machine, "versions": versions(),
           "models": [asdict(r) for r in results]}
    return {**asdict(results[0]), **doc}
