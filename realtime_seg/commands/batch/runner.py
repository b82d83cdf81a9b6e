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

import numpy as np

from ...errors import UserError, first_line
from ...runtime.compare import Comparison
from ...runtime.engine import SegModel
from ...runtime.models import Opened
from ...runtime.palettes import choose_palette
from ...runtime.pipeline import Packet, StageTimes, segment_stream
from ...runtime.render import Overlay, hud_lines
from ...runtime.sources import Source, open_frames, open_video_file
from ...runtime.temporal import smoother
from ...runtime.video import VideoOutput
from ...system import progress
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
    video_fps: float = 0.0         # the source's frame rate (the output keeps it)
    compared: str | None = None    # --compare: the compared model and the agreement (Comparison.describe)

    @property
    def failed(self) -> bool:
        return self.status.startswith("failed")

    @property
    def proc_fps(self) -> float:
        """Processing speed: frames segmented, drawn and written per second of wall time."""
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class Runner:
    """Processes jobs; `stop` (Ctrl-C, SIGTERM) ends every file at its next frame."""

    def __init__(self, cfg: BatchConfig, models: Opened, stop: threading.Event, overall=None,
                 compared: Opened | None = None):
        """`compared`: --compare's sessions."""
        self.cfg, self.models, self.stop, self.overall = cfg, models, stop, overall
        self.compared = compared
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
            log.debug("%s failed", job.label, exc_info=True)
            return Result(job.label, f"failed: {failure_reason(e, Path(job.label))}")
        finally:
            self._slots.put(slot)

    def _open(self, job: Job) -> tuple[Source, tuple[int, int]]:
        """The job's source and the size of its output: a video's first frame as decoded (rotation
        metadata applied), or with --as-video its images at --fps (the first image's size)."""
        if job.images:
            source = open_frames(job.label, list(job.images), self.cfg.fps)
            return source, source.size
        cap, first = open_video_file(job.source)
        return Source(str(job.source), cap, first=first), (first.shape[1], first.shape[0])

    def _process(self, job: Job, slot: int) -> Result:
        start = time.perf_counter()
        try:
            source, size = self._open(job)
        except UserError as e:
            self._uncount(job.frames)
            report_failure(str(e))
            return Result(job.label, f"failed: {failure_reason(e, job.source)}")
        model = self.models.get(slot)
        writers = self._open_writers(job, source, size, model)
        bar = progress(total=source.frame_count, desc=bar_label(job.source.name), unit="frame",
                       position=slot + 1, leave=False)
        frames, status, hint = 0, "ok", "; re-copy or re-encode it"
        compare = self._comparison(slot, model)
        try:
            frames, stopped = self._frames(source, model, writers, bar, start, compare)
            if stopped:
                status = "interrupted"
            elif not job.images and source.frame_count and frames < source.frame_count:
                status = (f"failed: truncated or corrupt, decoded {frames} of "
                          f"{source.frame_count} frames")
        except UserError as e:  # an output could not be written (disk full, ...): this input fails
            status, hint = f"failed: {e}", ""
        except BaseException:
            status = "failed"
            raise
        finally:
            bar.close()
            source.close()
            status, written = self._close_writers(writers, status)
            if status == "ok" and job.images and source.skipped:  # the other frames were written
                status = skipped_status(source.skipped, len(job.images))
            if status.startswith("failed"):
                self._uncount((source.frame_count or frames) - frames)
        if status.startswith("failed: cannot write"):
            report_failure(status.removeprefix("failed: "))
        elif job.images and source.skipped:
            report_skipped(source.skipped)
        elif status.startswith("failed"):
            report_failure(f"{job.source}: {status.removeprefix('failed: ')}{hint}")
        return Result(job.label, status, frames, time.perf_counter() - start, written, source.fps,
                      compare.describe() if compare is not None else None)

    def _comparison(self, slot: int, model: SegModel) -> Comparison | None:
        """A new comparison for one file (its own agreement and smoothing); None without --compare."""
        if self.compared is None:
            return None
        names = (self.models.name, self.compared.name)
        return Comparison(model, self.compared.get(slot), names, self.cfg.compare_view, smoother(self.cfg.look.smooth))

    def _open_writers(self, job: Job, source: Source, size: tuple[int, int], model: SegModel) -> dict:
        writers = {}
        try:
            if job.video:
                writers["video"] = VideoOutput(job.video, source.fps, size, self.cfg.codec_name)
            if job.masks:
                writers["masks"] = MaskPngs(job.masks, size)
            if job.stats:
                palette = choose_palette(model.classes, model.palette_bgr, self.cfg.look.palette)
                writers["stats"] = ClassStats(job.stats, model.classes, palette, self.compared is not None)
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
        cfg, look, times = self.cfg, self.cfg.look, StageTimes()
        overlay = look.overlay(model)
        frames = 0
        # Decoded frames must be able to queue up for a batch to fill (it never waits for them).
        batch = cfg.batch_size or self.models.plan.batch
        stream = segment_stream(source, model, times, queue_size=max(2, batch), batch_size=batch,
                                probs=look.needs_probs, smoother=smoother(look.smooth),
                                workers=self.models.plan.workers, compare=compare.lane() if compare else None)
        with contextlib.closing(stream):
            for packet in stream:
                if self.stop.is_set():
                    return frames, True
                full = overlay.frame_classes(packet.frame, packet.class_map, packet.probs)
                agreement = compare.measure(packet) if compare is not None else None
                if "video" in writers:
                    hud = _hud(source, model, times, packet.index, frames, start) if look.hud else ()
                    writers["video"].write(compare.paint(packet, overlay, list(hud), times) if compare else
                                           overlay.paint(packet.frame, packet.class_map, hud, full=full))
                if "masks" in writers:
                    writers["masks"].write(packet.index, full)
                if "compare_masks" in writers:
                    writers["compare_masks"].write(packet.index, compared_classes(overlay, packet))
                if "stats" in writers:
                    writers["stats"].write(packet.index, packet.class_map, packet.restarted, agreement)
                frames += 1
                self._count(bar)
        return frames, False

    def _count(self, bar) -> None:
        """One frame done: the file's bar and the overall one move on."""
        bar.update()
        if self.overall is not None:
            with self._overall_lock:
                self.overall.update()

    def _close_writers(self, writers: dict, status: str) -> tuple[str, list[Path]]:
        """Finish and check every output, then rename them all into place; none if one failed.

        Returns the input's status (`failed: cannot write ...` when an output could not be
        finished) and the outputs written. Temporary files are removed however it ends.
        """
        if status == "ok":
            try:
                for writer in writers.values():
                    writer.finish()
                return status, [writer.commit() for writer in writers.values()]
            except UserError as e:
                status = f"failed: {e}"
        for writer in writers.values():
            writer.discard()
        return status, []

    def _uncount(self, frames: int) -> None:
        """Frames the overall bar expected that will not come (failed or truncated input)."""
        if self.overall is not None and frames > 0 and self.overall.total:
            with self._overall_lock:
                self.overall.total = max(self.overall.n, self.overall.total - frames)
                self.overall.refresh()


