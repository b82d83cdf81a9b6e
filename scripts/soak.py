"""Soak test: run the viewer headless for many frames and watch its memory and threads stay flat.

usage: python -m scripts.soak [--frames 20000] [--model fast] [--video videos/dashcam_highway.mp4]
                              [--interval 1.0] [--warmup 0.1] [--json soak.json] [-- VIEWER ARGS...]

The viewer runs in a child process (`python -m realtime_seg --video V --loop --max-frames N
--no-show --model M`); its resident memory (VmRSS), thread count and open file descriptors
are read from /proc every `--interval` seconds, with the frames done so far (read from its
progress bar on a pseudo-terminal). The first `--warmup` fraction of the frames is warm-up
(start-up, allocator pools, onnxruntime arenas, decoder buffers); growth is measured from the
end of warm-up to the end of the run. Prints a short table and a JSON document; exit code 0
when the viewer ended normally, RSS grew less than --max-growth percent and threads did not
grow, else 1. Linux only (/proc).
"""
from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import re
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUMMARY = re.compile(r"^(\d+) frames in ([\d.]+)s: ([\d.]+) FPS", re.MULTILINE)
BAR = re.compile(rb"segmenting:[^\r\n]*?(\d+)/\d+ \[")


@dataclass
class Sample:
    t: float          # seconds since the child started
    frames: int       # frames done, from the progress bar
    rss_mb: float
    threads: int
    fds: int


@dataclass
class SoakResult:
    command: list[str]
    frames: int
    seconds: float
    fps: float
    returncode: int
    warmup_s: float
    warmup_frames: int
    rss_warm_mb: float
    rss_end_mb: float
    rss_peak_after_warmup_mb: float
    rss_growth_pct: float
    threads_warm: int
    threads_max_after_warmup: int
    fds_warm: int
    fds_max_after_warmup: int
    passed: bool
    samples: list[Sample] = field(default_factory=list)


class ProgressReader:
    """Frames done, read from the viewer's progress bar on a pseudo-terminal (tqdm redraws often there)."""

    def __init__(self, fd: int):
        self.fd, self.frames, self.tail = fd, 0, b""
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            buffer = (buffer + chunk)[-4096:]
            hits = BAR.findall(buffer)
            if hits:
                self.frames = int(hits[-1])
            self.tail = buffer

    def join(self) -> None:
        self._thread.join(5)


def terminal() -> tuple[int, int]:
    """A pseudo-terminal (master, slave), 120 columns wide."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    return master, slave


def sample(pid: int, t: float, frames: int) -> Sample | None:
    """RSS, threads and open fds of a live process; None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    if "VmRSS" not in fields:  # a zombie: exited, not yet reaped
        return None
    return Sample(round(t, 2), frames, int(fields["VmRSS"].split()[0]) / 1024, int(fields["Threads"]), fds)


def viewer_command(args: argparse.Namespace) -> list[str]:
    return [sys.executable, "-m", "realtime_seg", "--video", args.video, "--model", args.model, "--loop",
            "--max-frames", str(args.frames), "--no-show", *args.viewer_args]


def run_child(command: list[str], interval: float) -> tuple[int, str, str, list[Sample]]:
    """Start the viewer, sample it until it exits: (exit code, stdout, stderr tail, samples)."""
    samples: list[Sample] = []
    master, slave = terminal()
    with tempfile.TemporaryFile("w+") as out:
        start = time.monotonic()
        child = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=slave, text=True)
        os.close(slave)
        progress = ProgressReader(master)
        try:
            while child.poll() is None:
                s = sample(child.pid, time.monotonic() - start, progress.frames)
                if s is not None:
                    samples.append(s)
                time.sleep(interval)
        finally:
            if child.poll() is None:  # e.g. Ctrl-C on this script: stop the viewer too
                child.terminate()
                child.wait(10)
            progress.join()
            os.close(master)
        out.seek(0)
        return child.returncode, out.read(), progress.tail.decode(errors="replace")[-2000:], samples


