"""A model scored on labelled images: the confusion matrix behind `eval` and export's int8 check.

Predictions reach each label's own size before they are counted: nearest (as training scores val)
or with the viewer's smooth edges (edges.py). NumPy, OpenCV and onnxruntime only.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..datasets.classes import ClassTable
from ..datasets.metrics import score
from ..datasets.readers import READERS, load_pair
from ..system import progress
from .engine import SegModel
from .render import to_frame_size


def evaluate(model: SegModel, samples, fmt: str, batch_size: int = 8, edges: str = "nearest") -> np.ndarray:
    """Confusion matrix over `samples`, predictions at each label's size (`edges`: how they get there)."""
    void = READERS[fmt].void  # labels are checked against the model's classes
    table = ClassTable(model.path.name, tuple(model.classes), (), void)
    with progress(samples, desc="eval", unit="img") as bar:
        pairs = (load_pair(s, fmt, table) for s in bar)
        return score(lambda images: _predict(model, images, edges), pairs, len(model.classes), batch_size)


def _predict(model: SegModel, images: list[np.ndarray], edges: str) -> list[np.ndarray]:
    """Class maps of RGB images: at the model's input size (nearest: `score` resizes them), or at each
    image's size (= its label's) with smooth edges. Images whose aspect gives another input size
    than the first's (aspect keep) run one by one, each at its own."""
    if len({model.size_for(i.shape) for i in images}) > 1:
        return [m for i in images for m in _predict(model, [i], edges)]
    frames = [cv2.cvtColor(i, cv2.COLOR_RGB2BGR) for i in images]
    if edges == "nearest":
        return list(model.predict(frames))
    maps, probs = model.infer_probs(model.prepare(frames))
    return [to_frame_size(m, (f.shape[1], f.shape[0]), edges, None if probs is None else p)
            for m, p, f in zip(maps, probs if probs is not None else maps, frames)]
