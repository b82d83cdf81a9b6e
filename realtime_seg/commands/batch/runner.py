"""One file: decode, segment, paint and write it; a Result that says how it went (never raises)."""
from __future__ import annotations

import contextlib
import logging
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import UserError, first_line
from ...cli import is_preset, load_compared, model_name, smoother
from ...runtime.compare import Comparison
from ...runtime.engine import SegModel, batch_size_for
from ...runtime.palettes import choose_palette
from ...runtime.precision import open_model
from ...runtime.pipeline import StageTimes, segment_stream
from ...runtime.render import Overlay, hud_lines
from ...runtime.sources import Source, open_video_file
from ...runtime.video import VideoOutput
from ...system import progress, usable_cores
from .config import BatchConfig
from .plan import Job
from .writers import ClassStats, MaskPngs

log = logging.getLogger(__name__)


@dataclass
class Result:
    """How one input went: status is ok, skipped (exists), failed: REASON, interrupted, not started."""

    label: str
    status: str
    frames: int = 0
    seconds: float = 0.0
    written: list[Path] = field(default_factory=list)
    compared: str | None = None      # --compare: the compared model and the agreement (Comparison.describe)

    @property
    def failed(self) -> bool:
        return self.status.startswith("failed")

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class Models:
    """One session shared by the workers (onnxruntime runs concurrent calls), or one each."""

    def __init__(self, path: Path, cfg: BatchConfig):
        copies = 1 if cfg.share_model else cfg.workers
        # Half the cores for inference: the (single-threaded) encoders, decoders and drawing need
        # the rest; on 2 cores one thread instead of onnxruntime's two costs less CPU per frame (BATCH.md).
        threads = cfg.threads or max(1, usable_cores() // (2 * cfg.workers))
        self.sessions = [open_model(path, cfg.precision, is_preset(cfg.model), cfg.device, threads)
                         for _ in range(copies)]
        self.compared = [load_compared(cfg.compare, cfg.model, cfg.precision, cfg.device, threads)
                         for _ in range(copies)] if cfg.compare else []

    def get(self, slot: int) -> SegModel:
        return self.sessions[slot % len(self.sessions)]

    def comparison(self, slot: int, cfg: BatchConfig) -> Comparison | None:
        """A new comparison of one file (its own agreement and smoothing); None without --compare."""
        if not self.compared:
            return None
        other, name = self.compared[slot % len(self.compared)]
        return Comparison(self.get(slot), other, (model_name(cfg.model), name), cfg.compare_view, smoother(cfg.smooth))


class Runner:
    """Processes jobs; `stop` (Ctrl-C, SIGTERM) ends every file at its next frame."""

    def __init__(self, cfg: BatchConfig, models: Models, stop: threading.Event, overall=None):
        self.cfg, self.models, self.stop, self.overall = cfg, models, stop, overall
        self._overall_lock = threading.Lock()  # workers share the overall bar
        self._slots: queue.Queue = queue.Queue()
        for slot in range(cfg.workers):
            self._slots.put(slot)

    def run(self, job: Job) -> Result:
        """Process one job in a worker thread; never raises."""
        if self.stop.is_set():
            return Result(job.label, "not started")
        slot = self._slots.get()
        try:
            return self._process(job, slot)
        except Exception as e:  # one bad file must not stop the batch
            log.debug("%s failed", job.source, exc_info=True)
            return Result(job.label, f"failed: {_reason(e, job.source)}")
        finally:
            self._slots.put(slot)

    def _process(self, job: Job, slot: int) -> Result:
        start = time.perf_counter()
        try:
            cap, first = open_video_file(job.source)
        except UserError as e:
            self._uncount(job.frames)
            report_failure(str(e))
            return Result(job.label, f"failed: {_reason(e, job.source)}")
        source = Source(str(job.source), cap, first=first)
        model = self.models.get(slot)
        size = (first.shape[1], first.shape[0])  # as decoded: rotation metadata is already applied
        writers = self._open_writers(job, source, size, model)
        bar = progress(total=source.frame_count, desc=_short(job.source.name), unit="frame",
                       position=slot + 1, leave=False)
        frames, status = 0, "ok"
        compare = self.models.comparison(slot, self.cfg) if self.cfg.compare else None
        try:
            frames, stopped = self._frames(source, model, writers, bar, start, compare)
            if stopped:
                status = "interrupted"
            elif source.frame_count and frames < source.frame_count:
                status = (f"failed: truncated or corrupt, decoded {frames} of "
                          f"{source.frame_count} frames")
        except BaseException:
            status = "failed"
            raise
        finally:
            bar.close()
            source.close()
            written = self._close_writers(writers, status)
            if status.startswith("failed"):
                self._uncount((source.frame_count or frames) - frames)
        if status.startswith("failed"):
            report_failure(f"{job.source}: {status.removeprefix('failed: ')}; re-copy or re-encode it")
        return Result(job.label, status, frames, time.perf_counter() - start, written,
                      compare.describe() if compare is not None else None)

    def _open_writers(self, job: Job, source: Source, size: tuple[int, int], model: SegModel) -> dict:
        writers = {}
        try:
            if job.video:
                writers["video"] = VideoOutput(job.video, source.fps, size, self.cfg.fourcc)
            if job.masks:
                writers["masks"] = MaskPngs(job.masks, size)
            if job.stats:
                writers["stats"] = ClassStats(job.stats, model.classes)
            if job.compare_masks:
                writers["compare_masks"] = MaskPngs(job.compare_masks, size)
        except BaseException:
            source.close()
            self._close_writers(writers, "failed")
            raise
        return writers

    def _frames(self, source: Source, model: SegModel, writers: dict, bar, start: float,
                compare: Comparison | None = None) -> tuple[int, bool]:
        """Segment, draw and write every frame: (frames decoded, whether `stop` cut it short).
        `compare`: a second model on the same frames, drawn beside the first (--compare)."""
        cfg, times = self.cfg, StageTimes()
        overlay = Overlay(model.classes, choose_palette(model.classes, model.palette_bgr, cfg.palette), cfg.opacity,
                          "mask" if cfg.mask_only else "blend", cfg.legend, cfg.hud, cfg.edges, cfg.shares)
        frames = 0
        # Decoded frames must be able to queue up for a batch to fill (it never waits for them).
        batch = cfg.batch_size or batch_size_for(model)
        stream = segment_stream(source, model, times, queue_size=max(2, batch), batch_size=batch,
                                probs=cfg.edges == "smooth",
                                smoother=smoother(cfg.smooth), compare=compare.lane() if compare else None)
        with contextlib.closing(stream):
            for packet in stream:
                if self.stop.is_set():
                    return frames, True
                full = overlay.frame_classes(packet.frame, packet.class_map, packet.probs)
                if compare is not None:
                    compare.measure(packet)
                if "video" in writers:
                    hud = _hud(source, model, times, packet.index, frames, start) if cfg.hud else ()
                    writers["video"].write(compare.paint(packet, overlay, list(hud), times) if compare else
                                           overlay.paint(packet.frame, packet.class_map, hud, full=full))
                if "masks" in writers:
                    writers["masks"].write(packet.index, full)
                if "compare_masks" in writers:
                    other = packet.compared
                    writers["compare_masks"].write(packet.index, overlay.frame_classes(packet.frame, other.class_map,
                                                                                       other.probs))
                if "stats" in writers:
                    writers["stats"].write(packet.index, packet.class_map, packet.restarted)
                frames += 1
                bar.update()
                if self.overall is not None:
                    with self._overall_lock:
                        self.overall.update()
        return frames, False

    def _close_writers(self, writers: dict, status: str) -> list[Path]:
        """Rename finished outputs into place; remove every temporary file otherwise."""
        written = []
        for name, writer in writers.items():
            if status == "interrupted":
                writer.discard()
                continue
            path = writer.close(status == "ok")
            if path:
                written.append(path)
        return written

    def _uncount(self, frames: int) -> None:
        """Frames the overall bar expected that will not come (failed or truncated input)."""
        if self.overall is not None and frames > 0 and self.overall.total:
            with self._overall_lock:
                self.overall.total = max(self.overall.n, self.overall.total - frames)
                self.overall.refresh()


def report_failure(message: str) -> None:
    """One `error: ...` line per failed input on stderr, above the progress bars (the batch goes on)."""
    from tqdm import tqdm
    tqdm.write(f"error: {message}", file=sys.stderr)


def _hud(source: Source, model: SegModel, times: StageTimes, index: int, done: int, start: float) -> list[str]:
    elapsed = time.perf_counter() - start
    total = f"/{source.frame_count}" if source.frame_count else ""
    return hud_lines(done / elapsed if elapsed > 0 else 0.0, model.runs_on, dict(times.ema),
                     f"{Path(source.name).name}  frame {index + 1}{total}")


def _short(name: str, width: int = 24) -> str:
    return name if len(name) <= width else name[:width - 1] + "…"


def _reason(error: BaseException, path: Path) -> str:
    """One line, without repeating the path the table already shows."""
    text = first_line(error, limit=None)
    return text.replace(f"{path} ", "").replace(str(path), path.name)
