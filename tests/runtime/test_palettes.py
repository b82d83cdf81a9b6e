"""Palettes: the contrast palette tells CamVid's classes apart at the default opacity."""
from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from conftest import FIXTURES
from realtime_seg.datasets.classes import CAMVID, CARLA23
from realtime_seg.runtime.palettes import PALETTES, choose_palette

CLASSES = list(CAMVID.classes)
DATASET_BGR = np.array(CAMVID.palette, np.uint8)[:, ::-1]


def _lab(bgr: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.asarray(bgr, np.float32).reshape(-1, 1, 3) / 255, cv2.COLOR_BGR2Lab).reshape(-1, 3)


def _hue(lab: np.ndarray) -> np.ndarray:
    return np.degrees(np.arctan2(lab[..., 2], lab[..., 1])) % 360


def _over_road(color: np.ndarray, road: np.ndarray) -> np.ndarray:
    """Lab of `color` blended at opacity 0.5 over real road pixels (BGR), as the viewer draws it."""
    return _lab(cv2.addWeighted(road, 0.5, np.broadcast_to(color, road.shape).copy(), 0.5, 0))


@pytest.fixture(scope="module")
def road() -> np.ndarray:
    """The bottom-centre asphalt of a real dash-cam frame."""
    frame = cv2.imread(str(FIXTURES / "frames" / "frame_0.png"))
    h, w = frame.shape[:2]
    return np.ascontiguousarray(frame[int(h * 0.85):, w // 3: 2 * w // 3])


def test_contrast_classes_all_differ():
    lab = _lab(choose_palette(CLASSES, DATASET_BGR, "contrast"))
    distances = [np.linalg.norm(lab[i] - lab[j]) for i, j in itertools.combinations(range(len(CLASSES)), 2)]
    assert min(distances) > 30  # CIE76 ΔE; the dataset palette's closest pair is 23.5 apart


def test_car_and_road_differ_in_hue_and_lightness_at_opacity_half(road):
    for name, expect_clear in (("contrast", True), ("dataset", False)):
        palette = choose_palette(CLASSES, DATASET_BGR, name)
        car = _over_road(palette[CLASSES.index("Car")], road)
        asphalt = _over_road(palette[CLASSES.index("Road")], road)
        lightness = np.abs(car[:, 0] - asphalt[:, 0]).mean()
        hue = np.abs((_hue(car) - _hue(asphalt) + 180) % 360 - 180).mean()
        distance = np.linalg.norm(car - asphalt, axis=1).mean()
        clear = lightness > 10 and hue > 60 and distance > 40
        assert clear == expect_clear, (name, lightness, hue, distance)


def test_dataset_palette_is_the_models_and_others_are_refused():
    np.testing.assert_array_equal(choose_palette(CLASSES, DATASET_BGR, "dataset"), DATASET_BGR)
    with pytest.raises(ValueError, match="allowed: " + ", ".join(PALETTES)):
        choose_palette(CLASSES, DATASET_BGR, "neon")


def test_carla_names_get_the_same_colours_and_unknown_classes_keep_theirs():
    carla = list(CARLA23.classes)
    carla_bgr = np.array(CARLA23.palette, np.uint8)[:, ::-1]
    contrast = choose_palette(carla, carla_bgr, "contrast")
    camvid = choose_palette(CLASSES, DATASET_BGR, "contrast")
    for camvid_name, carla_name in (("Car", "Vehicles"), ("Road", "Roads"), ("Pedestrian", "Pedestrians")):
        np.testing.assert_array_equal(contrast[carla.index(carla_name)], camvid[CLASSES.index(camvid_name)])
    np.testing.assert_array_equal(contrast[carla.index("Water")], carla_bgr[carla.index("Water")])
