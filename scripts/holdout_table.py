"""The held-out recipe tables of docs/TRAINING.md: each run's last epoch on val, its held-out drive
and its held-out camera, with and without the logit adjustment.

usage: python -m scripts.holdout_table RUN_DIR [RUN_DIR ...]   (runs trained with --holdout-drive
       and, for the camera column, --holdout-data)

Prints one Markdown row per run: val, held-out-drive and held-out-camera mIoU, raw logits /
adjusted (as `train` scores them: the camera at the run's height and the frame's own aspect), and
the training seconds from summary.json.
"""
import argparse
import json
import sys
from pathlib import Path

from realtime_seg.datasets.metrics import score, summarize
from realtime_seg.datasets.readers import load_datasets
from realtime_seg.training.checkpoint import load_keras
from realtime_seg.training.epochs import keras_predictor
from realtime_seg.training.inputs import data_roots, decode_run
from scripts.adjust_logits import run_config


def _cell(models, size, pairs, n: int) -> str:
    """'raw / adjusted' mIoU on `pairs` ('-' when the run has none)."""
    if not pairs:
        return "-"
    return " / ".join(f"{summarize(score(keras_predictor(m, size), pairs, n))['miou'] * 100:.1f}" for m in models)


def row(run: Path) -> str:
    cfg, _ = run_config(run / "last.keras", None)
    datasets = load_datasets(data_roots(cfg), cfg.format, cfg.classes, cfg.val_fraction, cfg.seed)
    _, (_, val, drive, camera) = decode_run(cfg, datasets)
    n = datasets[0].table.num_classes
    model = load_keras(run / "last.keras")
    from realtime_seg.training.model import with_logit_adjustment
    models = (with_logit_adjustment(model, [1.0] * n), model)
    cells = [_cell(models, cfg.input_size, pairs, n) for pairs in (val, drive, camera)]
    seconds = json.loads((run / "summary.json").read_text())["seconds"]
    return f"| {run.name} | {' | '.join(cells)} | {seconds:.0f} |"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path)
    args = p.parse_args()
    print("| run | val mIoU raw / adjusted | held-out drive raw / adjusted | held-out camera raw / adjusted "
          "| train s |\n|---|---:|---:|---:|---:|")
    for run in args.runs:
        print(row(run), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