def compared_classes(overlay: Overlay, packet: Packet) -> np.ndarray:
    """The --compare model's class ids at the frame's size (its class-id PNGs)."""
    other = packet.compared
    return overlay.frame_classes(packet.frame, other.class_map, other.probs)


def skipped_status(skipped: dict[Path, str], total: int) -> str:
    """The table's status of a group of images some of which could not be read (the others were done)."""
    return f"failed: {len(skipped)} of {total} images could not be read (skipped)"


def report_skipped(skipped: dict[Path, str]) -> None:
    """One line for each image that was skipped: which file, and why."""
    for path, reason in skipped.items():
        report_failure(f"skipped {path}: {reason}; the other images were segmented")


def report_failure(message: str) -> None:
    """One `error: ...` line per failed input on stderr, above the progress bars (the batch goes on)."""
    from tqdm import tqdm
    tqdm.write(f"error: {message}", file=sys.stderr)


def _hud(source: Source, model: SegModel, times: StageTimes, index: int, done: int, start: float) -> list[str]:
    elapsed = time.perf_counter() - start
    total = f"/{source.frame_count}" if source.frame_count else ""
    return hud_lines(done / elapsed if elapsed > 0 else 0.0, model.runs_on, dict(times.ema),
                     f"{Path(source.name).name}  frame {index + 1}{total}")


def bar_label(name: str, width: int = 24) -> str:
    """A progress bar's label: the name, cut to `width` characters."""
    return name if len(name) <= width else name[:width - 1] + "…"


def failure_reason(error: BaseException, path: Path) -> str:
    """One line, without repeating the path the table already shows."""
    text = first_line(error, limit=None)
    return text.replace(f"{path} ", "").replace(str(path), path.name)
