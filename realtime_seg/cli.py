"""Options and checks shared by the commands: model presets, the demo video, --model/--device/--threads.

Each command's parser adds these with `add_model_options`, so they read and fail the same way.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from .errors import UsageError
from .runtime.engine import DEVICES

_PACKAGE = Path(__file__).resolve().parent
PRESETS = {"accurate": "camvid_accurate.onnx", "fast": "camvid_fast.onnx"}


def _shipped(folder: str, installed: str) -> Path:
    """The repository's folder, or its copy inside the package when installed with `pip install .`."""
    repo = _PACKAGE.parent / folder
    return repo if repo.is_dir() else _PACKAGE / installed


MODELS_DIR = _shipped("models", "presets")
DEMO_VIDEO = _shipped("videos", "demo") / "dashcam_highway.mp4"


def resolve_model(spec: str | None) -> Path:
    """A model path from --model: a file, a preset name (accurate, fast), or None for the default."""
    if spec is None:
        spec = os.environ.get("REALTIME_SEG_MODEL", "accurate")
    return MODELS_DIR / PRESETS[spec] if spec in PRESETS else Path(spec)


def add_model_options(p: argparse.ArgumentParser, model: bool = True,
                      threads_help: str = "onnxruntime threads (0: automatic)") -> None:
    """--model (unless the command declares its own), --device and --threads."""
    if model:
        p.add_argument("--model", help=f"ONNX model or preset ({', '.join(PRESETS)}); default: accurate")
    p.add_argument("--device", default="auto", choices=DEVICES, help="auto prefers CUDA when usable")
    p.add_argument("--threads", type=int, default=0, help=threads_help)


def check_opacity(value: float) -> None:
    """A usage error unless the mask opacity is between 0 and 1."""
    if not 0.0 <= value <= 1.0:
        raise UsageError(f"--opacity must be between 0 and 1, got {value:g}")


def check_at_least(option: str, value: int | None, low: int) -> None:
    """A usage error unless `value` (when given) is at least `low`."""
    if value is not None and value < low:
        raise UsageError(f"{option} must be {low} or more, got {value}")
