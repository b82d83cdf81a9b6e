"""`python -m realtime_seg batch`: options, signals, the end table and the exit code."""
from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Iterator

from ...cli import (add_compare_options, add_look_options, add_model_options, compare_choice, look_options,
                   model_choice, run_options)
from ...errors import ArgumentParser
from ...plots import require
from ...runtime.media import DEFAULT_FPS
from ...runtime.video import CODECS, DEFAULT_CODEC
from ...system import on_stop_signals
from .config import DEFAULT_EXT, BatchConfig
from .run import run_batch
from .runner import Result


def format_table(results: list[Result]) -> str:
    """file, frames, fps (the video's), proc fps (frames processed per second), status: one row per input."""
    rows = [(r.label, str(r.frames) if r.frames else "-", f"{r.video_fps:g}" if r.frames and r.video_fps else "-",
             f"{r.proc_fps:.1f}" if r.frames else "-", r.status) for r in results]
    heads = ("file", "frames", "fps", "proc fps", "status")
    width = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(heads[:4])]

    def line(c: tuple[str, ...]) -> str:
        return "  ".join([f"{c[0]:<{width[0]}}", *(f"{v:>{w}}" for v, w in zip(c[1:4], width[1:])), c[4]])
    return "\n".join([line(heads), *(line(row) for row in rows)])


def summary_line(results: list[Result], out: Path) -> str:
    """e.g. '2 written, 1 skipped, 1 failed; outputs in seg/'."""
    counts = {k: sum(r.status.startswith(k) for r in results)
              for k in ("ok", "skipped", "failed", "interrupted", "not started")}
    parts = [f"{counts['ok']} written", f"{counts['skipped']} skipped", f"{counts['failed']} failed"]
    parts += [f"{counts[k]} {k}" for k in ("interrupted", "not started") if counts[k]]
    return f"{', '.join(parts)}; outputs in {out}"


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m realtime_seg batch", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="video or image files, folders or globs")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder (created)")
    add_model_options(p, threads_help="onnxruntime threads per worker (0: half the cores / workers, at least 1)")
    p.add_argument("--hud", action="store_true", help="draw frame number, FPS and stage times")
    p.add_argument("--no-legend", action="store_true", help="no class legend")
    p.add_argument("--png-masks", action="store_true", help="also DIR/<name>_masks/NNNNNN.png: class ids "
                   "(with --compare also DIR/<name>_compare_masks/: the compared model's)")
    p.add_argument("--stats", action="store_true",
                   help="also DIR/<name>_stats.csv: class-area fractions and flicker per frame (with "
                        "--compare: agreement), and DIR/<name>_stats.png: the shares over time")
    add_look_options(p)
    p.add_argument("--mask-only", dest="view", action="store_const", const="mask",
                   help="the same as --view mask: the colour mask video instead of the blend")
    add_compare_options(p)
    p.add_argument("--ext", default=DEFAULT_EXT, help=f"output container (default {DEFAULT_EXT}: H.264, "
                   f"plays in browsers; webm: VP8; mkv, mov, avi)")
    p.add_argument("--codec", help=f"{', '.join(CODECS)} (default: by --ext: "
                   f"{', '.join(f'{e.lstrip(chr(46))} {c}' for e, c in DEFAULT_CODEC.items())})")
    p.add_argument("--overwrite", action="store_true", help="redo outputs that exist (default: skip)")
    p.add_argument("--recursive", action="store_true", help="folders: include subfolders (mirrored under DIR); "
                   "globs: ** matches")
    p.add_argument("--as-video", action="store_true", help="write each folder (or glob) of images as one video, "
                   "DIR/<folder>_seg.mp4, instead of one annotated image per image")
    p.add_argument("--fps", type=float, default=DEFAULT_FPS, metavar="N",
                   help=f"--as-video: the rate of its video (default {DEFAULT_FPS:g}, CARLA's usual capture rate)")
    p.add_argument("--workers", type=int, default=1, help="files processed in parallel (default 1)")
    p.add_argument("--batch-size", type=int, default=0,
                   help="frames per inference call (default 0: 1 on a CPU, 8 on CUDA; docs/BATCH.md)")
    ray = p.add_argument_group("Ray cluster (pip install -r requirements-cluster.txt; docs/BATCH.md)")
    ray.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                     help="run on Ray: alone, a Ray runtime on this machine; auto, HOST:PORT or "
                          "ray://HOST:PORT, an existing cluster (`ray start --head`)")
    ray.add_argument("--ray-cpus", type=float, default=1.0, help="CPUs per worker actor (default 1)")
    ray.add_argument("--ray-gpus", type=float, default=None,
                     help="GPUs per worker actor (default: 1 on nodes with GPUs, CUDA; else CPU actors)")
    ray.add_argument("--chunk-frames", type=int, default=1500,
                     help="split files longer than this into chunks that run on any node (0: never)")
    return p


def config_from_args(args: argparse.Namespace) -> BatchConfig:
    model = model_choice(args)
    return BatchConfig(out=args.out, model=model, options=run_options(args),
                       look=look_options(args, hud=args.hud), png_masks=args.png_masks, stats=args.stats, codec=args.codec,
                       ext=args.ext.lstrip(".").lower(), overwrite=args.overwrite,
                       recursive=args.recursive, workers=args.workers, batch_size=args.batch_size,
                       ray=args.ray,
                       ray_cpus=args.ray_cpus, ray_gpus=args.ray_gpus, chunk_frames=args.chunk_frames,
                       compare=compare_choice(args, model), compare_view=args.compare_view, as_video=args.as_video, fps=args.fps)


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[list[int]]:
    """SIGINT/SIGTERM set `stop` (files end at their next frame); a second Ctrl-C aborts at once."""
    received: list[int] = []

    def handler(signum: int) -> None:
        if received and signum == signal.SIGINT:
            raise KeyboardInterrupt
        received.append(signum)
        stop.set()

    with on_stop_signals(handler):
        yield received


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    cfg = config_from_args(args)
    if cfg.stats:
        require("--stats's picture (DIR/<name>_stats.png)")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # decode errors are reported per file
    from tqdm.contrib.logging import logging_redirect_tqdm
    stop = threading.Event()
    with stop_on_signals(stop) as received, logging_redirect_tqdm():
        results = run_batch(args.inputs, cfg, stop)
    print(format_table(results))
    for r in results:
        if r.compared:
            print(f"{r.label}: compared with {r.compared}")
    print(summary_line(results, cfg.out))
    if received:
        print(f"interrupted ({signal.Signals(received[0]).name}): unfinished outputs were removed",
              file=sys.stderr)
        return 128 + received[0]
    return 1 if any(r.failed for r in results) else 0
