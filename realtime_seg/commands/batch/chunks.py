"""Chunks of a long file for `--ray`: class maps of a frame range, stored losslessly, replayed in order.

A long video is split into frame ranges that run on different nodes: each range is decoded
(seeking to its first frame) and segmented, and its class maps (uint8, the model's output size)
are written to `.<name>_seg.chunks/<first>-<end>.npz` next to the outputs, under a temporary
name renamed when complete (so a re-run skips finished chunks). The file's outputs are then
made by the same per-file code as without Ray, with a model that replays the stored maps: the
PNGs and CSV are byte for byte, and the video's decoded frames pixel for pixel, what a local run
writes. Each stored map carries the CRC of the model input it was computed from; a frame whose
input differs (a seek that did not land exactly) is segmented again, so the outputs never depend
on how exactly a codec seeks. `plan_tasks` splits a batch's jobs into chunks (keeping those an
earlier run finished), and `remove_temporaries` what a killed task leaves.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ...runtime.engine import SegModel
from ...system import partial_path
from .config import BatchConfig
from .plan import Job
from .writers import picture_path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Chunk:
    """Frames [start, end) of one input."""

    start: int
    end: int

    @property
    def name(self) -> str:
        return f"{self.start:09d}-{self.end:09d}.npz"


def split(frames: int, size: int) -> list[Chunk]:
    """Ranges of at most `size` frames covering `frames`."""
    return [Chunk(s, min(s + size, frames)) for s in range(0, frames, size)]


def chunk_dir(job: Job) -> Path:
    """Where the finished chunks of a job are kept until its outputs are written."""
    return job.outputs()[0].parent / f".{job.source.stem}_seg.chunks"


def chunk_path(job: Job, chunk: Chunk) -> Path:
    return chunk_dir(job) / chunk.name


def temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.partial")


def input_crc(x: np.ndarray) -> int:
    """Fingerprint of one preprocessed frame (what the model saw)."""
    return zlib.crc32(np.ascontiguousarray(x).data)


class RangeSource:
    """Frames [start, end) of a video file, read like `runtime.sources.Source` (read() -> frame or None)."""

    def __init__(self, path: Path, chunk: Chunk):
        self.cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        self.left = chunk.end - chunk.start
        if chunk.start and not self.cap.set(cv2.CAP_PROP_POS_FRAMES, chunk.start):
            for _ in range(chunk.start):  # no seeking in this file: decode up to the range
                self.cap.grab()

    def read(self) -> np.ndarray | None:
        if self.left <= 0:
            return None
        ok, frame = self.cap.read()
        self.left -= 1
        return frame if ok else None

    def close(self) -> None:
        self.cap.release()


class RecordingModel:
    """A model that also keeps each frame's class map and input CRC (for a chunk file)."""

    def __init__(self, model: SegModel):
        self.model, self.input_size = model, model.input_size
        self.maps: list[np.ndarray] = []
        self.crcs: list[int] = []

    def __getattr__(self, name: str):
        return getattr(self.model, name)  # classes, palette, provider...: the model's own

    def infer(self, batch: np.ndarray) -> np.ndarray:
        maps = self.model.infer(batch)
        self.maps.extend(maps)
        self.crcs.extend(input_crc(x) for x in batch)
        return maps

    def save(self, path: Path, size: tuple[int, int]) -> None:
        """Write the chunk under a temporary name and rename it into place."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temporary(path)
        maps = np.stack(self.maps) if self.maps else np.zeros((0, *size), np.uint8)  # nothing decoded
        with open(tmp, "wb") as f:
            np.savez_compressed(f, maps=maps, crcs=np.array(self.crcs, np.uint32))
        os.replace(tmp, path)


class ReplayModel:
    """Looks like the model; returns the stored class maps of a file's chunks, in frame order.

    Frames past the stored ones, or whose input CRC differs from the stored one, are segmented
    by the real model (`recomputed` counts them).
    """

    def __init__(self, model: SegModel, job: Job, chunks: list[Chunk]):
        self.model, self.job, self.chunks = model, job, chunks
        self.classes, self.palette_bgr = model.classes, model.palette_bgr
        self.input_size, self.provider = model.input_size, model.provider
        self.index, self.recomputed = 0, 0
        self._loaded: tuple[Chunk, np.ndarray, np.ndarray] | None = None

    def __getattr__(self, name: str):
        return getattr(self.model, name)  # anything else the per-file code reads: the model's own

    def _stored(self, index: int) -> tuple[np.ndarray, int] | None:
        if self._loaded is None or not self._loaded[0].start <= index < self._loaded[0].end:
            chunk = next((c for c in self.chunks if c.start <= index < c.end), None)
            if chunk is None:
                return None
            with np.load(chunk_path(self.job, chunk)) as data:
                self._loaded = (chunk, data["maps"], data["crcs"])
        chunk, maps, crcs = self._loaded
        offset = index - chunk.start
        return (maps[offset], int(crcs[offset])) if offset < len(maps) else None

    def infer(self, batch: np.ndarray) -> np.ndarray:
        out = []
        for x in batch:
            stored = self._stored(self.index)
            if stored is not None and stored[1] == input_crc(x):
                out.append(stored[0])
            else:
                out.append(self.model.infer(x[None])[0])
                self.recomputed += 1
            self.index += 1
        return np.stack(out)


@dataclass
class Plan:
    """One job's tasks: chunks still to segment, then the write task."""

    index: int
    job: Job
    chunks: list[Chunk] = field(default_factory=list)     # all chunks (empty: a whole-file task)
    todo: list[Chunk] = field(default_factory=list)       # chunks not yet stored
    failed: str | None = None

    @property
    def expected(self) -> int:
        """Frames the bar counts for this job: chunk frames to segment, then every frame written."""
        return sum(c.end - c.start for c in self.todo) + self.job.frames


