"""Options and checks shared by the commands: --model/--device/--threads/--precision (what they
name is resolved and opened by runtime/models.py), and how masks look (--opacity, --view,
--palette, --edges, --shares, --smooth: one `runtime/look.py` Look).

Each command's parser adds these with `add_model_options` and `add_look_options`, so they read and fail the same way.
"""
from __future__ import annotations

import argparse

from .runtime.engine import DEVICES
from .runtime.look import Look
from .runtime.models import PRESETS
from .runtime.palettes import DEFAULT_PALETTE, PALETTES
from .runtime.precision import CHOICES as PRECISION_CHOICES
from .runtime.render import EDGES, VIEWS
from .runtime.temporal import DEFAULT_SMOOTH


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


def add_look_options(p: argparse.ArgumentParser) -> None:
    """--opacity, --view, --palette, --edges, --shares and --smooth: how masks look (viewer and batch)."""
    p.add_argument("--opacity", type=float, default=0.5, help="mask opacity in the blend, 0-1")
    p.add_argument("--view", default=VIEWS[0], choices=VIEWS, help="what is drawn (default blend)")
    p.add_argument("--palette", default=DEFAULT_PALETTE, choices=PALETTES,
                   help="contrast: distinct hue and lightness per class (default); dataset: the model's colours")
    p.add_argument("--edges", default=EDGES[0], choices=EDGES,
                   help="smooth: class boundaries from bilinearly upsampled scores (default); nearest: blocks")
    p.add_argument("--shares", action="store_true", help="the legend shows each class's share of the frame")
    p.add_argument("--smooth", type=float, default=DEFAULT_SMOOTH, metavar="S",
                   help=f"temporal smoothing of class scores, 0 (off) to <1 (default {DEFAULT_SMOOTH}); "
                        "restarts at scene cuts and reconnects")


def look_options(args: argparse.Namespace, hud: bool) -> Look:
    """The Look the options of `add_look_options` and --no-legend ask for (a UsageError when they are
    out of range); `hud`: whether the command draws its HUD."""
    return Look(args.palette, args.edges, args.smooth, args.opacity, args.view, not args.no_legend,
                args.shares, hud)
