"""Live viewer: segment a video, camera or stream and show it with a blended mask, legend and FPS.

usage: python -m realtime_seg --video drive.mp4 [--model accurate|fast|M.onnx] [--output out.mp4]
       python -m realtime_seg --camera 0
       python -m realtime_seg --video rtsp://host/stream --no-show --output rec.mp4
       python -m realtime_seg --video demo.mp4 --loop [--max-frames 20000]   (kiosk; soak tests)
       python -m realtime_seg --video drive.mp4 --compare fast:fp32 --serve 8080   (two models; in a browser too)
In a window a file plays at its own frame rate (--fast: as fast as the model allows) and its last
frame stays up at the end; without one (--no-show, no display) every run is as fast as it can be.
keys:  q/Esc quit, space pause, n next frame (paused), +/- opacity, m view (blend, mask, outlines,
       side, original), l legend (names, shares, off), s screenshot, r replay (at the end of a file),
       c side by side / disagreement (with --compare)
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from ..cli import (add_compare_options, add_look_options, add_model_options, add_serve_option, check_opacity,
                   check_smooth, comparison, load_selected, palette, smoother)
from ..errors import ArgumentParser, UsageError, UserError, check_at_least
from ..paths import DEMO_VIDEO
from ..runtime.display import WINDOW, FpsMeter, Pacer, display_available, open_window
from ..runtime.engine import SegModel, stream_plan, stream_workers
from ..runtime.pipeline import Packet, StageTimes, segment_stream
from ..runtime.player import ViewState, render
from ..runtime.render import VIEWS, Overlay, draw_hud
from ..runtime.serve import parse_address, serving
from ..runtime.sources import Source, open_camera, open_video
from ..runtime.temporal import FlickerMeter, TemporalSmoother
from ..runtime.video import VideoOutput
from ..system import check_output_file, on_stop_signals, progress, write_atomic

log = logging.getLogger(__name__)

END_HINT = "end of video: q quits, r replays"


def handle_key(key: int, state: ViewState, image: np.ndarray, shots: Path) -> str | None:
    """Apply a key press; returns 'quit', 'next', 'replay', 'redraw' or None."""
    if key in (ord("q"), 27):
        return "quit"
    if key == ord("r"):
        return "replay"
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
    elif key == ord("c") and state.compare is not None:
        state.compare.next_layout()
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
    """The file in the current folder named after the source, e.g. drive_seg.mp4: running again replaces
    it, as re-running a command replaces its output (never an input: the name always ends in _seg)."""
    stem = f"camera{args.camera}" if args.camera is not None else (
        "stream" if "://" in args.video else Path(args.video).stem)
    return Path(f"{stem}_seg.mp4")


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


def run(args, demo: bool = False) -> dict:
    """Open model and source, run the loop, print the summary; returns it. `demo`: the demo video
    was chosen for want of --video or --camera (said once both have opened)."""
    plan = stream_plan(args.threads)
    model = load_selected(args.model, args.precision, args.device, plan.threads)
    compare = comparison(args, model, plan.threads)
    with serving(args.serve) as server:  # stops with the run
        source = open_source(args)
        if demo:
            print(f"no --video or --camera given: playing the demo {DEMO_VIDEO.name}")
        with stop_on_signals(source):
            summary, output, written = _session(args, model, source, stream_workers(model, plan), compare, server)
    if compare is not None and summary:
        summary["compare"] = compare.describe()
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


def _session(args, model: SegModel, source: Source, workers: int, compare=None,
             server=None) -> tuple[dict, VideoOutput | None, Path | None]:
    """Window (or not), recording and loop (with --compare's Comparison and --serve's FrameServer);
    source and output are closed however it ends."""
    show, output, summary, ok = False, None, {}, False
    try:
        show = not args.no_show and display_available() and open_window(source.size)
        output_path = Path(args.output) if args.output else None
        if not args.no_show and not show:
            output_path = output_path or default_output(args)
            again = " (replacing the existing file)" if output_path.exists() else ""
            print(f"no display available: running without a window, writing {output_path}{again}")
        output = VideoOutput(output_path, source.fps, source.size, args.codec) if output_path else None
        overlay = Overlay(model.classes, palette(args, model), args.opacity, args.view,
                          not args.no_legend, not args.no_hud, args.edges, args.shares)
        try:
            state = ViewState(overlay, smooth=args.smooth, compare=compare, server=server)
            summary = play(model, source, state, output, show,
                           Path(args.screenshots), smoother=smoother(args.smooth), workers=workers,
                           pace=not args.fast)
        except KeyboardInterrupt:  # a second Ctrl-C: stop at once, keep what was recorded
            source.cancel()
        ok = source.broken is None
    finally:
        source.close()
        written = output.close(ok) if output else None
        if show:
            cv2.destroyAllWindows()
    return summary, output, written


@dataclass
class _Playback:
    """What the passes of one play() share: model, source, keys' state, window, clocks."""

    model: SegModel
    source: Source
    state: ViewState
    show: bool
    shots: Path
    smoother: TemporalSmoother | None
    workers: int
    pacer: Pacer | None                       # a file's own frame rate in a window; None: flat out
    times: StageTimes = field(default_factory=StageTimes)
    meter: FpsMeter = field(default_factory=FpsMeter)


