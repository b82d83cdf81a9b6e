"""Options and checks shared by the commands: --model/--precision/--aspect (resolved once into a
ModelChoice, `model_choice`; --compare MODEL[:PRECISION] into another, `compare_choice`) and
--device/--threads (one RunOptions, `run_options`), all opened by runtime/models.py's `open_model`;
how masks look (--opacity, --view, --palette, --edges, --shares, --smooth: one `runtime/look.py`
Look); and --serve (with its token and cap on viewers).

Each command's parser adds these with `add_model_options`, `add_look_options`, `add_compare_options`
and `add_serve_option`, so they read and fail the same way.
"""
from __future__ import annotations

import argparse
from dataclasses import replace

from .contract import ASPECTS
from .datasets.classes import CLASS_SETS, read_class_set
from .errors import UsageError, check_at_least
from .runtime.compare import LAYOUTS, Comparison
from .runtime.engine import DEVICES
from .runtime.foreign import ForeignSpec, parse_size, parse_triple
from .runtime.look import Look
from .runtime.models import PRESETS, ModelChoice, Opened, RunOptions, choose_model, open_model
from .runtime.palettes import DEFAULT_PALETTE, PALETTES
from .runtime.precision import CHOICES as PRECISION_CHOICES
from .runtime.render import EDGES, VIEWS
from .runtime.serve import MAX_CLIENTS, check_token, parse_address
from .runtime.temporal import DEFAULT_SMOOTH, smoother


def add_model_options(p: argparse.ArgumentParser, model: bool = True,
                      threads_help: str = "onnxruntime threads (0: automatic)", several: bool = False) -> None:
    """--model (unless the command declares its own), --device, --threads, --precision and --aspect
    (`several`: lists), and the flags that describe a model from another framework (`add_foreign_options`)."""
    if model:
        p.add_argument("--model", help=f"ONNX model or preset ({', '.join(PRESETS)}); default: accurate")
    p.add_argument("--device", default="auto", choices=DEVICES, help="auto prefers CUDA when usable")
    p.add_argument("--threads", type=int, default=0, help=threads_help)
    add_precision_option(p, several)
    add_aspect_option(p, several)
    add_foreign_options(p.add_argument_group("a model from another framework (docs/FOREIGN_MODELS.md)"),
                        output_flag="--model-output")


def add_foreign_options(p, output_flag: str = "--output") -> None:
    """--classes, --mean, --std, --bgr, --input-size and the output's name: what a foreign ONNX model lacks
    (`import` writes them into a copy; the viewer, batch, eval and bench import it in memory)."""
    p.add_argument("--classes", metavar="NAMES",
                   help=f"class names: {', '.join(CLASS_SETS)}, or a file (JSON, or one name a line, "
                        f"optionally followed by R,G,B)")
    p.add_argument("--mean", metavar="R,G,B", help="the model sees (pixel - mean) / std, in 0-255 units "
                   "(ImageNet: 123.675,116.28,103.53); default 0,0,0")
    p.add_argument("--std", metavar="R,G,B", help="(ImageNet: 58.395,57.12,57.375); default 255,255,255: input in [0, 1]")
    p.add_argument("--bgr", action="store_true", help="the model takes BGR channels (default RGB)")
    p.add_argument("--input-size", metavar="HxW", help="the input size of a model that takes any size, e.g. 512x1024")
    p.add_argument(output_flag, dest="foreign_output", metavar="TENSOR",
                   help="which output is the segmentation, when the model has several")


def foreign_spec(args: argparse.Namespace) -> ForeignSpec | None:
    """The ForeignSpec the flags of `add_foreign_options` give (None when none is given)."""
    given = [args.mean, args.std, args.input_size, args.foreign_output]
    if args.classes is None:
        if any(v is not None for v in given) or args.bgr:
            raise UsageError("--mean, --std, --bgr, --input-size and the output's name describe a model from another "
                             "framework: pass its class names with --classes too")
        return None
    try:
        classes = read_class_set(args.classes)
    except ValueError as e:
        raise UsageError(str(e)) from None
    return ForeignSpec(classes, parse_triple("--mean", args.mean) if args.mean else (0.0, 0.0, 0.0),
                       parse_triple("--std", args.std, positive=True) if args.std else (255.0, 255.0, 255.0),
                       args.bgr, parse_size(args.input_size) if args.input_size else None, args.foreign_output,
                       args.mean is not None or args.std is not None)


