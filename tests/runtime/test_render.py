"""The overlay: palette lookup, blend, views, legend and HUD, checked pixel by pixel on a real frame."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import FIXTURES
from realtime_seg.datasets.classes import CAMVID
from realtime_seg.runtime.render import VIEWS, Legend, Overlay, blend, colorize, compose, hud_lines

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
