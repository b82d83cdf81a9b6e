"""Live viewer: segment a video, camera, stream, image or folder of frames and show it with a blended
mask, legend and FPS.

usage: python -m realtime_seg --video drive.mp4 [--model accurate|fast|M.onnx] [--output out.mp4]
       python -m realtime_seg --camera 0
       python -m realtime_seg --video CameraRGB/ [--fps 10]       (a folder of frames, or 'CameraRGB/*.png')
       python -m realtime_seg --video photo.jpg [--no-show --output photo_seg.png]   (one image)
       python -m realtime_seg --video rtsp://host/stream --no-show --output rec.mp4
       python -m realtime_seg --video demo.mp4 --loop [--max-frames 20000]   (kiosk; soak tests)
       python -m realtime_seg --video drive.mp4 --compare fast:fp32 --serve 8080   (two models; in a browser too)
In a window a file plays at its own frame rate (--fast: as fast as the model allows) and its last
frame stays up at the end; without one (--no-show, no display) every run is as fast as it can be.
A folder or glob of images plays as a video at --fps, in natural order (frame2 before frame10); one
image stays in the window until a key is pressed, and --output x.png (or .jpg) writes it annotated.
keys:  q/Esc quit, space pause, n next frame (paused), +/- opacity, m view (blend, mask, outlines,
       side, original), l legend (names, shares, off), s screenshot, r replay (at the end of a file),
       c side by side / disagreement (with --compare)
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from pathlib import Path
from typing import Iterator

from ..cli import (add_compare_options, add_look_options, add_model_options, add_serve_option, check_serve_options,
                   compare_choice, comparison, look_options, model_choice, run_options)
from ..errors import ArgumentParser, UsageError, UserError, check_at_least
from ..paths import DEMO_VIDEO, MODELS_DIR
from ..runtime.compare import Comparison
from ..runtime.display import display_available, open_window
from ..runtime.engine import SegModel
from ..runtime.media import DEFAULT_FPS, IMAGE_SUFFIXES, JPEG_SUFFIXES, ImageOutput, frames_name, is_image_name
from ..runtime.models import PRESETS, ModelChoice, open_streams
from ..runtime.precision import family_base
from ..runtime.player import ViewState, play
from ..runtime.serve import FrameServer, serving
from ..runtime.sources import FrameSource, Source, open_camera, open_video
from ..runtime.video import CODECS, DEFAULT_CODEC, VideoOutput, codec_name
from ..system import check_output_file, on_stop_signals

log = logging.getLogger(__name__)


def default_output(args, source: Source) -> Path:
    """The file in the current folder named after the source, e.g. drive_seg.mp4 (photo_seg.png for one
    image): running again replaces it, as re-running a command replaces its output (never an input:
    the name always ends in _seg)."""
    if isinstance(source, FrameSource):
        name = frames_name(args.video)
        if source.still:
            return Path(f"{name}_seg{'.jpg' if Path(args.video).suffix.lower() in JPEG_SUFFIXES else '.png'}")
        return Path(f"{name}_seg.mp4")
    stem = f"camera{args.camera}" if args.camera is not None else (
        "stream" if "://" in args.video else Path(args.video).stem)
    return Path(f"{stem}_seg.mp4")


def open_source(args) -> Source:
    """The camera or video of the arguments, looping and limited to --max-frames as asked."""
    if args.camera is not None:
        source = open_camera(args.camera)
    else:
        source = open_video(args.video, realtime=args.realtime, loop=args.loop, fps=args.fps)
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
    choice, options = model_choice(args), run_options(args)
    opened = open_streams(choice, options)
    compare = comparison(args, opened, compare_choice(args, choice), options)
    with serving(args.serve, token=args.serve_token, max_clients=args.serve_max_clients) as server:  # stops with the run
        source = open_source(args)
        if demo:
            print(f"no --video or --camera given: playing the demo {DEMO_VIDEO.name}")
        with stop_on_signals(source):
            summary, output, written = _session(args, opened.model, source, opened.plan.workers, compare, server)
    if compare is not None and summary:
        summary["compare"] = compare.describe()
    print_summary(summary)
    hint = speed_hint(summary, source.fps, not _is_fast_preset(choice), _squash_is_smaller(opened.model, source))
    if hint:
        print(hint)
    if source.cancelled:
        print("interrupted", file=sys.stderr)
    if source.error:
        print(f"warning: {source.error}", file=sys.stderr)
    if source.broken:  # a truncated file: its recording was not kept
        raise UserError(source.broken + ("; nothing was recorded" if output else ""))
    if written:
        print(_wrote(written, output, source))
    if getattr(source, "skipped", None):  # images of a folder that could not be read: the rest was played
        raise UserError(skipped_line(source))
    return summary


def _wrote(path: Path, output, source: Source) -> str:
    """What was written: an image and its size, or a video's frames, size and rate; frames of a folder
    in other sizes than the first's were resized to the first's (said on a line before)."""
    if isinstance(output, ImageOutput):
        return f"wrote {path} (the annotated image, {output.size[0]}x{output.size[1]})"
    line = f"wrote {path} ({output.frames} frames, {source.size[0]}x{source.size[1]} at {source.fps:g} fps)"
    others = len(getattr(source, "sizes", [])) - 1
    if others > 0:
        line = (f"note: the frames are of {others + 1} sizes; the video takes the first frame's, "
                f"{source.size[0]}x{source.size[1]}, and the others are resized to it\n{line}")
    return line


def skipped_line(source: FrameSource) -> str:
    """One line for the images of a folder that were skipped: how many, the first few by name, and why."""
    items = list(source.skipped.items())
    named = "; ".join(f"{path}: {reason}" for path, reason in items[:3]) + ("; ..." if len(items) > 3 else "")
    return (f"skipped {len(items)} of {source.frame_count} images that could not be read ({named}); "
            f"the others were segmented")


def _session(args, model: SegModel, source: Source, workers: int, compare: Comparison | None = None,
             server: FrameServer | None = None) -> tuple[dict, VideoOutput | None, Path | None]:
    """Window (or not), recording and loop (with --compare's Comparison and --serve's FrameServer);
    source and output are closed however it ends."""
    window, output, summary, ok = None, None, {}, False
    try:
        still = getattr(source, "still", False)
        output_path = Path(args.output) if args.output else None
        check_output_kind(output_path, source)
        window = open_window(source.size) if not args.no_show and display_available() else None
        if not args.no_show and not window:
            output_path = output_path or default_output(args, source)
            again = " (replacing the existing file)" if output_path.exists() else ""
            print(f"no display available: running without a window, writing {output_path}{again}")
        output = (None if output_path is None else ImageOutput(output_path) if is_image_name(output_path)
                  else VideoOutput(output_path, source.fps, source.size, args.codec))
        # one image: no HUD (its FPS and stage times say nothing about a still)
        state = ViewState.of(look_options(args, hud=not args.no_hud and not still), model, compare, server)
        try:
            summary = play(model, source, state, output, window, Path(args.screenshots), workers=workers,
                           pace=not args.fast)
        except KeyboardInterrupt:  # a second Ctrl-C: stop at once, keep what was recorded
            source.cancel()
        ok = source.broken is None
    finally:
        source.close()
        try:  # a recording that cannot be finished (disk full, ...) is removed and raises its one line
            written = output.close(ok) if output else None
        finally:
            if window:
                window.close()
    return summary, output, written


def check_output_kind(path: Path | None, source: Source) -> None:
    """--output x.png (or .jpg) writes one image: a usage error for a source of several frames."""
    if path is not None and is_image_name(path) and not getattr(source, "still", False):
        raise UsageError(f"--output {path} writes one image, and {source.name} has several frames; pass a video "
                         f"name (.mp4), or run `python -m realtime_seg batch` for one annotated image per frame")


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


def _squash_is_smaller(model, source) -> bool:
    """Whether --aspect squash would feed the model fewer pixels than this run's frames got."""
    if not getattr(source, "size", None):
        return False
    (h, w), (th, tw) = model.size_for((source.size[1], source.size[0])), model.input_size
    return h * w > th * tw