def play(model: SegModel, source: Source, state: ViewState, output: VideoOutput | None = None,
         show: bool = False, shots: Path = Path("."), bar: bool = True,
         smoother: TemporalSmoother | None = None, workers: int = 1, pace: bool = False) -> dict:
    """The viewer's loop: segment, paint, record and show every frame; returns the summary.

    Without a window it shows a progress bar (unless `bar` is False: bench times this loop) and runs
    flat out. In a window, `pace` shows a file at its own frame rate, and at the end of a file the
    window keeps its last frame until q; r plays it again (the recording keeps the first pass).
    `smoother` averages class scores over time (--smooth); the summary reports the flicker (and the
    seconds spent playing, not waiting at the end); `workers`: inference calls in flight.
    """
    loop = _Playback(model, source, state, show, shots, smoother, workers,
                 Pacer(source.fps) if pace and show and not source.live else None)
    bar = progress(total=source.length, desc="segmenting", unit="frame") if bar and not show else None
    frames, seconds, recording = 0, 0.0, output
    while True:
        start = time.perf_counter()
        done, last, stopped = _pass(loop, recording, bar)
        frames, seconds, recording = frames + done, seconds + time.perf_counter() - start, None
        if stopped or not _replay(loop, last):
            break
    if bar is not None:
        bar.close()
    return _summary(frames, seconds, loop.times, model, source, output, state.flicker, workers)


def _pass(loop: _Playback, output: VideoOutput | None, bar) -> tuple[int, Packet | None, bool]:
    """Play the source through once: (frames, the last packet, whether the user quit)."""
    frames, last = 0, None
    smooth_edges = loop.state.overlay.edges == "smooth"
    compare = loop.state.compare.lane() if loop.state.compare is not None else None
    stream = segment_stream(loop.source, loop.model, loop.times, smoother=loop.smoother, probs=smooth_edges,
                            workers=loop.workers, compare=compare)
    # closing: on a second Ctrl-C the stage threads stop before the source is closed under them
    with contextlib.closing(stream) as packets:
        for packet in packets:
            restart = packet.restarted or packet.discontinuous or packet.index == 0  # index 0: a replay
            loop.state.flicker.add(packet.class_map, restart=restart)
            image = _paint(loop, packet)
            if output:
                output.write(image)
            frames, last = frames + 1, packet
            if bar is not None:
                bar.set_postfix_str(f"{loop.meter.fps:.1f} FPS", refresh=False)
                bar.update()
            if loop.show and _show(loop, image, packet) == "quit":
                return frames, last, True
    return frames, last, False


def _paint(loop: _Playback, packet: Packet) -> np.ndarray:
    """The frame as shown and recorded; times the class map's way to the frame's size and the drawing."""
    t = time.perf_counter()
    overlay = loop.state.overlay
    drawn_here = overlay.view != "original" and loop.state.compare is None  # a comparison sizes its own maps
    full = overlay.frame_classes(packet.frame, packet.class_map, packet.probs) if drawn_here else None
    t1 = time.perf_counter()
    image = render(packet, loop.model, loop.state, loop.meter.tick(), loop.times, loop.source, full)
    loop.times.add("edges", (t1 - t) * 1e3)
    loop.times.add("draw", (time.perf_counter() - t1) * 1e3)
    return image


