"""Score an ONNX model on a labelled split: mIoU, pixel accuracy, per-class IoU (void ignored).

usage: python -m realtime_seg eval --model models/camvid_accurate.onnx --data ../shared/data/camvid
           [--split val] [--format auto|camvid|carla] [--json scores.json] [--confusion cm.png]
       python -m realtime_seg eval --model m.onnx --data ../shared/data/camvid --holdout-drive 0006R0
       python -m realtime_seg eval --model runs/x/x.onnx --data ~/carla --run runs/x
Predictions are resized to each label's own size before scoring: nearest (default, as training
scores val), or `--edges smooth` as the viewer draws them (runtime/edges.py). A CARLA folder has
no val folder: its held-out split is drawn as the training run drew it, with the settings of
--run DIR (its config.json), else of the model's metadata, else the trainer's defaults.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from ..cli import add_model_options, model_choice, run_options
from ..contract import SPLIT
from ..datasets.metrics import iou_per_class, summarize
from ..datasets.readers import (DEFAULT_SPLIT, FORMATS, READERS, SPLITS, hold_out, load_split, parse_drives,
                                split_settings)
from ..errors import ArgumentParser, UsageError, UserError, check_at_least
from ..runtime.engine import SegModel
from ..runtime.models import open_model
from ..runtime.render import EDGES
from ..runtime.scoring import evaluate
from ..system import check_output_file, check_readable, write_atomic, write_json

CONFUSION_TYPES = {".png", ".jpg", ".jpeg", ".bmp"}


def find_split(model: SegModel, run: str | None) -> tuple[dict, str]:
    """The training run's split settings, and where they came from: --run, model metadata, defaults."""
    if run:
        config = Path(run) / "config.json"
        check_readable(config, "--run config")
        try:
            return split_settings(json.loads(config.read_text())), f"{config}"
        except (ValueError, AttributeError):
            raise UserError(f"--run: {config} is not a training config (JSON); pass a run folder "
                            f"written by `train`") from None
    if SPLIT in model.metadata:
        return {**DEFAULT_SPLIT, **json.loads(model.metadata[SPLIT])}, f"{model.path.name} metadata"
    return dict(DEFAULT_SPLIT), "the trainer's defaults"


def _trained_on(fmt: str, settings: dict) -> bool:
    """Whether the run trained on data of this layout ("camvid + kitti": several); unknown counts as yes.

    A CamVid-only model scored on KITTI is scored on a camera it never saw, whatever its split."""
    formats = settings.get("format", "auto").split(" + ")
    return "auto" in formats or fmt in formats


def describe_split(fmt: str, split: str, settings: dict, origin: str) -> str:
    """Which images are scored, in words: e.g. CARLA's held-out 10% (seed 0, from run/config.json)."""
    return READERS[fmt].describe(split, settings, origin)


def report(model: SegModel, cm: np.ndarray) -> dict:
    """Scores as a dict: miou, pixel_accuracy, per_class_iou (name -> IoU or None)."""
    scores = summarize(cm)
    ious = iou_per_class(cm)
    return {**scores, "per_class_iou": {c: (None if np.isnan(v) else float(v))
                                        for c, v in zip(model.classes, ious)},
            "pixels": int(cm.sum()), "confusion": cm.tolist()}


def print_table(result: dict) -> None:
    width = max(len(c) for c in result["per_class_iou"])
    for name, iou in result["per_class_iou"].items():
        print(f"  {name:<{width}}  {'  n/a' if iou is None else f'{iou * 100:5.1f}'}")
    print(f"mIoU {result['miou'] * 100:.2f}  pixel accuracy {result['pixel_accuracy'] * 100:.2f}  "
          f"({result['images']} images of {result['scored']})")


