"""Overlapped stages: decode and inference on their own threads, bounded queues between them.

    source.read ─► [q] ─► preprocess + infer (+ temporal smoothing) ─► [q] ─► consumer (draw, show, encode)

`segment_stream` yields `Packet`s in order; the consumer's loop is the same for every
source. A second model (`--compare`, a `Lane`) runs on the same inference stage, on the same
decoded frames, at the same time as the first; its results ride on `Packet.compared`. `VideoOutput` encodes on its own thread into a temporary file that is renamed
only when complete.
"""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from .engine import SegModel
from .temporal import TemporalSmoother

log = logging.getLogger(__name__)

_END = object()


@dataclass
class Packet:
    index: int
    frame: np.ndarray                     # BGR (H, W, 3), as decoded
    class_map: np.ndarray | None = None   # uint8 (h, w) at the model's input size
    ms: dict[str, float] = field(default_factory=dict)
    probs: np.ndarray | None = None       # float32 (h, w, C), smoothed over time when asked
    discontinuous: bool = False           # the source jumped here (reconnected, looped): no past
    restarted: bool = False               # temporal smoothing started afresh at this frame
    compared: Packet | None = None        # the same frame through the --compare model (runtime/compare.py)


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


def _breaks(source) -> int:
    """The source's count of jumps (Source.breaks); 0 for a plain object with only read()."""
    return getattr(source, "breaks", 0)


def _reader(source, out: queue.Queue, stop: threading.Event, times: StageTimes, ends: int) -> None:
    index, breaks = 0, _breaks(source)
    while not stop.is_set():
        t = time.perf_counter()
        frame = source.read()
        if frame is None:
            break
        ms = (time.perf_counter() - t) * 1e3
        times.add("read", ms)
        now = _breaks(source)
        if not _put(out, Packet(index, frame, discontinuous=now != breaks), stop):
            break
        index, breaks = index + 1, now
    for _ in range(ends):  # one end for each inference worker
        _put(out, _END, stop)


class _Turns:
    """Frames leave the inference stage in their order, whichever worker ran them."""

    def __init__(self, workers: int):
        self.next, self.workers, self._cond = 0, workers, threading.Condition()

    def wait(self, index: int, stop: threading.Event) -> bool:
        """Block until frame `index` is next (False when `stop` is set first)."""
        with self._cond:
            while self.next != index:
                if stop.is_set():
                    return False
                self._cond.wait(0.1)
        return True

    def done(self) -> None:
        with self._cond:
            self.next += 1
            self._cond.notify_all()

    def last_out(self) -> bool:
        """A worker is leaving: True for the last one, which ends the stream after every frame."""
        with self._cond:
            self.workers -= 1
            return self.workers == 0


def _take_batch(inq: queue.Queue, stop: threading.Event, batch_size: int) -> tuple[list[Packet], bool]:
    """Up to `batch_size` decoded frames, never waiting to fill a batch; True once the end was taken."""
    batch = [_get(inq, stop)]
    while batch[-1] is not _END and len(batch) < batch_size:
        try:
            batch.append(inq.get_nowait())
        except queue.Empty:
            break
    if batch[-1] is _END:
        return batch[:-1], True
    return batch, False


@dataclass
class Lane:
    """One model on the inference stage, with its temporal smoother and the names its times go under."""

    model: SegModel
    smoother: TemporalSmoother | None = None
    stage: str = "inference"      # the names of its times in StageTimes
    prep_stage: str = "preprocess"
    smooth_stage: str = "smooth"

    def segment(self, frames: list[np.ndarray], scores: bool, times: StageTimes) -> tuple[np.ndarray, np.ndarray | None]:
        """Class maps and (when `scores`) probabilities of a batch of frames; times its two steps."""
        t0 = time.perf_counter()
        x = self.model.prepare(frames)
        t1 = time.perf_counter()
        out = self.model.infer_probs(x) if scores or self.smoother else (self.model.infer(x), None)
        t2 = time.perf_counter()
        times.add(self.prep_stage, (t1 - t0) * 1e3 / len(frames))
        times.add(self.stage, (t2 - t1) * 1e3 / len(frames))
        return out


