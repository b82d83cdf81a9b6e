"""What an exported `.onnx` file promises the runtime: tensor names, metadata keys, preprocessing.

Export writes it and the runtime reads it, so both import it from here (NumPy and OpenCV only):

    input   `image`      (N, H, W, 3) RGB uint8; the graph scales to [0, 1] itself
                         (models exported before that take float32 in [0, 1]: the runtime reads the dtype);
                         H and W any multiples of 32 (exports since issue 35), else input_size only
    output  `class_map`  (N, h, w) uint8 class ids        (head argmax, the default)
            `probs`      (N, h, w, C) float32 softmax       (beside class_map; read only when
                                                          smooth edges or --smooth need it)
         or `logits`     (N, h, w, C) float32             (head logits)
            h, w: H / output_stride, W / output_stride (the head's resolution; 1 in older exports)
    metadata_props: classes, palette (RGB), input_size [H, W] (the trained size), precision, aspect
                    (what a frame of another aspect gets: ASPECTS), output_stride, and what export records
"""
from __future__ import annotations

import cv2
import numpy as np

INPUT = "image"
CLASS_MAP = "class_map"
LOGITS = "logits"
PROBS = "probs"     # exports since issue 14; older models have class_map only
REQUIRED_METADATA = ("classes", "palette", "input_size")
SPLIT = "split"  # metadata: how the training run split its data (eval scores the same val)
PRECISION = "precision"      # metadata: fp32, fp16 or int8 (missing: fp32)
PRECISIONS = ("fp32", "fp16", "int8")
CALIBRATION = "calibration"  # metadata of int8 models: the images their ranges come from
INT8_CHECK = "int8_check"    # metadata of int8 models: agreement, val mIoU and speed against fp32
PREPROCESSING = "RGB, area resize to input_size, uint8 (the graph divides by 255)"
INPUT_DTYPES = {"tensor(uint8)": np.uint8, "tensor(float)": np.float32}
ASPECT = "aspect"            # metadata: what the model does with a frame of another aspect (missing: squash)
# keep: input_size's height and a width from the frame's aspect (keep_aspect_size); the graph takes any
# size. squash: the whole frame resized to input_size, as every model did before issue 35 (and as a
# model whose graph takes input_size only still does)
ASPECTS = ("keep", "squash")
OUTPUT_STRIDE = "output_stride"  # metadata: input size / output size (missing: 1); the runtime upsamples


def preprocess(frames_bgr: list[np.ndarray], size: tuple[int, int], dtype=np.float32) -> np.ndarray:
    """BGR uint8 frames -> (N, H, W, 3) RGB, area resize like training: uint8, or float32 in [0, 1]."""
    h, w = size
    batch = np.empty((len(frames_bgr), h, w, 3), np.uint8)
    for i, frame in enumerate(frames_bgr):  # written in place: no per-frame temporaries
        area_resize(frame, (w, h), batch[i])
        cv2.cvtColor(batch[i], cv2.COLOR_BGR2RGB, dst=batch[i])
    if np.dtype(dtype) == np.uint8:
        return batch
    return np.multiply(batch, np.float32(1 / 255), dtype=np.float32)


def area_resize(frame: np.ndarray, size: tuple[int, int], dst: np.ndarray) -> None:
    """Area-average `frame` to `size` (W, H) into `dst`; 2x or more smaller: bilinear to 2x, then 2x2 means.

    OpenCV's area resize by a fractional factor (960x540 -> 256x192) is slow; bilinear to twice the
    size and its exact 2x2 area path is several times faster and nearly the same image (class maps
    and val mIoU kept: docs/BENCHMARKS.md, measurements behind the code). Smaller frames (CamVid's
    480x360, training's own resize) take the plain area resize.
    """
    w, h = size
    if frame.shape[1] >= 2 * w and frame.shape[0] >= 2 * h:
        twice = cv2.resize(frame, (2 * w, 2 * h), interpolation=cv2.INTER_LINEAR)
        cv2.resize(twice, (w, h), dst=dst, interpolation=cv2.INTER_AREA)
    else:
        cv2.resize(frame, (w, h), dst=dst, interpolation=cv2.INTER_AREA)


ASPECT_TOLERANCE = 0.15  # frames within 15% of the model's aspect are resized whole, as trained
MAX_ASPECT = 4.0         # keep: frames wider than 4:1 (or taller than 1:4) are squashed to that much


def keep_aspect_size(shape: tuple[int, ...], size: tuple[int, int], multiple: int = 32) -> tuple[int, int]:
    """The input size for a frame of `shape` (H, W, ...) that keeps its aspect: `size` itself when the
    aspects are within ASPECT_TOLERANCE (CamVid's 360x480 at 352x480), else `size`'s height and the
    width that matches the frame's, a multiple of `multiple` (KITTI's 375x1242 at 352 high: 352x1152;
    the 16:9 demo's 540x960: 352x640). The aspect is bounded by MAX_ASPECT: a panorama costs no more
    than 4:1."""
    (h, w), (fh, fw) = size, shape[:2]
    if abs((fw / fh) / (w / h) - 1) <= ASPECT_TOLERANCE:
        return tuple(size)
    aspect = min(max(fw / fh, 1 / MAX_ASPECT), MAX_ASPECT)
    return h, max(multiple, round(h * aspect / multiple) * multiple)


def input_size_for(shape: tuple[int, ...], size: tuple[int, int], aspect: str) -> tuple[int, int]:
    """The input size a frame of `shape` (H, W, ...) is resized to: `size` (squash) or keep_aspect_size (keep)."""
    return keep_aspect_size(shape, size) if aspect == "keep" else tuple(size)
