"""Options and checks shared by the commands: model presets, --model/--device/--threads/
--precision, and how masks look (--palette, --edges, --shares, --smooth).

Each command's parser adds these with `add_model_options`, so they read and fail the same way.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from .errors import UsageError, UserError
from .paths import MODELS_DIR
from .runtime.compare import LAYOUTS, Comparison
from .runtime.engine import DEVICES, SegModel
from .runtime.palettes import DEFAULT_PALETTE, PALETTES, choose_palette
from .runtime.precision import CHOICES as PRECISION_CHOICES
from .runtime.precision import open_model
from .runtime.render import EDGES
from .runtime.temporal import DEFAULT_SMOOTH, TemporalSmoother

# each preset is a family: NAME.onnx (fp32) and, where they pay off, NAME.int8.onnx and NAME.fp16.onnx
PRESETS = {"accurate": "camvid_accurate.onnx", "fast": "camvid_fast.onnx"}


def model_spec(spec: str | None) -> str:
    """--model as given, or the default preset (REALTIME_SEG_MODEL, else accurate)."""
    return spec if spec is not None else os.environ.get("REALTIME_SEG_MODEL", "accurate")


def is_preset(spec: str | None) -> bool:
    """True when --model names a preset family rather than a file."""
    return model_spec(spec) in PRESETS


def resolve_model(spec: str | None) -> Path:
    """A model path from --model: a file, a preset name (its fp32 file), or None for the default."""
    spec = model_spec(spec)
    return MODELS_DIR / PRESETS[spec] if spec in PRESETS else Path(spec)


def load_selected(spec: str | None, precision: str = "auto", device: str = "auto", threads: int = 0,
                  spinning: bool = False) -> SegModel:
    """The model --model names: a preset's variant chosen by --precision, or the one file given."""
    spec = model_spec(spec)
    path = resolve_model(spec)
    if spec not in PRESETS and not path.exists():
        raise UserError(f"model {spec} not found: neither a preset ({', '.join(PRESETS)}) nor a file; pass "
                        f"--model {'|'.join(PRESETS)} or the path of an exported .onnx file")
    return open_model(path, precision, spec in PRESETS, device, threads, spinning)


def add_model_options(p: argparse.ArgumentParser, model: bool = True,
                      threads_help: str = "onnxruntime threads (0: automatic)", several: bool = False) -> None:
    """--model (unless the command declares its own), --device, --threads and --precision (`several`: a list)."""
    if model:
        p.add_argument("--model", help=f"ONNX model or preset ({', '.join(PRESETS)}); default: accurate")
    p.add_argument("--device", default="auto", choices=DEVICES, help="auto prefers CUDA when usable")
    p.add_argument("--threads", type=int, default=0, help=threads_help)
    add_precision_option(p, several)


def add_precision_option(p: argparse.ArgumentParser, several: bool = False) -> None:
    """--precision: which variant of a preset runs (auto: int8 on a CPU, fp16 on CUDA, where they pay off)."""
    p.add_argument("--precision", choices=PRECISION_CHOICES, default=["auto"] if several else "auto",
                   nargs="+" if several else None,
                   help="preset variant: auto (int8 on a CPU, fp16 on CUDA, where present and faster), "
                        "fp32, fp16 or int8" + ("; several: one row each" if several else ""))


def check_opacity(value: float) -> None:
    """A usage error unless the mask opacity is between 0 and 1."""
    if not 0.0 <= value <= 1.0:
        raise UsageError(f"--opacity must be between 0 and 1, got {value:g}")


def add_look_options(p: argparse.ArgumentParser) -> None:
    """--palette, --edges, --shares and --smooth: how masks look (viewer and batch)."""
    p.add_argument("--palette", default=DEFAULT_PALETTE, choices=PALETTES,
                   help="contrast: distinct hue and lightness per class (default); dataset: the model's colours")
    p.add_argument("--edges", default=EDGES[0], choices=EDGES,
                   help="smooth: class boundaries from bilinearly upsampled scores (default); nearest: blocks")
    p.add_argument("--shares", action="store_true", help="the legend shows each class's share of the frame")
    p.add_argument("--smooth", type=float, default=DEFAULT_SMOOTH, metavar="S",
                   help=f"temporal smoothing of class scores, 0 (off) to <1 (default {DEFAULT_SMOOTH}); "
                        "restarts at scene cuts and reconnects")


def check_smooth(value: float) -> None:
    """A usage error unless --smooth is in [0, 1)."""
    if not 0.0 <= value < 1.0:
        raise UsageError(f"--smooth must be at least 0 (off) and below 1, got {value:g}")


def smoother(strength: float) -> TemporalSmoother | None:
    """The temporal smoother a --smooth of `strength` asks for; None when off (0)."""
    return TemporalSmoother(strength) if strength > 0 else None


def palette(args: argparse.Namespace, model) -> np.ndarray:
    """The BGR palette --palette names, for `model`'s classes."""
    return choose_palette(model.classes, model.palette_bgr, args.palette)


def add_compare_options(p: argparse.ArgumentParser) -> None:
    """--compare MODEL[:PRECISION] and --compare-view: a second model on the same frames (viewer, batch)."""
    p.add_argument("--compare", metavar="MODEL[:PRECISION]",
                   help="run a second model on the same frames and show both, side by side, with their "
                        "agreement: a preset or .onnx, optionally with its precision (fast, fast:fp32, "
                        "models/mine.onnx; :fp32 = --model's own at fp32); without :PRECISION, --precision's")
    p.add_argument("--compare-view", default=LAYOUTS[0], choices=LAYOUTS,
                   help="side: both masks side by side (default); diff: the frame in grey where the two "
                        "agree, coloured by the compared model's class where they differ (the viewer's key c switches)")


def add_serve_option(p: argparse.ArgumentParser) -> None:
    """--serve [HOST:]PORT: the annotated frames to browsers, as MJPEG (runtime/serve.py)."""
    p.add_argument("--serve", metavar="[HOST:]PORT",
                   help="also stream the annotated frames to browsers at http://HOST:PORT/ (MJPEG; window or "
                        "headless); HOST defaults to 127.0.0.1, this machine only: name another (e.g. 0.0.0.0) "
                        "to let others watch (unauthenticated)")


def split_compare(spec: str, main: str | None) -> tuple[str, str | None]:
    """--compare MODEL[:PRECISION] -> (model, precision or None); an empty MODEL is --model's."""
    head, sep, tail = spec.rpartition(":")
    if sep and tail in PRECISION_CHOICES:
        return head or model_spec(main), tail
    if sep and (head in PRESETS or not head):
        raise UsageError(f"--compare {spec}: unknown precision {tail!r}; allowed: {', '.join(PRECISION_CHOICES)}")
    return spec, None


def model_name(spec: str | None) -> str:
    """How summaries and the HUD name a model: the preset, or the file's name."""
    spec = model_spec(spec)
    return spec if spec in PRESETS else Path(spec).name


def load_compared(spec: str, main: str | None, precision: str, device: str, threads: int) -> tuple[SegModel, str]:
    """The model --compare names, loaded like --model's (`precision`: --precision's), and its name."""
    spec, own = split_compare(spec, main)
    return load_selected(spec, own or precision, device, threads), model_name(spec)


def comparison(args: argparse.Namespace, main: SegModel, threads: int) -> Comparison | None:
    """The --compare model, loaded like --model (same device and threads), ready to paint; None without it."""
    if args.compare is None:
        return None
    other, name = load_compared(args.compare, args.model, args.precision, args.device, threads)
    return Comparison(main, other, (model_name(args.model), name), args.compare_view, smoother(args.smooth))
