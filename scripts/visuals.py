"""Figures for docs/VISUALS.md: edges before/after, palettes, outlines and flicker per frame.

usage: python -m scripts.visuals [--model models/camvid_accurate.onnx] [--video videos/dashcam_highway.mp4]
                                 [--smooth 0.7] [--out docs] [--json docs/flicker_dashcam.json] [--costs]

Runs the model once over the video (every frame), then derives everything from its class
probabilities with the runtime's own functions: the per-frame flicker without and with
temporal smoothing, and, on one frame, crops of nearest against smooth edges. Plots are drawn
with OpenCV (no matplotlib). `--costs` also prints the CPU time per frame of each way to bring
the class map to the frame's size (thread CPU time: time taken by other processes on a shared
machine is not counted; OpenCV on one thread).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from realtime_seg.runtime.edges import dense_upsample, smooth_upsample
from realtime_seg.runtime.models import RunOptions, choose_model, open_model
from realtime_seg.runtime.palettes import choose_palette
from realtime_seg.runtime.render import Overlay, colorize
from realtime_seg.runtime.temporal import FlickerMeter, TemporalSmoother, argmax_classes, one_hot
from realtime_seg.system import write_atomic

CPU = RunOptions("cpu")

ROOT = Path(__file__).resolve().parent.parent
FONT = cv2.FONT_HERSHEY_SIMPLEX


def scores_of_video(model, video: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Every frame of `video` and the model's class probabilities for it."""
    cap, frames, probs = cv2.VideoCapture(str(video)), [], []
    while (got := cap.read())[0]:
        maps, p = model.infer_probs(model.prepare([got[1]]))
        frames.append(got[1])
        probs.append(p[0] if p is not None else one_hot(maps[0], len(model.classes)))
    cap.release()
    return frames, probs


def flicker_per_frame(frames, probs, strength: float) -> list[float | None]:
    """Fraction of pixels changing class at each frame, with temporal smoothing `strength` (0: off)."""
    smoother, meter = (TemporalSmoother(strength) if strength else None), FlickerMeter()
    return [meter.add(argmax_classes(smoother.update(p, f) if smoother else p)) for f, p in zip(frames, probs)]


def plot(series: dict[str, list[float | None]], colors: dict[str, tuple[int, int, int]], fps: float,
         size: tuple[int, int] = (960, 360)) -> np.ndarray:
    """A line plot of flicker (%) per frame on white, with axes, ticks and a legend."""
    w, h = size
    left, right, top, bottom = 60, 20, 30, 45
    image = np.full((h, w, 3), 255, np.uint8)
    n = max(len(v) for v in series.values())
    peak = max(x for v in series.values() for x in v if x is not None) * 100
    y_max = max(1.0, float(np.ceil(peak)))
    to_x = lambda i: int(left + i * (w - left - right) / max(n - 1, 1))  # noqa: E731
    to_y = lambda v: int(h - bottom - v / y_max * (h - top - bottom))    # noqa: E731
    for tick in np.arange(0, y_max + 1e-9, 1.0 if y_max <= 8 else 2.0):
        cv2.line(image, (left, to_y(tick)), (w - right, to_y(tick)), (225, 225, 225), 1)
        cv2.putText(image, f"{tick:.0f}%", (8, to_y(tick) + 4), FONT, 0.4, (60, 60, 60), 1, cv2.LINE_AA)
    for second in range(0, int(n / fps) + 1):
        x = to_x(second * fps)
        cv2.line(image, (x, h - bottom), (x, h - bottom + 4), (60, 60, 60), 1)
        cv2.putText(image, f"{second}s", (x - 8, h - bottom + 18), FONT, 0.4, (60, 60, 60), 1, cv2.LINE_AA)
    cv2.line(image, (left, h - bottom), (w - right, h - bottom), (60, 60, 60), 1)
    cv2.line(image, (left, top), (left, h - bottom), (60, 60, 60), 1)
    cv2.putText(image, "pixels changing class since the previous frame", (left, h - 8), FONT, 0.45,
                (60, 60, 60), 1, cv2.LINE_AA)
    for k, (name, values) in enumerate(series.items()):
        points = np.array([(to_x(i), to_y(v * 100)) for i, v in enumerate(values) if v is not None], np.int32)
        cv2.polylines(image, [points], False, colors[name], 2, cv2.LINE_AA)
        mean = np.mean([v for v in values if v is not None]) * 100
        y = top + 4 + 20 * k
        cv2.line(image, (w - 330, y - 4), (w - 300, y - 4), colors[name], 3)
        cv2.putText(image, f"{name}: mean {mean:.2f}%", (w - 292, y), FONT, 0.5, (30, 30, 30), 1, cv2.LINE_AA)
    return image


