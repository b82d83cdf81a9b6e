"""Non-model stages before and after issue 13, timed side by side on one thread (docs/BENCHMARKS.md).

usage: python scripts/bench_stages.py [--frames 60] [--rounds 3] [--video videos/dashcam_highway.mp4]

Each pair runs on the same decoded frames, interleaved in a shuffled order, medians kept (a busy
machine biases neither side); OpenCV on one thread, as bench's CPU bound counts work:
  preprocess   before: area resize, BGR->RGB, float32 / 255 on the host (float32 graph input)
               after:  area resize into the batch, BGR->RGB in place, uint8 (the graph scales)
  legend       before: float64 NumPy blend of the panel; after: one cv2.addWeighted, premultiplied panel
  HUD box      before: NumPy float darkening;            after: cv2.convertScaleAbs in place
  decode       FFmpeg's default threads vs one thread (what the CPU bound counts)
The old versions are kept here, only to measure against.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from realtime_seg.contract import preprocess  # noqa: E402
from realtime_seg.datasets.classes import CAMVID  # noqa: E402
from realtime_seg.runtime.render import Legend  # noqa: E402

SIZE = (192, 256)  # the accurate preset's input


def preprocess_before(frame: np.ndarray) -> np.ndarray:
    h, w = SIZE
    batch = np.empty((1, h, w, 3), np.float32)
    small = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
    cv2.cvtColor(small, cv2.COLOR_BGR2RGB, dst=small)
    np.multiply(small, np.float32(1 / 255), out=batch[0])
    return batch


def legend_pair():
    legend = Legend(list(CAMVID.classes), np.array(CAMVID.palette, np.uint8)[:, ::-1])
    legend.draw(np.zeros((540, 960, 3), np.uint8))  # render the panel once, as the viewer does
    raw = legend._render(540).astype(np.float32) / legend.opacity  # undo the premultiplication
    alpha = np.full(raw.shape[:2], legend.opacity, np.float32)[..., None]

    def before(image):
        roi = image[:raw.shape[0], :raw.shape[1]]
        roi[:] = (roi * (1 - alpha) + raw * alpha).astype(np.uint8)

    return before, legend.draw


def hud_before(image):
    roi = image[4:64, 500:956]
    roi[:] = (roi * 0.35).astype(np.uint8)


def hud_after(image):
    roi = image[4:64, 500:956]
    cv2.convertScaleAbs(roi, dst=roi, alpha=0.35)


def decode_ms(video: str, n: int, params: list[int]) -> float:
    cap = cv2.VideoCapture(video, cv2.CAP_FFMPEG, params)
    cap.read()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        ok, _ = cap.read()
        if not ok:
            break
        times.append((time.perf_counter() - t) * 1e3)
    cap.release()
    return statistics.median(times)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--video", default=str(ROOT / "videos" / "dashcam_highway.mp4"))
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    cap = cv2.VideoCapture(args.video)
    frames = [f for ok, f in (cap.read() for _ in range(args.frames)) if ok]
    cap.release()
    cv2.setNumThreads(1)
    legend_before, legend_after = legend_pair()
    pairs = {
        "preprocess": (lambda f: preprocess_before(f), lambda f: preprocess([f], SIZE, np.uint8)),
        "legend": (lambda f: legend_before(f.copy()), lambda f: legend_after(f.copy())),
        "HUD box": (lambda f: hud_before(f.copy()), lambda f: hud_after(f.copy())),
        "copy (reference)": (lambda f: f.copy(), lambda f: f.copy()),
    }
    samples = {(k, side): [] for k in pairs for side in (0, 1)}
    rng = np.random.default_rng(0)
    keys = [(k, side) for k in pairs for side in (0, 1)]
    for _ in range(args.rounds):
        for frame in frames:
            for i in rng.permutation(len(keys)):
                k, side = keys[i]
                t = time.perf_counter()
                pairs[k][side](frame)
                samples[(k, side)].append((time.perf_counter() - t) * 1e3)
    print(f"{len(frames)} frames x {args.rounds} rounds, OpenCV 1 thread, medians (ms/frame)")
    print(f"  {'stage':<18} {'before':>8} {'after':>8}")
    for k in pairs:
        before, after = (statistics.median(samples[(k, s)]) for s in (0, 1))
        print(f"  {k:<18} {before:8.3f} {after:8.3f}   {before / after:5.1f}x")
    print(f"  {'decode':<18} {decode_ms(args.video, len(frames), []):8.3f} "
          f"{decode_ms(args.video, len(frames), [cv2.CAP_PROP_N_THREADS, 1]):8.3f}   (FFmpeg threads: default / 1)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
