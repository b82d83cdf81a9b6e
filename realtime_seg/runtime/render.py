"""Paint a class map over a frame: palette colours, blend, legend and HUD (OpenCV, no pixel loops).

`Overlay` is the one painter: the viewer, batch export and bench all draw through it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

VIEWS = ("blend", "mask", "side", "original")
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def colorize(class_map: np.ndarray, palette_bgr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Class ids (h, w) -> BGR colours (H, W, 3) at `size` = (W, H); nearest, so ids never mix."""
    small = palette_bgr[class_map]                                    # (h, w, 3) lookup
    return cv2.resize(small, size, interpolation=cv2.INTER_NEAREST)  # == lookup after resize


def blend(frame: np.ndarray, colors: np.ndarray, opacity: float) -> np.ndarray:
    """(1 - opacity) * frame + opacity * colors, rounded like OpenCV."""
    return cv2.addWeighted(frame, 1.0 - opacity, colors, opacity, 0.0)


def compose(frame: np.ndarray, class_map: np.ndarray, palette_bgr: np.ndarray,
            opacity: float = 0.5, view: str = "blend") -> np.ndarray:
    """The frame as `view` shows it, same size as the frame."""
    h, w = frame.shape[:2]
    if view == "original":
        return frame.copy()
    colors = colorize(class_map, palette_bgr, (w, h))
    if view == "mask":
        return colors
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

    def _render(self, frame_h: int) -> np.ndarray:
        """The panel for frames `frame_h` high, premultiplied by the opacity (one blend per frame)."""
        row = max(12, min(22, (frame_h - 10) // max(len(self.classes), 1)))
        scale = self.scale * row / 22
        width = 30 + max(cv2.getTextSize(c, _FONT, scale, 1)[0][0] for c in self.classes) + 8
        panel = np.zeros((row * len(self.classes) + 8, width, 3), np.uint8)
        for i, (name, color) in enumerate(zip(self.classes, self.palette_bgr)):
            y = 4 + i * row
            cv2.rectangle(panel, (4, y + 2), (22, y + row - 3), tuple(int(c) for c in color), -1)
            cv2.putText(panel, name, (28, y + row - 6), _FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)
        return cv2.convertScaleAbs(panel, alpha=self.opacity)

    def draw(self, image: np.ndarray) -> None:
        """Paste the legend, semi-opaque, in the top-left corner (in place)."""
        h, w = image.shape[:2]
        if h not in self._cache:
            self._cache[h] = self._render(h)
        panel = self._cache[h]
        ph, pw = min(panel.shape[0], h), min(panel.shape[1], w)
        roi = image[:ph, :pw]  # one saturating OpenCV pass, not float64 NumPy temporaries (0.35 -> 0.03 ms)
        cv2.addWeighted(roi, 1.0 - self.opacity, panel[:ph, :pw], 1.0, 0.0, dst=roi)


def draw_hud(image: np.ndarray, lines: list[str]) -> None:
    """White text on a dark box in the top-right corner (in place)."""
    if not lines:
        return
    scale, pad, row = 0.5, 6, 18
    width = max(cv2.getTextSize(t, _FONT, scale, 1)[0][0] for t in lines) + 2 * pad
    x0 = max(0, image.shape[1] - width - 4)
    y1 = min(image.shape[0], len(lines) * row + 2 * pad)
    roi = image[4:4 + y1, x0:x0 + width]
    cv2.convertScaleAbs(roi, dst=roi, alpha=0.35)  # in place, no float temporaries
    for i, text in enumerate(lines):
        cv2.putText(image, text, (x0 + pad, 4 + pad + (i + 1) * row - 5), _FONT, scale,
                    (255, 255, 255), 1, cv2.LINE_AA)


def hud_lines(fps: float, provider: str, stage_ms: dict[str, float], *extra: str) -> list[str]:
    """The HUD's text: FPS and the provider that really runs the model, ms per stage, then `extra`."""
    stages = "  ".join(f"{name} {ms:.1f}" for name, ms in stage_ms.items())
    return [f"{fps:5.1f} FPS  {provider.replace('ExecutionProvider', '')}", f"{stages} ms", *extra]


@dataclass
class Overlay:
    """How a segmented frame is painted: view, mask opacity, legend and HUD."""

    classes: list[str]
    palette_bgr: np.ndarray = field(compare=False, repr=False)  # (C, 3) uint8, OpenCV order
    opacity: float = 0.5
    view: str = "blend"
    legend: bool = True
    hud: bool = True

    def __post_init__(self) -> None:
        if self.view not in VIEWS:
            raise ValueError(f"unknown view {self.view!r}; allowed: {', '.join(VIEWS)}")
        self._legend = Legend(self.classes, self.palette_bgr)

    def paint(self, frame: np.ndarray, class_map: np.ndarray, hud: list[str] | tuple = ()) -> np.ndarray:
        """A new image, the frame's size: the view, then the legend and the HUD lines when on."""
        image = compose(frame, class_map, self.palette_bgr, self.opacity, self.view)
        if self.legend and self.view != "original":
            self._legend.draw(image)
        if self.hud:
            draw_hud(image, list(hud))
        return image

    def next_view(self) -> None:
        self.view = VIEWS[(VIEWS.index(self.view) + 1) % len(VIEWS)]
