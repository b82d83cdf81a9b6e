"""Chunks of a long file for `--ray`: class maps of a frame range, stored losslessly, replayed in order.

A long video is split into frame ranges that run on different nodes: each range is decoded
(seeking to its first frame) and segmented, and its class maps (uint8, the model's input size)
are written to `.<name>_seg.chunks/<first>-<end>.npz` next to the outputs, under a temporary
name renamed when complete (so a re-run skips finished chunks). The file's outputs are then
made by the same per-file code as without Ray, with a model that replays the stored maps: the
PNGs and CSV are byte for byte, and the video's decoded frames pixel for pixel, what a local run
writes. Each stored map carries the CRC
of the model input it was computed from; a frame whose input differs (a seek that did not land
exactly) is segmented again, so the outputs never depend on how exactly a codec seeks.
"""
from __future__ import annotations

import logging
import os
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ...runtime.engine import SegModel
from .plan import Job

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


def remove_chunks(job: Job) -> None:
    shutil.rmtree(chunk_dir(job), ignore_errors=True)


def stored_chunks(job: Job, chunks: list[Chunk]) -> set[Chunk]:
    """Chunks already finished by an earlier (interrupted) run."""
    return {c for c in chunks if chunk_path(job, c).exists()}
