"""DIR/<name>_stats.png beside the stats CSV: each class's share of the frame over time, stacked in the
palette's colours, and with --compare the two models' agreement per frame below."""
from __future__ import annotations

import numpy as np

from ...plots import figure, rgb

WIDTH, HEIGHT, AGREEMENT_HEIGHT = 1000, 450, 200  # pixels; the agreement panel adds its height


def stats_figure(title: str, classes: list[str], palette_bgr: np.ndarray, shares: np.ndarray,
                 agreement: list[float] | None = None):
    """The figure of `shares` (frames x classes, fractions), `agreement` (fractions per frame) below it."""
    frames = np.arange(len(shares))
    rows = 2 if agreement is not None else 1
    fig, axes = figure((WIDTH, HEIGHT + AGREEMENT_HEIGHT * (rows - 1)), rows=rows)
    if rows == 2:
        axes[0].get_gridspec().set_height_ratios([HEIGHT, AGREEMENT_HEIGHT])
    ax = axes[0]
    ax.stackplot(frames, (np.asarray(shares, float) * 100).T, labels=classes, colors=rgb(palette_bgr),
                 edgecolor="none")
    ax.set_ylim(0, 100)
    ax.set_xlim(0, max(len(shares) - 1, 1))
    ax.set_ylabel("share of the frame (%)")
    ax.set_title(title)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize="small", reverse=True, frameon=False)
    if agreement is not None:
        axes[1].plot(frames, np.asarray(agreement, float) * 100, color="black", lw=1.2)
        mean = float(np.mean(agreement)) * 100 if len(agreement) else float("nan")
        axes[1].set_ylabel("agreement (%)")
        axes[1].set_title(f"pixels both models give the same class: mean {mean:.1f}%", fontsize="medium")
    axes[-1].set_xlabel("frame")
    return fig
