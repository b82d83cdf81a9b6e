"""Confusion matrix, mIoU and pixel accuracy with a void label ignored (NumPy only)."""
from __future__ import annotations

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
