"""Dataset readers (CARLA captures, CamVid, Cityscapes and KITTI semantics) with NumPy and OpenCV only.

A dataset is a list of `Sample(image, mask)` paths; `load_pair` decodes one into
RGB uint8 (H, W, 3) and class ids uint8 (H, W); `augment` and `resize_pair`
turn it into a training example. What differs between formats is each one's entry in
`READERS`: adding a format is adding an entry there.
"""
from __future__ import annotations

import logging
import os
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from .classes import CAMVID, CARLA13, CARLA23, CITYSCAPES, CITYSCAPES_LABEL_IDS, ClassTable, label_id_lookup
from ..errors import DataError, UsageError, UserError

log = logging.getLogger(__name__)

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp"}
CARLA_MASK_DIRS = ("CameraMask", "CameraSeg")
SPLITS = ("train", "val", "test", "all")
CLASS_SETS = ("auto", "camvid", "cityscapes", "carla13", "carla23")  # train --classes
LABEL_ID_VOID = 255  # Cityscapes-format labelIds that no class of the run's set takes
DEFAULT_SPLIT = {"val_fraction": 0.1, "seed": 0}  # CARLA: the held-out fraction and shuffle seed


@dataclass(frozen=True)
class Sample:
    image: Path
    mask: Path


@dataclass
class Dataset:
    """Train and validation samples of one dataset, with its class table."""

    format: str
    table: ClassTable
    train: list[Sample]
    val: list[Sample]


def _images(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_EXTS}


def _pair(image_dir: Path, mask_dir: Path) -> list[Sample]:
    """Pair images and masks by file stem; an image without a mask is an error."""
    return _pair_keys(_images(image_dir), _images(mask_dir), mask_dir)


def _pair_keys(images: dict[str, Path], masks: dict[str, Path], mask_dir: Path) -> list[Sample]:
    """Pair images and masks that share a key; an image without a mask is an error."""
    missing = sorted(set(images) - set(masks))
    if missing:
        raise DataError(f"image {images[missing[0]]} has no label in {mask_dir} "
                        f"({len(missing)} unpaired); add the label or remove the image")
    return [Sample(images[k], masks[k]) for k in sorted(images)]


def detect_format(root: Path) -> str:
    """The first format of READERS whose layout `root` has (CamVid's SegNet layout, CARLA's capture
    folders); else a clear error."""
    for name, reader in READERS.items():
        if reader.found_in(root):
            return name
    raise DataError(f"{root} is neither {' nor '.join(r.layout for r in READERS.values())}; point --data at one")


def _carla_captures(root: Path) -> list[Path]:
    """Capture folders at or one level below `root`."""
    candidates = [root] + sorted(p for p in root.iterdir() if p.is_dir())
    return [c for c in candidates if (c / "CameraRGB").is_dir()
            and any((c / m).is_dir() for m in CARLA_MASK_DIRS)]


def _is_camvid(root: Path) -> bool:
    return (root / "train").is_dir() and (root / "trainannot").is_dir()


def carla_samples(root: Path) -> list[Sample]:
    """All (CameraRGB, CameraMask|CameraSeg) pairs of the captures under `root`."""
    samples = []
    for capture in _carla_captures(root):
        mask_dir = next(capture / m for m in CARLA_MASK_DIRS if (capture / m).is_dir())
        samples += _pair(capture / "CameraRGB", mask_dir)
    return samples


def camvid_samples(root: Path, split: str) -> list[Sample]:
    """Pairs of `<split>/` and `<split>annot/` (SegNet layout)."""
    image_dir, mask_dir = root / split, root / f"{split}annot"
    if not image_dir.is_dir() or not mask_dir.is_dir():
        raise UserError(f"{root} has no CamVid split {split!r} ({split}/ and {split}annot/); "
                        f"pick a split that exists")
    return _pair(image_dir, mask_dir)


def _kitti_root(root: Path) -> Path | None:
    """The folder holding KITTI semantics' `image_2/` + `semantic/`: `root` or its `training/`."""
    for folder in (root, root / "training"):
        if (folder / "image_2").is_dir() and (folder / "semantic").is_dir():
            return folder
    return None


def kitti_samples(root: Path) -> list[Sample]:
    """Pairs of `image_2/` and `semantic/` (labelIds) by file name."""
    folder = _kitti_root(root)
    return _pair(folder / "image_2", folder / "semantic")


def _is_cityscapes(root: Path) -> bool:
    return (root / "leftImg8bit").is_dir() and (root / "gtFine").is_dir()


