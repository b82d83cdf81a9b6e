"""A group of images (a folder of frames, a glob's, one image): each image segmented and written as
an annotated picture (and its class ids), the group's stats CSV one row per image.

The images run through the same pipeline as a video's frames (decoding overlaps inference), but
each image alone: no temporal smoothing, so an image's outputs are the same whichever images ran
with it, and a re-run that segments only the missing ones writes what a whole run would. Each
output is written under a temporary name and renamed when complete, on a writer thread.
"""
from __future__ import annotations

import contextlib
import time
from pathlib import Path

import numpy as np

from ...errors import UserError
from ...runtime.background import WriterThread
from ...runtime.compare import Comparison
from ...runtime.engine import SegModel
from ...runtime.media import write_image
from ...runtime.palettes import choose_palette
from ...runtime.pipeline import StageTimes, segment_stream
from ...runtime.render import hud_lines
from ...runtime.sources import FrameSource, open_frames
from ...system import progress, write_error
from .plan import ImageJob
from .runner import (Result, Runner, bar_label, compared_classes, failure_reason, report_failure, report_skipped,
                     skipped_status)
from .writers import ClassStats


class ImageRunner(Runner):
    """The batch's runner for videos and groups of images alike (a video job goes to `Runner`)."""

    def _process(self, job, slot: int) -> Result:
        if not isinstance(job, ImageJob):
            return super()._process(job, slot)
        start = time.perf_counter()
        try:
            source = open_frames(job.label, list(job.todo), self.cfg.fps)
        except UserError as e:  # not one image could be read
            self._uncount(job.frames)
            report_failure(str(e))
            return Result(job.label, f"failed: {failure_reason(e, Path(job.label))}")
        model = self.models.get(slot)
        stats, compare = self._stats(job, model), self._compare(slot, model)
        writer = WriterThread(_write_all, "images", queue_size=8)
        bar = progress(total=len(job.todo), desc=bar_label(job.name), unit="image", position=slot + 1, leave=False)
        frames, status, written = 0, "ok", []
        try:
            _make_folder(job.folder)
            frames, stopped = self._images(job, source, model, (writer, stats, compare), bar, start)
            writer.finish()
            status = "interrupted" if stopped else "ok"
            if stats is not None and not stopped:
                stats.finish()
                written.append(stats.commit())
        except UserError as e:  # an output could not be written (disk full, ...): this group fails
            status = f"failed: {e}"
        finally:
            writer.drop()
            bar.close()
            source.close()
            if stats is not None and status != "ok":
                stats.discard()
        if status == "ok" and source.skipped:
            status = skipped_status(source.skipped, len(job.todo))
        if status.startswith("failed"):
            self._uncount(len(job.todo) - frames)
        if status.startswith("failed: cannot write"):
            report_failure(status.removeprefix("failed: "))
        report_skipped(source.skipped)
        return Result(job.label, status, frames, time.perf_counter() - start, written, 0.0,
                      compare.describe() if compare is not None and frames else None)

    def _stats(self, job: ImageJob, model: SegModel) -> ClassStats | None:
        """The group's stats writer when its CSV is due (one row per image, named in its `image` column)."""
        if job.stats is None:
            return None
        palette = choose_palette(model.classes, model.palette_bgr, self.cfg.look.palette)
        return ClassStats(job.stats, model.classes, palette, self.compared is not None)

    def _compare(self, slot: int, model: SegModel) -> Comparison | None:
        """--compare's model for this group, without temporal smoothing (each image alone)."""
        if self.compared is None:
            return None
        names = (self.models.name, self.compared.name)
        return Comparison(model, self.compared.get(slot), names, self.cfg.compare_view)

    def _images(self, job: ImageJob, source: FrameSource, model: SegModel,
                outputs: tuple[WriterThread, ClassStats | None, Comparison | None], bar,
                start: float) -> tuple[int, bool]:
        """Segment every image to run, queue the outputs of those to write (`outputs`: the writer, the
        stats and --compare's model): (images done, whether `stop` cut it short)."""
        writer, stats, compare = outputs
        look, times, overlay = self.cfg.look, StageTimes(), self.cfg.look.overlay(model)
        batch = self.cfg.batch_size or self.models.plan.batch
        stream = segment_stream(source, model, times, queue_size=max(2, batch), batch_size=batch,
                                probs=look.needs_probs, workers=self.models.plan.workers,
                                compare=compare.lane() if compare else None)
        frames = 0
        with contextlib.closing(stream):
            for packet in stream:
                if self.stop.is_set():
                    return frames, True
                image = source.names[packet.index]
                full = overlay.frame_classes(packet.frame, packet.class_map, packet.probs)
                agreement = compare.measure(packet) if compare is not None else None
                if image in job.write:
                    hud = _hud(model, times, image, frames, start) if look.hud else []
                    picture = (compare.paint(packet, overlay, hud, times) if compare is not None
                               else overlay.paint(packet.frame, packet.class_map, hud, full=full))
                    maps = [full] if job.masks else []
                    if job.compare_masks:
                        maps.append(compared_classes(overlay, packet))
                    writer.put(list(zip(job.outputs_of(image), [picture, *maps])))
                if stats is not None:
                    stats.write(packet.index, packet.class_map, False, agreement, label=image.name)
                frames += 1
                self._count(bar)
        return frames, False


def _hud(model: SegModel, times: StageTimes, image: Path, done: int, start: float) -> list[str]:
    """--hud on an image: images per second so far, the stage times, the image's name."""
    elapsed = time.perf_counter() - start
    return hud_lines(done / elapsed if elapsed > 0 else 0.0, model.runs_on, dict(times.ema), image.name)


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise write_error(folder, e) from None


def _write_all(items: list[tuple[Path, np.ndarray]]) -> None:
    """One image's outputs, each under a temporary name renamed when complete (runs on the writer thread)."""
    for path, image in items:
        write_image(path, image)
