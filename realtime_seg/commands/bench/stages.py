"""Each stage timed on its own, frame by frame, on frames decoded into memory: decode, preprocess,
inference, smooth, edges, draw, encode (the product's writer, default H.264).

`smooth` (temporal smoothing at the default --smooth) and `edges` (the class map brought to the
frame's size with smooth boundaries) are the viewer's defaults; their class maps also give the
clip's flicker with and without smoothing.
"""
from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Iterator

import cv2
import numpy as np

from ...errors import UsageError
from ...runtime.engine import SegModel
from ...runtime.look import Look
from ...runtime.pipeline import Packet, StageTimes
from ...runtime.player import ViewState, render
from ...runtime.render import to_frame_size
from ...runtime.sources import is_url, open_video_file
from ...runtime.temporal import FlickerMeter, TemporalSmoother
from ...runtime.video import VideoOutput



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


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def check_video(video: str) -> None:
    """The product's checks and one-line errors for the video; streams are refused before opening."""
    if is_url(video):
        raise UsageError(f"bench needs a video file, not a stream ({video}); record a clip first")
    open_video_file(Path(video))[0].release()  # a video file: bench times FFmpeg's decoding


def read_clip(video: str, n: int) -> Clip:
    """Decode the first `n` frames into memory, timing each cv2 read (and again on one thread)."""
    _status(f"decoding {n} frames of {video}")
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


def _status(text: str) -> None:
    print(f"bench: {text} ...", file=sys.stderr, flush=True)
