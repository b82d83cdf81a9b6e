"""What int8 loses against fp32 on frames its calibration never saw: val, and each drive of the dataset.

usage: python -m scripts.int8_outside_calibration models/camvid_accurate.onnx [--data ../shared/data/camvid]

Reads NAME.onnx and NAME.int8.onnx, rebuilds the int8 file's calibration set (its `calibration`
metadata: how many train images, spread evenly, as export picks them) and scores both models on
the val split and on every drive of train + val with the calibration frames left out. Prints one
Markdown row per set: frames, fp32 mIoU, int8 mIoU, the difference.
"""
import argparse
import json
import sys
from pathlib import Path

from realtime_seg.datasets.metrics import summarize
from realtime_seg.datasets.readers import READERS, load_split
from realtime_seg.export.quantize import Int8Config, calibration_samples
from realtime_seg.runtime.models import RunOptions, choose_model, open_model
from realtime_seg.runtime.scoring import evaluate

CPU = RunOptions("cpu")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("fp32", type=Path, help="NAME.onnx; NAME.int8.onnx must lie beside it")
    p.add_argument("--data", default="../shared/data/camvid")
    args = p.parse_args()
    int8_path = args.fp32.with_name(args.fp32.name.replace(".onnx", ".int8.onnx"))
    models = {"fp32": open_model(choose_model(args.fp32), CPU), "int8": open_model(choose_model(str(int8_path)), CPU)}
    calibration = json.loads(models["int8"].metadata["calibration"])
    calib = set(calibration_samples(Int8Config(args.data, images=calibration["images"])))
    fmt, train = load_split(args.data, "train")
    _, val = load_split(args.data, "val")
    sets = {"val": val}
    for sample in train + val:
        sets.setdefault(f"drive {READERS[fmt].drive(sample)}", []).append(sample)
    print(f"{len(calib)} calibration frames left out; {int8_path.name} against {args.fp32.name}\n")
    print("| frames | n | fp32 mIoU | int8 mIoU | int8 - fp32 |\n|---|---:|---:|---:|---:|")
    for name, samples in sets.items():
        samples = [s for s in samples if s not in calib]
        miou = {k: summarize(evaluate(m, samples, fmt))["miou"] * 100 for k, m in models.items()}
        print(f"| {name} | {len(samples)} | {miou['fp32']:.2f} | {miou['int8']:.2f} | "
              f"{miou['int8'] - miou['fp32']:+.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
