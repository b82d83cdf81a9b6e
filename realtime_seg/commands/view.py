"""Live viewer: segment a video, camera or stream and show it with a blended mask, legend and FPS.

usage: python -m realtime_seg --video drive.mp4 [--model accurate|fast|M.onnx] [--output out.mp4]
       python -m realtime_seg --camera 0
       python -m realtime_seg --video rtsp://host/stream --no-show --output rec.mp4
       python -m realtime_seg --video demo.mp4 --loop [--max-frames 20000]   (kiosk; soak tests)
keys:  q/Esc quit, space pause, n next frame (paused), +/- opacity, m view (blend, mask, outlines,
       side, original), l legend (names, shares, off), s screenshot
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from ..cli import (DEMO_VIDEO, add_look_options, add_model_options, check_at_least, check_opacity,
                   check_smooth, load_selected, palette, smoother)
from ..errors import ArgumentParser, UsageError, UserError
from ..runtime.engine import SegModel, stream_plan, stream_workers
from ..runtime.pipeline import Packet, StageTimes, segment_stream
from ..runtime.render import VIEWS, Overlay, hud_lines
from ..runtime.sources import Source, open_camera, open_video
from ..runtime.temporal import FlickerMeter, TemporalSmoother
from ..runtime.video import CODECS, DEFAULT_CODEC, VideoOutput, codec_name
from ..system import check_output_file, on_stop_signals, progress, write_atomic

log = logging.getLogger(__name__)

WINDOW = "realtime_seg"
WINDOW_MAX = (1280, 720)  # the window opens at the frame's size, scaled down to fit this
X11_SOCKETS = Path("/tmp/.X11-unix")


@dataclass
class ViewState:
    """What the keys change: the overlay's settings, and pause."""

    overlay: Overlay
    paused: bool = False
    smooth: float = 0.0                                      # --smooth, for the HUD
    flicker: FlickerMeter = field(default_factory=FlickerMeter)


def display_available() -> bool:
    """True when a window can open; OpenCV's imshow aborts the process (uncatchably) without one."""
    if sys.platform in ("win32", "darwin") or os.environ.get("WAYLAND_DISPLAY"):
        return True
    display = os.environ.get("DISPLAY", "")
    local = re.match(r"^(?:unix)?:(\d+)", display)
    if local:  # a stale DISPLAY (no server, or a dead one's socket file) would abort imshow
        return x_server_listening(int(local.group(1)))
    return bool(display)


def x_server_listening(number: int) -> bool:
    """True when a local X server accepts connections on its socket (file, or Linux abstract)."""
    path = str(X11_SOCKETS / f"X{number}")
    for address in (path, "\0" + path) if sys.platform.startswith("linux") else (path,):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            try:
                sock.connect(address)
                return True
            except OSError:
                pass
    return False


def open_window(size: tuple[int, int]) -> bool:
    """A resizable window at the frame's `size` (W, H) that keeps its aspect; False without GUI support."""
    try:
        cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL)
    except cv2.error:
        return False
    scale = min(1.0, WINDOW_MAX[0] / max(size[0], 1), WINDOW_MAX[1] / max(size[1], 1))
    cv2.resizeWindow(WINDOW, max(1, round(size[0] * scale)), max(1, round(size[1] * scale)))
    return True


class FpsMeter:
    """Smoothed frames per second of the frames shown."""

    def __init__(self, alpha: float = 0.1):
        self.alpha, self.fps, self._last, self._dt = alpha, 0.0, None, None

    def tick(self) -> float:
        """Count a frame; smooths the intervals, not their rates (bursts would inflate a mean of rates)."""
        now = time.perf_counter()
        if self._last is not None:
            dt = now - self._last
            self._dt = dt if self._dt is None else self._dt + self.alpha * (dt - self._dt)
            self.fps = 1.0 / self._dt if self._dt > 0 else self.fps
        self._last = now
        return self.fps


