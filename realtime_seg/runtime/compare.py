"""Two models on the same frames (`--compare`): their agreement and the picture that compares them.

The pipeline runs both models on each decoded frame (`segment_stream(..., compare=Lane(...))`, the
second model's results on `Packet.compared`); this module paints the pair:

- `side`: the frame twice at half size, the main model's mask on the left, the compared model's on
  the right, each labelled with its model, precision and inference time; the run's HUD above them
  and the agreement below.
- `diff`: the disagreement at full size: the frame in grey where both models give a pixel the same
  class; where they differ, the colour of the class the compared (right-hand) model sees there.

Agreement is the share of pixels with the same class in the two class maps at the main model's
input size (the compared model's map is brought there, nearest, when its input size differs).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from ..errors import UserError
from .engine import SegModel
from .pipeline import Lane, Packet, StageTimes
from .render import Overlay, colorize, draw_hud, hud_lines
from .temporal import TemporalSmoother

LAYOUTS = ("side", "diff")


def check_same_classes(main: SegModel, other: SegModel) -> None:
    """A one-line error unless both models segment into the same classes (agreement needs them)."""
    if list(main.classes) != list(other.classes):
        raise UserError(f"--compare: {other.path.name} has classes {', '.join(other.classes[:4])}... but "
                        f"{main.path.name} has {', '.join(main.classes[:4])}...; compare models trained on "
                        f"the same classes")


def agreement(main: np.ndarray, other: np.ndarray) -> float:
    """Share of pixels with the same class; `other` is resized (nearest) to `main`'s shape if it differs."""
    if other.shape != main.shape:
        other = cv2.resize(other, main.shape[::-1], interpolation=cv2.INTER_NEAREST)
    return float(np.count_nonzero(main == other)) / main.size


def inference_line(name: str, model: SegModel, ms: float | None) -> list[str]:
    """A half's label: model, provider and precision; its own inference time and the FPS that alone allows."""
    lines = [f"{name}  {model.runs_on}"]
    if ms:
        lines.append(f"inference {ms:.1f} ms = {1e3 / ms:.0f} FPS alone")
    return lines


@dataclass
class Comparison:
    """The two models of a `--compare` run, their names, the layout and the agreement so far."""

    main: SegModel
    other: SegModel
    names: tuple[str, str]
    layout: str = "side"
    smoother: TemporalSmoother | None = None            # the compared model's own (--smooth)
    values: list[float] = field(default_factory=list)   # each frame's agreement
    _last: Packet | None = field(default=None, repr=False)
    _right: Overlay | None = field(default=None, repr=False)
    _left: Overlay | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"unknown layout {self.layout!r}; allowed: {', '.join(LAYOUTS)}")
        check_same_classes(self.main, self.other)

    @property
    def mean(self) -> float | None:
        """Mean agreement over the frames measured; None before the first."""
        return sum(self.values) / len(self.values) if self.values else None

    def measure(self, packet: Packet) -> float:
        """The packet's agreement, counted once per packet however often it is drawn."""
        value = agreement(packet.class_map, packet.compared.class_map)
        if packet is not self._last:
            self.values.append(value)
            self._last = packet
        return value

    def lane(self) -> Lane:
        """The compared model's lane for a new `segment_stream` (its smoothing starts afresh, as the
        main model's does when a file is played again)."""
        if self.smoother is not None:
            self.smoother.reset()
        return Lane(self.other, self.smoother, "compare", "compare preprocess", "compare smooth")

    def describe(self) -> str:
        """For summaries: the compared model and the mean agreement, e.g. `fast (CPU int8): agreement 91.2%`."""
        mean = "-" if self.mean is None else f"{self.mean * 100:.1f}%"
        return f"{self.names[1]} ({self.other.runs_on}): agreement {mean}"

    def next_layout(self) -> None:
        """Side by side, then the disagreement view (key c)."""
        self.layout = LAYOUTS[(LAYOUTS.index(self.layout) + 1) % len(LAYOUTS)]

    def paint(self, packet: Packet, overlay: Overlay, hud: list[str], times: StageTimes) -> np.ndarray:
        """The compared frame, the frame's size: `overlay` sets view, opacity, edges and legend for
        both halves; `hud` is the run's own HUD (FPS, stages), drawn when the overlay's HUD is on.
        The models' names and the agreement are always drawn: without them the picture says nothing."""
        value = self.measure(packet)
        ms = [times.ema.get("inference"), times.ema.get("compare")] if overlay.hud else [None, None]
        labels = [inference_line(self.names[0], self.main, ms[0]), inference_line(self.names[1], self.other, ms[1])]
        summary = f"agreement {value * 100:.1f}% of pixels (mean {self.mean * 100:.1f}%)"
        if self.layout == "diff":
            return self._diff(packet, overlay, hud, labels, summary)
        return self._side(packet, overlay, hud, labels, summary)

    def _halves(self, overlay: Overlay) -> tuple[Overlay, Overlay]:
        """The overlays of the two halves, following the viewer's (its `side` view drawn as a blend),
        the legend on the left half only. Kept between frames: each caches its legend panel."""
        if self._left is None:
            self._left, self._right = replace(overlay), replace(overlay)
        view = "blend" if overlay.view == "side" else overlay.view
        for half, legend in ((self._left, overlay.legend), (self._right, False)):
            half.opacity, half.view, half.edges, half.shares = overlay.opacity, view, overlay.edges, overlay.shares
            half.legend, half.hud = legend, True  # the label: its model's name
        return self._left, self._right

    def _side(self, packet: Packet, overlay: Overlay, hud: list[str], labels: list[list[str]],
              summary: str) -> np.ndarray:
        frame = packet.frame
        h, w = frame.shape[:2]
        half = (w // 2, h // 2)
        small = cv2.resize(frame, half, interpolation=cv2.INTER_AREA)  # one resize for both halves
        canvas = np.zeros_like(frame)
        top = (h - half[1]) // 2
        for x, painter, side, label in zip((0, half[0]), self._halves(overlay), (packet, packet.compared), labels):
            canvas[top:top + half[1], x:x + half[0]] = painter.paint(small, side.class_map, label, probs=side.probs)
        if overlay.hud:
            draw_hud(canvas, hud)
        draw_hud(canvas, [summary], bottom=True)
        return canvas

    def _diff(self, packet: Packet, overlay: Overlay, hud: list[str], labels: list[list[str]],
              summary: str) -> np.ndarray:
        frame, other = packet.frame, packet.compared
        main_full = overlay.frame_classes(frame, packet.class_map, packet.probs)
        other_full = overlay.frame_classes(frame, other.class_map, other.probs)
        grey = cv2.cvtColor(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
        image = cv2.convertScaleAbs(grey, alpha=0.6)
        differs = cv2.compare(main_full, other_full, cv2.CMP_NE)
        cv2.copyTo(colorize(other_full, overlay.palette_bgr, (frame.shape[1], frame.shape[0])), differs, image)
        overlay.draw_legend(image, packet.class_map)
        draw_hud(image, [*(hud if overlay.hud else []), *labels[0], *labels[1]])
        draw_hud(image, [f"colour: where {self.names[1]} differs (its class); grey: both agree", summary],
                 bottom=True)
        return image


def run_hud(fps: float, model: SegModel, times: StageTimes, *extra: str) -> list[str]:
    """The run's HUD over a comparison: FPS and the shared stages (each model's inference is on its half)."""
    stages = {k: times.ema[k] for k in ("read", "preprocess", "smooth", "edges", "draw") if k in times.ema}
    return hud_lines(fps, model.provider, stages, *extra)
