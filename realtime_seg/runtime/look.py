"""How masks look, chosen once from the options: palette, edges, temporal smoothing, opacity, view,
legend (and class shares) and HUD.

The viewer, batch export and bench each build one `Look` (cli.py's `look_options` reads it from
the command line; bench uses the defaults) and paint with the overlay it makes; its checks are
the options' checks, made once, when it is built.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import UsageError
from .palettes import DEFAULT_PALETTE, choose_palette
from .render import EDGES, VIEWS, Overlay
from .temporal import DEFAULT_SMOOTH, check_smooth


@dataclass(frozen=True)
class Look:
    """The options that decide how a segmented frame is painted (the viewer's defaults)."""

    palette: str = DEFAULT_PALETTE   # runtime/palettes.py's PALETTES
    edges: str = EDGES[0]            # smooth boundaries, or nearest blocks
    smooth: float = DEFAULT_SMOOTH   # temporal smoothing of class scores (0: off)
    opacity: float = 0.5             # of the mask in the blend
    view: str = VIEWS[0]             # runtime/render.py's VIEWS
    legend: bool = True
    shares: bool = False             # the legend shows each class's share of the frame
    hud: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.opacity <= 1.0:
            raise UsageError(f"--opacity must be between 0 and 1, got {self.opacity:g}")
        try:
            check_smooth(self.smooth)
        except ValueError:
            raise UsageError(f"--smooth must be at least 0 (off) and below 1, got {self.smooth:g}") from None

    @property
    def needs_probs(self) -> bool:
        """Whether the model's class scores are needed to draw (smooth edges follow them)."""
        return self.edges == "smooth"

    def overlay(self, model) -> Overlay:
        """The painter for `model`'s classes (a new one: the viewer's keys change it)."""
        palette = choose_palette(model.classes, model.palette_bgr, self.palette)
        return Overlay(model.classes, palette, self.opacity, self.view, self.legend, self.hud, self.edges,
                       self.shares)