def render(packet: Packet, model: SegModel, state: ViewState, fps: float, times: StageTimes,
           source: Source, full: np.ndarray | None = None) -> np.ndarray:
    """The annotated frame, with the viewer's HUD: FPS, stage times, drops, opacity, view, flicker."""
    overlay, ms = state.overlay, times.ema
    stages = {k: ms[k] for k in ("read", "preprocess", "inference", "smooth", "edges", "draw") if k in ms}
    extra = [f"dropped {source.dropped}  opacity {overlay.opacity:.1f}  {overlay.view}"]
    if state.flicker.values:
        extra.append(f"flicker {state.flicker.values[-1] * 100:.1f}%  smooth {state.smooth:g}")
    if state.paused:
        extra.append("PAUSED (space: play, n: next)")
    return overlay.paint(packet.frame, packet.class_map, hud_lines(fps, model.runs_on, stages, *extra),
                         probs=packet.probs, full=full)


def handle_key(key: int, state: ViewState, image: np.ndarray, shots: Path) -> str | None:
    """Apply a key press; returns 'quit', 'next', 'redraw' or None."""
    if key in (ord("q"), 27):
        return "quit"
    if key == ord(" "):
        state.paused = not state.paused
        return "redraw"
    if key == ord("n"):
        return "next"
    overlay = state.overlay
    if key in (ord("+"), ord("=")):
        overlay.opacity = min(1.0, round(overlay.opacity + 0.1, 2))
    elif key in (ord("-"), ord("_")):
        overlay.opacity = max(0.0, round(overlay.opacity - 0.1, 2))
    elif key == ord("m"):
        overlay.next_view()
    elif key == ord("l"):
        overlay.next_legend()
    elif key == ord("s"):
        try:
            print(f"screenshot: {save_png(image, shots)}")
        except UserError as e:  # a failed screenshot must not end the session (and its recording)
            print(f"warning: {e}", file=sys.stderr)
        return None
    else:
        return None
    return "redraw"


def save_png(image: np.ndarray, folder: Path) -> Path:
    """Write a PNG under a temporary name and rename it: never a half-written file."""
    stem, n = f"realtime_seg_{time.strftime('%Y%m%d_%H%M%S')}", 1
    path = folder / f"{stem}.png"
    while path.exists():
        path, n = folder / f"{stem}_{n}.png", n + 1
    return write_atomic(path, lambda tmp: cv2.imwrite(str(tmp), image),
                        hint=f"check that {folder} is writable", what="screenshot")


def default_output(args) -> Path:
    """A new file in the current folder named after the source, e.g. drive_seg.mp4."""
    stem = f"camera{args.camera}" if args.camera is not None else (
        "stream" if "://" in args.video else Path(args.video).stem)
    path, n = Path(f"{stem}_seg.mp4"), 1
    while path.exists():
        path, n = Path(f"{stem}_seg_{n}.mp4"), n + 1
    return path


def open_source(args) -> Source:
    """The camera or video of the arguments, looping and limited to --max-frames as asked."""
    if args.camera is not None:
        source = open_camera(args.camera)
    else:
        source = open_video(args.video, realtime=args.realtime, loop=args.loop)
    source.limit = args.max_frames
    return source


@contextlib.contextmanager
def stop_on_signals(source: Source) -> Iterator[None]:
    """Ctrl-C or SIGTERM ends the source (the loop ends, outputs are finalized); a second Ctrl-C stops at once."""
    # a KeyboardInterrupt raised anywhere could strike inside a queue's locks and hang the exit
    def handle(signum: int) -> None:
        if source.cancelled:
            raise KeyboardInterrupt
        source.cancel()

    with on_stop_signals(handle):
        yield


