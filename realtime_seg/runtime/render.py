"""Paint a class map over a frame: palette colours, blend, outlines, legend and HUD (OpenCV, no pixel loops).

`Overlay` is the one painter: the viewer, batch export and bench all draw through it. It brings
the model-size class map to the frame's size with smooth edges (runtime/edges.py) unless told
`edges="nearest"`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .edges import smooth_upsample

VIEWS = ("blend", "mask", "outlines", "side", "original")
EDGES = ("smooth", "nearest")
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_OUTLINE = np.ones((3, 3), np.uint8)


def colorize(class_map: np.ndarray, palette_bgr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Class ids (h, w) -> BGR colours (H, W, 3) at `size` = (W, H); nearest, so ids never mix."""
    if class_map.shape != size[::-1]:
        class_map = cv2.resize(class_map, size, interpolation=cv2.INTER_NEAREST)
    lut = np.zeros((256, 1, 3), np.uint8)
    lut[:len(palette_bgr), 0] = palette_bgr
    # one pass through a user colour map: cheaper than a LUT per channel and a merge, or NumPy's
    # palette[ids] (timings: docs/BENCHMARKS.md, measurements behind the code)
    return cv2.applyColorMap(class_map, lut)


def to_frame_size(class_map: np.ndarray, size: tuple[int, int], edges: str = "smooth",
                  probs: np.ndarray | None = None) -> np.ndarray:
    """The class map at `size` = (W, H): smooth boundaries (from `probs` when given) or nearest."""
    if edges not in EDGES:
        raise ValueError(f"unknown edges {edges!r}; allowed: {', '.join(EDGES)}")
    if class_map.shape == size[::-1]:
        return class_map
    if edges == "nearest":
        return cv2.resize(class_map, size, interpolation=cv2.INTER_NEAREST)
    return smooth_upsample(class_map, size, probs)


def outlines(class_map: np.ndarray) -> np.ndarray:
    """uint8 mask (255) of the pixels on a class boundary, two pixels wide (one on each side)."""
    return cv2.morphologyEx(class_map, cv2.MORPH_GRADIENT, _OUTLINE)


def class_shares(class_map: np.ndarray, num_classes: int) -> np.ndarray:
    """Fraction of the pixels of each class, (C,) float."""
    return np.bincount(class_map.ravel(), minlength=num_classes)[:num_classes] / class_map.size


def blend(frame: np.ndarray, colors: np.ndarray, opacity: float) -> np.ndarray:
    """(1 - opacity) * frame + opacity * colors, rounded like OpenCV."""
    return cv2.addWeighted(frame, 1.0 - opacity, colors, opacity, 0.0)