def note(message: str) -> None:
    """A line on stderr above the progress bar."""
    from tqdm import tqdm
    tqdm.write(message, file=sys.stderr)


def plan_tasks(todo: list[tuple[int, Job]], cfg: BatchConfig) -> list[Plan]:
    """Split long files into chunks; finished chunks of an earlier run are kept (resume).

    Only when frames are independent: temporal smoothing and smooth edges need every frame's class
    scores, in order (a chunk stores class maps only), so with them each file is one task.
    """
    independent = cfg.look.smooth == 0 and cfg.look.edges == "nearest"
    if cfg.chunk_frames and not independent and any(job.frames > cfg.chunk_frames for _, job in todo):
        note("ray: long files run whole, not in chunks: --smooth and smooth edges need each frame's "
             "class scores in order (--smooth 0 --edges nearest splits them)")
    plans = []
    for index, job in todo:
        if cfg.chunk_frames and independent and job.frames > cfg.chunk_frames:
            chunks = split(job.frames, cfg.chunk_frames)
            if cfg.overwrite:
                remove_chunks(job)
            done = stored_chunks(job, chunks)
            if done:
                note(f"{job.source}: {len(done)} of {len(chunks)} chunks already segmented by an earlier run")
            plans.append(Plan(index, job, chunks, [c for c in chunks if c not in done]))
        else:
            plans.append(Plan(index, job))
    return plans


def remove_chunks(job: Job) -> None:
    shutil.rmtree(chunk_dir(job), ignore_errors=True)


def stored_chunks(job: Job, chunks: list[Chunk]) -> set[Chunk]:
    """Chunks already finished by an earlier (interrupted) run."""
    return {c for c in chunks if chunk_path(job, c).exists()}


def temporaries(job: Job, chunks: list[Chunk]) -> list[Path]:
    """The temporary names a task on `job` may leave when its worker is killed."""
    paths = [partial_path(p) for p in (job.video, job.stats) if p is not None]
    if job.stats is not None:
        paths.append(partial_path(picture_path(job.stats)))
    if job.masks is not None:
        paths.append(job.masks.with_name(f".{job.masks.name}.partial"))
    return paths + [temporary(chunk_path(job, c)) for c in chunks]


def remove_temporaries(job: Job, chunks: list[Chunk]) -> None:
    for path in temporaries(job, chunks):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                path.unlink()
    with contextlib.suppress(OSError):
        chunk_dir(job).rmdir()  # only when empty
