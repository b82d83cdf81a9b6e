"""Smooth edges: the argmax of bilinearly upsampled scores, checked against a dense computation."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import FIXTURES
from realtime_seg.runtime.edges import dense_upsample, smooth_upsample
from realtime_seg.runtime.engine import RunOptions, load_model
from realtime_seg.runtime.temporal import one_hot

SIZES = [(320, 180), (960, 540), (333, 101)]  # the frame's, the demo video's, an odd one


@pytest.fixture(scope="module")
def scores() -> list[tuple[np.ndarray, np.ndarray]]:
    """(class map, probabilities) of the tiny model with a `probs` output on the real fixture frames."""
    model = load_model(FIXTURES / "tiny_camvid_probs.onnx", RunOptions("cpu", 1))
    frames = [cv2.imread(str(p)) for p in sorted((FIXTURES / "frames").glob("*.png"))]
    maps, probs = model.infer_probs(model.prepare(frames))
    return list(zip(maps, probs))


def corner_reference(class_map: np.ndarray, probs: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Written independently: per pixel, INTER_LINEAR's four source pixels; among their classes,
    the one whose bilinearly resized probability plane is highest."""
    (w_out, h_out), (h, w) = size, class_map.shape
    planes = np.stack([cv2.resize(np.ascontiguousarray(probs[..., c]), size, interpolation=cv2.INTER_LINEAR)
                       for c in range(probs.shape[-1])], -1)
    sy = np.clip((np.arange(h_out) + 0.5) * h / h_out - 0.5, 0, h - 1)
    sx = np.clip((np.arange(w_out) + 0.5) * w / w_out - 0.5, 0, w - 1)
    y0, x0 = np.floor(sy).astype(int), np.floor(sx).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    allowed = np.zeros(planes.shape, bool)
    rows, cols = np.ix_(np.arange(h_out), np.arange(w_out))
    for ys in (y0, y1):
        for xs in (x0, x1):
            allowed[rows, cols, class_map[ys[:, None], xs[None, :]]] = True
    return np.where(allowed, planes, -1).argmax(-1)


@pytest.mark.parametrize("size", SIZES)
def test_matches_the_reference_computation(scores, size):
    for class_map, probs in scores:
        got = smooth_upsample(class_map, size, probs)
        assert got.shape == size[::-1] and got.dtype == np.uint8
        assert (got == corner_reference(class_map, probs, size)).mean() >= 0.9999  # float rounding at ties
        # and the plain definition (all classes compete) but for a class winning only between corners
        assert (got == dense_upsample(class_map, size, probs)).mean() >= 0.995


def test_changes_only_boundary_pixels_and_keeps_every_region(scores):
    class_map, probs = scores[0]
    size = (960, 540)
    nearest = cv2.resize(class_map, size, interpolation=cv2.INTER_NEAREST)
    got = smooth_upsample(class_map, size, probs)
    changed = got != nearest
    assert 0.005 < changed.mean() < 0.15  # the steps are redrawn, nothing else
    cell = np.ones((2 * -(-540 // class_map.shape[0]) + 1, 2 * -(-960 // class_map.shape[1]) + 1), np.uint8)
    near_boundary = cv2.dilate(cv2.morphologyEx(nearest, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)), cell) > 0
    assert not changed[~near_boundary].any()  # within one source pixel of a step
    assert set(np.unique(got)) <= set(np.unique(class_map))


def test_models_without_scores_interpolate_one_hot_maps(scores):
    class_map, _ = scores[1]
    for size in SIZES:
        got = smooth_upsample(class_map, size)
        ref = dense_upsample(class_map, size, one_hot(class_map, 11))
        assert (got == ref).mean() >= 0.995  # exact ties (0.5 / 0.5) may break either way


def test_shrinking_and_same_size(scores):
    class_map, probs = scores[2]
    h, w = class_map.shape
    np.testing.assert_array_equal(smooth_upsample(class_map, (w, h), probs),
                                  dense_upsample(class_map, (w, h), probs))
    small = (w // 2 + 1, h - 3)
    np.testing.assert_array_equal(smooth_upsample(class_map, small, probs), dense_upsample(class_map, small, probs))


def test_a_single_class_map_stays_single():
    class_map = np.full((48, 64), 3, np.uint8)
    np.testing.assert_array_equal(smooth_upsample(class_map, (320, 180)), np.full((180, 320), 3, np.uint8))
