"""Precision variants of one model and which to run: M.onnx (fp32), M.int8.onnx, M.fp16.onnx.

A preset (`--model accurate`) is such a family in models/; a path to M.onnx runs that file unless
`--precision` names another member of its family beside it.

`--precision auto` runs int8 on a CPU and fp16 on CUDA where that variant exists and pays off;
fp32 otherwise: int8 pays on CPUs, more with an int8 dot-product instruction (VNNI), and fp16 only
on GPUs (onnxruntime's CPU has few fp16 kernels). The speed-ups: docs/BENCHMARKS.md.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from ..contract import INT8_CHECK, PRECISIONS
from ..errors import UserError
from ..system import cpu_int8_dot
from .engine import CUDA, SegModel, load_model, providers

log = logging.getLogger(__name__)

CHOICES = ("auto", *PRECISIONS)
_ORDER = {True: ("fp16", "fp32", "int8"), False: ("int8", "fp32", "fp16")}  # on CUDA / on a CPU


def variant_path(base: Path, precision: str) -> Path:
    """M.onnx for fp32, M.int8.onnx and M.fp16.onnx beside it."""
    if precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r}; allowed: {', '.join(CHOICES)}")
    return base if precision == "fp32" else base.with_name(f"{base.stem}.{precision}.onnx")


def variants(base: Path) -> dict[str, Path]:
    """The precisions of a model family that exist on disk, with their files."""
    found = {p: variant_path(base, p) for p in PRECISIONS}
    return {p: path for p, path in found.items() if path.is_file()}


def pays_off(model: SegModel) -> bool:
    """False only when export measured this int8 model slower than fp32 on a CPU of the same kind."""
    check = json.loads(model.metadata.get(INT8_CHECK) or "{}")
    ratio = check.get("speed_vs_fp32")
    same_kind = check.get("cpu_int8_dot") == cpu_int8_dot()
    return ratio is None or ratio >= 1.0 or not same_kind


def open_family(base: Path, precision: str = "auto", device: str = "auto", threads: int = 0,
                spinning: bool = False) -> SegModel:
    """Load the variant of preset `base` that `precision` asks for (auto: the best for the device)."""
    found = variants(base)
    if precision != "auto":
        if precision not in found:
            raise UserError(f"no {precision} variant of {base.stem} ({variant_path(base, precision).name}); "
                            f"available: {', '.join(found) or 'none'}; export it with scripts/export_presets.py")
        return load_model(found[precision], device, threads, spinning)
    if not found:
        raise UserError(f"model {base} not found; pass --model PATH to an exported .onnx file")
    on_cuda = providers(device)[0] == CUDA
    for choice in [p for p in _ORDER[on_cuda] if p in found]:
        model = load_model(found[choice], device, threads, spinning)
        if choice == "fp16" and model.provider != CUDA:
            continue  # CUDA failed to load: fp16 on a CPU is slower than fp32
        if choice == "int8" and not pays_off(model):
            log.info("%s: int8 measured slower than fp32 on this kind of CPU; running fp32", base.stem)
            continue
        return model
    return load_model(found["fp32"] if "fp32" in found else next(iter(found.values())), device, threads, spinning)


def family_base(path: Path) -> Path:
    """M.onnx for any member of M's family (M.onnx, M.int8.onnx, M.fp16.onnx)."""
    for precision in PRECISIONS[1:]:
        if path.name.endswith(f".{precision}.onnx"):
            return path.with_name(path.name[: -len(f".{precision}.onnx")] + ".onnx")
    return path


def open_model(path: Path, precision: str = "auto", preset: bool = False, device: str = "auto",
               threads: int = 0, spinning: bool = False) -> SegModel:
    """A preset's best variant; a file as given (auto), or the `precision` variant of its family beside it."""
    if preset:
        return open_family(path, precision, device, threads, spinning)
    if precision == "auto":
        return load_model(path, device, threads, spinning)
    wanted = variant_path(family_base(path), precision)
    if wanted != path and not wanted.is_file():
        model = load_model(path, device, threads, spinning)  # the file given may be that precision itself
        if model.precision == precision:
            return model
        raise UserError(f"model {path} is {model.precision} and there is no {wanted.name} beside it; "
                        f"export it (python -m realtime_seg export ... --{precision}) or pass --precision auto")
    model = load_model(wanted, device, threads, spinning)
    if model.precision != precision:
        raise UserError(f"model {wanted} is {model.precision}, not {precision} (its metadata says so); "
                        f"re-export it or pass --precision auto")
    return model
