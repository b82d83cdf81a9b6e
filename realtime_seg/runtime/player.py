"""The viewer's frames: what the keys change (ViewState), the annotated frame with its HUD (render),
and the play loop (play) that segments, paints, records and shows every frame of a source. With
`--compare` the frame is the comparison's picture (key c switches its layout); with `--serve` each
frame drawn also goes to the browsers watching.

The window is passed in (`runtime/display.py`'s `Window`, or any object with its `show`, `key`
and `closed`); without one the loop runs flat out with a progress bar. The viewer opens the
model, source, window and recording and prints the summary; bench times this same loop.
"""
from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from ..errors import UserError
from ..system import progress, write_atomic
from .compare import Comparison, run_hud
from .display import FpsMeter, Pacer
from .engine import SegModel
from .look import Look
from .pipeline import Packet, StageTimes, segment_stream
from .render import Overlay, draw_hud, hud_lines
from .serve import FrameServer
from .sources import Source
from .temporal import FlickerMeter, TemporalSmoother, smoother
from .video import VideoOutput

END_HINT = "end of video: q quits, r replays"
STILL_HINT = "any key closes (m, l, +/-, s, c: as in a video)"
LOOK_KEYS = {ord(k) for k in "ml+=-_cs"}  # keys that change or save the picture (a still stays up for them)


class Screen(Protocol):
    """What play needs of a window: show a frame, read a key, tell whether the user closed it."""

    def show(self, image: np.ndarray) -> None: ...
    def key(self, wait_ms: int) -> int: ...
    def closed(self) -> bool: ...


@dataclass
class ViewState:
    """What the keys change: the overlay's settings, and pause."""

    overlay: Overlay
    paused: bool = False
    smooth: float = 0.0                                      # --smooth, for the HUD
    flicker: FlickerMeter = field(default_factory=FlickerMeter)
    compare: Comparison | None = None                        # --compare: two models side by side
    server: FrameServer | None = None                        # --serve: browsers watching

    @classmethod
    def of(cls, look: Look, model: SegModel, compare: Comparison | None = None,
           server: FrameServer | None = None) -> "ViewState":
        """The state a Look starts with, for `model`'s classes (with --compare's and --serve's, if any)."""
        return cls(look.overlay(model), smooth=look.smooth, compare=compare, server=server)


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
    if state.compare is not None:
        image = state.compare.paint(packet, overlay, run_hud(fps, model, times, *extra), times)
    else:
        image = overlay.paint(packet.frame, packet.class_map, hud_lines(fps, model.runs_on, stages, *extra),
                              probs=packet.probs, full=full)
    if state.server is not None:
        state.server.publish(image)
    return image


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


@dataclass
class _Playback:
    """What the passes of one play() share: model, source, keys' state, window, clocks."""

    model: SegModel
    source: Source
    state: ViewState
    window: Screen | None
    shots: Path
    smoother: TemporalSmoother | None
    workers: int
    pacer: Pacer | None                       # a file's own frame rate in a window; None: flat out
    times: StageTimes = field(default_factory=StageTimes)
    meter: FpsMeter = field(default_factory=FpsMeter)
    paused_s: float = 0.0                     # seconds spent paused: not playing time for the summary


def play(model: SegModel, source: Source, state: ViewState, output: VideoOutput | None = None,
         window: Screen | None = None, shots: Path = Path("."), bar: bool = True, workers: int = 1,
         pace: bool = False) -> dict:
    """The viewer's loop: segment, paint, record and show every frame; returns the summary.

    Without a window it shows a progress bar (unless `bar` is False: bench times this loop) and runs
    flat out. In a window, `pace` shows a file at its own frame rate, and at the end of a file the
    window keeps its last frame until q; r plays it again (the recording keeps the first pass).
    The state's `smooth` averages class scores over time (--smooth); the summary reports the flicker
    (and the seconds spent playing, not paused or waiting at the end); `workers`: inference calls in flight.
    """
    loop = _Playback(model, source, state, window, shots, smoother(state.smooth), workers,
                     Pacer(source.fps) if pace and window and not source.live else None)
    bar = progress(total=source.length, desc="segmenting", unit="frame") if bar and not window else None
    frames, seconds, recording = 0, 0.0, output
    while True:
        start = time.perf_counter()
        done, last, stopped = _pass(loop, recording, bar)
        frames, seconds, recording = frames + done, seconds + time.perf_counter() - start, None
        if stopped or not _replay(loop, last):
            break
    if bar is not None:
        bar.close()
    return _summary(frames, seconds - loop.paused_s, loop.times, model, source, output, state.flicker, workers)


def _pass(loop: _Playback, output: VideoOutput | None, bar) -> tuple[int, Packet | None, bool]:
    """Play the source through once: (frames, the last packet, whether the user quit)."""
    frames, last = 0, None
    smooth_edges = loop.state.overlay.edges == "smooth"  # the keys never change edges
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
                bar.update()
            if loop.window and _show(loop, image, packet) == "quit":
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
    window = loop.window
    window.show(image)
    if loop.pacer is not None:
        loop.pacer.shown()
    while True:
        paused, waited = loop.state.paused, time.perf_counter()
        wait_ms = 30 if paused else max(1, loop.pacer.wait_ms() if loop.pacer else 1)
        action = handle_key(window.key(wait_ms), loop.state, image, loop.shots)
        if paused:
            loop.paused_s += time.perf_counter() - waited
        if action == "quit" or loop.source.cancelled or window.closed():
            return "quit"
        if action == "next":
            loop.state.paused = True
            return None
        if action == "redraw":  # a new view or legend: the frame-size class map is cheap to redo
            image = render(packet, loop.model, loop.state, loop.meter.fps, loop.times, loop.source)
            window.show(image)
        if not loop.state.paused and (loop.pacer is None or loop.pacer.wait_ms() == 0):
            return None


def _replay(loop: _Playback, last: Packet | None) -> bool:
    """At the end of a file in a window: hold its last frame; True once r has started it again.
    One image (a still) is held until a key that changes nothing is pressed."""
    source = loop.source
    if not loop.window or last is None or source.live or source.cancelled or source.broken is not None:
        return False  # no window, nothing shown, a camera or stream, Ctrl-C, or a truncated file
    still = getattr(source, "still", False)
    print(f"showing {source.name} until a key is pressed (m views, l legend, +/- opacity, s screenshot)" if still
          else f"end of {source.name}: the window keeps its last frame; q quits, r replays", flush=True)
    if _hold(loop, last, still) != "replay" or not source.restart():
        return False
    if loop.smoother is not None:
        loop.smoother.reset()
    loop.meter = FpsMeter()  # the wait at the end is no frame interval
    return True


def _hold(loop: _Playback, packet: Packet, still: bool = False) -> str:
    """Show the last frame with END_HINT until r ('replay'), q, a closed window or a signal ('quit');
    the other keys (view, legend, opacity, screenshot) still work on it. `still` (one image): STILL_HINT,
    and any key that changes nothing closes it."""
    loop.state.paused = False
    while True:
        image = render(packet, loop.model, loop.state, loop.meter.fps, loop.times, loop.source)
        hinted = image.copy()
        draw_hud(hinted, [STILL_HINT if still else END_HINT], bottom=True)
        loop.window.show(hinted)
        action = None
        while action not in ("redraw", "quit", "replay"):
            key = loop.window.key(50)
            if still and key != 255 and key not in LOOK_KEYS:
                return "quit"
            action = handle_key(key, loop.state, image, loop.shots)
            if loop.source.cancelled or loop.window.closed():
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