def compose(frame: np.ndarray, class_map: np.ndarray, palette_bgr: np.ndarray,
            opacity: float = 0.5, view: str = "blend") -> np.ndarray:
    """The frame as `view` shows it, same size as the frame."""
    h, w = frame.shape[:2]
    if view == "original":
        return frame.copy()
    if class_map.shape != (h, w):
        class_map = cv2.resize(class_map, (w, h), interpolation=cv2.INTER_NEAREST)
    colors = colorize(class_map, palette_bgr, (w, h))
    if view == "mask":
        return colors
    if view == "outlines":  # the frame, each class boundary drawn in its class's colour
        image = frame.copy()
        cv2.copyTo(colors, outlines(class_map), image)
        return image
    blended = blend(frame, colors, opacity)
    if view == "blend":
        return blended
    if view == "side":  # original and blend at half size, side by side, on a frame-size canvas
        half = (w // 2, h // 2)
        canvas = np.zeros_like(frame)
        row = np.hstack([cv2.resize(frame, half, interpolation=cv2.INTER_AREA),
                         cv2.resize(blended, half, interpolation=cv2.INTER_AREA)])
        top = (h - half[1]) // 2
        canvas[top:top + half[1], :row.shape[1]] = row
        return canvas
    raise ValueError(f"unknown view {view!r}; allowed: {', '.join(VIEWS)}")


@dataclass
class Legend:
    """Class swatches and names, drawn once and pasted on each frame."""

    classes: list[str]
    palette_bgr: np.ndarray
    scale: float = 0.5
    opacity: float = 0.65
    _cache: dict = field(default_factory=dict)

    def _layout(self, frame_h: int) -> tuple[int, float, int]:
        """Row height, font scale and the x where a share's text starts."""
        row = max(12, min(22, (frame_h - 10) // max(len(self.classes), 1)))
        scale = self.scale * row / 22
        return row, scale, 30 + max(cv2.getTextSize(c, _FONT, scale, 1)[0][0] for c in self.classes) + 6

    def _render(self, frame_h: int, shares: bool = False) -> np.ndarray:
        """The panel for frames `frame_h` high, premultiplied by the opacity (one blend per frame)."""
        row, scale, share_x = self._layout(frame_h)
        width = share_x + (cv2.getTextSize("100%", _FONT, scale, 1)[0][0] + 8 if shares else 2)
        panel = np.zeros((row * len(self.classes) + 8, width, 3), np.uint8)
        for i, (name, color) in enumerate(zip(self.classes, self.palette_bgr)):
            y = 4 + i * row
            cv2.rectangle(panel, (4, y + 2), (22, y + row - 3), tuple(int(c) for c in color), -1)
            cv2.putText(panel, name, (28, y + row - 6), _FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)
        return cv2.convertScaleAbs(panel, alpha=self.opacity)

    def draw(self, image: np.ndarray, shares: np.ndarray | None = None) -> None:
        """Paste the legend, semi-opaque, in the top-left corner (in place); `shares` adds each class's %."""
        h, w = image.shape[:2]
        key = (h, shares is not None)
        if key not in self._cache:
            self._cache[key] = self._render(h, shares is not None)
        panel = self._cache[key]
        ph, pw = min(panel.shape[0], h), min(panel.shape[1], w)
        roi = image[:ph, :pw]  # one saturating OpenCV pass, not float64 NumPy temporaries
        cv2.addWeighted(roi, 1.0 - self.opacity, panel[:ph, :pw], 1.0, 0.0, dst=roi)
        if shares is not None:  # the numbers change every frame: drawn on the pasted panel
            row, scale, x = self._layout(h)
            for i, share in enumerate(shares):
                cv2.putText(image, f"{share * 100:3.0f}%", (x, 4 + i * row + row - 6), _FONT, scale,
                            (255, 255, 255), 1, cv2.LINE_AA)


def draw_hud(image: np.ndarray, lines: list[str], bottom: bool = False) -> None:
    """White text on a dark box in the top-right corner, or the bottom-right one (in place)."""
    if not lines:
        return
    scale, pad, row = 0.5, 6, 18
    width = max(cv2.getTextSize(t, _FONT, scale, 1)[0][0] for t in lines) + 2 * pad
    x0 = max(0, image.shape[1] - width - 4)
    y1 = min(image.shape[0], len(lines) * row + 2 * pad)
    y0 = max(0, image.shape[0] - y1 - 4) if bottom else 4
    roi = image[y0:y0 + y1, x0:x0 + width]
    cv2.convertScaleAbs(roi, dst=roi, alpha=0.35)  # in place, no float temporaries
    for i, text in enumerate(lines):
        cv2.putText(image, text, (x0 + pad, y0 + pad + (i + 1) * row - 5), _FONT, scale,
                    (255, 255, 255), 1, cv2.LINE_AA)


def hud_lines(fps: float, provider: str, stage_ms: dict[str, float], *extra: str) -> list[str]:
    """The HUD's text: FPS and the provider that really runs the model, ms per stage, then `extra`."""
    stages = "  ".join(f"{name} {ms:.1f}" for name, ms in stage_ms.items())
    return [f"{fps:5.1f} FPS  {provider.replace('ExecutionProvider', '')}", f"{stages} ms", *extra]


@dataclass
class Overlay:
    """How a segmented frame is painted: view, mask opacity, edges, legend (and shares) and HUD."""

    classes: list[str]
    palette_bgr: np.ndarray = field(compare=False, repr=False)  # (C, 3) uint8, OpenCV order
    opacity: float = 0.5
    view: str = "blend"
    legend: bool = True
    hud: bool = True
    edges: str = "smooth"
    shares: bool = False           # the legend shows each class's share of the frame

    def __post_init__(self) -> None:
        if self.view not in VIEWS:
            raise ValueError(f"unknown view {self.view!r}; allowed: {', '.join(VIEWS)}")
        if self.edges not in EDGES:
            raise ValueError(f"unknown edges {self.edges!r}; allowed: {', '.join(EDGES)}")
        self._legend = Legend(self.classes, self.palette_bgr)

    def frame_classes(self, frame: np.ndarray, class_map: np.ndarray, probs: np.ndarray | None = None) -> np.ndarray:
        """The class map at the frame's size, with this overlay's edges."""
        return to_frame_size(class_map, (frame.shape[1], frame.shape[0]), self.edges, probs)

    def paint(self, frame: np.ndarray, class_map: np.ndarray, hud: list[str] | tuple = (),
              probs: np.ndarray | None = None, full: np.ndarray | None = None) -> np.ndarray:
        """A new image, the frame's size: the view, then the legend and the HUD lines when on.

        `probs` (h, w, C) make smooth edges follow the model's scores; `full` is the class map
        already brought to the frame's size (`frame_classes`), to do that only once per frame.
        """
        if full is None and self.view != "original":
            full = self.frame_classes(frame, class_map, probs)
        image = compose(frame, full if full is not None else class_map, self.palette_bgr, self.opacity, self.view)
        if self.view != "original":
            self.draw_legend(image, class_map)
        if self.hud:
            draw_hud(image, list(hud))
        return image

    def draw_legend(self, image: np.ndarray, class_map: np.ndarray) -> None:
        """The legend, when on, in place (with each class's share of `class_map` when asked)."""
        if self.legend:
            self._legend.draw(image, class_shares(class_map, len(self.classes)) if self.shares else None)

    def next_legend(self) -> None:
        """Legend with names, then with each class's share, then none (key l)."""
        self.legend, self.shares = (True, True) if self.legend and not self.shares else (not self.legend, False)

    def next_view(self) -> None:
        self.view = VIEWS[(VIEWS.index(self.view) + 1) % len(VIEWS)]
