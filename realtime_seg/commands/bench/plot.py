"""`bench --plot FILE.png`: the stage times per model, one bar per row of the run.

Each bar stacks the stages' one-thread CPU ms per frame (`stages_ms_1thread`: the work a frame
costs, steadier than wall time on a shared machine); its label gives the pipeline's FPS and the
CPU bound (cores x 1000 / that sum).
"""
from __future__ import annotations

from pathlib import Path

from ...plots import figure, save
from .report import ModelResult

WIDTH, HEIGHT, ROW_HEIGHT = 1000, 170, 70  # pixels: the frame of the picture, and each bar's share


def plot_stages(path: Path, results: list[ModelResult]) -> Path:
    """Draw every row's stages to `path` (PNG, WIDTH x (HEIGHT + ROW_HEIGHT per row) pixels)."""
    fig, (ax,) = figure((WIDTH, HEIGHT + ROW_HEIGHT * len(results)), sharex=False)
    stages = list(results[0].stages_ms_1thread)
    colours = dict(zip(stages, [f"C{i}" for i in range(len(stages))]))
    names = [f"{r.model} {r.precision}" for r in results][::-1]
    left = [0.0] * len(results)
    for stage in stages:
        ms = [r.stages_ms_1thread.get(stage, 0.0) for r in results][::-1]
        ax.barh(names, ms, left=left, color=colours[stage], label=stage, height=0.6)
        left = [a + b for a, b in zip(left, ms)]
    for y, (r, total) in enumerate(zip(results[::-1], left)):
        ax.text(total, y, f"  {total:.1f} ms: pipeline {r.pipeline_fps:.1f} FPS, CPU bound {r.cpu_bound_fps:.1f}",
                va="center", fontsize="small")
    ax.set_xlim(0, max(left) * 1.7)
    ax.set_xlabel("one-thread CPU ms per frame, by stage")
    fig.legend(loc="outside lower center", ncols=len(stages), frameon=False, fontsize="small")
    ax.set_title(f"bench: {results[0].frames} frames, {results[0].cores} cores")
    return save(fig, path, hint="choose a writable --plot path")
