"""Temporal stability for video: an exponential moving average of class probabilities.

`--smooth S` keeps S of the running average and takes 1 - S of each new frame's probabilities
(0 = off). The average restarts at a scene cut (the frame's grey thumbnail changes by more
than `cut_threshold` on average) and when the source says its frames are discontinuous (a
reconnected stream, a looping file that starts again). A model without a `probs`
output is smoothed on its one-hot class maps (a vote over recent frames). Still images and `eval` never use it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

DEFAULT_SMOOTH = 0.7   # chosen on the demo video's flicker with and without it (docs/VISUALS.md)
CUT_THRESHOLD = 20.0   # mean |difference| (0-255) of 32x18 grey thumbnails; consecutive frames of
                       # the demo and CARLA videos stay below 5.7, cuts between them are above 28
_THUMB = (32, 18)


def check_smooth(value: float) -> float:
    """A valid --smooth strength: 0 (off) up to, not including, 1."""
    if not 0.0 <= value < 1.0:
        raise ValueError(f"smooth strength must be in [0, 1) (0 = off), got {value}")
    return value


def smoother(strength: float) -> "TemporalSmoother | None":
    """The temporal smoother a --smooth of `strength` asks for; None when off (0)."""
    return TemporalSmoother(strength) if strength > 0 else None


def thumbnail(frame: np.ndarray) -> np.ndarray:
    """A 32x18 grey float32 thumbnail of a BGR frame, for cut detection."""
    # every 8th pixel: OpenCV copies the strided view first, and a sparser one is a cheaper copy
    small = cv2.resize(frame[::8, ::8], _THUMB, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.float32)


def argmax_classes(probs: np.ndarray) -> np.ndarray:
    """(h, w, C) probabilities (>= 0, float32) -> (h, w) uint8 class ids; lower class on (near-)ties.

    NumPy's argmax over a short last axis (~11 classes) pays per row. For values >= 0 float bits
    order like the values, so each value's bits with the class in their lowest 4 carry both, and
    C - 1 elementwise maxima over the columns find the class, in a fraction of the time. Scores
    within 2^-19 of each other (relative) count as a tie, which random scores almost never hit
    (timings and tie rate: docs/BENCHMARKS.md, measurements behind the code).
    """
    num = probs.shape[-1]
    if num > 16 or probs.dtype != np.float32:
        return probs.argmax(-1).astype(np.uint8)
    flat = probs.reshape(-1, num).view(np.uint32)
    best = (flat[:, 0] & np.uint32(0xFFFFFFF0)) | np.uint32(15)
    for c in range(1, num):  # 15 - c: the lower class wins a tie, as with np.argmax
        np.maximum(best, (flat[:, c] & np.uint32(0xFFFFFFF0)) | np.uint32(15 - c), out=best)
    return (15 - (best & np.uint32(15))).astype(np.uint8).reshape(probs.shape[:-1])


def one_hot(class_map: np.ndarray, num_classes: int) -> np.ndarray:
    """(h, w) class ids -> (h, w, C) float32 one-hot: the probabilities of a model that has none."""
    return np.eye(num_classes, dtype=np.float32)[class_map]


@dataclass
class TemporalSmoother:
    """Running average of per-class probabilities over consecutive frames of one source."""

    strength: float = DEFAULT_SMOOTH
    cut_threshold: float = CUT_THRESHOLD
    resets: int = 0                       # times the average restarted after the first frame
    _ema: np.ndarray | None = field(default=None, repr=False)
    _thumb: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        check_smooth(self.strength)

    def reset(self) -> None:
        """Forget the past: the next frame starts a new average."""
        self._ema, self._thumb = None, None

    def is_cut(self, thumb: np.ndarray) -> bool:
        """True when `thumb` belongs to another scene than the previous frame's."""
        return self._thumb is not None and float(cv2.norm(thumb, self._thumb, cv2.NORM_L1)) / thumb.size > self.cut_threshold

    def step(self, class_map: np.ndarray, probs: np.ndarray | None, num_classes: int, frame: np.ndarray,
             discontinuous: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """One frame through the smoother: (class map, average) of its scores, one-hot for a model
        without probabilities. The pipeline and bench both smooth through here."""
        scores = probs if probs is not None else one_hot(class_map, num_classes)
        average = self.update(scores, frame, discontinuous)
        return argmax_classes(average), average

    def update(self, probs: np.ndarray, frame: np.ndarray, discontinuous: bool = False) -> np.ndarray:
        """Blend this frame's probabilities (h, w, C) into the average and return the average (a new array each time)."""
        thumb = thumbnail(frame)
        fresh = (self._ema is None or discontinuous or self._ema.shape != probs.shape or self.is_cut(thumb))
        if fresh:
            self.resets += self._ema is not None
            self._ema = np.array(probs, np.float32)
        else:  # a new array: the previous one may still be drawn on another thread
            self._ema = cv2.addWeighted(self._ema, self.strength, probs, 1.0 - self.strength, 0.0)
        self._thumb = thumb
        return self._ema


def flicker(previous: np.ndarray | None, current: np.ndarray) -> float | None:
    """Fraction of pixels whose class changed since the previous frame (None for a first frame)."""
    if previous is None or previous.shape != current.shape:
        return None
    return float(np.count_nonzero(previous != current)) / current.size


@dataclass
class FlickerMeter:
    """Mean flicker of a sequence of class maps."""

    values: list[float] = field(default_factory=list)
    _last: np.ndarray | None = field(default=None, repr=False)

    def add(self, class_map: np.ndarray, restart: bool = False) -> float | None:
        """Count a frame; `restart` (a cut) starts over instead of comparing across it."""
        value = None if restart else flicker(self._last, class_map)
        if value is not None:
            self.values.append(value)
        self._last = class_map
        return value

    @property
    def mean(self) -> float | None:
        return float(np.mean(self.values)) if self.values else None
