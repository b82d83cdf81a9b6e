"""RUN_DIR/curves.png, redrawn after every epoch: loss, val mIoU and learning rate per epoch, best epoch marked.

Read from RUN_DIR/metrics.csv (the epochs Keras's CSVLogger has written: it writes an epoch's
row after the checkpoint callback that calls `update`) plus the epoch just finished, so a
`--resume`d run draws its whole history. The learning rate is the optimizer's schedule evaluated
at each epoch's last step (not a CSV column: older runs' files stay as they were). A picture that
cannot be drawn is a warning, never the end of a training run.
"""
from __future__ import annotations

import csv
import logging
import math
from pathlib import Path

from ..plots import figure, save

log = logging.getLogger(__name__)
SIZE = (900, 750)  # pixels, width x height
NAME = "curves.png"


def update(run: Path, optimizer, epoch: int, logs: dict, best_epoch: int | None) -> Path | None:
    """Draw RUN_DIR/curves.png after `epoch` (0-based) ended with `logs`; a warning, not an error, on failure."""
    try:
        rows = read_metrics(run / "metrics.csv")
        rows[epoch] = {k: f for k, v in logs.items() if (f := _number(v)) is not None}
        steps = max(1, int(optimizer.iterations) // (epoch + 1))
        lrs = {e: learning_rate(optimizer, (e + 1) * steps) for e in rows}
        return draw_curves(run / NAME, rows, lrs, best_epoch)
    except Exception as e:  # matplotlib missing, a full disk, an odd schedule: training goes on
        log.warning("could not draw %s: %s", run / NAME, e)
        return None


def read_metrics(path: Path) -> dict[int, dict[str, float]]:
    """epoch (0-based) -> its numbers, from a CSVLogger file; empty when there is none yet."""
    if not path.is_file():
        return {}
    rows = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            values = {k: _number(v) for k, v in row.items() if k}
            if values.get("epoch") is not None:
                rows[int(values.pop("epoch"))] = {k: v for k, v in values.items() if v is not None}
    return rows


def learning_rate(optimizer, step: int) -> float:
    """The optimizer's rate at `step`: its schedule evaluated there, or its constant rate."""
    schedule = getattr(optimizer, "_learning_rate", None)
    if callable(schedule):
        return float(schedule(step))
    return float(optimizer.learning_rate)


def draw_curves(path: Path, rows: dict[int, dict[str, float]], lrs: dict[int, float] | None = None,
                best_epoch: int | None = None) -> Path:
    """Loss, val mIoU (and the held-out drive's, when scored) and learning rate against the 1-based epoch; the best epoch marked."""
    epochs = sorted(rows)
    x = [e + 1 for e in epochs]
    fig, (loss, miou, lr) = figure(SIZE, rows=3)
    loss.plot(x, [rows[e].get("loss", math.nan) for e in epochs], "o-", color="tab:red", ms=3)
    loss.set_ylabel("train loss")
    scored = [rows[e].get("val_miou", math.nan) for e in epochs]
    miou.plot(x, [v * 100 for v in scored], "o-", color="tab:blue", ms=3, label="val")
    for key, label, style in (("holdout_miou", "held-out drive", "s-"), ("camera_miou", "held-out camera", "^-")):
        held = [rows[e].get(key, math.nan) for e in epochs]
        if not all(math.isnan(v) for v in held):  # the unseen drive or camera beside val
            miou.plot(x, [v * 100 for v in held], style, color="tab:purple" if key == "holdout_miou" else "tab:orange",
                      ms=3, label=label)
            miou.legend(loc="lower right")
    miou.set_ylabel("mIoU (%)")
    if lrs:
        lr.plot(x, [lrs.get(e, math.nan) for e in epochs], "o-", color="tab:green", ms=3)
    lr.set_ylabel("learning rate (epoch's end)")
    lr.set_xlabel("epoch")
    lr.xaxis.get_major_locator().set_params(integer=True)
    lr.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
    if best_epoch and best_epoch - 1 in rows:
        best = rows[best_epoch - 1].get("val_miou")
        for ax in (loss, miou, lr):
            ax.axvline(best_epoch, color="grey", ls="--", lw=1)
        if best is not None:
            miou.plot([best_epoch], [best * 100], "*", color="gold", mec="black", ms=14,
                      label=f"best: {best * 100:.2f} at epoch {best_epoch}")
            miou.legend(loc="lower right")
    fig.suptitle(f"{path.parent.name}: {len(epochs)} epoch{'s' * (len(epochs) != 1)}")
    return save(fig, path, hint="free space or choose another --out")


def _number(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
