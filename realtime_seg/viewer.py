"""Live viewer: segment a video, camera or stream and show it with a blended mask, legend and FPS.

usage: python -m realtime_seg --video drive.mp4 [--model accurate|fast|M.onnx] [--output out.mp4]
       python -m realtime_seg --camera 0
       python -m realtime_seg --video rtsp://host/stream --no-show --output rec.mp4
keys:  q/Esc quit, space pause, n next frame (paused), +/- opacity, m view, l legend, s screenshot
"""
from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .engine import DEVICES, PRESETS, SegModel, load_model, resolve_model
from .errors import UsageError, UserError
from .pipeline import Packet, StageTimes, VideoOutput, segment_stream
from .render import VIEWS, Legend, compose, draw_hud
from .sources import Source, open_camera, open_video

log = logging.getLogger(__name__)

WINDOW = "realtime_seg"
DEMO_VIDEO = Path(__file__).resolve().parent.parent / "videos" / "dashcam_highway.mp4"


@dataclass
class ViewState:
    """What the keys change."""

    opacity: float = 0.5
    view: str = "blend"
    legend: bool = True
    hud: bool = True
    paused: bool = False


def display_available() -> bool:
    """True when a window can open; OpenCV's imshow aborts the process (uncatchably) without one."""
    if sys.platform in ("win32", "darwin") or os.environ.get("WAYLAND_DISPLAY"):
        return True
    display = os.environ.get("DISPLAY", "")
    local = re.match(r"^(?:unix)?:(\d+)", display)
    if local:  # a local X server listens on its socket; a stale DISPLAY would abort imshow
        return Path(f"/tmp/.X11-unix/X{local.group(1)}").exists()
    return bool(display)


def open_window() -> bool:
    """A resizable window, or False when this OpenCV has no GUI support."""
    try:
        cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL)
        return True
    except cv2.error:
        return False


class FpsMeter:
    """Smoothed frames per second of the frames shown."""

    def __init__(self, alpha: float = 0.1):
        self.alpha, self.fps, self._last = alpha, 0.0, None

    def tick(self) -> float:
        now = time.perf_counter()
        if self._last is not None and now > self._last:
            rate = 1.0 / (now - self._last)
            self.fps = rate if self.fps == 0 else self.fps + self.alpha * (rate - self.fps)
        self._last = now
        return self.fps


def hud_lines(fps: float, times: StageTimes, model: SegModel, source: Source, state: ViewState) -> list[str]:
    ms = times.ema
    stages = "  ".join(f"{k} {ms[k]:.1f}" for k in ("read", "preprocess", "inference", "draw") if k in ms)
    lines = [f"{fps:5.1f} FPS  {model.provider.replace('ExecutionProvider', '')}",
             f"{stages} ms", f"dropped {source.dropped}  opacity {state.opacity:.1f}  {state.view}"]
    return lines + ["PAUSED (space: play, n: next)"] if state.paused else lines


def render(packet: Packet, model: SegModel, legend: Legend, state: ViewState, hud: list[str]) -> np.ndarray:
    """The annotated frame: view, legend and HUD."""
    image = compose(packet.frame, packet.class_map, model.palette_bgr, state.opacity, state.view)
    if state.legend and state.view != "original":
        legend.draw(image)
    if state.hud:
        draw_hud(image, hud)
    return image


def handle_key(key: int, state: ViewState, image: np.ndarray, shots: Path) -> str | None:
    """Apply a key press; returns 'quit', 'next', 'redraw' or None."""
    if key in (ord("q"), 27):
        return "quit"
    if key == ord(" "):
        state.paused = not state.paused
        return "redraw"
    if key == ord("n"):
        return "next"
    if key in (ord("+"), ord("=")):
        state.opacity = min(1.0, round(state.opacity + 0.1, 2))
    elif key in (ord("-"), ord("_")):
        state.opacity = max(0.0, round(state.opacity - 0.1, 2))
    elif key == ord("m"):
        state.view = VIEWS[(VIEWS.index(state.view) + 1) % len(VIEWS)]
    elif key == ord("l"):
        state.legend = not state.legend
    elif key == ord("s"):
        print(f"screenshot: {save_png(image, shots)}")
        return None
    else:
        return None
    return "redraw"


