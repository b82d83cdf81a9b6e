"""What `bench` measures, on frames decoded into memory and on the video itself.

Stages alone: decode, preprocess, inference, smooth, edges, draw, encode (the product's writer,
default H.264), each timed on its own, frame by frame. `smooth` (temporal smoothing at the
default --smooth) and `edges` (the class map brought to the frame's size with smooth boundaries)
are the viewer's defaults; their class maps also give the clip's flicker with and without
smoothing. End to end: the viewer's own loop, a naive sequential onnxruntime loop, and the seed's
Keras loop. `bench_model` runs all of them but the Keras loop for one model.
"""
from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Iterator

import cv2
import numpy as np

from ...contract import preprocess
from ...errors import UsageError, UserError
from ...runtime.engine import SegModel
from ...runtime.look import Look
from ...runtime.models import ModelChoice, RunOptions, open_model, open_streams
from ...runtime.pipeline import Packet, StageTimes
from ...runtime.player import ViewState, play, render
from ...runtime.render import to_frame_size
from ...runtime.media import open_video_file
from ...runtime.sources import Source, is_url, open_video
from ...runtime.temporal import FlickerMeter, TemporalSmoother
from ...runtime.video import VideoOutput
from ...system import quiet_stderr


@dataclass
class BenchConfig:
    """The settings of one run, checked by command.config."""

    video: str
    choices: list[ModelChoice]  # one row each: every model at every --precision and --aspect asked for
    keras: str | None = None
    options: RunOptions = RunOptions()  # --device, --threads, --spin
    frames: int = 200
    batches: tuple[int, ...] = (1, 4, 8)
    seed_keras: bool = True
    json: str | None = None
    plot: str | None = None     # --plot FILE.png: the stage times per model


@dataclass
class Clip:
    """The first frames of the video, decoded into memory, with the decode time of each."""

    path: str
    frames: list[np.ndarray]
    decode_ms: list[float]
    fps: float
    size: tuple[int, int]  # (width, height)
    decode_ms_1thread: list[float]  # the same frames decoded again with one FFmpeg thread: CPU ms


def _ms(fn: Callable[[], object], clock: Callable[[], float] = time.perf_counter) -> tuple[float, object]:
    """Milliseconds one call of `fn` takes on `clock` (wall time, or the process's CPU time), and its result."""
    t = clock()
    out = fn()
    return (clock() - t) * 1e3, out


def check_video(video: str) -> None:
    """The product's checks and one-line errors for the video; streams are refused before opening."""
    if is_url(video):
        raise UsageError(f"bench needs a video file, not a stream ({video}); record a clip first")
    open_video_file(Path(video))[0].release()  # a video file: bench times FFmpeg's decoding


def read_clip(video: str, n: int) -> Clip:
    """Decode the first `n` frames into memory, timing each cv2 read (and again on one thread)."""
    status(f"decoding {n} frames of {video}")
    frames, decode_ms, fps = _decode(video, n, [])
    _, one_thread, _ = _decode(video, n, [cv2.CAP_PROP_N_THREADS, 1], time.process_time)
    if len(frames) < n:
        print(f"note: {video} has only {len(frames)} frames; measuring those", file=sys.stderr)
    size = (frames[0].shape[1], frames[0].shape[0])
    return Clip(video, frames, decode_ms, fps if 1 <= fps <= 240 else 30.0, size, one_thread)


def _decode(video: str, n: int, params: list[int], clock: Callable[[], float] = time.perf_counter
            ) -> tuple[list[np.ndarray], list[float], float]:
    """The first `n` frames, ms per cv2 read (the first read, which starts the decoder, dropped), fps."""
    cap = cv2.VideoCapture(video, cv2.CAP_FFMPEG, params)
    frames, decode_ms = [], []
    try:
        while len(frames) < n:
            ms, (ok, frame) = _ms(cap.read, clock)
            if not ok:
                break
            frames.append(frame)
            decode_ms.append(ms)
        fps = cap.get(cv2.CAP_PROP_FPS)
    finally:
        cap.release()
    if len(decode_ms) > 1:
        decode_ms = decode_ms[1:]  # the first read starts the decoder: warm-up, not counted
    return frames, decode_ms, fps


