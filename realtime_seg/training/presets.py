"""The shipped presets' recipes, every stage from ImageNet weights to the shipped checkpoint, in one place.

    python -m realtime_seg train --preset accurate --data ../shared/data/camvid --data ../shared/data/kitti --out runs/accurate

runs each stage in order, in OUT/STAGE/, each starting from the stage before's last.keras; the last
stage's last.keras is the model to export. models/README.md shows these tables
(`recipe_table`; tests/training/test_presets.py checks that the card and the code agree). A
stage's `settings` are TrainConfig fields; everything a stage does not set is COMMON or TrainConfig's
default.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    """One training run of a preset: what it trains on and how long."""

    name: str
    data: str            # "first": the first --data only (CamVid); "all": every --data, the rest drawn `repeat` times
    settings: dict       # TrainConfig fields: train_split, input_size, epochs, lr
    repeat: int = 1      # with data "all": how many times an epoch the frames of each --data after the first are drawn
    purpose: str = ""


@dataclass(frozen=True)
class Preset:
    name: str
    arch: str
    stages: tuple[Stage, ...]


# every stage of every preset: the ImageNet-encoder U-Net and the augmentation the recipe checks picked
COMMON = {"arch": "lite0", "augmentations": "basic", "seed": 0, "workers": 2, "encoder_lr": 0.1,
          "encoder_bn": "frozen", "class_weights": "median", "batch_size": 8}

_ACCURATE = (
    Stage("base", "first", {"train_split": "train", "input_size": (352, 480), "epochs": 45, "lr": 1e-3},
          purpose="from ImageNet on CamVid train (val held out: the recipe's val score)"),
    Stage("trainval", "first", {"train_split": "trainval", "input_size": (352, 480), "epochs": 12, "lr": 5e-4},
          purpose="CamVid train+val, all three drives"),
    Stage("cameras", "all", {"train_split": "trainval", "input_size": (352, 480), "epochs": 6, "lr": 5e-4,
                             "progressive": "256x352:4"},
          repeat=2, purpose="a second camera: CamVid train+val and KITTI, KITTI drawn twice an epoch"),
)
PRESETS = {
    "accurate": Preset("accurate", "lite0", _ACCURATE),
    "fast": Preset("fast", "lite0", _ACCURATE + (
        Stage("fast", "all", {"train_split": "trainval", "input_size": (224, 320), "epochs": 3, "lr": 5e-4},
              repeat=2, purpose="accurate's weights at the fast input size"),)),
}
# what a user may still set with --preset (a smoke run, the machine); anything else is the recipe's
OVERRIDABLE = ("epochs", "limit", "workers", "seed", "compute_dtype", "batch_size", "resume")


def get_preset(name: str) -> Preset:
    """The preset called `name`; ValueError listing the allowed names."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; allowed: {', '.join(PRESETS)}")
    return PRESETS[name]


def stage_settings(preset: Preset, stage: Stage, data: list[str]) -> dict:
    """TrainConfig fields of `stage` (without out, init and the user's overrides) for these --data folders."""
    roots = data[:1] if stage.data == "first" else list(data)
    weights = ",".join(["1"] + [str(stage.repeat)] * (len(roots) - 1)) if stage.repeat > 1 and len(roots) > 1 else ""
    return {**COMMON, "arch": preset.arch, **stage.settings, "data": roots, "data_weights": weights}


def recipe_table(name: str) -> str:
    """The preset's stages as the Markdown table its model card shows."""
    rows = ["| stage | data | split | input | epochs | peak lr | starts from |", "|---|---|---|---|---|---:|---|"]
    previous = "ImageNet (EfficientNet-Lite0)"
    for stage in get_preset(name).stages:
        s = stage.settings
        data = "CamVid" if stage.data == "first" else f"every --data, the rest x{stage.repeat}"
        small = s.get("progressive", "")
        epochs = f"{s['epochs']} (first {small.split(':')[1]} at {small.split(':')[0]})" if small else str(s["epochs"])
        rows.append(f"| {stage.name} | {data} | {s['train_split']} | {s['input_size'][0]}x{s['input_size'][1]} | "
                    f"{epochs} | {s['lr']:g} | {previous} |")
        previous = f"{stage.name}'s last.keras"
    return "\n".join(rows)
