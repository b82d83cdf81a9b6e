"""Class tables (names and RGB palettes) of the datasets the trainer reads, and the class sets a
foreign model can be given (`--classes`: a built-in name or a file)."""
from __future__ import annotations

import colorsys
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np


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

# Cityscapes' 19 training classes in trainId order, with the dataset's colours: the class set of
# most public driving-scene models (MMSegmentation, PaddleSeg, segmentation_models).
CITYSCAPES = ClassTable(
    name="cityscapes",
    classes=("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
             "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
             "motorcycle", "bicycle"),
    palette=((128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
             (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
             (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
             (0, 80, 100), (0, 0, 230), (119, 11, 32)),
    void=255,
)

# Cityscapes labelIds (0-33; the public table's `id`), for datasets in the Cityscapes format (Cityscapes,
# KITTI semantics), and where each lands in a class set. Anything not listed is void.
CITYSCAPES_LABEL_IDS = 34
_TRAIN_IDS = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)  # trainIds 0-18
_ONTO_CAMVID = {  # CamVid's own grouping of its 32 classes (../shared/data/kitti/README)
    "Sky": (23,), "Building": (11, 12, 15, 16), "Pole": (17, 18), "Road": (7,), "Pavement": (8,),
    "Tree": (21, 22), "SignSymbol": (19, 20), "Fence": (13, 14), "Car": (26, 27, 28, 29, 30, 31),
    "Pedestrian": (24,), "Bicyclist": (25, 32, 33)}
LABEL_ID_MAPS = {  # class set name -> {labelId: class id}
    "cityscapes": {label: i for i, label in enumerate(_TRAIN_IDS)},
    "camvid": {label: CAMVID.classes.index(name) for name, labels in _ONTO_CAMVID.items() for label in labels},
}


def label_id_lookup(classes: tuple[str, ...], void: int = 255) -> np.ndarray | None:
    """A 256-entry lookup from Cityscapes labelIds to the ids of a class set with these names
    (CamVid's 11 or Cityscapes' 19), unlisted ids -> `void`; None for any other class set."""
    for name, mapping in LABEL_ID_MAPS.items():
        if tuple(classes) == CLASS_SETS[name].classes:
            lut = np.full(256, void, np.uint8)
            for label, class_id in mapping.items():
                lut[label] = class_id
            return lut
    return None


# the class sets a foreign model can be given by name (`import --classes`); any other is a file
CLASS_SETS = {t.name: t for t in (CAMVID, CITYSCAPES, CARLA13, CARLA23)}


def read_class_set(spec: str) -> ClassTable:
    """`--classes`: a built-in set's name, or a file: JSON (a list of names, of {"name", "color"}, or
    {"classes": [...], "palette": [...]}) or text, one name a line, optionally followed by R,G,B or R G B.

    Classes without a colour get one from a fixed spread of hues. Raises ValueError naming what is wrong.
    """
    if spec in CLASS_SETS:
        return CLASS_SETS[spec]
    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"--classes {spec}: neither a class set ({', '.join(CLASS_SETS)}) nor a file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"--classes {spec}: cannot read it ({e.__class__.__name__})") from None
    names, colours = (_json_classes(text, spec) if path.suffix.lower() == ".json" else _text_classes(text, spec))
    if len(names) < 2:
        raise ValueError(f"--classes {spec}: names {len(names)} class(es); a segmentation model has 2 or more")
    palette = tuple(c if c is not None else _spread(i, len(names)) for i, c in enumerate(colours))
    return ClassTable(path.stem, tuple(names), palette)


def _colour(value, spec: str) -> tuple[int, int, int]:
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    try:
        rgb = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        rgb = ()
    if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
        raise ValueError(f"--classes {spec}: colour {value!r} is not three numbers 0-255 (R,G,B)")
    return rgb


def _json_classes(text: str, spec: str) -> tuple[list[str], list]:
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise ValueError(f"--classes {spec}: not valid JSON ({e})") from None
    if isinstance(doc, dict):
        names, palette = doc.get("classes"), doc.get("palette")
        if not isinstance(names, list) or (palette is not None and len(palette) != len(names)):
            raise ValueError(f'--classes {spec}: expected {{"classes": [names], "palette": [[R, G, B], ...]}}')
        return [str(n) for n in names], [None if palette is None else _colour(c, spec) for c in palette or names]
    if not isinstance(doc, list):
        raise ValueError(f"--classes {spec}: expected a list of class names")
    names, colours = [], []
    for item in doc:
        named = isinstance(item, dict)
        names.append(str(item.get("name", "")) if named else str(item))
        colours.append(_colour(item["color"], spec) if named and "color" in item else None)
    return names, colours


_NAME_RGB = re.compile(r"^(.*?\S)[\s,]+(\d+)[\s,]+(\d+)[\s,]+(\d+)$")  # "traffic light 250,170,30"


def _text_classes(text: str, spec: str) -> tuple[list[str], list]:
    names, colours = [], []
    for line in filter(None, (raw.strip() for raw in text.splitlines())):
        coloured = _NAME_RGB.match(line)
        names.append(coloured.group(1) if coloured else line)
        colours.append(_colour(coloured.groups()[1:], spec) if coloured else None)
    return names, colours


def _spread(i: int, n: int) -> tuple[int, int, int]:
    """A colour for class i of n: hues spread evenly, saturation 0.75, lightness alternating."""
    rgb = colorsys.hsv_to_rgb(i / max(n, 1) % 1.0, 0.75, 0.95 if i % 2 == 0 else 0.65)
    return tuple(int(round(c * 255)) for c in rgb)
