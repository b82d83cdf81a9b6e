"""Training-time transforms: resize an (image, mask) pair and augment it (NumPy and OpenCV only)."""
from __future__ import annotations

import cv2
import numpy as np

VOID = 255  # padding id past every class table: the loss weights it 0


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize to (height, width) with area averaging, as the runtime's preprocessing does."""
    h, w = size
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)


def resize_pair(image: np.ndarray, mask: np.ndarray, size: tuple[int, int]):
    """Resize to (height, width): area for the image, nearest for the mask."""
    h, w = size
    return resize_image(image, size), cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)


def sample_scale(rng: np.random.Generator, scale_range: tuple[float, float]) -> float:
    """Log-uniform in [low, high]: (0.5, 2.0) zooms out as often as in, median 1."""
    low, high = scale_range
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _scale_crop(image: np.ndarray, mask: np.ndarray, size: tuple[int, int], scale: float,
                void: int, rng: np.random.Generator):
    """The frame resized to `size` x `scale`, then a random `size` window; padding is void."""
    h, w = size
    th, tw = max(1, round(h * scale)), max(1, round(w * scale))
    shrink = th * tw < mask.size
    image = cv2.resize(image, (tw, th), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    mask = cv2.resize(mask, (tw, th), interpolation=cv2.INTER_NEAREST)
    pad_h, pad_w = max(h - th, 0), max(w - tw, 0)
    if pad_h or pad_w:  # zoomed out: the frame lands anywhere in the window, the rest is ignored
        top, left = int(rng.integers(0, pad_h + 1)), int(rng.integers(0, pad_w + 1))
        border = (top, pad_h - top, left, pad_w - left)
        image = cv2.copyMakeBorder(image, *border, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        mask = cv2.copyMakeBorder(mask, *border, cv2.BORDER_CONSTANT, value=int(void))
    y0 = int(rng.integers(0, mask.shape[0] - h + 1))
    x0 = int(rng.integers(0, mask.shape[1] - w + 1))
    return image[y0:y0 + h, x0:x0 + w], mask[y0:y0 + h, x0:x0 + w]


def _photometric(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness, contrast, saturation, and a colour cast half the time."""
    contrast, brightness = rng.uniform(0.8, 1.2), rng.uniform(-20, 20)
    gains = np.full(3, contrast, np.float32)
    if rng.random() < 0.5:  # white balance / colour cast: CamVid's skies are white, dash-cams' blue
        gains *= rng.uniform(0.7, 1.15, size=3).astype(np.float32)
    x = image.astype(np.float32)
    grey = x.mean(axis=2, keepdims=True)
    x = grey + (x - grey) * np.float32(rng.uniform(0.7, 1.3))  # saturation
    return np.clip(x * gains + np.float32(brightness), 0, 255).astype(np.uint8)


def augment(image: np.ndarray, mask: np.ndarray, size: tuple[int, int],
            rng: np.random.Generator, scale_range: tuple[float, float] = (0.5, 2.0),
            void: int = VOID, photometric: bool = True):
    """Random scale about the run's resolution with crop/pad, horizontal flip, photometric jitter.

    Scale 1 is the whole frame resized to `size` (what eval and the viewer feed the net); the
    default range zooms out to 0.5 (padding with `void`, ignored by the loss) and in to 2.
    """
    image, mask = _scale_crop(image, mask, size, sample_scale(rng, scale_range), void, rng)
    if rng.random() < 0.5:
        image, mask = image[:, ::-1], mask[:, ::-1]
    if photometric:
        image = _photometric(image, rng)
    return np.ascontiguousarray(image), np.ascontiguousarray(mask)