@contextlib.contextmanager
def one_cv2_thread() -> Iterator[None]:
    """OpenCV's own thread pool limited to one thread inside the block (resize, colour, blend)."""
    before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(before)


def _hud_args() -> tuple[StageTimes, SimpleNamespace]:
    """Stage times and a source stand-in for the HUD's text, as the viewer fills them."""
    times = StageTimes()
    for stage in ("read", "preprocess", "inference", "smooth", "edges", "draw"):
        times.add(stage, 1.0)
    return times, SimpleNamespace(dropped=0)


def _drawer(model: SegModel) -> Callable[..., np.ndarray]:
    """The viewer's painting of a frame (its overlay, legend and HUD), with its default view.

    Called with `full` (the frame-size class map, timed as the edges stage) it only paints.
    """
    state = ViewState.of(Look(), model)  # the viewer's defaults
    times, source = _hud_args()
    return lambda packet, full=None: render(packet, model, state, 30.0, times, source, full)


def _writer(path: Path, clip: Clip) -> VideoOutput:
    """The product's writer with its default codec for `path` (its `encode`: synchronous, timed)."""
    return VideoOutput(path, clip.fps, clip.size)


def measure_stages(model: SegModel, clip: Clip, tmp: Path, one_thread: bool = False,
                   clock: Callable[[], float] = time.perf_counter
                   ) -> tuple[dict[str, list[float]], dict[str, float | None]]:
    """Each stage timed on its own over the in-memory frames, frame by frame: ms per frame, and the clip's flicker.

    Every stage is warmed up first (first session runs allocate, the legend and fonts are drawn
    once, the encoder starts), as in a long-running viewer. `one_thread`: OpenCV on one thread,
    the one-thread decode (pass a model loaded with threads=1), timed in the process's CPU time:
    the work each stage costs, which other processes on a shared machine do not inflate.
    Flicker: mean fraction of pixels whose class changes between consecutive frames, without
    (`smooth_0`) and with the default temporal smoothing.
    """
    if one_thread:
        with one_cv2_thread():
            ms, maps = measure_stages(model, clip, tmp, clock=time.process_time)
        return {**ms, "decode": clip.decode_ms_1thread}, maps
    draw, warm = _drawer(model), clip.frames[:2]
    for i, frame in enumerate(warm):
        maps, probs = model.infer_probs(model.prepare([frame]))
        draw(Packet(i, frame, maps[0], probs=None if probs is None else probs[0]))
    _encode(tmp / "warm-up.mp4", clip, [draw(Packet(0, warm[0], model.predict(warm[:1])[0]))])
    ms: dict[str, list[float]] = {"decode": clip.decode_ms}
    look = Look()  # the viewer's defaults: its smoothing and edges
    smoother, n, maps = TemporalSmoother(look.smooth), len(model.classes), {"raw": [], "smoothed": []}
    writer = _writer(tmp / "encode.mp4", clip)  # the product's writer and default codec (h264)

    def timed(stage: str, fn: Callable[[], object]):
        took, out = _ms(fn, clock)
        ms.setdefault(stage, []).append(took)
        return out
    try:  # frame by frame, each result dropped after the next stage: memory is reused as in the viewer
        for i, frame in enumerate(clip.frames):
            x = timed("preprocess", lambda: model.prepare([frame]))
            class_maps, probs = timed("inference", lambda: model.infer_probs(x))
            raw = (class_maps[0], None if probs is None else probs[0])
            class_map, average = timed("smooth", lambda: smoother.step(*raw, n, frame))
            full = timed("edges", lambda: to_frame_size(class_map, clip.size, look.edges, average))
            image = timed("draw", lambda: draw(Packet(i, frame, class_map, probs=average), full))
            timed("encode", lambda: writer.encode(image))
            maps["raw"].append(raw[0])
            maps["smoothed"].append(class_map)
        ms["encode"][-1] += _ms(writer.finish, clock)[0]  # the frames the encoder held back: its work too
    finally:
        writer.discard()
    flicker = {"smooth_0": _flicker(maps["raw"]), f"smooth_{look.smooth:g}": _flicker(maps["smoothed"])}
    return ms, flicker


