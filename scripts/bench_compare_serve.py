"""What --compare and --serve cost per frame: the headless viewer on the demo video, alone, comparing
two models, and serving to browsers that read the stream; one summary line per run.

usage: python -m scripts.bench_compare_serve [--video V] [--frames N] [--clients N]

Each configuration runs the viewer as a user would (`--no-show`, flat out, every frame) and reads
its exit summary: mean FPS and the milliseconds of each stage. The serve runs have N clients read
the MJPEG stream as fast as they can for the whole run. Results: docs/BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = {
    "accurate alone": ["--model", "accurate"],
    "fast alone": ["--model", "fast"],
    "accurate --compare fast": ["--model", "accurate", "--compare", "fast"],
    "accurate int8 --compare :fp32": ["--model", "accurate", "--precision", "int8", "--compare", ":fp32"],
    "accurate --compare fast --compare-view diff": ["--model", "accurate", "--compare", "fast", "--compare-view", "diff"],
    "accurate --serve (clients reading)": ["--model", "accurate", "--serve", "0"],
}
SUMMARY = re.compile(r"^\d+ frames in [\d.]+s: ([\d.]+) FPS mean.*$", re.MULTILINE)


def _read_stream(url: str, frames: list[int]) -> None:
    """Read the MJPEG stream until the run ends, counting the parts."""
    try:
        with urllib.request.urlopen(f"{url}stream.mjpg", timeout=30) as response:
            while (line := response.readline()):
                frames[0] += line.strip() == b"--frame"
    except OSError:
        pass


def run(name: str, args: list[str], video: Path, frames: int, clients: int) -> str:
    cmd = [sys.executable, "-m", "realtime_seg", "--video", str(video), "--no-show", "--max-frames", str(frames),
           *args]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    readers, received = [], [0]
    if "--serve" in args:
        url = re.search(r"(http://\S+/) ", proc.stdout.readline()).group(1)
        readers = [threading.Thread(target=_read_stream, args=(url, received)) for _ in range(clients)]
        for t in readers:
            t.start()
    stdout = proc.communicate()[0]
    for t in readers:
        t.join()
    line = SUMMARY.search(stdout).group(0)
    fps = float(SUMMARY.search(stdout).group(1))
    served = f"; {received[0]} parts served to {clients} clients" if readers else ""
    return f"{name}: {fps:.1f} FPS = {1e3 / fps:.1f} ms per frame{served}\n    {line}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--video", type=Path, default=ROOT / "videos" / "dashcam_highway.mp4")
    p.add_argument("--frames", type=int, default=221)
    p.add_argument("--clients", type=int, default=2)
    args = p.parse_args()
    for name, extra in RUNS.items():
        print(run(name, extra, args.video, args.frames, args.clients), flush=True)


if __name__ == "__main__":
    main()
