"""Side outputs of one file: class-id PNGs, per-frame class areas and their picture, complete or not at all.

Each writer has the video's three steps: `finish` (write and check, under a temporary name),
`commit` (rename into place) and `discard`; batch commits an input's outputs only when all finished.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np

from ...errors import UserError
from ...runtime.background import WriterThread
from ...runtime.render import class_shares
from ...runtime.temporal import FlickerMeter
from ...system import partial_path, write_error


def _replace_dir(tmp: Path, final: Path) -> None:
    """Move a finished folder into place; an old one (--overwrite) is removed only afterwards."""
    old = final.with_name(f".{final.name}.old")
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


class MaskPngs:
    """Class-id PNGs (one per frame, lossless, at the frame's size) written on a thread into a
    temporary folder; `finish` checks them, `commit` moves the folder into place."""

    def __init__(self, folder: Path, size: tuple[int, int]):
        self.folder, self.size = folder, size
        self.tmp = folder.with_name(f".{folder.name}.partial")
        shutil.rmtree(self.tmp, ignore_errors=True)  # left by a killed run
        try:
            self.tmp.mkdir(parents=True)
        except OSError as e:
            raise write_error(self.folder, e) from None
        self.frames = 0
        self._thread = WriterThread(self._write_png, "png", queue_size=8)

    def _write_png(self, item: tuple[int, np.ndarray]) -> None:
        index, mask = item
        ok, png = cv2.imencode(".png", mask)
        if not ok:
            raise OSError(f"cannot encode frame {index} as PNG")
        with open(self.tmp / f"{index:06d}.png", "wb") as f:  # Python's write: a failure says why (errno)
            f.write(png.tobytes())
        self.frames += 1

    def write(self, index: int, class_map: np.ndarray) -> None:
        """Queue a frame's class ids, at the frame's size (as drawn) or resized there (nearest: ids stay exact)."""
        if class_map.shape != self.size[::-1]:
            class_map = cv2.resize(class_map, self.size, interpolation=cv2.INTER_NEAREST)
        try:
            self._thread.put((index, class_map))
        except Exception as e:
            raise self._failed(e) from None

    def finish(self) -> None:
        """Write what is queued; raises a one-line UserError (folder removed) when a PNG could not be written."""
        try:
            self._thread.finish()
        except Exception as e:
            raise self._failed(e) from None

    def commit(self) -> Path:
        try:
            _replace_dir(self.tmp, self.folder)
        except OSError as e:
            raise self._failed(e) from None
        return self.folder

    def discard(self) -> None:
        """Stop at once (Ctrl-C, a failure): queued frames are dropped, the temporary folder removed."""
        self._thread.drop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _failed(self, error: BaseException) -> UserError:
        self.discard()
        return write_error(self.folder, error)


class ClassStats:
    """Per-frame class-area fractions of the model's class map and its flicker, written as CSV when
    complete, and drawn beside it (`picture_path`: NAME_stats.png, stacked in the palette's colours).

    flicker: the fraction of pixels whose class changed since the previous frame (empty for the
    first frame and after a scene cut). With `compared` (--compare) an `agreement` column follows:
    the share of pixels both models give the same class, also drawn below the shares. Rows written
    with a `label` (a folder's images: the file's name) name it in an `image` column, not `frame`.
    """

    def __init__(self, path: Path, classes: list[str], palette_bgr: np.ndarray, compared: bool = False):
        self.path, self.classes, self.palette_bgr, self.compared = path, classes, palette_bgr, compared
        self.picture = picture_path(path)
        self.tmp, self.tmp_picture = partial_path(path), partial_path(self.picture)
        self.rows: list[np.ndarray] = []
        self.flicker = FlickerMeter()
        self._flicker: list[float | None] = []
        self._agreement: list[float] = []
        self._labels: list[str | None] = []
        self.first = "frame"  # the first column's name: "image" once rows are labelled

    def write(self, index: int, class_map: np.ndarray, restarted: bool = False,
              agreement: float | None = None, label: str | None = None) -> None:
        self.rows.append(class_shares(class_map, len(self.classes)))
        self._labels.append(label)
        if label is not None:
            self.first = "image"
        self._flicker.append(self.flicker.add(class_map, restart=restarted))
        if self.compared:
            self._agreement.append(float(agreement))

    def finish(self) -> None:
        """Write the CSV and the picture under temporary names; a one-line UserError (nothing left) on failure."""
        try:
            self.tmp.parent.mkdir(parents=True, exist_ok=True)
            with open(self.tmp, "w", newline="") as f:
                f.write(",".join([self.first, *self.classes, "flicker", *["agreement"] * self.compared]) + "\n")
                for i, (row, flicker, label) in enumerate(zip(self.rows, self._flicker, self._labels)):
                    f.write(f"{i if label is None else _csv_field(label)}," + ",".join(f"{v:.6f}" for v in row)
                            + ("," if flicker is None else f",{flicker:.6f}")
                            + (f",{self._agreement[i]:.6f}" if self.compared else "") + "\n")
        except OSError as e:
            self.discard()
            raise write_error(self.path, e) from None
        self._draw()

    def _draw(self) -> None:
        try:
            from .stats_plot import stats_figure  # matplotlib loads only when a picture is drawn
            fig = stats_figure(self.path.stem.removesuffix("_stats"), self.classes, self.palette_bgr,
                               np.array(self.rows).reshape(-1, len(self.classes)),
                               self._agreement if self.compared else None)
            fig.savefig(self.tmp_picture, format="png")
        except Exception as e:  # a full disk, or matplotlib failing: the file's outputs fail together
            self.discard()
            raise write_error(self.picture, e) from None

    def commit(self) -> Path:
        try:
            os.replace(self.tmp_picture, self.picture)
            os.replace(self.tmp, self.path)
        except OSError as e:
            self.discard()
            raise write_error(self.path, e) from None
        return self.path

    def discard(self) -> None:
        self.rows.clear()
        self._flicker.clear()
        self._agreement.clear()
        self._labels.clear()
        self.tmp.unlink(missing_ok=True)
        self.tmp_picture.unlink(missing_ok=True)


def _csv_field(text: str) -> str:
    """A CSV field: quoted when it holds a comma, a quote or a line break (a file's name may)."""
    return f'"{text.replace(chr(34), chr(34) * 2)}"' if any(c in text for c in ',"\n\r') else text


def picture_path(stats: Path) -> Path:
    """The picture drawn beside a stats CSV: DIR/<name>_stats.png."""
    return stats.with_suffix(".png")


def stats_rows(path: Path) -> int | None:
    """Frames in a stats CSV written by ClassStats (its lines but the header); None when unreadable."""
    try:
        with open(path, "rb") as f:
            return sum(1 for _ in f) - 1
    except OSError:
        return None


def png_count(folder: Path) -> int:
    """Frames in a PNG mask folder written by MaskPngs."""
    return sum(1 for p in folder.glob("*.png")) if folder.is_dir() else 0
