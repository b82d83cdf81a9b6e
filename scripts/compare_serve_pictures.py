"""The README's pictures of --compare and --serve, from real runs on the demo video.

usage: python -m scripts.compare_serve_pictures [--frame 150] [--out docs/]

- compare.png and compare_diff.png: frame N of `--model accurate --compare fast` as the viewer draws
  it (side by side, and the disagreement view), through the viewer's own pipeline and drawing,
  written losslessly with cv2.imwrite.
- serve.png: a headless Chromium's screenshot of the page of a headless `--serve` run (Debian:
  apt-get install chromium; helpers in tests/browser.py).
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

import cv2

from realtime_seg.cli import comparison, look_options
from realtime_seg.commands.view import parser
from realtime_seg.paths import DEMO_VIDEO
from realtime_seg.runtime.display import FpsMeter
from realtime_seg.runtime.models import RunOptions, choose_model, open_model
from realtime_seg.runtime.pipeline import StageTimes, segment_stream
from realtime_seg.runtime.player import ViewState, render
from realtime_seg.runtime.sources import open_video
from realtime_seg.runtime.temporal import TemporalSmoother
from tests import browser

ROOT = Path(__file__).resolve().parent.parent


def compare_frames(frame: int, out: Path) -> None:
    """Write frame `frame` of accurate compared with fast, in both layouts."""
    args = parser().parse_args(["--model", "accurate", "--compare", "fast"])
    model = open_model(choose_model(args.model, args.precision), RunOptions(args.device, 1))
    compare = comparison(args, model, 1)
    state = ViewState.of(look_options(args, hud=True), model, compare)
    times, meter = StageTimes(), FpsMeter()
    with open_video(str(DEMO_VIDEO)) as source:
        stream = segment_stream(source, model, times, smoother=TemporalSmoother(args.smooth), probs=True,
                                compare=compare.lane())
        for packet in stream:
            image = render(packet, model, state, meter.tick(), times, source)
            if packet.index == frame:
                cv2.imwrite(str(out / "compare.png"), image)
                compare.layout = "diff"
                cv2.imwrite(str(out / "compare_diff.png"), render(packet, model, state, meter.fps, times, source))
                stream.close()
                return


def serve_page(out: Path) -> None:
    """Screenshot the page of a headless `--serve` run of the demo (accurate, looping)."""
    proc = subprocess.Popen([sys.executable, "-m", "realtime_seg", "--video", str(DEMO_VIDEO), "--model", "fast",
                             "--no-show", "--loop", "--serve", "0"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        url = re.search(r"(http://\S+/) ", proc.stdout.readline()).group(1)
        time.sleep(3)  # well into the video
        browser.screenshot(url, out / "serve.png", (1000, 600), wait_ms=4000)
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frame", type=int, default=150)
    p.add_argument("--out", type=Path, default=ROOT / "docs")
    args = p.parse_args()
    compare_frames(args.frame, args.out)
    serve_page(args.out)
    print(f"wrote {args.out / 'compare.png'}, {args.out / 'compare_diff.png'} and {args.out / 'serve.png'}")


if __name__ == "__main__":
    main()