def _flicker(maps) -> float | None:
    meter = FlickerMeter()
    for class_map in maps:
        meter.add(class_map)
    return meter.mean


def _encode(path: Path, clip: Clip, images) -> None:
    """Write `images` with the product's writer (warm-up)."""
    writer = _writer(path, clip)
    try:
        for image in images:
            writer.encode(image)
        writer.finish()
    finally:
        writer.discard()


def throughput(model: SegModel, clip: Clip, batches: tuple[int, ...], seconds: float = 0.5) -> dict[str, float]:
    """Images per second of session.run alone at each batch size (real frames, time-boxed)."""
    out = {}
    for b in batches:
        x = model.prepare([clip.frames[i % len(clip.frames)] for i in range(b)])
        model.infer(x)  # warm-up at this shape
        runs, t0 = 0, time.perf_counter()
        while runs < 3 or time.perf_counter() - t0 < seconds:
            model.infer(x)
            runs += 1
        out[str(b)] = b * runs / (time.perf_counter() - t0)
    return out


def status(text: str) -> None:
    """One line on stderr: what bench measures now (a run takes minutes)."""
    print(f"bench: {text} ...", file=sys.stderr, flush=True)


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


def product_pipeline(model: SegModel, clip: Clip, tmp: Path, workers: int = 1
                     ) -> tuple[float, dict[str, float], float | None, float]:
    """FPS of the viewer's own loop (`--no-show --output`, default settings, `workers` frames in
    flight), from the file, encoder drained; its stage means, its flicker, and the CPU ms per
    frame the process spent (all its threads), to tell idle cores from busy ones."""
    source = FirstFrames(open_video(clip.path), len(clip.frames))
    output = VideoOutput(tmp / "pipeline.mp4", source.fps, source.size)
    try:
        t0, cpu0 = time.perf_counter(), time.process_time()
        summary = play(model, source, ViewState.of(Look(), model), output, bar=False, workers=workers)
        output.finish()  # waits for the encoder thread and flushes the encoder: part of the product
        seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    finally:
        source.close()
        output.discard()
    stages = dict(summary["stages_ms"])
    if output.frames:
        stages["encode"] = output.encode_ms / output.frames
    return summary["frames"] / seconds, stages, summary["flicker"], cpu * 1e3 / max(summary["frames"], 1)


def sequential_fps(clip: Clip, tmp: Path, name: str, prepare: Callable[[list[np.ndarray]], np.ndarray],
                   infer: Callable[[np.ndarray], np.ndarray], draw: Callable[[Packet], np.ndarray]
                   ) -> tuple[float, float]:
    """FPS of read -> preprocess -> infer -> draw -> write, one after another in one thread; CPU ms/frame."""
    cap = cv2.VideoCapture(clip.path, cv2.CAP_FFMPEG)
    writer = _writer(tmp / f"{name}.mp4", clip)
    frames = 0
    try:
        t0, cpu0 = time.perf_counter(), time.process_time()
        while frames < len(clip.frames):
            ok, frame = cap.read()
            if not ok:
                break
            class_map = infer(prepare([frame]))[0]
            writer.encode(draw(Packet(frames, frame, class_map)))
            frames += 1
        writer.finish()
        seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    finally:
        cap.release()
        writer.discard()
    return frames / seconds, cpu * 1e3 / max(frames, 1)


def keras_path_for(model_path: Path, override: str | None) -> Path:
    """--keras PATH, else the .keras file beside the .onnx with the same stem."""
    return Path(override) if override else model_path.with_suffix(".keras")


@dataclass(frozen=True)
class SeedKeras:
    """The seed's loop measured (fps), or why it was skipped (note); FLOPs counted from Keras."""

    path: str
    fps: float | None = None
    flops: int | None = None
    cpu_ms: float | None = None  # CPU time (all threads) per frame: comparable on a shared machine
    note: str = ""