def analyse(command: list[str], code: int, stdout: str, samples: list[Sample], warmup: float,
            max_growth: float) -> SoakResult:
    """Growth from the end of warm-up (median of 3 samples) to the end (median of the last 3)."""
    match = SUMMARY.search(stdout)
    frames, seconds, fps = (int(match[1]), float(match[2]), float(match[3])) if match else (0, 0.0, 0.0)
    warm_frames = int(warmup * (frames or max((s.frames for s in samples), default=0)))
    first = next((i for i, s in enumerate(samples) if s.frames > warm_frames), len(samples))
    if len(samples) - first < 6:
        raise SystemExit(f"error: only {len(samples) - first} samples after warm-up; run more "
                         f"frames or a shorter --interval")
    warm, after = samples[first:first + 3], samples[first:]
    rss_warm = statistics.median(s.rss_mb for s in warm)
    rss_end = statistics.median(s.rss_mb for s in samples[-3:])
    growth = 100.0 * (rss_end - rss_warm) / rss_warm
    threads_warm, threads_max = samples[first].threads, max(s.threads for s in after)
    fds_warm, fds_max = samples[first].fds, max(s.fds for s in after)
    passed = code == 0 and growth < max_growth and threads_max <= threads_warm and fds_max <= fds_warm
    return SoakResult(command, frames, seconds, fps, code, samples[first].t, warm_frames, round(rss_warm, 1),
                      round(rss_end, 1), round(max(s.rss_mb for s in after), 1), round(growth, 2),
                      threads_warm, threads_max, fds_warm, fds_max, passed, samples)


def table(r: SoakResult) -> str:
    rows = [("frames", f"{r.frames}"), ("duration", f"{r.seconds:.0f} s ({r.fps:.1f} FPS)"),
            ("warm-up", f"first {r.warmup_frames} frames ({r.warmup_s:.1f} s after start)"),
            ("RSS warm-up -> end", f"{r.rss_warm_mb:.1f} MB -> {r.rss_end_mb:.1f} MB "
                                   f"({r.rss_growth_pct:+.2f}%), peak {r.rss_peak_after_warmup_mb:.1f} MB"),
            ("threads warm-up / max after", f"{r.threads_warm} / {r.threads_max_after_warmup}"),
            ("open fds warm-up / max after", f"{r.fds_warm} / {r.fds_max_after_warmup}"),
            ("viewer exit code", f"{r.returncode}"), ("result", "PASS" if r.passed else "FAIL")]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=20000, help="frames to segment (default 20000)")
    p.add_argument("--model", default="fast", help="model preset or .onnx (default fast)")
    p.add_argument("--video", default=str(ROOT / "videos" / "dashcam_highway.mp4"), help="video to loop")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between samples (default 1)")
    p.add_argument("--warmup", type=float, default=0.1, help="fraction of the frames that is warm-up (default 0.1)")
    p.add_argument("--max-growth", type=float, default=5.0, help="RSS growth allowed after warm-up, %% (default 5)")
    p.add_argument("--json", help="also write the result (with every sample) as JSON")
    p.add_argument("viewer_args", nargs="*", help="after --: more viewer options, e.g. -- --threads 1")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.frames < 1 or args.interval <= 0 or not 0 <= args.warmup < 0.9:
        raise SystemExit("error: --frames >= 1, --interval > 0 and 0 <= --warmup < 0.9 are required")
    command = viewer_command(args)
    print(f"soak: {' '.join(command[1:])}", flush=True)
    code, stdout, stderr, samples = run_child(command, args.interval)
    if code != 0:
        print(f"viewer exited with {code}: {stderr.strip().splitlines()[-1:] or ''}", file=sys.stderr)
    result = analyse(command, code, stdout, samples, args.warmup, args.max_growth)
    print(table(result))
    doc = asdict(result)
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {args.json}")
    else:
        print(json.dumps({k: v for k, v in doc.items() if k != "samples"}))
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
