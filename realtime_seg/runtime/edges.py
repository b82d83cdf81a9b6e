"""Smooth class edges at frame size: the argmax of bilinearly upsampled class probabilities.

Computed only where it can differ from the low-res class map: a frame pixel whose four
source pixels (its bilinear cell) share one class keeps it, since a convex combination of
score vectors that all peak at class c still peaks at c. In the other cells (a few per cent
of a frame) two classes compare by one interpolated margin p_a - p_b; where three or four
classes meet, each corner's class is scored. Matches cv2.resize(INTER_LINEAR) of every
probability plane followed by argmax except where a class wins between corners without winning
at any corner, at a small part of its cost (docs/VISUALS.md, smooth edges).
"""
from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np


@lru_cache(maxsize=16)
def _axis(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """INTER_LINEAR's sampling along one axis, grouped by cell, in coordinates padded by one pixel.

    Cell i lies between padded source pixels i and i+1 (the border pixels are replicated, as
    OpenCV clamps). Returns pos (k, cells): each cell's output pixels, padded by repeating one;
    frac (k, cells): their weight on pixel i+1; ok (cells,): the cell has output pixels.
    """
    s = (np.arange(n_out) + 0.5) * n_in / n_out + 0.5      # pixel centres, shifted by the padding
    i0 = np.floor(s).astype(np.int64)
    count = np.bincount(i0, minlength=n_in + 1)
    first = np.searchsorted(i0, np.arange(n_in + 1))
    k = np.arange(max(int(count.max()), 1))
    pos = np.minimum(first[None, :] + np.minimum(k[:, None], np.maximum(count - 1, 0)), n_out - 1)
    return pos.astype(np.int32), (s - i0).astype(np.float32)[pos], count > 0


@lru_cache(maxsize=16)
def _tables(size: tuple[int, int], shape: tuple[int, int]):
    (w_out, h_out), (h, w) = size, shape
    ry, wy, oky = _axis(h_out, h)
    rx, wx, okx = _axis(w_out, w)
    return ry * w_out, wy, rx, wx, oky[:, None] & okx[None, :]


def smooth_upsample(class_map: np.ndarray, size: tuple[int, int], probs: np.ndarray | None = None) -> np.ndarray:
    """Class ids (h, w) -> (H, W) at `size` = (W, H) with smooth boundaries.

    `probs` (h, w, C) are the class probabilities whose argmax is `class_map`; without them
    the class map's one-hot vectors are interpolated (boundaries still follow straight lines
    between cell corners instead of steps).
    """
    w_out, h_out = size
    h, w = class_map.shape
    if h_out < h or w_out < w or h < 2 or w < 2:  # shrinking: few pixels, computed in full
        return dense_upsample(class_map, size, probs)
    out = cv2.resize(class_map, size, interpolation=cv2.INTER_NEAREST)  # right outside mixed cells
    rowbase, wy, rx, wx, ok = _tables(size, (h, w))
    padded = cv2.copyMakeBorder(class_map, 1, 1, 1, 1, cv2.BORDER_REPLICATE)
    c00 = padded[:-1, :-1]
    mixed = ((c00 != padded[:-1, 1:]) | (c00 != padded[1:, :-1]) | (c00 != padded[1:, 1:])) & ok
    cy, cx = np.nonzero(mixed)
    if not len(cy):
        return out
    y0, y1 = np.maximum(cy - 1, 0) * w, np.minimum(cy, h - 1) * w
    x0, x1 = np.maximum(cx - 1, 0), np.minimum(cx, w - 1)
    corners = np.stack((y0 + x0, y0 + x1, y1 + x0, y1 + x1))        # (4, cells) flat source pixels
    cand = class_map.reshape(-1)[corners]                            # their classes
    a = cand[0]
    b = np.where(cand[1] != a, cand[1], np.where(cand[2] != a, cand[2], cand[3]))
    score = _scorer(cand, corners, probs)
    # arrays are (..., cells): numpy's inner loops then run over all cells at once
    wxc, wyc = np.take(wx, cx, 1), np.take(wy, cy, 1)[:, None]       # (kx, cells), (ky, 1, cells)
    res = np.where(_bilinear(score(a) - score(b), wxc, wyc) >= 0, a, b)   # (ky, kx, cells)
    multi = np.flatnonzero(((cand != a) & (cand != b)).any(0))
    if len(multi):  # three or four classes meet: score each corner's class
        cm = cand[:, multi]                                          # (4 candidates, m)
        v = np.stack([score(c, multi) for c in cm], 1)               # (4 corners, 4 candidates, m)
        best = _bilinear(v, wxc[:, None, multi], wyc[:, :, None, multi]).argmax(2)   # (ky, kx, m)
        res[:, :, multi] = np.take_along_axis(cm[None, None], best[:, :, None], 2)[:, :, 0]
    idx = np.take(rowbase, cy, 1)[:, None] + np.take(rx, cx, 1)      # (ky, kx, cells)
    out.reshape(-1)[idx] = res
    return out


def dense_upsample(class_map: np.ndarray, size: tuple[int, int], probs: np.ndarray | None = None) -> np.ndarray:
    """The definition, computed everywhere: argmax of every score plane resized with INTER_LINEAR."""
    scores = probs if probs is not None else np.eye(int(class_map.max()) + 1, dtype=np.float32)[class_map]
    planes = [cv2.resize(np.ascontiguousarray(scores[..., c]), size, interpolation=cv2.INTER_LINEAR)
              for c in range(scores.shape[-1])]
    return np.argmax(np.stack(planes, -1), axis=-1).astype(np.uint8)


def _scorer(cand: np.ndarray, corners: np.ndarray, probs: np.ndarray | None):
    """score(c, cells) -> (4 corners, cells): each cell corner's probability (or one-hot) of class c."""
    if probs is None:
        return lambda c, sel=slice(None): (cand[:, sel] == c).astype(np.float32)
    flat, n = probs.reshape(-1), probs.shape[-1]
    base = corners * n
    return lambda c, sel=slice(None): flat[base[:, sel] + c]


def _bilinear(v: np.ndarray, wx: np.ndarray, wy: np.ndarray) -> np.ndarray:
    """Corner values v[0..3] (top-left, top-right, bottom-left, bottom-right) at weights wx, wy."""
    top = v[0] + wx * (v[1] - v[0])
    bottom = v[2] + wx * (v[3] - v[2])
    return top + wy * (bottom - top)
