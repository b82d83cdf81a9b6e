"""Overlapped stages: decode and inference on their own threads, bounded queues between them.

    source.read ─► [q] ─► preprocess + infer ─► [q] ─► consumer (draw, show, encode)

`segment_stream` yields `Packet`s in order; the consumer's loop is the same for every
source. `VideoOutput` encodes on its own thread into a temporary file that is renamed
only when complete.
"""
from __future__ import annotations

import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from .engine import SegModel, preprocess
from .errors import UserError
from .paths import partial_path

log = logging.getLogger(__name__)

_END = object()
CODECS = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "mp4v", ".webm": "VP80", ".mov": "mp4v"}


@dataclass
class Packet:
    index: int
    frame: np.ndarray                     # BGR (H, W, 3), as decoded
    class_map: np.ndarray | None = None   # uint8 (h, w) at the model's input size
    ms: dict[str, float] = field(default_factory=dict)


class StageTimes:
    """Milliseconds per stage: smoothed for the HUD, totals for the summary."""

    def __init__(self, alpha: float = 0.1):
        self.alpha, self.ema, self.total, self.count = alpha, {}, {}, {}
        self._lock = threading.Lock()

    def add(self, stage: str, ms: float) -> None:
        with self._lock:
            self.ema[stage] = ms if stage not in self.ema else self.ema[stage] + self.alpha * (ms - self.ema[stage])
            self.total[stage] = self.total.get(stage, 0.0) + ms
            self.count[stage] = self.count.get(stage, 0) + 1

    def mean(self) -> dict[str, float]:
        with self._lock:
            return {k: self.total[k] / self.count[k] for k in self.total}


def _put(q: queue.Queue, item, stop: threading.Event) -> bool:
    """Blocking put that gives up when `stop` is set (so threads never hang on a full queue)."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            pass
    return False


def _get(q: queue.Queue, stop: threading.Event):
    while not stop.is_set():
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            pass
    return _END


def _reader(source, out: queue.Queue, stop: threading.Event, times: StageTimes) -> None:
    index = 0
    while not stop.is_set():
        t = time.perf_counter()
        frame = source.read()
        if frame is None:
            break
        ms = (time.perf_counter() - t) * 1e3
        times.add("read", ms)
        if not _put(out, Packet(index, frame), stop):
            break
        index += 1
    _put(out, _END, stop)


def _inferrer(model: SegModel, inq: queue.Queue, out: queue.Queue, stop: threading.Event,
              times: StageTimes, batch_size: int) -> None:
    done = False
    while not done and not stop.is_set():
        batch = [_get(inq, stop)]
        while batch[-1] is not _END and len(batch) < batch_size:
            try:  # take what is already decoded; never wait to fill a batch
                batch.append(inq.get_nowait())
            except queue.Empty:
                break
        if batch[-1] is _END:
            done = True
            batch.pop()
        if batch:
            t0 = time.perf_counter()
            x = preprocess([p.frame for p in batch], model.input_size)
            t1 = time.perf_counter()
            maps = model.infer(x)
            t2 = time.perf_counter()
            times.add("preprocess", (t1 - t0) * 1e3 / len(batch))
            times.add("inference", (t2 - t1) * 1e3 / len(batch))
            for packet, class_map in zip(batch, maps):
                packet.class_map = class_map
                if not _put(out, packet, stop):
                    return
    _put(out, _END, stop)


def segment_stream(source, model: SegModel, times: StageTimes | None = None,
                   queue_size: int = 2, batch_size: int = 1) -> Iterator[Packet]:
    """Frames of `source` with their class maps, in order; stages overlap on threads."""
    times = times or StageTimes()
    stop = threading.Event()
    frames, results = queue.Queue(queue_size), queue.Queue(queue_size)
    errors: list[BaseException] = []

    def guarded(fn, *args):
        def run():
            try:
                fn(*args)
            except BaseException as e:  # re-raised in the consumer's thread
                errors.append(e)
                stop.set()
        return threading.Thread(target=run, name=fn.__name__.strip("_"), daemon=True)

    threads = [guarded(_reader, source, frames, stop, times),
               guarded(_inferrer, model, frames, results, stop, times, batch_size)]
    for t in threads:
        t.start()
    try:
        while True:
            item = _get(results, stop)
            if item is _END:
                break
            yield item
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=5.0)
    if errors:
        raise errors[0]


def codec_for(path: Path, codec: str | None = None) -> str:
    """The FourCC for a container: mp4v (.mp4), MJPG (.avi), VP80 (.webm), unless given."""
    if codec:
        if len(codec) != 4:
            raise UserError(f"codec must be a 4-letter FourCC like mp4v, MJPG or VP90, got {codec!r}")
        return codec
    if path.suffix.lower() not in CODECS:
        raise UserError(f"unsupported output type {path.suffix or '(none)'} for {path}; "
                        f"use one of {', '.join(CODECS)}")
    return CODECS[path.suffix.lower()]


_RELEASES: list[threading.Thread] = []  # encoders discarded by VideoOutput.discard, still flushing


def wait_for_releases(timeout: float = 1.5) -> None:
    """Before exiting: OpenCV aborts the process (SIGABRT) if Python shuts down mid-release."""
    deadline = time.monotonic() + timeout
    for thread in _RELEASES:
        thread.join(max(0.0, deadline - time.monotonic()))


class VideoOutput:
    """Encodes frames on a thread into a temporary file; `close(ok=True)` renames it into place."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int], codec: str | None = None,
                 queue_size: int = 4):
        self.path, self.tmp = Path(path), partial_path(Path(path))
        fourcc = codec_for(self.path, codec)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot create output folder {self.path.parent}: {e.strerror}") from None
        if not os.access(self.path.parent, os.W_OK):
            raise UserError(f"output folder {self.path.parent} is not writable; choose another output path")
        self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*fourcc), fps, size)
        if not self.writer.isOpened():
            self.tmp.unlink(missing_ok=True)
            raise UserError(f"cannot encode {self.path} with codec {fourcc}; try another --codec or extension")
        self.size, self.frames, self.error = size, 0, None
        self.encode_ms = 0.0
        self._q: queue.Queue = queue.Queue(queue_size)
        self._thread = threading.Thread(target=self._run, name="encode", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (frame := self._q.get()) is not _END:
            t = time.perf_counter()
            self.writer.write(frame)
            self.encode_ms += (time.perf_counter() - t) * 1e3
            self.frames += 1

    def write(self, frame: np.ndarray) -> None:
        if (frame.shape[1], frame.shape[0]) != self.size:
            frame = cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA)
        self._q.put(frame)

    def close(self, ok: bool = True) -> Path | None:
        """Finish the file; keep it (renamed into place) only if `ok` and frames were written."""
        self._q.put(_END)
        self._thread.join()
        self.writer.release()
        if ok and self.frames:
            os.replace(self.tmp, self.path)
            return self.path
        self.tmp.unlink(missing_ok=True)
        return None

    def discard(self) -> None:
        """Stop at once (Ctrl-C): drop queued frames and delete the temporary file."""
        while True:
            try:
                self._q.get_nowait()
            except queue.Empty:
                break
        self._q.put(_END)
        self._thread.join()  # at most the frame being encoded
        self.tmp.unlink(missing_ok=True)
        # release() flushes the encoder's look-ahead (VP9: ~25 frames, seconds of work) into a
        # file that is already deleted: run it on a thread; `wait_for_releases` bounds the wait.
        thread = threading.Thread(target=self.writer.release, name="release", daemon=True)
        thread.start()
        _RELEASES.append(thread)