def save_png(image: np.ndarray, folder: Path) -> Path:
    """Write a PNG under a temporary name and rename it: never a half-written file."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"realtime_seg_{time.strftime('%Y%m%d_%H%M%S')}_{time.perf_counter_ns() % 1000:03d}.png"
    tmp = path.with_name(f".{path.stem}.partial.png")
    if not cv2.imwrite(str(tmp), image):
        raise UserError(f"cannot write screenshot {path}; check that {folder} is writable")
    os.replace(tmp, path)
    return path


def default_output(args) -> Path:
    """A new file in the current folder named after the source, e.g. drive_seg.mp4."""
    stem = f"camera{args.camera}" if args.camera is not None else (
        "stream" if "://" in args.video else Path(args.video).stem)
    path, n = Path(f"{stem}_seg.mp4"), 1
    while path.exists():
        path, n = Path(f"{stem}_seg_{n}.mp4"), n + 1
    return path


def open_source(args) -> Source:
    if args.camera is not None:
        return open_camera(args.camera)
    return open_video(args.video, realtime=args.realtime)


class _Terminate(Exception):
    """SIGTERM, raised in the main thread so that outputs are finalized like on Ctrl-C."""


def _on_sigterm(signum, frame):
    raise _Terminate()


def run(args) -> dict:
    """Open model and source, run the loop, print the summary; returns it."""
    model = load_model(resolve_model(args.model), args.device, args.threads)
    source = open_source(args)
    show = not args.no_show and display_available() and open_window()
    output_path = Path(args.output) if args.output else None
    if not args.no_show and not show:
        output_path = output_path or default_output(args)
        print(f"no display available: running without a window, writing {output_path}")
    output = VideoOutput(output_path, source.fps, source.size, args.codec) if output_path else None
    state = ViewState(args.opacity, args.view, not args.no_legend, not args.no_hud)
    summary, ok = {}, False
    try:
        summary = _loop(model, source, output, show, state, Path(args.screenshots))
        ok = True
    except (KeyboardInterrupt, _Terminate):
        ok = True  # keep what was recorded: the file is finalized, not half-written
        print("interrupted", file=sys.stderr)
    finally:
        source.close()
        written = output.close(ok) if output else None
        if show:
            cv2.destroyAllWindows()
    if source.error:
        print(f"warning: {source.error}", file=sys.stderr)
    if written:
        print(f"wrote {written} ({output.frames} frames, {source.size[0]}x{source.size[1]} at {source.fps:g} fps)")
    return summary


def _loop(model: SegModel, source: Source, output: VideoOutput | None, show: bool,
          state: ViewState, shots: Path) -> dict:
    from .progress import progress
    times, meter, legend = StageTimes(), FpsMeter(), Legend(model.classes, model.palette_bgr)
    bar = None if show else progress(total=source.frame_count, desc="segmenting", unit="frame")
    start, frames = time.perf_counter(), 0
    for packet in segment_stream(source, model, times):
        t = time.perf_counter()
        image = render(packet, model, legend, state, hud_lines(meter.tick(), times, model, source, state))
        times.add("draw", (time.perf_counter() - t) * 1e3)
        if output:
            output.write(image)
        frames += 1
        if bar is not None:
            bar.set_postfix_str(f"{meter.fps:.1f} FPS", refresh=False)
            bar.update()
        if show and _show(image, packet, model, legend, state, shots, times, meter, source) == "quit":
            break
    if bar is not None:
        bar.close()
    return _summary(frames, time.perf_counter() - start, times, model, source, output)


def _show(image, packet, model, legend, state, shots, times, meter, source) -> str | None:
    """Display a frame and handle keys; while paused, wait here (redrawing on changes)."""
    cv2.imshow(WINDOW, image)
    while True:
        action = handle_key(cv2.waitKey(1 if not state.paused else 30) & 0xFF, state, image, shots)
        if action == "quit" or cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1:
            return "quit"
        if action == "next":
            state.paused = True
            return None
        if action == "redraw":
            image = render(packet, model, legend, state, hud_lines(meter.fps, times, model, source, state))
            cv2.imshow(WINDOW, image)
        if not state.paused:
            return None


def _summary(frames: int, seconds: float, times: StageTimes, model: SegModel, source: Source,
             output: VideoOutput | None) -> dict:
    ms = times.mean()
    if output and output.frames:
        ms["encode"] = output.encode_ms / output.frames
    fps = frames / seconds if seconds > 0 else 0.0
    print(f"{frames} frames in {seconds:.1f}s: {fps:.1f} FPS mean on {model.provider}, dropped "
          f"{source.dropped} | " + ", ".join(f"{k} {v:.1f} ms" for k, v in ms.items()))
    return {"frames": frames, "seconds": seconds, "fps": fps, "stages_ms": ms, "dropped": source.dropped,
            "provider": model.provider}


def _opacity(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"opacity must be between 0 and 1, got {text!r}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m realtime_seg", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="other commands: train, export, eval, batch, bench (each takes --help)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--video", help="video file or stream URL (rtsp://, http://, ...); default: the demo video")
    src.add_argument("--camera", type=int, help="webcam index, e.g. 0")
    p.add_argument("--model", help=f"ONNX model or preset ({', '.join(PRESETS)}); default: accurate")
    p.add_argument("--device", default="auto", choices=DEVICES, help="auto prefers CUDA when usable")
    p.add_argument("--opacity", type=_opacity, default=0.5, help="mask opacity, 0-1")
    p.add_argument("--view", default="blend", choices=VIEWS)
    p.add_argument("--output", help="also record the annotated video (same size and fps)")
    p.add_argument("--codec", help="FourCC for --output (default by extension: mp4v, MJPG, VP90)")
    p.add_argument("--no-show", action="store_true", help="no window; progress bar instead")
    p.add_argument("--realtime", action="store_true", help="keep pace with a file's fps by dropping frames")
    p.add_argument("--no-legend", action="store_true")
    p.add_argument("--no-hud", action="store_true")
    p.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: automatic)")
    p.add_argument("--screenshots", default=".", help="folder for screenshots (key s)")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.threads < 0:
        raise UsageError(f"--threads must be 0 or more, got {args.threads}")
    if args.video is None and args.camera is None:
        args.video = str(DEMO_VIDEO)
        print(f"no --video or --camera given: playing the demo {DEMO_VIDEO.name}")
    if args.output and args.video and Path(args.output).resolve() == Path(args.video).resolve():
        raise UsageError(f"--output {args.output} is the input video; choose another output path")
    signal.signal(signal.SIGTERM, _on_sigterm)
    run(args)
    return 0
