"""Confusion matrix, mIoU and pixel accuracy with a void label ignored (NumPy and OpenCV only)."""
from __future__ import annotations

import itertools
from typing import Callable, Iterable

import cv2
import numpy as np


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) counts, rows = truth, columns = prediction; ids >= num_classes ignored."""
    labels = labels.reshape(-1).astype(np.int64)
    preds = preds.reshape(-1).astype(np.int64)
    keep = labels < num_classes  # void and any id past the table
    return np.bincount(num_classes * labels[keep] + preds[keep],
                       minlength=num_classes ** 2).reshape(num_classes, num_classes)


def iou_per_class(cm: np.ndarray) -> np.ndarray:
    """IoU of each class; NaN for classes absent from both truth and prediction."""
    tp = np.diag(cm).astype(np.float64)
    union = cm.sum(0) + cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def summarize(cm: np.ndarray) -> dict[str, float]:
    """mIoU (over classes present) and pixel accuracy of a confusion matrix."""
    ious = iou_per_class(cm)
    total = cm.sum()
    return {
        "miou": float(np.nanmean(ious)) if np.any(~np.isnan(ious)) else 0.0,
        "pixel_accuracy": float(np.trace(cm) / total) if total else 0.0,
    }


def score(predict: Callable[[list[np.ndarray]], np.ndarray], pairs: Iterable[tuple[np.ndarray, np.ndarray]],
          num_classes: int, batch_size: int = 8) -> np.ndarray:
    """Confusion matrix of `predict` (RGB images -> class maps at any size) over (image, label) pairs.

    Each prediction is resized to its label's own size (nearest), so training's val mIoU and
    `eval` measure the same thing, whatever size the model runs at.
    """
    cm = np.zeros((num_classes, num_classes), np.int64)
    batch: list[tuple[np.ndarray, np.ndarray]] = []
    for pair in itertools.chain(pairs, [None]):  # None: flush the last batch
        if pair is not None:
            batch.append(pair)
        if batch and (pair is None or len(batch) == batch_size):
            maps = predict([image for image, _ in batch])
            for class_map, (_, label) in zip(maps, batch):
                h, w = label.shape
                full = cv2.resize(np.asarray(class_map, np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
                cm += confusion_matrix(label, full, num_classes)
            batch = []
    return cm