def run(args) -> dict:
    """Open model and source, run the loop, print the summary; returns it."""
    plan = stream_plan(args.threads)
    model = load_selected(args.model, args.precision, args.device, plan.threads)
    source = open_source(args)
    with stop_on_signals(source):
        summary, output, written = _session(args, model, source, stream_workers(model, plan))
    print_summary(summary)
    if source.cancelled:
        print("interrupted", file=sys.stderr)
    if source.error:
        print(f"warning: {source.error}", file=sys.stderr)
    if source.broken:  # a truncated file: its recording was not kept
        raise UserError(source.broken + ("; nothing was recorded" if output else ""))
    if written:
        print(f"wrote {written} ({output.frames} frames, {source.size[0]}x{source.size[1]} at {source.fps:g} fps)")
    return summary


def _session(args, model: SegModel, source: Source, workers: int) -> tuple[dict, VideoOutput | None, Path | None]:
    """Window (or not), recording and loop; source and output are closed however it ends."""
    show, output, summary, ok = False, None, {}, False
    try:
        show = not args.no_show and display_available() and open_window(source.size)
        output_path = Path(args.output) if args.output else None
        if not args.no_show and not show:
            output_path = output_path or default_output(args)
            print(f"no display available: running without a window, writing {output_path}")
        output = VideoOutput(output_path, source.fps, source.size, args.codec) if output_path else None
        overlay = Overlay(model.classes, palette(args, model), args.opacity, args.view,
                          not args.no_legend, not args.no_hud, args.edges, args.shares)
        try:
            summary = play(model, source, ViewState(overlay, smooth=args.smooth), output, show,
                           Path(args.screenshots), smoother=smoother(args.smooth), workers=workers)
        except KeyboardInterrupt:  # a second Ctrl-C: stop at once, keep what was recorded
            source.cancel()
        ok = source.broken is None
    finally:
        source.close()
        try:  # a recording that cannot be finished (disk full, ...) is removed and raises its one line
            written = output.close(ok) if output else None
        finally:
            if show:
                cv2.destroyAllWindows()
    return summary, output, written


def play(model: SegModel, source: Source, state: ViewState, output: VideoOutput | None = None,
         show: bool = False, shots: Path = Path("."), bar: bool = True,
         smoother: TemporalSmoother | None = None, workers: int = 1) -> dict:
    """The viewer's loop: segment, paint, record and show every frame; returns the summary.

    Without a window it shows a progress bar (unless `bar` is False: bench times this loop).
    `smoother` averages class scores over time (--smooth); the summary reports the flicker;
    `workers`: inference calls in flight (engine.stream_plan).
    """
    times, meter = StageTimes(), FpsMeter()
    bar = progress(total=source.length, desc="segmenting", unit="frame") if bar and not show else None
    start, frames = time.perf_counter(), 0
    smooth_edges = state.overlay.edges == "smooth"
    stream = segment_stream(source, model, times, smoother=smoother, probs=smooth_edges, workers=workers)
    # closing: on a second Ctrl-C the stage threads stop before the source is closed under them
    with contextlib.closing(stream) as packets:
        for packet in packets:
            state.flicker.add(packet.class_map, restart=packet.restarted or packet.discontinuous)
            t = time.perf_counter()
            overlay = state.overlay
            full = None if overlay.view == "original" else overlay.frame_classes(packet.frame, packet.class_map,
                                                                                 packet.probs)
            t1 = time.perf_counter()
            image = render(packet, model, state, meter.tick(), times, source, full)
            times.add("edges", (t1 - t) * 1e3)
            times.add("draw", (time.perf_counter() - t1) * 1e3)
            if output:
                output.write(image)
            frames += 1
            if bar is not None:
                bar.update()
            if show and _show(image, packet, model, state, shots, times, meter, source) == "quit":
                break
    if bar is not None:
        bar.close()
    return _summary(frames, time.perf_counter() - start, times, model, source, output, state.flicker, workers)


def _show(image, packet, model, state, shots, times, meter, source) -> str | None:
    """Display a frame and handle keys; while paused, wait here (redrawing on changes)."""
    cv2.imshow(WINDOW, image)
    while True:
        action = handle_key(cv2.waitKey(1 if not state.paused else 30) & 0xFF, state, image, shots)
        if action == "quit" or source.cancelled or cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1:
            return "quit"
        if action == "next":
            state.paused = True
            return None
        if action == "redraw":  # a new view or legend: the frame-size class map is cheap to redo
            image = render(packet, model, state, meter.fps, times, source)
            cv2.imshow(WINDOW, image)
        if not state.paused:
            return None


