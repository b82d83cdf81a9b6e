"""Keep a frame's aspect or squash it (issue 35): the viewer's own loop (bench's `product_pipeline`, the
viewer's defaults) on the 16:9 demo, each setting in turn for several rounds, so that a machine whose
load drifts slows every setting alike; optionally mIoU on a labelled folder (KITTI) per setting.

usage: python -m scripts.aspect_fps MODEL.onnx [MODEL.onnx ...] [--precision int8] [--rounds 5] [--frames 100]
                                      [--settings keep squash budget] [--score ../shared/data/kitti/training]

Settings: keep and squash are `--aspect`'s; budget, not in the product, is measured beside them:
the frame's aspect at the trained size's pixel count (both sides multiples of 32: the 16:9 demo at
320x576 for a 352x480 model, 192x352 for 224x320). Prints one table; docs/BENCHMARKS.md holds it.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
from pathlib import Path

from realtime_seg.commands.bench.measure import product_pipeline, read_clip
from realtime_seg.datasets.metrics import summarize
from realtime_seg.datasets.readers import load_split
from realtime_seg.paths import DEMO_VIDEO
from realtime_seg.runtime.models import choose_model, open_streams
from realtime_seg.runtime.scoring import evaluate


def budget_size(shape: tuple[int, ...], size: tuple[int, int]) -> tuple[int, int]:
    """The frame's aspect at `size`'s pixel count, both sides multiples of 32 (at least 32)."""
    (h, w), (fh, fw) = size, shape[:2]
    height = max(32, round(math.sqrt(h * w * fh / fw) / 32) * 32)
    return height, max(32, round(height * fw / fh / 32) * 32)


def opened(path: str, precision: str, setting: str):
    """The model as the viewer opens it (its plan), run at `setting`."""
    chosen = open_streams(choose_model(path, precision, aspect="squash" if setting == "squash" else "keep"))
    if setting == "budget":
        model = chosen.model
        model.size_for = lambda shape: budget_size(shape, model.input_size)
    return chosen


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", help="ONNX files exported with any size (since issue 35)")
    p.add_argument("--precision", default="int8")
    p.add_argument("--video", default=str(DEMO_VIDEO))
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--settings", nargs="+", default=["keep", "squash"], choices=("keep", "squash", "budget"))
    p.add_argument("--score", metavar="DATA", help="also mIoU on all labelled images of DATA per setting")
    args = p.parse_args()
    clip = read_clip(args.video, args.frames)
    runs = {(m, s): opened(m, args.precision, s) for m in args.models for s in args.settings}
    fps: dict = {key: [] for key in runs}
    cpu: dict = {key: [] for key in runs}
    with tempfile.TemporaryDirectory(prefix="aspect_fps_") as tmp:
        for r in range(args.rounds):
            for key, chosen in runs.items():
                f, _, _, c = product_pipeline(chosen.model, clip, Path(tmp), chosen.plan.workers)
                fps[key].append(f)
                cpu[key].append(c)
            print(f"round {r + 1}: " + ", ".join(f"{Path(m).stem} {s} {fps[(m, s)][-1]:.1f}" for m, s in runs),
                  file=sys.stderr, flush=True)
    base = "squash" if "squash" in args.settings else args.settings[0]
    print(f"| model | setting | input ({clip.size[0]}x{clip.size[1]}) | FPS, median of {args.rounds} | x {base}'s "
          f"| CPU ms/frame | x {base}'s | mIoU |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for (m, s), chosen in runs.items():
        size = chosen.model.size_for(clip.frames[0].shape)
        ratio = statistics.median(fps[(m, s)]) / statistics.median(fps[(m, base)])
        work = statistics.median(cpu[(m, s)]) / statistics.median(cpu[(m, base)])
        miou = ""
        if args.score:
            fmt, samples = load_split(args.score, "all")
            miou = f"{summarize(evaluate(chosen.model, samples, fmt))['miou'] * 100:.2f}"
        print(f"| {Path(m).name} | {s} | {size[0]}x{size[1]} | {statistics.median(fps[(m, s)]):.1f} | {ratio:.2f} "
              f"| {statistics.median(cpu[(m, s)]):.1f} | {work:.2f} | {miou} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
