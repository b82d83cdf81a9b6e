"""Score an ONNX model on a labelled split: mIoU, pixel accuracy, per-class IoU (void ignored).

usage: python -m realtime_seg eval --model models/camvid_accurate.onnx --data ../shared/data/camvid
           [--split val] [--format auto|camvid|carla] [--json scores.json] [--confusion cm.png]
Predictions are resized to each label's own size (nearest) before scoring.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from .data import (FORMATS, _split, camvid_samples, carla_samples, check_data_folder, detect_format,
                   load_pair)
from .classes import CAMVID, ClassTable
from .engine import DEVICES, SegModel, load_model, resolve_model
from .errors import ArgumentParser, UsageError, UserError
from .paths import check_output_file, write_atomic
from .metrics import confusion_matrix, iou_per_class, summarize
from .progress import progress

SPLITS = ("train", "val", "test", "all")
CONFUSION_TYPES = {".png", ".jpg", ".jpeg", ".bmp"}


def find_samples(root: Path, fmt: str, split: str):
    """Samples of `split`: CamVid folders by name; CARLA the trainer's held-out split (or all)."""
    check_data_folder(root)
    fmt = detect_format(root) if fmt == "auto" else fmt
    if fmt == "camvid":
        if split == "all":
            return fmt, camvid_samples(root, "train") + camvid_samples(root, "val")
        return fmt, camvid_samples(root, split)
    samples = carla_samples(root)
    if split == "test":
        raise UserError("CARLA folders have no test split; use --split val (held out), train or all")
    train, val = _split(samples, 0.1, 0)  # the trainer's defaults
    return fmt, {"train": train, "val": val, "all": samples}[split]


def evaluate(model: SegModel, samples, fmt: str, batch_size: int = 8) -> np.ndarray:
    """Confusion matrix over `samples`, predictions at each label's size."""
    n = len(model.classes)
    void = CAMVID.void if fmt == "camvid" else None  # labels are checked against the model's classes
    table = ClassTable(model.path.name, tuple(model.classes), (), void)
    cm = np.zeros((n, n), np.int64)
    bar = progress(total=len(samples), desc="eval", unit="img")
    for start in range(0, len(samples), batch_size):
        pairs = [load_pair(s, fmt, table) for s in samples[start:start + batch_size]]
        maps = model.predict([cv2.cvtColor(img, cv2.COLOR_RGB2BGR) for img, _ in pairs])
        for class_map, (_, label) in zip(maps, pairs):
            h, w = label.shape
            full = cv2.resize(class_map, (w, h), interpolation=cv2.INTER_NEAREST)
            cm += confusion_matrix(label, full, n)
        bar.update(len(pairs))
    bar.close()
    return cm


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
          f"({result['images']} images, {result['split']} split)")


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
    p.add_argument("--model", help="ONNX model or preset (accurate, fast); default: accurate")
    p.add_argument("--data", required=True, help="CamVid or CARLA folder")
    p.add_argument("--split", default="val", choices=SPLITS)
    p.add_argument("--format", default="auto", choices=FORMATS)
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--json", help="write scores as JSON")
    p.add_argument("--confusion", help="write a confusion-matrix PNG")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    model_path = resolve_model(args.model)
    check_outputs(args, model_path)
    model = load_model(model_path, args.device)
    fmt, samples = find_samples(Path(args.data), args.format, args.split)
    if not samples:
        raise UserError(f"no image/mask pairs in the {args.split} split of {args.data}")
    cm = evaluate(model, samples, fmt, args.batch_size)
    result = {"model": model.path.name, "data": str(args.data), "split": args.split,
              "images": len(samples), **report(model, cm)}
    print_table(result)
    if args.json:
        write_atomic(Path(args.json), lambda tmp: tmp.write_text(json.dumps(result, indent=2)))
    if args.confusion:
        confusion_png(cm, model.classes, Path(args.confusion))
    return 0
