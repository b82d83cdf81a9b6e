"""One image in, its class map and its annotated picture out: the Python API's one call.

    from realtime_seg import segment_image
    result = segment_image("frame.png")            # a path, or an RGB array (H, W, 3) uint8
    result.class_map                               # (H, W) uint8 class ids, at the image's size
    result.annotated                               # (H, W, 3) uint8 RGB: the blend and its legend
    result.classes[result.class_map[100, 200]]     # the class of pixel (x=200, y=100)
    result.save("frame_seg.png")

The picture is the viewer's (the default look: smooth edges, contrast palette, a legend, no HUD);
an image is segmented alone (no temporal smoothing). Models opened by name are kept for the next
call. onnxruntime, NumPy and OpenCV only: importing this never loads TensorFlow or Keras.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import UserError
from .engine import SegModel
from .look import Look
from .media import MIN_SIDE, read_image, write_image
from .models import ModelChoice, RunOptions, choose_model, open_model

_OPENED: dict[tuple, SegModel] = {}   # models opened by name: (spec, precision, device) -> session
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Segmented:
    """What `segment_image` returns: class ids and the annotated picture, both at the image's size."""

    class_map: np.ndarray    # (H, W) uint8: an index into `classes`
    annotated: np.ndarray    # (H, W, 3) uint8 RGB
    classes: list[str]

    def save(self, path: str | Path) -> Path:
        """Write the annotated picture (PNG, JPEG, ... by the name's extension) atomically."""
        return write_image(Path(path), np.ascontiguousarray(self.annotated[..., ::-1]))


def segment_image(image: str | Path | np.ndarray, model: str | Path | SegModel | None = None,
                  precision: str = "auto", device: str = "auto", look: Look | None = None) -> Segmented:
    """Segment one image: a file (PNG, JPEG, ...) or an RGB array; `model` a preset (default
    accurate), an .onnx path, or a model already opened (`open_model`); `look` how it is drawn."""
    bgr = read_image(Path(image)) if isinstance(image, (str, Path)) else _bgr(image)
    net = model if isinstance(model, SegModel) else _opened(
        choose_model(None if model is None else str(model), precision), RunOptions(device))
    overlay = (look or Look(hud=False)).overlay(net)
    maps, probs = net.infer_probs(net.prepare([bgr]))
    class_map = maps[0]
    full = overlay.frame_classes(bgr, class_map, None if probs is None else probs[0])
    picture = overlay.paint(bgr, class_map, full=full)
    return Segmented(full, np.ascontiguousarray(picture[..., ::-1]), list(net.classes))


def _opened(choice: ModelChoice, options: RunOptions) -> SegModel:
    """The model named, opened once per (model, precision, device) and kept."""
    key = (str(choice.path), choice.precision, options.device)
    with _LOCK:
        if key not in _OPENED:
            _OPENED[key] = open_model(choice, options)
        return _OPENED[key]


def _bgr(array: np.ndarray) -> np.ndarray:
    """An RGB (or RGBA, or grayscale; 8- or 16-bit) array as the 8-bit BGR the model path takes."""
    array = np.asarray(array)
    if array.dtype == np.uint16:
        array = (array >> 8).astype(np.uint8)
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise UserError(f"segment_image takes an RGB image array (H, W, 3) of uint8, got {array.shape} "
                        f"{array.dtype}; convert it first (e.g. (x * 255).astype('uint8'))")
    if min(array.shape[:2]) < MIN_SIDE:
        raise UserError(f"the image is {array.shape[1]}x{array.shape[0]} pixels, under the {MIN_SIDE} a side a "
                        f"model needs; pass a larger image")
    if array.ndim == 2 or array.shape[2] == 1:
        return cv2.cvtColor(array.reshape(array.shape[:2]), cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(array, cv2.COLOR_RGBA2BGR if array.shape[2] == 4 else cv2.COLOR_RGB2BGR)