def seed_keras(model: SegModel, clip: Clip, tmp: Path, path: Path) -> SeedKeras:
    """The seed's loop: Keras model.predict once per frame, with the same weights as `model`."""
    if not path.is_file():
        return SeedKeras(str(path), note=f"skipped: no Keras file {path.name} beside the model (pass --keras)")
    try:
        from ...training.checkpoint import load_keras
        with quiet_stderr():  # TensorFlow's C++ start-up lines, printed despite TF_CPP_MIN_LOG_LEVEL
            kmodel = load_keras(path)  # imports Keras (and TensorFlow): only here
    except ImportError as e:
        return SeedKeras(str(path), note=f"skipped: keras not installed ({e.name or e}); "
                                         f"pip install -r requirements-train.txt")
    except UserError as e:  # a bad .keras must not throw away what was measured
        return SeedKeras(str(path), note=f"skipped: {e}")
    _, h, w, n_out = kmodel.outputs[0].shape
    if ((h, w), n_out) != (model.input_size, len(model.classes)):
        return SeedKeras(str(path), note=f"skipped: {path.name} is {h}x{w} with {n_out} classes, the ONNX "
                                         f"model {model.input_size[0]}x{model.input_size[1]} with "
                                         f"{len(model.classes)}")
    from ...training.model import count_flops

    def infer(x: np.ndarray) -> np.ndarray:
        return np.argmax(kmodel.predict(x, verbose=0), axis=-1).astype(np.uint8)

    def prepare(frames: list[np.ndarray]) -> np.ndarray:  # Keras takes float32 in [0, 1]
        return preprocess(frames, (h, w), np.float32)

    with quiet_stderr():
        infer(prepare(clip.frames[:1]))  # warm-up: graph tracing, first call
    fps, cpu_ms = sequential_fps(clip, tmp, "seed_keras", prepare, infer, _drawer(model))
    return SeedKeras(str(path), fps, count_flops(kmodel), cpu_ms)


def _same(model: SegModel, choice: ModelChoice) -> ModelChoice:
    """What opens `model` again, at its aspect: its file, or the foreign choice it was imported from."""
    return choice if choice.foreign is not None else replace(choice, path=model.path, preset=False, precision="auto")


def bench_model(model: SegModel, name: str, cfg: BenchConfig, clip: Clip, tmp: Path, choice: ModelChoice) -> dict:
    """Stages alone, model alone, product pipeline and naive loop for one ONNX model: the measurements."""
    status(f"{name}: stages alone")
    stages_ms, flicker = measure_stages(model, clip, tmp)
    status(f"{name}: stages alone, one thread each")
    single = open_model(_same(model, choice), replace(cfg.options, threads=1))
    stages_ms_1thread, _ = measure_stages(single, clip, tmp, one_thread=True)
    status(f"{name}: model alone at batches {', '.join(map(str, cfg.batches))}")
    throughput_ips = throughput(model, clip, cfg.batches)
    status(f"{name}: product pipeline")
    # the viewer's own plan: its threads and frames in flight
    streamed = open_streams(_same(model, choice), cfg.options)
    plan = streamed.plan
    pipeline_fps, pipeline_stages_ms, pipeline_flicker, pipeline_cpu_ms = product_pipeline(
        streamed.model, clip, tmp, plan.workers)
    status(f"{name}: naive onnxruntime loop")
    naive, _ = sequential_fps(clip, tmp, "naive_ort", model.prepare, model.infer, _drawer(model))
    return {"stages_ms": stages_ms, "stages_ms_1thread": stages_ms_1thread,
            "throughput_ips": throughput_ips, "pipeline_fps": pipeline_fps,
            "pipeline_stages_ms": pipeline_stages_ms, "pipeline_cpu_ms": pipeline_cpu_ms,
            "pipeline_plan": {"threads": plan.threads, "workers": plan.workers},
            "naive_ort_fps": naive, "flicker": {**flicker, "pipeline": pipeline_flicker},
            "input_size": model.size_for(clip.frames[0].shape)}
