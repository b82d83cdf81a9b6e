"""Measurements behind the batch-export defaults (docs/BATCH.md).

    python -m scripts.bench_batch codecs   [--frames 221]     encoders (the product's writer): ms/frame, MB
    python -m scripts.bench_batch presets  [--models fast accurate] [--rounds 2]   x264 presets in the viewer's pipeline
    python -m scripts.bench_batch batching [--models A.onnx ...]  inference batch sizes
    python -m scripts.bench_batch workers  [--copies 2]        files in parallel, session sharing
    python -m scripts.bench_batch images   [--model accurate] [--kitti DIR]   a folder of PNG frames against
                                           the same frames as an H.264 video; CPU ms of each stage

Every row gives wall time and CPU time (all threads): on a busy machine the wall time
depends on the neighbours, the CPU time much less. The load average is printed too.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
os.environ.setdefault("TQDM_DISABLE", "1")  # read by tqdm at import

from realtime_seg.commands.batch import BatchConfig, run_batch  # noqa: E402  (after the environment it reads)
from realtime_seg.runtime.look import Look  # noqa: E402  (after the environment it reads)
from realtime_seg.runtime.media import encode_image, images_in, read_image  # noqa: E402  (after the environment it reads)
from realtime_seg.runtime.models import RunOptions, choose_model, open_model  # noqa: E402  (after the environment it reads)
from realtime_seg.runtime.video import CODECS, DEFAULT_CODEC, VideoOutput, describe  # noqa: E402  (after the environment it reads)

VIDEO = ROOT / "videos" / "dashcam_highway.mp4"
KITTI = ROOT.parent / "shared" / "data" / "kitti" / "training" / "image_2"
TINY = ROOT / "tests" / "fixtures" / "tiny_camvid.onnx"
PRESETS = ("ultrafast", "superfast", "veryfast")
PIPELINE_ENCODERS = (*PRESETS, "mp4v")  # mp4v: what the viewer's .mp4 was before H.264
BROWSERS = {"h264": "yes (every browser)", "vp8": "yes", "vp9": "yes", "mp4v": "no (MPEG-4 Part 2)",
            "mjpg": "no", "huffyuv": "no (lossless)"}


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


def _encoders() -> list[tuple[str, str | None]]:
    """(codec, x264 preset) for every entry of the codec table, H.264 at each preset."""
    return [("h264", preset) for preset in PRESETS] + [(name, None) for name in CODECS if name != "h264"]


def _with_preset(preset: str | None) -> None:
    """Set the x264 preset of the codec table (what every writer opened afterwards uses);
    "mp4v": .mp4 files get mp4v instead."""
    DEFAULT_CODEC[".mp4"] = "mp4v" if preset == "mp4v" else "h264"
    if preset in PRESETS:
        h264 = CODECS["h264"]
        CODECS["h264"] = dataclasses.replace(h264, options={**h264.options, "preset": preset})


def bench_codecs(args) -> None:
    images = frames(args.frames)
    h, w = images[0].shape[:2]
    print(f"{len(images)} frames {w}x{h}, the product's writer (VideoOutput.encode, one thread), {load()}")
    print(f"{'codec':26} {'wall ms/f':>9} {'CPU ms/f':>9} {'MB':>6}  browsers")
    default = CODECS["h264"]
    with tempfile.TemporaryDirectory() as tmp:
        for name, preset in _encoders():
            _with_preset(preset)
            path = Path(tmp) / f"out{CODECS[name].containers[0]}"
            writer = VideoOutput(path, 25.0, (w, h), name)
            wall, cpu = timed(lambda: ([writer.encode(f) for f in images], writer.finish()))
            writer.commit()
            n = len(images)
            print(f"{describe(name):26} {wall / n * 1e3:9.1f} {cpu / n * 1e3:9.1f} "
                  f"{path.stat().st_size / 1e6:6.2f}  {BROWSERS[name]}", flush=True)
            CODECS["h264"] = default


def bench_presets(args) -> None:
    """FPS of the viewer's pipeline (bench's `product_pipeline`) with each x264 preset, rounds alternating."""
    from realtime_seg.commands.bench.measure import product_pipeline, read_clip
    from realtime_seg.runtime.models import open_streams
    clip = read_clip(str(VIDEO), args.frames)
    default = CODECS["h264"]
    print(f"viewer pipeline on {VIDEO.name} ({len(clip.frames)} frames), output .mp4 (H.264 at each preset, or mp4v)")
    for name in args.models:
        opened = open_streams(choose_model(name), RunOptions("cpu"))
        model = opened.model
        for round_ in range(args.rounds):
            for preset in PIPELINE_ENCODERS if round_ % 2 == 0 else PIPELINE_ENCODERS[::-1]:
                _with_preset(preset)
                with tempfile.TemporaryDirectory() as tmp:
                    fps, stages, _, cpu_ms = product_pipeline(model, clip, Path(tmp), opened.plan.workers)
                CODECS["h264"] = default
                _with_preset(None)
                print(f"  {name} {model.precision} round {round_ + 1} {preset:10} {fps:6.1f} FPS, "
                      f"encode {stages['encode']:5.1f} ms/frame, {cpu_ms:5.1f} CPU ms/frame  ({load()})", flush=True)


def bench_batching(args) -> None:
    images = frames(64)
    print(f"model alone, 64 frames preprocessed, best of 3; {load()}")
    for path in args.models:
        model = open_model(choose_model(path), RunOptions("cpu"))
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


def bench_images(args) -> None:
    """Whole batch runs on a folder of PNG frames (an annotated PNG each, with and without --png-masks)
    and on the same frames as an H.264 video, alternating; then each stage's CPU time alone, one thread."""
    paths = images_in(Path(args.kitti))
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "kitti.mp4"
        first = read_image(paths[0])
        writer = VideoOutput(video, 10.0, (first.shape[1], first.shape[0]))
        for path in paths:
            writer.encode(read_image(path))
        writer.finish()
        writer.commit()
        print(f"{len(paths)} frames of {args.kitti}, {first.shape[1]}x{first.shape[0]}; model {args.model} "
              f"(--precision auto), batch defaults; {load()}")
        for round_ in range(args.rounds):
            print(f"round {round_ + 1}")
            report("folder of PNG frames: an annotated PNG each", [Path(args.kitti)], model=args.model)
            report("  + --png-masks", [Path(args.kitti)], model=args.model, png_masks=True)
            report("the same frames as an H.264 .mp4 (video out)", [video], model=args.model)
            report("the folder --as-video (H.264 out)", [Path(args.kitti)], model=args.model, as_video=True)
        stages(paths, video, args.model)