def _run_lanes(lanes: list[Lane], frames: list[np.ndarray], probs: bool, times: StageTimes,
               pool: cf.ThreadPoolExecutor | None) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Every lane's results for the batch; a second lane runs on `pool` at the same time as the first,
    so a frame waits for the slower model, not for both one after the other."""
    later = [pool.submit(lane.segment, frames, probs, times) for lane in lanes[1:]] if pool else []
    first = lanes[0].segment(frames, probs, times)
    return [first, *(f.result() for f in later)]


def _inferrer(lanes: list[Lane], inq: queue.Queue, out: queue.Queue, stop: threading.Event, times: StageTimes,
              batch_size: int, probs: bool, turns: _Turns) -> None:
    """Preprocess and infer batches; smooth and pass on each frame in its turn (workers run concurrently)."""
    done = False
    with (cf.ThreadPoolExecutor(1, thread_name_prefix="compare") if len(lanes) > 1
          else contextlib.nullcontext()) as pool:
        while not done and not stop.is_set():
            batch, done = _take_batch(inq, stop, batch_size)
            if not batch:
                continue
            results = _run_lanes(lanes, [p.frame for p in batch], probs, times, pool)
            for i, packet in enumerate(batch):
                sides = _fill(packet, i, results)
                if not turns.wait(packet.index, stop):
                    return
                for lane, side in zip(lanes, sides):
                    if lane.smoother is not None:  # a running average: frames in order
                        _smooth(side, lane, times)
                ok = _put(out, packet, stop)
                turns.done()
                if not ok:
                    return
    if turns.last_out():
        _put(out, _END, stop)


def _fill(packet: Packet, i: int, results: list[tuple[np.ndarray, np.ndarray | None]]) -> list[Packet]:
    """Put the i-th results of each lane on the packet (the second on `packet.compared`); the packets filled."""
    sides = [packet]
    if len(results) > 1:
        packet.compared = Packet(packet.index, packet.frame, discontinuous=packet.discontinuous)
        sides.append(packet.compared)
    for side, (maps, scores) in zip(sides, results):
        side.class_map = maps[i]
        side.probs = None if scores is None else scores[i]
    return sides


def _smooth(packet: Packet, lane: Lane, times: StageTimes) -> None:
    """Replace the packet's probabilities and class map by their running average."""
    t = time.perf_counter()
    smoother = lane.smoother
    resets = smoother.resets
    packet.class_map, packet.probs = smoother.step(packet.class_map, packet.probs, len(lane.model.classes),
                                                   packet.frame, packet.discontinuous)
    packet.restarted = smoother.resets != resets
    times.add(lane.smooth_stage, (time.perf_counter() - t) * 1e3)


def segment_stream(source, model: SegModel, times: StageTimes | None = None,
                   queue_size: int = 2, batch_size: int = 1, smoother: TemporalSmoother | None = None,
                   probs: bool = False, workers: int = 1, compare: Lane | None = None) -> Iterator[Packet]:
    """Frames of `source` with their class maps, in order; stages overlap on threads.

    `probs`: also the class probabilities (`Packet.probs`, for smooth edges); `smoother`: average
    them over time (the class map is then the average's argmax); `workers`: inference calls in
    flight at once (on one session; onnxruntime runs concurrent calls). `compare`: a second model
    (and its smoother) run on the same decoded frames, its results on `Packet.compared`.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
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

    turns = _Turns(workers)
    threads = [guarded(_reader, source, frames, stop, times, workers)]
    lanes = [Lane(model, smoother), *([compare] if compare is not None else [])]
    threads += [guarded(_inferrer, lanes, frames, results, stop, times, batch_size, probs, turns)
                for _ in range(workers)]
    for t in threads:
        t.start()
    try:
        while (item := _get(results, stop)) is not _END:
            yield item
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=5.0)
    if errors:
        raise errors[0]
