"""Options and checks shared by the commands: --model/--device/--threads/--precision (what they
name is resolved and opened by runtime/models.py), and how masks look (--palette, --edges,
--shares, --smooth).

Each command's parser adds these with `add_model_options`, so they read and fail the same way.
"""
from __future__ import annotations

import argparse

import numpy as np

from .errors import UsageError
from .runtime.engine import DEVICES
from .runtime.models import PRESETS
from .runtime.palettes import DEFAULT_PALETTE, PALETTES, choose_palette
from .runtime.precision import CHOICES as PRECISION_CHOICES
from .runtime.render import EDGES
from .runtime.temporal import DEFAULT_SMOOTH, TemporalSmoother

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