def stages(paths: list[Path], video: Path, model_name: str) -> None:
    """CPU ms per frame of each stage alone on one thread (time.thread_time: the neighbours' load barely counts)."""
    model = open_model(choose_model(model_name), RunOptions("cpu", 1))
    overlay = Look(hud=False).overlay(model)
    cpu: dict[str, float] = {}

    def clock(name: str, fn):
        start = time.thread_time()
        result = fn()
        cpu[name] = cpu.get(name, 0.0) + time.thread_time() - start
        return result

    cap = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
    first = read_image(paths[0])
    writer = VideoOutput(Path(tempfile.mkdtemp()) / "out.mp4", 10.0, (first.shape[1], first.shape[0]))
    for path in paths:
        frame = clock("PNG read and decode", lambda: read_image(path))
        clock("H.264 decode", lambda: cap.read())
        x = clock("preprocess", lambda: model.prepare([frame]))
        maps, probs = clock(f"inference ({model.precision}, 1 thread)", lambda: model.infer_probs(x))
        full = clock("edges (class map to the frame's size)",
                     lambda: overlay.frame_classes(frame, maps[0], None if probs is None else probs[0]))
        picture = clock("draw", lambda: overlay.paint(frame, maps[0], full=full))
        clock("PNG encode, annotated image", lambda: encode_image(picture, ".png"))
        clock("PNG encode, class-id mask", lambda: encode_image(full, ".png"))
        clock("H.264 encode", lambda: writer.encode(picture))
    writer.discard()
    cap.release()
    print(f"stages alone, CPU ms per frame (one thread), mean of {len(paths)}; {load()}")
    for name, seconds in cpu.items():
        print(f"  {name:42} {seconds / len(paths) * 1e3:7.2f}")


def report(label: str, inputs: list[Path], model: str | None = None, **cfg) -> None:
    out = Path(tempfile.mkdtemp())
    try:
        config = BatchConfig(out=out, model=choose_model(model), overwrite=True, **cfg)
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
    p.add_argument("what", choices=("codecs", "presets", "batching", "workers", "images"))
    p.add_argument("--kitti", default=str(KITTI), help="images: a folder of PNG frames (KITTI's)")
    p.add_argument("--frames", type=int, default=221)
    p.add_argument("--models", nargs="+", default=None, help="batching: .onnx files (tiny); presets: presets")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--model", default=None, help="workers: a .onnx (default tiny); images: a preset (accurate)")
    p.add_argument("--copies", type=int, default=2)
    p.add_argument("--ext", nargs="+", default=["mp4", "webm"])
    args = p.parse_args()
    if args.models is None:
        args.models = ["fast", "accurate"] if args.what == "presets" else [str(TINY)]
    args.model = args.model or ("accurate" if args.what == "images" else str(TINY))
    {"codecs": bench_codecs, "presets": bench_presets, "batching": bench_batching,
     "workers": bench_workers, "images": bench_images}[args.what](args)


if __name__ == "__main__":
    main()