def _label(image: np.ndarray, text: str) -> np.ndarray:
    """`text` on a black band in the bottom-left corner."""
    out, h = image.copy(), image.shape[0]
    cv2.rectangle(out, (0, h - 26), (10 + 10 * len(text), h), (0, 0, 0), -1)
    cv2.putText(out, text, (6, h - 8), FONT, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def crops(frame: np.ndarray, probs: np.ndarray, model, box: tuple[int, int, int, int], zoom: int = 3) -> np.ndarray:
    """One region of the frame, blended at opacity 0.5: nearest edges (dataset palette, as before) against
    smooth edges (contrast palette, now), each zoomed `zoom` times, side by side."""
    x, y, w, h = box
    class_map = argmax_classes(probs)
    panels = []
    for title, edges, palette in (("before: nearest, dataset palette", "nearest", "dataset"),
                                  ("after: smooth edges, contrast palette", "smooth", "contrast")):
        overlay = Overlay(model.classes, choose_palette(model.classes, model.palette_bgr, palette),
                          legend=False, hud=False, edges=edges)
        image = overlay.paint(frame, class_map, probs=probs)[y:y + h, x:x + w]
        panels.append(_label(cv2.resize(image, (w * zoom, h * zoom), interpolation=cv2.INTER_NEAREST), title))
    gap = np.full((h * zoom, 8, 3), 255, np.uint8)
    return np.hstack([panels[0], gap, panels[1]])


def views(frame: np.ndarray, probs: np.ndarray, model) -> np.ndarray:
    """The outlines view and the legend with shares, half size, side by side."""
    class_map = argmax_classes(probs)
    overlay = Overlay(model.classes, choose_palette(model.classes, model.palette_bgr), hud=False, shares=True)
    blend = overlay.paint(frame, class_map, probs=probs)
    overlay.view = "outlines"
    outlines = overlay.paint(frame, class_map, probs=probs)
    half = (frame.shape[1] // 2, frame.shape[0] // 2)
    small = [cv2.resize(i, half, interpolation=cv2.INTER_AREA) for i in (blend, outlines)]
    return np.hstack([_label(small[0], "blend + legend with shares"), np.full((half[1], 8, 3), 255, np.uint8),
                      _label(small[1], "outlines view")])


def costs(frames, probs, model) -> dict[str, float]:
    """Median CPU milliseconds per frame of each step, over the video's frames."""
    cv2.setNumThreads(1)
    size = (frames[0].shape[1], frames[0].shape[0])
    maps = [argmax_classes(p) for p in probs]
    full = [smooth_upsample(m, size, p) for m, p in zip(maps, probs)]
    palette = choose_palette(model.classes, model.palette_bgr)
    smoother = TemporalSmoother()
    steps = {
        "edges nearest (cv2.resize)": lambda i: cv2.resize(maps[i], size, interpolation=cv2.INTER_NEAREST),
        "edges smooth (probs)": lambda i: smooth_upsample(maps[i], size, probs[i]),
        "edges smooth (one-hot: no probs output)": lambda i: smooth_upsample(maps[i], size),
        "edges dense (every plane resized, argmax)": lambda i: dense_upsample(maps[i], size, probs[i]),
        "colours before: lookup at model size + resize": lambda i: cv2.resize(palette[maps[i]], size,
                                                                              interpolation=cv2.INTER_NEAREST),
        "colours now: LUT at frame size": lambda i: colorize(full[i], palette, size),
        "temporal smoothing 0.7 (average, argmax, cut check)": lambda i: argmax_classes(
            smoother.update(probs[i], frames[i])),
    }
    out = {}
    for name, step in steps.items():
        count = 20 if "dense" in name else len(frames)
        times = []
        for i in range(count):
            t = time.thread_time()
            step(i)
            times.append(time.thread_time() - t)
        out[name] = float(np.median(times) * 1e3)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(ROOT / "models" / "camvid_accurate.onnx"))
    p.add_argument("--video", default=str(ROOT / "videos" / "dashcam_highway.mp4"))
    p.add_argument("--smooth", type=float, default=0.7)
    p.add_argument("--frame", type=int, default=120, help="the frame for the edge crops and views")
    p.add_argument("--out", default=str(ROOT / "docs"))
    p.add_argument("--json", default=None, help="also the per-frame flicker as JSON")
    p.add_argument("--costs", action="store_true", help="also print CPU ms per frame of edges, colours, smoothing")
    args = p.parse_args(argv)
    model = open_model(choose_model(args.model), CPU)
    if model.scores_name is None:
        print(f"note: {args.model} has no probs output: smooth edges and smoothing use one-hot scores",
              file=sys.stderr)
    frames, probs = scores_of_video(model, Path(args.video))
    fps = cv2.VideoCapture(args.video).get(cv2.CAP_PROP_FPS) or 25.0
    series = {"--smooth 0": flicker_per_frame(frames, probs, 0.0),
              f"--smooth {args.smooth:g}": flicker_per_frame(frames, probs, args.smooth)}
    out = Path(args.out)
    figures = {
        "flicker_dashcam.png": plot(series, dict(zip(series, [(60, 60, 220), (200, 120, 0)])), fps),
        "edges_before_after.png": crops(frames[args.frame], probs[args.frame], model, (0, 255, 320, 120)),
        "views_outlines_shares.png": views(frames[args.frame], probs[args.frame], model),
    }
    for name, image in figures.items():
        write_atomic(out / name, lambda tmp, image=image: cv2.imwrite(str(tmp), image))
        print(f"wrote {out / name}")
    means = {k: float(np.mean([v for v in s if v is not None])) for k, s in series.items()}
    print("mean flicker: " + ", ".join(f"{k} {v * 100:.2f}%" for k, v in means.items())
          + f" ({(1 - means[list(means)[1]] / means[list(means)[0]]) * 100:.0f}% less)")
    if args.costs:
        for name, ms in costs(frames, probs, model).items():
            print(f"  {name:<55} {ms:6.2f} ms CPU per frame")
    if args.json:
        doc = {"model": Path(args.model).name, "video": Path(args.video).name, "frames": len(frames),
               "mean": means, "per_frame": series}
        write_atomic(Path(args.json), lambda tmp: tmp.write_text(json.dumps(doc, indent=1) + "\n"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