def cityscapes_samples(root: Path, split: str) -> list[Sample]:
    """`leftImg8bit/SPLIT/CITY/X_leftImg8bit.png` with `gtFine/SPLIT/CITY/X_gtFine_labelIds.png`."""
    image_dir, label_dir = root / "leftImg8bit" / split, root / "gtFine" / split
    if not image_dir.is_dir():
        raise DataError(f"{root} has no Cityscapes split {split!r} (leftImg8bit/{split}/); pick one that exists")
    images = {p.relative_to(image_dir).as_posix()[:-len("_leftImg8bit.png")]: p
              for p in sorted(image_dir.glob("*/*_leftImg8bit.png"))}
    labels = {p.relative_to(label_dir).as_posix()[:-len("_gtFine_labelIds.png")]: p
              for p in sorted(label_dir.glob("*/*_gtFine_labelIds.png"))}
    return _pair_keys(images, labels, label_dir)


def check_data_folder(root: Path) -> None:
    """`root` is an existing folder (not a file): a clear error otherwise."""
    if not root.exists():
        raise UserError(f"dataset folder {root} does not exist; pass a CamVid, CARLA, KITTI or Cityscapes folder")
    if not root.is_dir():
        raise UserError(f"--data {root} is a file, not a dataset folder; pass a CamVid, CARLA, KITTI or "
                        f"Cityscapes folder")
    try:
        os.listdir(root)
    except PermissionError:
        raise UserError(f"cannot read dataset folder {root}: permission denied; check its permissions") from None


def load_split(root: str | Path, split: str, fmt: str = "auto", val_fraction: float = 0.1,
               seed: int = 0) -> tuple[str, list[Sample]]:
    """(format, samples) of one split: CamVid's folders by name, CARLA's deterministic held-out split."""
    root = Path(root)
    if fmt not in FORMATS:
        raise UserError(f"unknown format {fmt!r}; allowed: {', '.join(FORMATS)}")
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; allowed: {', '.join(SPLITS)}")
    check_data_folder(root)
    fmt = detect_format(root) if fmt == "auto" else fmt
    if not READERS[fmt].found_in(root):
        raise DataError(f"{root} is not {READERS[fmt].layout}, as --format {fmt} says; fix --format or "
                        f"leave it at auto")
    return fmt, READERS[fmt].split(root, split, val_fraction, seed)


def _camvid_split(root: Path, split: str, val_fraction: float, seed: int) -> list[Sample]:
    """CamVid's split folders by name (`all`: train and val)."""
    if split == "all":
        return camvid_samples(root, "train") + camvid_samples(root, "val")
    return camvid_samples(root, split)


def _carla_split(root: Path, split: str, val_fraction: float, seed: int) -> list[Sample]:
    """CARLA's deterministic held-out split of all its pairs; it has no test split."""
    return _fraction_split("CARLA folders", carla_samples(root), split, val_fraction, seed)


def _kitti_split(root: Path, split: str, val_fraction: float, seed: int) -> list[Sample]:
    """KITTI semantics' training frames, split like CARLA's (its test frames have no labels)."""
    return _fraction_split("KITTI folders", kitti_samples(root), split, val_fraction, seed)


def _cityscapes_split(root: Path, split: str, val_fraction: float, seed: int) -> list[Sample]:
    """Cityscapes' split folders by name (`all`: train and val)."""
    if split == "all":
        return cityscapes_samples(root, "train") + cityscapes_samples(root, "val")
    return cityscapes_samples(root, split)


def _fraction_split(what: str, samples: list[Sample], split: str, val_fraction: float,
                    seed: int) -> list[Sample]:
    """A deterministic held-out fraction as val; no test split."""
    if split == "test":
        raise UserError(f"{what} have no test split; use --split val (held out), train or all")
    train, val = _split(samples, val_fraction, seed)
    return {"train": train, "val": val, "all": samples}[split]


def split_settings(run_config: dict) -> dict:
    """How a training run (its config.json) split its data: what eval needs to score the same val."""
    dataset = run_config.get("dataset", "")  # "camvid + kitti" for several --data: each one detected
    return {"format": dataset if dataset in READERS else run_config.get("format", "auto"),
            **{k: run_config.get(k, v) for k, v in DEFAULT_SPLIT.items()},
            "train_split": run_config.get("train_split", "train"),  # trainval: val was trained on
            "holdout_drive": run_config.get("holdout_drive", "")}


def load_dataset(root: str | Path, fmt: str = "auto", classes: str = "auto",
                 val_fraction: float = 0.1, seed: int = 0) -> Dataset:
    """Find the samples of a dataset folder and split them into train and validation."""
    fmt, train = load_split(root, "train", fmt, val_fraction, seed)
    _, val = load_split(root, "val", fmt, val_fraction, seed)
    table = READERS[fmt].table(train + val, classes)
    if not train:
        raise UserError(f"no image/mask pairs found under {root}; expected PNG or JPEG files")
    return Dataset(fmt, table, train, val)