def _summary(frames: int, seconds: float, times: StageTimes, model: SegModel, source: Source,
             output: VideoOutput | None, flicker: FlickerMeter, workers: int = 1) -> dict:
    ms = times.mean()
    if output and output.frames:
        ms["encode"] = output.encode_ms / output.frames
    fps = frames / seconds if seconds > 0 else 0.0
    return {"frames": frames, "seconds": seconds, "fps": fps, "stages_ms": ms, "dropped": source.dropped,
            "provider": model.provider, "precision": model.precision, "flicker": flicker.mean,
            "in_flight": workers}


def print_summary(summary: dict) -> None:
    """The line printed at exit: frames, mean FPS, provider, drops and per-stage milliseconds."""
    if not summary:
        return
    flicker = "" if summary.get("flicker") is None else f" | flicker {summary['flicker'] * 100:.2f}%"
    # with frames in flight each inference call takes longer than 1 / FPS: say so
    calls = f" | {summary['in_flight']} frames in inference at once" if summary.get("in_flight", 1) > 1 else ""
    print(f"{summary['frames']} frames in {summary['seconds']:.1f}s: {summary['fps']:.1f} FPS mean on "
          f"{summary['provider']} {summary.get('precision', 'fp32')}, dropped {summary['dropped']} | "
          + ", ".join(f"{k} {v:.1f} ms" for k, v in summary["stages_ms"].items()) + flicker + calls)


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m realtime_seg", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="other commands: train, export, eval, batch, bench (each takes --help)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--video", help="video file or stream URL (rtsp://, http://, ...); default: the demo video")
    src.add_argument("--camera", type=int, help="webcam index, e.g. 0")
    add_model_options(p, threads_help="onnxruntime threads per inference call (0: automatic: two frames in "
                                       "flight on half the cores each; N: N threads, one frame at a time)")
    p.add_argument("--opacity", type=float, default=0.5, help="mask opacity, 0-1")
    p.add_argument("--view", default="blend", choices=VIEWS)
    p.add_argument("--output", help="also record the annotated video (same size and fps)")
    p.add_argument("--codec", help=f"codec for --output: {', '.join(CODECS)} (default by extension: "
                   f"{', '.join(f'{e} {c}' for e, c in DEFAULT_CODEC.items())})")
    p.add_argument("--no-show", action="store_true", help="no window; progress bar instead")
    p.add_argument("--realtime", action="store_true", help="keep pace with a file's fps by dropping frames")
    p.add_argument("--loop", action="store_true", help="start a video file again at its end (kiosk demos)")
    p.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames")
    add_look_options(p)
    p.add_argument("--no-legend", action="store_true")
    p.add_argument("--no-hud", action="store_true")
    p.add_argument("--screenshots", default=".", help="folder for screenshots (key s)")
    return p


def check_args(args: argparse.Namespace) -> None:
    """Usage errors in the options, and an --output that cannot be written, before any work."""
    check_opacity(args.opacity)
    check_smooth(args.smooth)
    check_at_least("--threads", args.threads, 0)
    check_at_least("--max-frames", args.max_frames, 1)
    check_at_least("--camera", args.camera, 0)
    if args.loop and args.camera is not None:
        raise UsageError("--loop replays video files, not cameras; drop --loop")
    if args.output:
        inputs = {"input video": args.video} if args.video and "://" not in args.video else {}
        check_output_file(Path(args.output), "--output", inputs)
    codec_name(args.codec, Path(args.output).suffix if args.output else ".mp4")  # usage errors before any work


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.video is None and args.camera is None:
        args.video = str(DEMO_VIDEO)
        print(f"no --video or --camera given: playing the demo {DEMO_VIDEO.name}")
    check_args(args)
    run(args)
    return 0