def _show(loop: _Playback, image: np.ndarray, packet: Packet) -> str | None:
    """Display a frame, then handle keys until the next one is due (at once when not paced);
    while paused, wait here (redrawing on changes)."""
    cv2.imshow(WINDOW, image)
    if loop.pacer is not None:
        loop.pacer.shown()
    while True:
        wait_ms = 30 if loop.state.paused else max(1, loop.pacer.wait_ms() if loop.pacer else 1)
        action = handle_key(cv2.waitKey(wait_ms) & 0xFF, loop.state, image, loop.shots)
        if action == "quit" or loop.source.cancelled or _window_closed():
            return "quit"
        if action == "next":
            loop.state.paused = True
            return None
        if action == "redraw":  # a new view or legend: the frame-size class map is cheap to redo
            image = render(packet, loop.model, loop.state, loop.meter.fps, loop.times, loop.source)
            cv2.imshow(WINDOW, image)
        if not loop.state.paused and (loop.pacer is None or loop.pacer.wait_ms() == 0):
            return None


def _window_closed() -> bool:
    return cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1


def _replay(loop: _Playback, last: Packet | None) -> bool:
    """At the end of a file in a window: hold its last frame; True once r has started it again."""
    source = loop.source
    if not loop.show or last is None or source.live or source.cancelled or source.broken is not None:
        return False  # no window, nothing shown, a camera or stream, Ctrl-C, or a truncated file
    print(f"end of {source.name}: the window keeps its last frame; q quits, r replays", flush=True)
    if _hold(loop, last) != "replay" or not source.restart():
        return False
    if loop.smoother is not None:
        loop.smoother.reset()
    loop.meter = FpsMeter()  # the wait at the end is no frame interval
    return True


def _hold(loop: _Playback, packet: Packet) -> str:
    """Show the last frame with END_HINT until r ('replay'), q, a closed window or a signal ('quit');
    the other keys (view, legend, opacity, screenshot) still work on it."""
    loop.state.paused = False
    while True:
        image = render(packet, loop.model, loop.state, loop.meter.fps, loop.times, loop.source)
        hinted = image.copy()
        draw_hud(hinted, [END_HINT], bottom=True)
        cv2.imshow(WINDOW, hinted)
        action = None
        while action not in ("redraw", "quit", "replay"):
            action = handle_key(cv2.waitKey(50) & 0xFF, loop.state, image, loop.shots)
            if loop.source.cancelled or _window_closed():
                return "quit"
            loop.state.paused = False  # space and n: nothing plays here
        if action != "redraw":
            return action


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
    calls += f" | compared with {summary['compare']}" if summary.get("compare") else ""
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
    p.add_argument("--codec", help="FourCC for --output (default by extension: mp4v, MJPG, VP80)")
    p.add_argument("--no-show", action="store_true", help="no window; progress bar instead")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--realtime", action="store_true", help="keep pace with a file's fps by dropping frames")
    pace.add_argument("--fast", action="store_true",
                      help="in a window, play files as fast as the model allows (default: at the file's frame "
                           "rate, every frame shown); runs without a window are always as fast as they can be")
    p.add_argument("--loop", action="store_true", help="start a video file again at its end (kiosk demos)")
    p.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames")
    add_look_options(p)
    add_compare_options(p)
    add_serve_option(p)
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
    if args.serve is not None:
        parse_address(args.serve)
    if args.loop and args.camera is not None:
        raise UsageError("--loop replays video files, not cameras; drop --loop")
    if args.output:
        inputs = {"input video": args.video} if args.video and "://" not in args.video else {}
        check_output_file(Path(args.output), "--output", inputs)


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    demo = args.video is None and args.camera is None
    if demo:
        args.video = str(DEMO_VIDEO)
    check_args(args)
    run(args, demo)
    return 0