def load_datasets(roots: list[str], fmt: str = "auto", classes: str = "auto", val_fraction: float = 0.1,
                  seed: int = 0) -> list[Dataset]:
    """Several dataset folders trained as one, in one class set: `classes`, or with auto the one
    they share (CamVid's 11 when CamVid is among them: Cityscapes-format labels map onto it)."""
    if len(roots) == 1:
        return [load_dataset(roots[0], fmt, classes, val_fraction, seed)]
    formats = []
    for root in roots:
        check_data_folder(Path(root))
        formats.append(detect_format(Path(root)) if fmt == "auto" else fmt)
    if classes == "auto" and all(f == "camvid" or READERS[f].label_ids for f in formats):
        classes = "camvid" if "camvid" in formats else "cityscapes"
    sets = [load_dataset(root, f, classes, val_fraction, seed) for root, f in zip(roots, formats)]
    for root, ds in zip(roots[1:], sets[1:]):
        if ds.table != sets[0].table:
            raise DataError(f"--data {root} has {ds.table.name}'s classes but {roots[0]} has "
                            f"{sets[0].table.name}'s; train datasets of one class set together (--classes)")
    return sets


def drives(samples: list[Sample], fmt: str) -> dict[str, int]:
    """Frames per drive (CamVid: the file name's prefix; CARLA: the capture folder), by name."""
    return dict(sorted(Counter(map(READERS[fmt].drive, samples)).items()))


def parse_drives(text: str) -> tuple[str, ...]:
    """`0006R0` or `0001TP,0006R0` -> the names (empty text: none)."""
    return tuple(n.strip() for n in text.split(",") if n.strip())


def hold_out(samples: list[Sample], fmt: str, names: tuple[str, ...], where: str) -> tuple[list, list]:
    """(kept, held): the frames of drives `names` split off whole; an unknown name is a usage error."""
    if not names:
        return samples, []
    known = drives(samples, fmt)
    unknown = [n for n in names if n not in known]
    if unknown:
        listed = ", ".join(f"{k} ({v} frames)" for k, v in known.items())
        raise UsageError(f"unknown --holdout-drive {unknown[0]!r}: the drives of {where} are {listed}; "
                         f"pick one of them")
    is_held = [READERS[fmt].drive(s) in names for s in samples]
    return ([s for s, h in zip(samples, is_held) if not h], [s for s, h in zip(samples, is_held) if h])


def _split(samples: list[Sample], val_fraction: float, seed: int) -> tuple[list, list]:
    """Deterministic held-out split: at least one validation sample when there are two."""
    order = sorted(samples, key=lambda s: str(s.image))
    random.Random(seed).shuffle(order)
    n_val = max(1, round(len(order) * val_fraction)) if len(order) > 1 else 0
    return order[n_val:], order[:n_val]


def _camvid_table(samples: list[Sample], classes: str) -> ClassTable:
    """CamVid's labels are its 11 classes."""
    if classes not in ("auto", "camvid"):
        raise UsageError(f"--classes {classes}: CamVid labels are CamVid's 11 classes; use --classes camvid")
    return CAMVID


def _label_id_table(samples: list[Sample], classes: str) -> ClassTable:
    """Cityscapes labelIds map onto Cityscapes' 19 training classes (auto) or CamVid's 11."""
    if classes not in ("auto", "cityscapes", "camvid"):
        raise UsageError(f"--classes {classes}: Cityscapes-format labels map onto cityscapes or camvid")
    return CAMVID if classes == "camvid" else CITYSCAPES


def _carla_table(samples: list[Sample], classes: str) -> ClassTable:
    """CARLA 0.8 (13 classes) or 0.9.10+ (23): as asked, or from the largest id in the masks."""
    if classes in ("carla13", "carla23"):
        return CARLA13 if classes == "carla13" else CARLA23
    if classes != "auto":
        raise UsageError(f"--classes {classes}: CARLA labels are CARLA's tags; allowed: auto, carla13, carla23")
    top = max(int(read_mask(s.mask, "carla").max()) for s in samples) if samples else 0
    return CARLA13 if top < CARLA13.num_classes else CARLA23


