"""Pictures of numbers (training curves, batch's class shares, bench's stage times), drawn headless.

matplotlib is imported only when a picture is drawn, and only its object API is used (a `Figure`
on the Agg canvas, no pyplot): no window, no global backend switched under a caller that has its
own. The viewer and the runtime never import this module (tests/test_architecture.py).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import UserError
from .system import write_atomic

DPI = 100
INSTALL_HINT = "install it: pip install -r requirements.txt"


def require(what: str) -> None:
    """A one-line UserError now, before any work, when matplotlib is missing; `what` names the picture."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UserError(f"{what} is drawn with matplotlib, which is not installed; {INSTALL_HINT}") from None


def figure(size: tuple[int, int], rows: int = 1, sharex: bool = True):
    """(figure, axes) of `size` (width, height) pixels, `rows` axes stacked; every saved file has that size."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(size[0] / DPI, size[1] / DPI), dpi=DPI, layout="constrained")
    axes = fig.subplots(rows, 1, sharex=sharex, squeeze=False)[:, 0]
    for ax in axes:
        ax.grid(True, alpha=0.3)
    return fig, list(axes)


def save(fig, path: Path, hint: str = "choose a writable path") -> Path:
    """The figure as PNG at `path`, written atomically (a one-line UserError when it cannot be)."""
    return write_atomic(Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=DPI), hint=hint)


def rgb(palette_bgr: np.ndarray) -> list[tuple[float, float, float]]:
    """An OpenCV (C, 3) uint8 BGR palette as matplotlib colours."""
    return [tuple(float(c) / 255 for c in colour[::-1]) for colour in np.asarray(palette_bgr)]