def confusion_png(cm: np.ndarray, classes: list[str], path: Path) -> None:
    """Row-normalised confusion matrix as a heat map with class names."""
    n, cell, margin = len(classes), 36, 110
    rows = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    heat = cv2.applyColorMap((rows * 255).astype(np.uint8), cv2.COLORMAP_VIRIDIS)
    image = np.full((margin + n * cell, margin + n * cell, 3), 255, np.uint8)
    image[margin:, margin:] = cv2.resize(heat, (n * cell, n * cell), interpolation=cv2.INTER_NEAREST)
    for i, name in enumerate(classes):
        y = margin + i * cell + cell // 2 + 4
        cv2.putText(image, name[:12], (4, y), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        col = np.full((cell, margin, 3), 255, np.uint8)  # column labels, rotated
        cv2.putText(col, name[:12], (4, cell // 2 + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        image[:margin, margin + i * cell:margin + (i + 1) * cell] = cv2.rotate(col, cv2.ROTATE_90_COUNTERCLOCKWISE)
        for j in range(n):
            cv2.putText(image, f"{rows[i, j] * 100:.0f}", (margin + j * cell + 6, y),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1, cv2.LINE_AA)
    write_atomic(path, lambda tmp: cv2.imwrite(str(tmp), image))


def check_outputs(args: argparse.Namespace, model_path: Path) -> None:
    """--json and --confusion can be written, and neither replaces the model or the other."""
    outputs = {"--json": args.json, "--confusion": args.confusion}
    if args.confusion and Path(args.confusion).suffix.lower() not in CONFUSION_TYPES:
        raise UsageError(f"--confusion {args.confusion} must be an image file "
                         f"({', '.join(sorted(CONFUSION_TYPES))})")
    if args.json and args.confusion and Path(args.json).resolve() == Path(args.confusion).resolve():
        raise UsageError(f"--json and --confusion are both {args.json}; give them different paths")
    data = Path(args.data).resolve()
    for option, path in outputs.items():
        if path and Path(path).is_file() and data in Path(path).resolve().parents:
            raise UsageError(f"{option} {path} would replace a file of the dataset {args.data}; "
                             f"choose a path outside it")
        if path:
            check_output_file(Path(path), option, {"model": model_path})


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m realtime_seg eval", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_options(p)
    p.add_argument("--data", required=True, help="CamVid or CARLA folder")
    p.add_argument("--split", choices=SPLITS, help="default: val; with --holdout-drive: all")
    p.add_argument("--holdout-drive", default="", metavar="DRIVE[,DRIVE]",
                   help="score only these drives' frames (of --split, by default train + val): a model "
                        "trained with the same --holdout-drive never saw them")
    p.add_argument("--format", default="auto", choices=FORMATS)
    p.add_argument("--run", metavar="DIR", help="training run folder: score its CARLA split (config.json)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--edges", default="nearest", choices=EDGES[::-1],
                   help="how predictions reach the label's size: nearest (default, as training scores "
                        "val) or smooth (as the viewer draws)")
    p.add_argument("--json", help="write scores as JSON")
    p.add_argument("--confusion", help="write a confusion-matrix PNG")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    check_at_least("--batch-size", args.batch_size, 1)
    check_at_least("--threads", args.threads, 0)
    choice = model_choice(args)
    check_outputs(args, choice.path)
    model = open_model(choice, run_options(args))
    settings, origin = find_split(model, args.run)
    split = args.split or ("all" if args.holdout_drive else "val")
    fmt, samples = load_split(args.data, split, args.format, settings["val_fraction"], settings["seed"])
    if not samples:
        raise UserError(f"no image/mask pairs in the {split} split of {args.data}")
    scored = describe_split(fmt, split, settings, origin)
    if args.holdout_drive:
        drives = parse_drives(args.holdout_drive)
        _, samples = hold_out(samples, fmt, drives, f"{args.data} ({split})")
        scored += f", drive {', '.join(drives)} only"
    if settings.get("train_split") == "trainval" and split in ("val", "all") and _trained_on(fmt, settings):
        scored += "; the model was trained on train+val, so this is not a held-out score"
    print(f"scoring {len(samples)} images with {choice.name} ({model.runs_on}, {model.path.name}), aspect {model.aspect}: {scored}")
    cm = evaluate(model, samples, fmt, args.batch_size, args.edges)
    result = {"model": choice.name, "file": model.path.name, "data": str(args.data), "precision": model.precision, "aspect": model.aspect,
              "split": split, "holdout_drive": args.holdout_drive, "scored": scored,
              "split_settings": settings, "images": len(samples), "edges": args.edges, **report(model, cm)}
    print_table(result)
    if args.json:
        write_json(Path(args.json), result)
    if args.confusion:
        confusion_png(cm, model.classes, Path(args.confusion))
    return 0
