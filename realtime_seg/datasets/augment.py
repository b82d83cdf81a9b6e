"""Training-time transforms: resize an (image, mask) pair and augment it (NumPy and OpenCV only).

Geometric transforms move labels with pixels and fill uncovered pixels with void; photometric ones
(colour, exposure, hue, blur, noise: what differs between dash-cams and drives) leave labels alone.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..contract import ASPECT_TOLERANCE

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


def cover_size(shape: tuple[int, ...], size: tuple[int, int]) -> tuple[float, float]:
    """The (height, width) a frame of `shape` is resized to at scale 1: `size` when the aspects are
    within ASPECT_TOLERANCE (as eval and the viewer feed it), else the frame's own aspect just
    covering `size` (KITTI's 375x1242 into 352x480: 352x1166, cropped at random, never squashed)."""
    (h, w), (fh, fw) = size, shape[:2]
    if abs((fw / fh) / (w / h) - 1) <= ASPECT_TOLERANCE:
        return float(h), float(w)
    fit = max(h / fh, w / fw)
    return fh * fit, fw * fit


def _scale_crop(image: np.ndarray, mask: np.ndarray, size: tuple[int, int], scale: float,
                void: int, rng: np.random.Generator):
    """The frame resized to its cover size (cover_size) x `scale`, then a random `size` window;
    padding is void."""
    h, w = size
    ch, cw = cover_size(mask.shape, size)
    th, tw = max(1, round(ch * scale)), max(1, round(cw * scale))
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


def _rotate(image: np.ndarray, mask: np.ndarray, degrees: float, void: int):
    """Rotate about the centre (a dash-cam's roll): bilinear pixels, nearest labels, void corners."""
    h, w = mask.shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    image = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                           borderValue=(0, 0, 0))
    mask = cv2.warpAffine(mask, m, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=int(void))
    return image, mask


def _colour(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness, contrast, saturation, and a colour cast half the time."""
    contrast, brightness = rng.uniform(0.8, 1.2), rng.uniform(-20, 20)
    gains = np.full(3, contrast, np.float32)
    if rng.random() < 0.5:  # white balance / colour cast: CamVid's skies are white, dash-cams' blue
        gains *= rng.uniform(0.7, 1.15, size=3).astype(np.float32)
    x = image.astype(np.float32)
    grey = x.mean(axis=2, keepdims=True)
    x = grey + (x - grey) * np.float32(rng.uniform(0.7, 1.3))  # saturation
    return np.clip(x * gains + np.float32(brightness), 0, 255).astype(np.uint8)


def _gamma(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Exposure curve: gamma log-uniform in [0.67, 1.5] (under- and over-exposed dash-cams)."""
    gamma = float(np.exp(rng.uniform(np.log(0.67), np.log(1.5))))
    lut = np.clip(255.0 * (np.arange(256) / 255.0) ** gamma + 0.5, 0, 255).astype(np.uint8)
    return cv2.LUT(image, lut)


def _hue(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Hue rotated by up to 10 degrees either way (sensor and white-balance differences)."""
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)             # OpenCV's hue is 0-179 (2 degrees a unit)
    shift = int(round(rng.uniform(-5, 5)))
    hsv[..., 0] = ((hsv[..., 0].astype(np.int16) + shift) % 180).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def _blur(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A third of the time: defocus (Gaussian, sigma 0.5-1.5) or horizontal motion blur (3-7 px)."""
    if rng.random() >= 1 / 3:
        return image
    if rng.random() < 0.5:
        return cv2.GaussianBlur(image, (0, 0), float(rng.uniform(0.5, 1.5)))
    k = int(rng.choice([3, 5, 7]))
    return cv2.filter2D(image, -1, np.full((1, k), 1.0 / k, np.float32))


def _noise(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A third of the time: Gaussian sensor noise, sigma 2-8 grey levels."""
    if rng.random() >= 1 / 3:
        return image
    noise = rng.normal(0.0, rng.uniform(2, 8), size=image.shape).astype(np.float32)
    return np.clip(image.astype(np.float32) + noise, 0, 255).astype(np.uint8)


# Pixel-value transforms in the order they apply; labels never change.
_PHOTOMETRIC = {"colour": _colour, "gamma": _gamma, "hue": _hue, "blur": _blur, "noise": _noise}
AUGMENTATIONS = ("scale", "flip", "rotate", *_PHOTOMETRIC)
BASIC = ("scale", "flip", "colour")   # the presets' recipe (docs/TRAINING.md)
DEFAULT_AUGMENT = AUGMENTATIONS        # a batch sequence built without naming its ops
ROTATION_DEGREES = 5.0


def parse_augmentations(text: str) -> tuple[str, ...]:
    """`scale,flip,colour` -> the names, checked; `none` -> (); `all` -> every one; `basic` -> the presets'."""
    text = text.strip().lower()
    if text in ("none", ""):
        return ()
    if text in ("all", "basic"):
        return AUGMENTATIONS if text == "all" else BASIC
    names = tuple(n.strip() for n in text.split(","))
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown:
        raise ValueError(f"unknown augmentation {unknown[0]!r}; allowed: {', '.join(AUGMENTATIONS)}, "
                         f"or all, basic, none")
    return names


def augment(image: np.ndarray, mask: np.ndarray, size: tuple[int, int],
            rng: np.random.Generator, scale_range: tuple[float, float] = (0.5, 2.0),
            void: int = VOID, ops=DEFAULT_AUGMENT):
    """A training example at `size` from a frame: the transforms named in `ops` (AUGMENTATIONS).

    Geometric ones move labels with pixels: rotation (up to ROTATION_DEGREES) of the whole frame,
    random scale about the run's resolution with crop/pad, horizontal flip; corners and padding
    are `void` (ignored by the loss). Photometric ones change pixel values only, at the run size.
    Scale 1 with no rotation is the whole frame resized to `size` (what eval and the viewer feed)
    when its aspect is close to `size`'s; a wider or taller frame keeps its aspect (cover_size).
    """
    if "rotate" in ops:
        image, mask = _rotate(image, mask, rng.uniform(-ROTATION_DEGREES, ROTATION_DEGREES), void)
    scale = sample_scale(rng, scale_range) if "scale" in ops else 1.0
    image, mask = _scale_crop(image, mask, size, scale, void, rng)
    if "flip" in ops and rng.random() < 0.5:
        image, mask = image[:, ::-1], mask[:, ::-1]
    image = np.ascontiguousarray(image)
    for name, transform in _PHOTOMETRIC.items():
        if name in ops:
            image = transform(image, rng)
    return image, np.ascontiguousarray(mask)
