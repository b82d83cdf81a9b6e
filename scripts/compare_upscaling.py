"""Nearest upscaling of the class map vs bilinear upscaling of the logits, scored at label size.

usage: python scripts/compare_upscaling.py CHECKPOINT.keras [DATA (../shared/data/camvid)]
Prints val mIoU and the upscaling's milliseconds per frame for both (issue 12's output question).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from realtime_seg.datasets.augment import resize_image  # noqa: E402
from realtime_seg.datasets.metrics import confusion_matrix, summarize  # noqa: E402
from realtime_seg.datasets.readers import load_dataset, load_pair  # noqa: E402
from realtime_seg.training.backend import import_keras  # noqa: E402


def main(checkpoint: str, data: str = "../shared/data/camvid") -> None:
    model = import_keras().models.load_model(checkpoint, compile=False)
    _, h, w, _ = model.inputs[0].shape
    ds = load_dataset(data)
    n = ds.table.num_classes
    cms = {"nearest class map": np.zeros((n, n), np.int64), "bilinear logits": np.zeros((n, n), np.int64)}
    seconds = dict.fromkeys(cms, 0.0)
    for sample in ds.val:
        image, label = load_pair(sample, ds.format, ds.table)
        x = resize_image(image, (h, w))[None].astype(np.float32) / 255.0
        logits = np.asarray(model(x, training=False))[0]                     # (h, w, classes)
        size = label.shape[::-1]
        for name in cms:
            t = time.perf_counter()
            if name == "nearest class map":
                pred = cv2.resize(np.argmax(logits, -1).astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
            else:
                pred = np.argmax(cv2.resize(logits, size, interpolation=cv2.INTER_LINEAR), -1)
            seconds[name] += time.perf_counter() - t
            cms[name] += confusion_matrix(label[None], pred[None], n)
    for name, cm in cms.items():
        print(f"{name}: val mIoU {summarize(cm)['miou'] * 100:.2f}, "
              f"{seconds[name] / len(ds.val) * 1000:.2f} ms/frame ({checkpoint}, {h}x{w})")


if __name__ == "__main__":
    main(*sys.argv[1:3])
