"""Side outputs of one file: class-id PNGs and per-frame class areas, complete or not at all."""
from __future__ import annotations

import os
import queue
import shutil
import threading
from pathlib import Path

import cv2
import numpy as np

from ...runtime.temporal import FlickerMeter
from ...system import partial_path


def _replace_dir(tmp: Path, final: Path) -> None:
    """Move a finished folder into place; an old one (--overwrite) is removed only afterwards."""
    old = final.with_name(f".{final.name}.old")
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


class MaskPngs:
    """Class-id PNGs (one per frame, lossless, at the frame's size) written on a thread."""

    def __init__(self, folder: Path, size: tuple[int, int]):
        self.folder, self.size = folder, size
        self.tmp = folder.with_name(f".{folder.name}.partial")
        shutil.rmtree(self.tmp, ignore_errors=True)  # left by a killed run
        self.tmp.mkdir(parents=True)
        self.error: str | None = None
        self._q: queue.Queue = queue.Queue(8)
        self._thread = threading.Thread(target=self._run, name="png", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._q.get()) is not None:
            index, mask = item
            path = self.tmp / f"{index:06d}.png"
            if self.error is None and not cv2.imwrite(str(path), mask):
                self.error = f"cannot write {path}; check free space and permissions"

    def write(self, index: int, class_map: np.ndarray) -> None:
        """Queue a frame's class ids, at the frame's size (as drawn) or resized there (nearest: ids stay exact)."""
        if class_map.shape != self.size[::-1]:
            class_map = cv2.resize(class_map, self.size, interpolation=cv2.INTER_NEAREST)
        self._q.put((index, class_map))

    def close(self, ok: bool) -> Path | None:
        self._q.put(None)
        self._thread.join()
        if ok and self.error is None:
            _replace_dir(self.tmp, self.folder)
            return self.folder
        shutil.rmtree(self.tmp, ignore_errors=True)
        if ok:
            raise OSError(self.error)
        return None

    def discard(self) -> None:
        """Stop at once (Ctrl-C): queued frames are dropped, the temporary folder removed."""
        _drain(self._q)
        self.close(False)


class ClassStats:
    """Per-frame class-area fractions of the model's class map and its flicker, written as CSV when complete.

    flicker: the fraction of pixels whose class changed since the previous frame (empty for the
    first frame and after a scene cut).
    """

    def __init__(self, path: Path, classes: list[str]):
        self.path, self.classes = path, classes
        self.rows: list[np.ndarray] = []
        self.flicker = FlickerMeter()
        self._flicker: list[float | None] = []

    def write(self, index: int, class_map: np.ndarray, restarted: bool = False) -> None:
        counts = np.bincount(class_map.ravel(), minlength=len(self.classes))[:len(self.classes)]
        self.rows.append(counts / class_map.size)
        self._flicker.append(self.flicker.add(class_map, restart=restarted))

    def close(self, ok: bool) -> Path | None:
        if not ok:
            return None
        tmp = partial_path(self.path)
        tmp.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w", newline="") as f:
            f.write(",".join(["frame", *self.classes, "flicker"]) + "\n")
            for i, (row, flicker) in enumerate(zip(self.rows, self._flicker)):
                f.write(f"{i}," + ",".join(f"{v:.6f}" for v in row)
                        + ("," if flicker is None else f",{flicker:.6f}") + "\n")
        os.replace(tmp, self.path)
        return self.path

    def discard(self) -> None:
        self.rows.clear()
        self._flicker.clear()


def _drain(q: queue.Queue) -> None:
    while True:
        try:
            q.get_nowait()
        except queue.Empty:
            return
