"""End to end: the viewer's own loop, a naive sequential onnxruntime loop, and the seed's Keras loop."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from ...contract import preprocess
from ...errors import UserError
from ...runtime.engine import SegModel
from ...runtime.look import Look
from ...runtime.pipeline import Packet
from ...runtime.player import ViewState, play
from ...runtime.sources import Source, open_video
from ...runtime.video import VideoOutput
from ...system import quiet_stderr
from .stages import Clip, _drawer, _writer


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
