"""Give a checkpoint trained before `train` had logit adjustment the same layer, and rescore val.

usage: python -m scripts.adjust_logits RUN/last.keras --out RUN_adjusted [--data DIR]

Reads the run's config.json (dataset, split, class weights), recomputes the class weights from
the run's train samples, appends `LogitAdjustment(log weight)` (model.with_logit_adjustment,
what `train` now does itself) and writes OUT/last.keras with config.json and summary.json; the
summary's val scores are the adjusted model's, so `export` embeds them.
"""
import argparse
import dataclasses
import json
import sys
from pathlib import Path

from realtime_seg.datasets.metrics import iou_per_class, score, summarize
from realtime_seg.datasets.readers import load_dataset
from realtime_seg.errors import UserError
from realtime_seg.system import write_atomic, write_json
from realtime_seg.training.checkpoint import load_keras
from realtime_seg.training.inputs import decode_pairs, pixel_weights
from realtime_seg.training.epochs import keras_predictor
from realtime_seg.training.inputs import run_samples
from realtime_seg.training.train import TrainConfig


def run_config(checkpoint: Path, data: str | None) -> tuple[TrainConfig, dict]:
    """The TrainConfig the checkpoint was trained with (config.json beside it) and the raw file."""
    path = checkpoint.parent / "config.json"
    if not path.is_file():
        raise UserError(f"no config.json beside {checkpoint}; pass a checkpoint inside its run folder")
    raw = json.loads(path.read_text())
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    cfg = TrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items() if k in known})
    return dataclasses.replace(cfg, data=data or cfg.data), raw


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--out", type=Path, required=True, help="new run folder for the adjusted checkpoint")
    p.add_argument("--data", help="the dataset, if it moved since training (default: config.json's)")
    args = p.parse_args()
    cfg, raw = run_config(args.checkpoint, args.data)
    dataset = load_dataset(cfg.data, cfg.format, cfg.classes, cfg.val_fraction, cfg.seed)
    train_s, val_s, _ = run_samples(cfg, dataset)
    n = dataset.table.num_classes
    weights = pixel_weights(dataset, decode_pairs(dataset, train_s, "decode train"), cfg.class_weights)[:n]
    val_pairs = decode_pairs(dataset, val_s, "decode val")
    model = load_keras(args.checkpoint)  # Keras loads here, quietly
    from realtime_seg.training.model import with_logit_adjustment
    adjusted = with_logit_adjustment(model, weights)
    scores = {}
    for name, m in (("before", with_logit_adjustment(model, [1.0] * n)), ("after", adjusted)):
        cm = score(keras_predictor(m, cfg.input_size), val_pairs, n)
        scores[name] = {"miou": summarize(cm)["miou"], "per_class": [float(v) for v in iou_per_class(cm)]}
        print(f"val mIoU {name} adjustment: {scores[name]['miou'] * 100:.2f}")
    write_atomic(args.out / "last.keras", adjusted.save, hint="choose a writable --out")
    write_json(args.out / "config.json", {**raw, "logit_adjustment": True, "adjusted_from": str(args.checkpoint)})
    source = args.checkpoint.parent / "summary.json"
    summary = json.loads(source.read_text()) if source.is_file() else {}
    per_class = dict(zip(dataset.table.classes, scores["after"]["per_class"]))
    write_json(args.out / "summary.json", {
        **summary, "last_val_miou": scores["after"]["miou"], "last_per_class_iou": per_class,
        "best_val_miou": scores["after"]["miou"], "best_per_class_iou": per_class,
        "best_epoch": summary.get("epochs"),  # the one checkpoint here is the last epoch's
        "logit_adjustment": {"added_to": str(args.checkpoint),
                             "log_weights": getattr(adjusted.layers[-1], "log_weights", [0.0] * n),
                             "val_miou_before": scores["before"]["miou"],
                             "val_per_class_iou_before": dict(zip(dataset.table.classes, scores["before"]["per_class"]))}})
    print(f"wrote {args.out / 'last.keras'}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as e:
        sys.exit(f"error: {e}")
