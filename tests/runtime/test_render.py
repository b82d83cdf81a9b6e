"""The overlay: palette lookup, blend, views, legend and HUD, checked pixel by pixel on a real frame."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import FIXTURES
from realtime_seg.datasets.classes import CAMVID
from realtime_seg.runtime.edges import smooth_upsample
from realtime_seg.runtime.render import (VIEWS, Legend, Overlay, blend, class_shares, colorize, compose, hud_lines,
                                         outlines)

PALETTE = np.array(CAMVID.palette, np.uint8)[:, ::-1].copy()


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    return cv2.imread(str(FIXTURES / "frames" / "frame_0.png"))


@pytest.fixture(scope="module")
def class_map(frame) -> np.ndarray:
    """Vertical bands of every class, at a quarter of the frame's size."""
    h, w = frame.shape[0] // 4, frame.shape[1] // 4
    return np.tile((np.arange(w) * 11 // w).astype(np.uint8), (h, 1))


def test_colorize_is_a_palette_lookup_at_frame_size(frame, class_map):
    h, w = frame.shape[:2]
    colors = colorize(class_map, PALETTE, (w, h))
    big = cv2.resize(class_map, (w, h), interpolation=cv2.INTER_NEAREST)
    np.testing.assert_array_equal(colors, PALETTE[big])


def test_views(frame, class_map):
    h, w = frame.shape[:2]
    colors = colorize(class_map, PALETTE, (w, h))
    np.testing.assert_array_equal(compose(frame, class_map, PALETTE, 0.5, "original"), frame)
    np.testing.assert_array_equal(compose(frame, class_map, PALETTE, 0.5, "mask"), colors)
    np.testing.assert_array_equal(compose(frame, class_map, PALETTE, 0.3, "blend"), blend(frame, colors, 0.3))
    side = compose(frame, class_map, PALETTE, 0.5, "side")
    assert side.shape == frame.shape and side[: h // 4].max() == 0  # letterboxed halves
    with pytest.raises(ValueError, match="allowed: " + ", ".join(VIEWS)):
        compose(frame, class_map, PALETTE, 0.5, "xray")


def test_overlay_paints_legend_and_hud_only_where_asked(frame, class_map):
    plain = Overlay(list(CAMVID.classes), PALETTE, legend=False, hud=False).paint(frame, class_map)
    np.testing.assert_array_equal(plain, compose(frame, class_map, PALETTE))
    full = Overlay(list(CAMVID.classes), PALETTE).paint(frame, class_map, hud_lines(30.0, "CPU", {"inference": 5.0}))
    changed = np.any(full != plain, axis=2)
    h, w = changed.shape
    ph, pw = Legend(list(CAMVID.classes), PALETTE)._render(h).shape[:2]
    assert changed[:ph, :pw].mean() > 0.5                  # the legend, top left
    assert changed[:50, -w // 4:].mean() > 0.2             # the HUD, top right (two lines)
    elsewhere = np.ones_like(changed)
    elsewhere[:ph, :pw] = elsewhere[:60, w // 3:] = False
    assert not changed[elsewhere].any()                    # nothing else is touched
    assert frame.sum() == cv2.imread(str(FIXTURES / "frames" / "frame_0.png")).sum()  # input unchanged


def test_overlay_cycles_views_and_rejects_unknown_ones():
    overlay = Overlay(list(CAMVID.classes), PALETTE)
    seen = []
    for _ in VIEWS:
        overlay.next_view()
        seen.append(overlay.view)
    assert seen == [*VIEWS[1:], VIEWS[0]]
    with pytest.raises(ValueError, match="unknown view"):
        Overlay(list(CAMVID.classes), PALETTE, view="xray")


def test_hud_lines_name_the_provider_and_stages():
    lines = hud_lines(24.5, "CUDAExecutionProvider", {"read": 1.25, "inference": 7.0}, "extra")
    assert lines == [" 24.5 FPS  CUDA", "read 1.2  inference 7.0 ms", "extra"]


def test_outlines_view_draws_class_boundaries_in_class_colours(frame, class_map):
    h, w = frame.shape[:2]
    image = compose(frame, class_map, PALETTE, 0.5, "outlines")
    big = cv2.resize(class_map, (w, h), interpolation=cv2.INTER_NEAREST)
    drawn = np.any(image != frame, axis=2)
    boundary = outlines(big) > 0
    steps = np.flatnonzero(np.diff(big[0].astype(int)))  # the 10 band edges, on every row
    assert len(steps) == 10 and boundary[:, steps].all() and boundary[:, steps + 1].all()
    assert boundary.sum() == 2 * len(steps) * h and not drawn[~boundary].any()  # the rest is the frame
    np.testing.assert_array_equal(image[boundary], PALETTE[big][boundary])


def test_legend_shares_follow_the_class_map(frame, class_map):
    shares = class_shares(class_map, 11)
    assert shares.sum() == pytest.approx(1.0) and shares.min() > 0.05  # 11 bands
    overlay = Overlay(list(CAMVID.classes), PALETTE, hud=False)
    names = overlay.paint(frame, class_map)
    overlay.next_legend()
    assert (overlay.legend, overlay.shares) == (True, True)
    with_shares = overlay.paint(frame, class_map)
    ph, pw = Legend(list(CAMVID.classes), PALETTE)._render(frame.shape[0], shares=True).shape[:2]
    changed = np.any(names != with_shares, axis=2)
    assert changed[:ph, :pw].any() and not changed[ph:].any() and not changed[:, pw:].any()
    half = class_map.copy()
    half[:, : class_map.shape[1] // 2] = 3                               # Road on the left half
    assert np.any(overlay.paint(frame, half)[:ph, :pw] != with_shares[:ph, :pw])  # other numbers
    overlay.next_legend()
    assert not overlay.legend
    overlay.next_legend()
    assert (overlay.legend, overlay.shares) == (True, False)


def test_edges_option_picks_the_upsampling(frame, class_map):
    h, w = frame.shape[:2]
    probs = np.random.default_rng(1).random((*class_map.shape, 11), np.float32)
    labels = probs.argmax(-1).astype(np.uint8)
    nearest = Overlay(list(CAMVID.classes), PALETTE, edges="nearest")
    smooth = Overlay(list(CAMVID.classes), PALETTE)
    np.testing.assert_array_equal(nearest.frame_classes(frame, labels, probs),
                                  cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST))
    np.testing.assert_array_equal(smooth.frame_classes(frame, labels, probs), smooth_upsample(labels, (w, h), probs))
    with pytest.raises(ValueError, match="allowed: smooth, nearest"):
        Overlay(list(CAMVID.classes), PALETTE, edges="cubic")
