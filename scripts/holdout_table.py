"""The held-out-drive recipe table of docs/TRAINING.md: each run's last epoch on val and on its held-out drive,
with and without the logit adjustment.

usage: python -m scripts.holdout_table RUN_DIR [RUN_DIR ...]   (runs trained with --holdout-drive)

Prints one Markdown row per run: val mIoU and held-out-drive mIoU, raw logits / adjusted (as
`train` scores it), and the training seconds from summary.json.
"""
import argparse
import json
import sys
from pathlib import Path

from realtime_seg.datasets.metrics import score, summarize
from realtime_seg.datasets.readers import load_dataset
from realtime_seg.training.checkpoint import load_keras
from realtime_seg.training.epochs import keras_predictor
from realtime_seg.training.inputs import decode_pairs
from realtime_seg.training.inputs import run_samples
from scripts.adjust_logits import run_config


def row(run: Path) -> str:
    cfg, _ = run_config(run / "last.keras", None)
    dataset = load_dataset(cfg.data, cfg.format, cfg.classes, cfg.val_fraction, cfg.seed)
    _, val_s, held_s = run_samples(cfg, dataset)
    n = dataset.table.num_classes
    model = load_keras(run / "last.keras")
    from realtime_seg.training.model import with_logit_adjustment
    raw = with_logit_adjustment(model, [1.0] * n)
    cells = []
    for samples in (val_s, held_s):
        pairs = decode_pairs(dataset, samples, "decode")
        cells.append(" / ".join(f"{summarize(score(keras_predictor(m, cfg.input_size), pairs, n))['miou'] * 100:.1f}"
                                for m in (raw, model)))
    seconds = json.loads((run / "summary.json").read_text())["seconds"]
    return f"| {run.name} | {cells[0]} | {cells[1]} | {seconds:.0f} |"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path)
    args = p.parse_args()
    print("| run | val mIoU raw / adjusted | held-out drive raw / adjusted | train s |\n|---|---:|---:|---:|")
    for run in args.runs:
        print(row(run), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
