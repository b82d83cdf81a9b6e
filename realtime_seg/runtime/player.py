"""The viewer's frame as shown: what the keys change (ViewState) and the annotated frame with its HUD
(render). The viewer draws every frame with these, and bench times the same drawing. With
`--compare` the frame is the comparison's picture; with `--serve` each frame drawn also goes to
the browsers watching.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .compare import Comparison, run_hud
from .engine import SegModel
from .pipeline import Packet, StageTimes
from .render import Overlay, hud_lines
from .serve import FrameServer
from .sources import Source
from .temporal import FlickerMeter


@dataclass
class ViewState:
    """What the keys change: the overlay's settings, and pause."""

    overlay: Overlay
    paused: bool = False
    smooth: float = 0.0                                      # --smooth, for the HUD
    flicker: FlickerMeter = field(default_factory=FlickerMeter)
    compare: Comparison | None = None                        # --compare: two models side by side
    server: FrameServer | None = None                        # --serve: browsers watching


def render(packet: Packet, model: SegModel, state: ViewState, fps: float, times: StageTimes,
           source: Source, full: np.ndarray | None = None) -> np.ndarray:
    """The annotated frame, with the viewer's HUD: FPS, stage times, drops, opacity, view, flicker."""
    overlay, ms = state.overlay, times.ema
    stages = {k: ms[k] for k in ("read", "preprocess", "inference", "smooth", "edges", "draw") if k in ms}
    extra = [f"dropped {source.dropped}  opacity {overlay.opacity:.1f}  {overlay.view}"]
    if state.flicker.values:
        extra.append(f"flicker {state.flicker.values[-1] * 100:.1f}%  smooth {state.smooth:g}")
    if state.paused:
        extra.append("PAUSED (space: play, n: next)")
    if state.compare is not None:
        image = state.compare.paint(packet, overlay, run_hud(fps, model, times, *extra), times)
    else:
        image = overlay.paint(packet.frame, packet.class_map, hud_lines(fps, model.runs_on, stages, *extra),
                              probs=packet.probs, full=full)
    if state.server is not None:
        state.server.publish(image)
    return image
