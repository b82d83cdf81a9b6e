"""What an exported `.onnx` file promises the runtime: tensor names, metadata keys, preprocessing.

Export writes it and the runtime reads it, so both import it from here (NumPy and OpenCV only):

    input   `image`      (N, H, W, 3) RGB, float32 in [0, 1]
    output  `class_map`  (N, H, W) uint8 class ids        (head argmax, the default)
            `probs`      (N, H, W, C) float32 softmax       (beside class_map; read only when
                                                          smooth edges or --smooth need it)
         or `logits`     (N, H, W, C) float32             (head logits)
    metadata_props: classes, palette (RGB), input_size [H, W], and what export records
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
PREPROCESSING = "RGB, area resize to input_size, float32 / 255"


def preprocess(frames_bgr: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """BGR uint8 frames -> (N, H, W, 3) float32 RGB in [0, 1]; area resize like training."""
    h, w = size
    batch = np.empty((len(frames_bgr), h, w, 3), np.float32)
    for i, frame in enumerate(frames_bgr):
        small = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
        cv2.cvtColor(small, cv2.COLOR_BGR2RGB, dst=small)
        np.multiply(small, np.float32(1 / 255), out=batch[i])
    return batch
