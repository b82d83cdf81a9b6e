"""Class tables (names and RGB palettes) of the datasets the trainer reads."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClassTable:
    """Names and RGB colours of a dataset's classes; `void` is ignored by loss and metrics."""

    name: str
    classes: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    void: int | None = None  # label id that marks unlabelled pixels

    @property
    def num_classes(self) -> int:
        return len(self.classes)


CAMVID = ClassTable(
    name="camvid",
    classes=("Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol",
             "Fence", "Car", "Pedestrian", "Bicyclist"),
    palette=((128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222),
             (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0),
             (0, 128, 192)),
    void=11,
)

_CARLA_NAMES = ("None", "Buildings", "Fences", "Other", "Pedestrians", "Poles", "RoadLines",
                "Roads", "Sidewalks", "Vegetation", "Vehicles", "Walls", "TrafficSigns",
                "Sky", "Ground", "Bridge", "RailTrack", "GuardRail", "TrafficLight", "Static",
                "Dynamic", "Water", "Terrain")
_CARLA_PALETTE = ((0, 0, 0), (70, 70, 70), (100, 40, 40), (55, 90, 80), (220, 20, 60),
                  (153, 153, 153), (157, 234, 50), (128, 64, 128), (244, 35, 232),
                  (107, 142, 35), (0, 0, 142), (102, 102, 156), (220, 220, 0),
                  (70, 130, 180), (81, 0, 81), (150, 100, 100), (230, 150, 140),
                  (180, 165, 180), (250, 170, 30), (110, 190, 160), (170, 120, 50),
                  (45, 60, 150), (145, 170, 100))

CARLA13 = ClassTable("carla13", _CARLA_NAMES[:13], _CARLA_PALETTE[:13])
CARLA23 = ClassTable("carla23", _CARLA_NAMES, _CARLA_PALETTE)

TABLES = {t.name: t for t in (CAMVID, CARLA13, CARLA23)}


def get_table(name: str) -> ClassTable:
    """Return the class table called `name`."""
    if name not in TABLES:
        raise ValueError(f"unknown class table {name!r}; allowed: {', '.join(TABLES)}")
    return TABLES[name]
