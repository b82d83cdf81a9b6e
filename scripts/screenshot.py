"""Screenshot the viewer's window under a virtual X server (Xvfb), e.g. for the README.

usage: python -m scripts.screenshot [--model accurate] [--video V] [--out docs/screenshot.png]

Needs `Xvfb` and `xdotool` (Debian/Ubuntu: apt-get install xvfb xdotool). The viewer plays the
video at its own pace for --seconds, is paused (space) and its window is cut out of Xvfb's
framebuffer (an XWD file), then it is closed with q (helpers: tests/xwindow.py).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2

from realtime_seg.runtime.models import PRESETS
from tests.xwindow import find_window, grab_window, missing_tools, park_cursor, xdotool, xvfb

ROOT = Path(__file__).resolve().parent.parent


def viewer_command(video: Path, model: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "realtime_seg", "--video", str(video), "--model", str(model), *extra]


def screenshot(video: Path, model: Path, out: Path, seconds: float) -> Path:
    """Play `video` with `model` for `seconds`, pause, and save the window as a PNG."""
    with xvfb() as (display, framebuffer):
        viewer = subprocess.Popen(viewer_command(video, model, "--realtime"), cwd=ROOT,
                                  env={**os.environ, "DISPLAY": display},
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            window = find_window(display)
            time.sleep(seconds)
            park_cursor(display)
            xdotool(display, "key", "--window", window, "space")
            time.sleep(1.0)
            image = grab_window(display, framebuffer, window)
            xdotool(display, "key", "--window", window, "q")
            viewer.wait(timeout=10)
        finally:
            if viewer.poll() is None:
                viewer.kill()
            log = viewer.communicate()[0]
        if viewer.returncode != 0:
            raise RuntimeError(f"the viewer failed (exit code {viewer.returncode}):\n{log}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.partial.png")
    if not cv2.imwrite(str(tmp), image):
        raise RuntimeError(f"cannot write {out}")
    os.replace(tmp, out)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="accurate", help="preset (runs its best precision here) or .onnx path")
    p.add_argument("--video", default=str(ROOT / "videos" / "dashcam_highway.mp4"))
    p.add_argument("--out", default=str(ROOT / "docs" / "screenshot.png"))
    p.add_argument("--seconds", type=float, default=3.0, help="how long to play before the screenshot")
    args = p.parse_args(argv)
    if missing := missing_tools():
        print(f"error: {', '.join(missing)} not found; install them (apt-get install xvfb xdotool)",
              file=sys.stderr)
        return 1
    for path in ([] if args.model in PRESETS else [args.model]) + [args.video]:
        if not Path(path).is_file():
            print(f"error: {path} not found; pass --model/--video", file=sys.stderr)
            return 1
    print(f"wrote {screenshot(Path(args.video), Path(args.model), Path(args.out), args.seconds)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