def _is_fast_preset(choice: ModelChoice) -> bool:
    """Whether the run's file is one of the `fast` preset's, named so or by its path."""
    fast = MODELS_DIR / PRESETS["fast"]
    return family_base(choice.path).resolve() == fast.resolve()


def speed_hint(summary: dict, source_fps: float | None, fast_helps: bool, squash_helps: bool) -> str | None:
    """One line when the run reached less than 90% of the source's frame rate: which flags run faster.

    The floors of the presets hold on some CPUs and not on others (docs/BENCHMARKS.md): a user on a
    slower one learns the way out from the run itself. None for a still, a short run or a fast one."""
    if not summary or summary["frames"] < 30 or not source_fps or summary["fps"] >= 0.9 * source_fps:
        return None
    faster = [flag for flag, helps in (("--model fast", fast_helps), ("--aspect squash", squash_helps))
              if helps]
    if not faster:
        return None
    return (f"note: {summary['fps']:.1f} FPS is below the source's {source_fps:g} fps on this machine; "
            f"{' or '.join(faster)} runs faster (speeds: docs/BENCHMARKS.md)")


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m realtime_seg", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="other commands: train, export, eval, batch, bench (each takes --help)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--video", help="video file, stream URL (rtsp://, http://, ...), image, folder of frames or "
                                     "glob ('CameraRGB/*.png'); default: the demo video")
    src.add_argument("--camera", type=int, help="webcam index, e.g. 0")
    add_model_options(p, threads_help="onnxruntime threads per inference call (0: automatic: two frames in "
                                       "flight on half the cores each; N: N threads, one frame at a time)")
    p.add_argument("--output", help="also record the annotated video (same size and fps); for one image, "
                   f"an image ({', '.join(IMAGE_SUFFIXES)}) at its own size")
    p.add_argument("--fps", type=float, metavar="N", help=f"the rate a folder or glob of frames plays and records "
                   f"at (default {DEFAULT_FPS:g}, CARLA's usual capture rate); videos keep their own")
    p.add_argument("--codec", help=f"codec for --output: {', '.join(CODECS)} (default by extension: "
                   f"{', '.join(f'{e} {c}' for e, c in DEFAULT_CODEC.items())})")
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
    look_options(args, hud=not args.no_hud)  # --opacity, --smooth
    compare_choice(args, model_choice(args))  # --precision, --classes, --mean, --std, --input-size, --compare
    check_at_least("--threads", args.threads, 0)
    check_at_least("--max-frames", args.max_frames, 1)
    check_at_least("--camera", args.camera, 0)
    check_serve_options(args)
    if args.loop and args.camera is not None:
        raise UsageError("--loop replays video files, not cameras; drop --loop")
    if args.fps is not None and args.camera is not None:
        raise UsageError("--fps sets the rate of images played as a video; a camera keeps its own: drop --fps")
    if args.fps is not None and not args.fps > 0:
        raise UsageError(f"--fps must be more than 0, got {args.fps:g}")
    if args.output:
        inputs = {"input video": args.video} if args.video and "://" not in args.video else {}
        check_output_file(Path(args.output), "--output", inputs)
    if args.output and is_image_name(Path(args.output)):
        if args.codec:
            raise UsageError(f"--codec is for video outputs; --output {args.output} is an image: drop --codec")
    else:
        codec_name(args.codec, Path(args.output).suffix if args.output else ".mp4")  # usage errors before any work


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    demo = args.video is None and args.camera is None
    if demo:
        args.video = str(DEMO_VIDEO)
    check_args(args)
    run(args, demo)
    return 0