def model_choice(args: argparse.Namespace) -> ModelChoice:
    """--model, --precision, --aspect and the foreign-model flags, resolved once."""
    return choose_model(args.model, args.precision, foreign_spec(args), args.aspect)


def run_options(args: argparse.Namespace) -> RunOptions:
    """--device and --threads as the one RunOptions every model of the command opens with."""
    return RunOptions(args.device, args.threads)


def add_precision_option(p: argparse.ArgumentParser, several: bool = False) -> None:
    """--precision: which variant of a preset runs (auto: int8 on a CPU, fp16 on CUDA, where they pay off)."""
    p.add_argument("--precision", choices=PRECISION_CHOICES, default=["auto"] if several else "auto",
                   nargs="+" if several else None,
                   help="preset variant: auto (int8 on a CPU, fp16 on CUDA, where present and faster), "
                        "fp32, fp16 or int8" + ("; several: one row each" if several else ""))


def add_aspect_option(p: argparse.ArgumentParser, several: bool = False) -> None:
    """--aspect keep|squash: what a frame of another aspect than the model's trained size gets."""
    p.add_argument("--aspect", choices=ASPECTS, nargs="+" if several else None,
                   help="a frame of another aspect than the model's (a 16:9 dash-cam, KITTI's 3.3:1): keep: the "
                        "model's height, the width from the frame (multiples of 32); squash: resized whole to "
                        "the model's size. Default: the model's own (`inspect` says which; a model exported "
                        "before issue 35 takes one size and squashes)" + ("; several: one row each" if several else ""))


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
                        "to let others watch, with the token in the URL printed at the start (plain HTTP)")
    p.add_argument("--serve-token", metavar="TOKEN",
                   help="the token --serve asks for (16+ letters, digits or -._~) instead of a random one; "
                        "also asked on 127.0.0.1 when given")
    p.add_argument("--serve-max-clients", type=int, default=MAX_CLIENTS, metavar="N",
                   help=f"browsers that may watch at once (default {MAX_CLIENTS}); one more is answered 503")


def check_serve_options(args: argparse.Namespace) -> None:
    """Usage errors in --serve, --serve-token and --serve-max-clients, before any work."""
    if args.serve is not None:
        parse_address(args.serve)
    elif args.serve_token is not None:
        raise UsageError("--serve-token is the token of --serve; add --serve [HOST:]PORT")
    check_token(args.serve_token)
    check_at_least("--serve-max-clients", args.serve_max_clients, 1)


def split_compare(spec: str, main: str) -> tuple[str, str | None]:
    """--compare MODEL[:PRECISION] -> (model, precision or None); an empty MODEL is --model's (`main`)."""
    head, sep, tail = spec.rpartition(":")
    if sep and tail in PRECISION_CHOICES:
        return head or main, tail
    if sep and (head in PRESETS or not head):
        raise UsageError(f"--compare {spec}: unknown precision {tail!r}; allowed: {', '.join(PRECISION_CHOICES)}")
    return spec, None


def compare_choice(args: argparse.Namespace, main: ModelChoice) -> ModelChoice | None:
    """The model --compare names, resolved like --model: its own precision, else `main`'s; `main`'s
    aspect (so both masks cover the same pixels). None without --compare."""
    if args.compare is None:
        return None
    spec, own = split_compare(args.compare, main.spec)
    return choose_model(spec, own or main.precision, aspect=main.aspect)


def comparison(args: argparse.Namespace, main: Opened, other: ModelChoice | None,
               options: RunOptions) -> Comparison | None:
    """The --compare model opened like --model (same device, the threads of `main`'s plan), ready to
    paint; None without it."""
    if other is None:
        return None
    model = open_model(other, replace(options, threads=main.plan.threads))
    return Comparison(main.model, model, (main.name, other.name), args.compare_view, smoother(args.smooth))
