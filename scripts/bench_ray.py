"""Throughput of `batch` with local threads and with `--ray` on this machine (docs/BATCH.md).

    python -m scripts.bench_ray [--copies 2] [--model fast] [--ext webm] [--rounds 2]

Runs the same batch (COPIES copies of the dash-cam video, 221 frames each, 960x540) as the real
command in a subprocess, in alternating order each round: local `--workers 1` and `2`, `--ray`
with a local Ray runtime, and `--ray` on a two-node cluster started here with `ray start`
(127.0.0.1, 1 CPU per node), whole files and in chunks. Frames/s counts the whole command,
start-up included; `ray start-up` is the time until the workers are ready (the `ray:` line).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.ray_cluster import ENV, start_cluster

ROOT = Path(__file__).resolve().parent.parent
VIDEO = ROOT / "videos" / "dashcam_highway.mp4"
FRAMES = 221


def run(inputs: Path, out: Path, args: list[str]) -> tuple[float, float | None]:
    """(wall seconds, seconds until the Ray workers were ready or None) of one batch command."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "realtime_seg", "batch", str(inputs), "--out", str(out), *args]
    start, ready = time.perf_counter(), None
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **ENV, "TQDM_DISABLE": "1"})
    for line in proc.stderr:
        if line.startswith("ray:") and ready is None:
            ready = time.perf_counter() - start
    proc.wait()
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout.read()}")
    return wall, ready


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--copies", type=int, default=2)
    p.add_argument("--model", default="fast")
    p.add_argument("--ext", default="webm")
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_ray"))
    inputs = work / "in"
    inputs.mkdir()
    for i in range(args.copies):
        shutil.copy(VIDEO, inputs / f"drive{i}.mp4")
    common = ["--model", args.model, "--ext", args.ext]
    cluster = start_cluster(cpus_per_node=1)
    configs = {
        "local --workers 1": [],
        "local --workers 2": ["--workers", "2"],
        "--ray (local runtime, 2 CPUs)": ["--ray"],
        "--ray 2 nodes x 1 CPU, whole files": ["--ray", cluster.address, "--chunk-frames", "0"],
        "--ray 2 nodes x 1 CPU, chunks of 60": ["--ray", cluster.address, "--chunk-frames", "60"],
    }
    results: dict[str, list[tuple[float, float | None]]] = {k: [] for k in configs}
    try:
        for r in range(args.rounds):
            order = list(configs) if r % 2 == 0 else list(reversed(configs))
            for name in order:
                results[name].append(run(inputs, work / "out", [*common, *configs[name]]))
                print(f"round {r + 1} {name}: {results[name][-1][0]:.1f} s  "
                      f"(load {os.getloadavg()[0]:.1f})", flush=True)
    finally:
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)
    frames = FRAMES * args.copies
    print(f"\n{args.copies} x {VIDEO.name} ({frames} frames), --model {args.model}, .{args.ext}, "
          f"{os.cpu_count()} CPUs\n")
    print("| run | frames/s (each round) | ray start-up s |\n|---|---|---|")
    for name, rows in results.items():
        fps = " / ".join(f"{frames / wall:.1f}" for wall, _ in rows)
        ready = " / ".join(f"{s:.1f}" for _, s in rows if s is not None) or "-"
        print(f"| {name} | {fps} | {ready} |")


if __name__ == "__main__":
    main()
