"""Measurements behind the batch-export defaults (docs/BATCH.md).

    python scripts/bench_batch.py codecs   [--frames 221]     encoders: ms/frame, MB
    python scripts/bench_batch.py batching [--models A.onnx ...]  inference batch sizes
    python scripts/bench_batch.py workers  [--copies 2]        files in parallel, session sharing

Every row gives wall time and CPU time (all threads): on a busy machine the wall time
depends on the neighbours, the CPU time much less. The load average is printed too.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
os.environ.setdefault("TQDM_DISABLE", "1")  # read by tqdm at import

from realtime_seg.commands.batch import BatchConfig, run_batch  # noqa: E402
from realtime_seg.system import quiet_stderr  # noqa: E402
from realtime_seg.runtime.engine import load_model  # noqa: E402

VIDEO = ROOT / "videos" / "dashcam_highway.mp4"
TINY = ROOT / "tests" / "fixtures" / "tiny_camvid.onnx"
CODECS = [("mp4", "mp4v"), ("avi", "MJPG"), ("webm", "VP80"), ("webm", "VP90"), ("mkv", "FFV1")]
BROWSERS = {"mp4v": "no (MPEG-4 Part 2)", "MJPG": "no", "VP80": "yes (Chrome, Firefox, Edge, Safari 14.1+)",
            "VP90": "yes (Chrome, Firefox, Edge, Safari 14.1+)", "FFV1": "no"}


def frames(n: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(VIDEO))
    out = []
    while len(out) < n and (item := cap.read())[0]:
        out.append(item[1])
    return out


def timed(fn) -> tuple[float, float]:
    """(wall s, CPU s of the whole process) of fn()."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def load() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def bench_codecs(args) -> None:
    images = frames(args.frames)
    h, w = images[0].shape[:2]
    print(f"{len(images)} frames {w}x{h}, {load()}")
    print(f"{'codec':12} {'wall ms/f':>9} {'CPU ms/f':>9} {'close ms':>9} {'MB':>6}  browsers")
    with tempfile.TemporaryDirectory() as tmp:
        for ext, fourcc in CODECS:
            path = Path(tmp) / f"out.{ext}"
            with quiet_stderr():  # OpenCV's harmless WebM 'tag not supported' line
                writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*fourcc), 25.0, (w, h))
            if not writer.isOpened():
                print(f"{ext}/{fourcc:7} not available in this OpenCV")
                continue
            wall, cpu = timed(lambda: [writer.write(f) for f in images])
            close, close_cpu = timed(writer.release)
            n = len(images)
            print(f"{ext + '/' + fourcc:12} {(wall + close) / n * 1e3:9.1f} {(cpu + close_cpu) / n * 1e3:9.1f} "
                  f"{close * 1e3:9.0f} {path.stat().st_size / 1e6:6.2f}  {BROWSERS[fourcc]}", flush=True)


def bench_batching(args) -> None:
    images = frames(64)
    print(f"model alone, 64 frames preprocessed, best of 3; {load()}")
    for path in args.models:
        model = load_model(path, "cpu")
        x = model.prepare(images)
        row = []
        for bs in (1, 2, 4, 8):
            model.infer(x[:bs])
            best = min(timed(lambda: [model.infer(x[i:i + bs]) for i in range(0, 64, bs)])[0] for _ in range(3))
            row.append(f"batch {bs}: {best / 64 * 1e3:6.2f} ms/frame")
        print(f"  {Path(path).name} {model.input_size}: " + ", ".join(row), flush=True)
    print(f"whole batch command on {VIDEO.name} (--ext mp4, so encoding does not hide inference)")
    for path in args.models:
        for bs in (1, 4, 8):
            report(f"{Path(path).name} --batch-size {bs}", [VIDEO], ext="mp4", batch_size=bs, model=str(path))


def bench_workers(args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        inputs = []
        for i in range(args.copies):
            link = Path(tmp) / f"copy{i}.mp4"
            os.symlink(VIDEO, link)
            inputs.append(link)
        print(f"{args.copies} copies of {VIDEO.name}, model {Path(args.model).name}")
        for ext in args.ext:
            for workers, share in ((1, True), (2, True), (2, False)):
                label = f"--ext {ext} --workers {workers}" + ("" if workers == 1 else
                                                               " shared session" if share else " one session each")
                report(label, inputs, ext=ext, workers=workers, share_model=share, model=args.model)


def report(label: str, inputs: list[Path], **cfg) -> None:
    out = Path(tempfile.mkdtemp())
    try:
        config = BatchConfig(out=out, overwrite=True, **cfg)
        results = []
        wall, cpu = timed(lambda: results.extend(run_batch([str(p) for p in inputs], config, threading.Event())))
        n = sum(r.frames for r in results)
        assert all(r.status == "ok" for r in results), results
        print(f"  {label:44} {n / wall:6.1f} frames/s wall, {cpu / n * 1e3:6.1f} ms CPU/frame  ({load()})",
              flush=True)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("codecs", "batching", "workers"))
    p.add_argument("--frames", type=int, default=221)
    p.add_argument("--models", nargs="+", default=[str(TINY)])
    p.add_argument("--model", default=str(TINY))
    p.add_argument("--copies", type=int, default=2)
    p.add_argument("--ext", nargs="+", default=["mp4", "webm"])
    args = p.parse_args()
    {"codecs": bench_codecs, "batching": bench_batching, "workers": bench_workers}[args.what](args)


if __name__ == "__main__":
    main()
