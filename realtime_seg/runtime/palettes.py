"""Colour palettes for drawing class maps: the dataset's own colours or a high-contrast set.

The contrast palette gives the classes a driver looks for distinct hues and lightness at the
default opacity (Car orange against a dark purple Road, people red, signs yellow); it is
defined by class name, so CamVid and CARLA models share it; classes it does not name keep
their dataset colour.
"""
from __future__ import annotations

import numpy as np

PALETTES = ("contrast", "dataset")
DEFAULT_PALETTE = "contrast"

_ROAD, _CAR, _PERSON = (128, 64, 128), (255, 120, 0), (230, 20, 60)
CONTRAST_RGB: dict[str, tuple[int, int, int]] = {
    # CamVid
    "Sky": (70, 130, 180), "Building": (90, 90, 90), "Pole": (210, 210, 210), "Road": _ROAD,
    "Pavement": (0, 175, 165), "Tree": (50, 150, 40), "SignSymbol": (255, 220, 0),
    "Fence": (190, 150, 110), "Car": _CAR, "Pedestrian": _PERSON, "Bicyclist": (255, 0, 255),
    # CARLA names for the same things
    "Buildings": (90, 90, 90), "Poles": (210, 210, 210), "Roads": _ROAD, "Sidewalks": (0, 175, 165),
    "Vegetation": (50, 150, 40), "TrafficSigns": (255, 220, 0), "Fences": (190, 150, 110),
    "Vehicles": _CAR, "Pedestrians": _PERSON, "RoadLines": (255, 255, 255),
}


def choose_palette(classes: list[str], dataset_bgr: np.ndarray, name: str = DEFAULT_PALETTE) -> np.ndarray:
    """(C, 3) uint8 BGR colours for `classes`: `contrast` by class name, or `dataset` (the model's own)."""
    if name not in PALETTES:
        raise ValueError(f"unknown palette {name!r}; allowed: {', '.join(PALETTES)}")
    bgr = np.array(dataset_bgr, np.uint8).reshape(-1, 3).copy()
    if name == "contrast":
        for i, cls in enumerate(classes):
            if cls in CONTRAST_RGB:
                bgr[i] = CONTRAST_RGB[cls][::-1]
    return bgr