def read_image(path: Path) -> np.ndarray:
    """RGB uint8 (H, W, 3); an alpha channel is dropped."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise UserError(f"cannot read image {path}: not an image or corrupt; replace or remove it")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_mask(path: Path, fmt: str) -> np.ndarray:
    """Class ids uint8 (H, W): the red channel for CARLA, the single channel for CamVid."""
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise UserError(f"cannot read mask {path}: not an image or corrupt; replace or remove it")
    if raw.ndim == 3:
        raw = raw[..., READERS[fmt].mask_channel]
    return raw.astype(np.uint8)


def load_pair(sample: Sample, fmt: str, table: ClassTable) -> tuple[np.ndarray, np.ndarray]:
    """Decode and check one sample: sizes agree and every id is in the class table (Cityscapes
    labelIds are mapped onto it first)."""
    image, mask = read_image(sample.image), read_mask(sample.mask, fmt)
    if image.shape[:2] != mask.shape:
        raise DataError(f"label {sample.mask} is {mask.shape[1]}x{mask.shape[0]} but its image is "
                        f"{image.shape[1]}x{image.shape[0]}; labels must match their images")
    if READERS[fmt].label_ids:
        return image, _map_label_ids(mask, sample.mask, table)
    top = int(mask.max())
    if top >= table.num_classes and top != table.void:
        allowed = f"0-{table.num_classes - 1}" + (f" or {table.void} (void)" if table.void else "")
        raise DataError(f"mask {sample.mask} has class id {top}, outside the {table.name} table "
                        f"({allowed}); check that the data matches (--format, --classes, or the model)")
    return image, mask


def _map_label_ids(raw: np.ndarray, path: Path, table: ClassTable) -> np.ndarray:
    """Cityscapes labelIds -> the table's class ids (void: LABEL_ID_VOID); an id past 33 is an error."""
    top = int(raw.max())
    if top >= CITYSCAPES_LABEL_IDS:
        raise DataError(f"label {path} has labelId {top}, outside the Cityscapes table (0-"
                        f"{CITYSCAPES_LABEL_IDS - 1}); use *_gtFine_labelIds.png labels, not colour or trainId ones")
    lookup = label_id_lookup(table.classes, LABEL_ID_VOID)
    if lookup is None:
        raise UsageError(f"Cityscapes-format labels map onto the camvid or cityscapes class set, not "
                         f"{table.name}'s {table.num_classes} classes; train or import a model with one of those")
    return lookup[raw]


def _describe_camvid(split: str, settings: dict, origin: str) -> str:
    return f"CamVid {split}" + (" (train/ + val/)" if split == "all" else f" ({split}/ folder)")


def _describe_fraction(name: str):
    """How a format split by a held-out fraction (CARLA, KITTI) describes its scored images."""
    def describe(split: str, settings: dict, origin: str) -> str:
        if split == "all":
            return f"every {name} pair"
        part = f"{settings['val_fraction']:.0%}" if split == "val" else f"{1 - settings['val_fraction']:.0%}"
        return (f"{name} {split}: the {'held-out' if split == 'val' else 'training'} {part}, seed "
                f"{settings['seed']} (split settings from {origin})")
    return describe


def _describe_cityscapes(split: str, settings: dict, origin: str) -> str:
    return f"Cityscapes {split}" + (" (train + val)" if split == "all" else f" (leftImg8bit/{split}/)")


@dataclass(frozen=True)
class Format:
    """One dataset layout: everything that differs between formats, asked of its entry in READERS."""

    layout: str                                             # what the folder holds, for the error when none fits
    found_in: Callable[[Path], bool]                        # `root` has this layout (auto-detection)
    split: Callable[[Path, str, float, int], list[Sample]]  # a split's pairs: (root, split, val_fraction, seed)
    table: Callable[[list[Sample], str], ClassTable]        # the class table: (samples, --classes)
    mask_channel: int                                       # the channel of a colour mask that holds the id (BGR)
    void: int | None                                        # the id that eval ignores
    describe: Callable[[str, dict, str], str]               # the scored images in words: (split, settings, origin)
    drive: Callable[[Sample], str]                          # the recording a frame comes from (held out whole)
    label_ids: bool = False                                 # labels are Cityscapes labelIds, mapped per class set


# Detection tries them in this order.
READERS = {
    "camvid": Format("a CamVid folder (train/ + trainannot/)", _is_camvid, _camvid_split,
                     _camvid_table, 0, CAMVID.void, _describe_camvid,
                     lambda s: s.image.stem.split("_")[0]),  # 0016E5_08640.png: drive 0016E5
    "carla": Format("a CARLA capture (CameraRGB/ + CameraMask/ or CameraSeg/)",
                    lambda root: bool(_carla_captures(root)), _carla_split, _carla_table,
                    2, None, _describe_fraction("CARLA"),  # the class id is in the red channel (BGR index 2)
                    lambda s: s.image.parent.parent.name),  # a capture folder is one drive
    "kitti": Format("a KITTI semantics folder (image_2/ + semantic/)", lambda root: _kitti_root(root) is not None,
                    _kitti_split, _label_id_table, 0, LABEL_ID_VOID, _describe_fraction("KITTI"),
                    lambda s: s.image.stem.split("_")[0], label_ids=True),  # 000042_10.png: scene 000042
    "cityscapes": Format("a Cityscapes folder (leftImg8bit/ + gtFine/)", _is_cityscapes, _cityscapes_split,
                         _label_id_table, 0, LABEL_ID_VOID, _describe_cityscapes,
                         lambda s: s.image.parent.name, label_ids=True),  # a city is one drive
}
FORMATS = ("auto", *READERS)
