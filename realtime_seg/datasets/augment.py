"""Training-time transforms: resize an (image, mask) pair and augment it (NumPy and OpenCV only)."""
from __future__ import annotations

import cv2
import numpy as np


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize to (height, width) with area averaging, as the runtime's preprocessing does."""
    h, w = size
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)


def resize_pair(image: np.ndarray, mask: np.ndarray, size: tuple[int, int]):
    """Resize to (height, width): area for the image, nearest for the mask."""
    h, w = size
    return resize_image(image, size), cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)


def augment(image: np.ndarray, mask: np.ndarray, size: tuple[int, int],
            rng: np.random.Generator, max_scale: float = 1.5):
    """Random scale-and-crop, horizontal flip, brightness/contrast/colour cast; output at (height, width)."""
    h, w = mask.shape
    scale = rng.uniform(1.0, max_scale)  # crop 1/scale of the frame, keep its aspect
    ch, cw = int(h / scale), int(w / scale)
    y0, x0 = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    image, mask = resize_pair(image[y0:y0 + ch, x0:x0 + cw], mask[y0:y0 + ch, x0:x0 + cw], size)
    if rng.random() < 0.5:
        image, mask = image[:, ::-1], mask[:, ::-1]
    contrast, brightness = rng.uniform(0.8, 1.2), rng.uniform(-20, 20)
    gains = np.float32(contrast)
    if rng.random() < 0.5:  # white balance / colour cast: CamVid's skies are white, dash-cams' blue
        gains = contrast * rng.uniform(0.7, 1.15, size=3).astype(np.float32)
    image = np.clip(image.astype(np.float32) * gains + brightness, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image), np.ascontiguousarray(mask)
