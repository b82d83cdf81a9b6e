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
from .engine import CUDA, SegModel

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


def family_base(path: Path) -> Path:
    """M.onnx for any member of M's family (M.onnx, M.int8.onnx, M.fp16.onnx)."""
    for precision in PRECISIONS[1:]:
        if path.name.endswith(f".{precision}.onnx"):
            return path.with_name(path.name[: -len(f".{precision}.onnx")] + ".onnx")
    return path


def candidates(path: Path, precision: str, preset: bool, on_cuda: bool) -> list[Path]:
    """The files to try for `precision`, best first: a preset's variants (auto: in the device's order,
    int8 first on a CPU, fp16 first on CUDA); a file as given (auto), or its family's `precision` file
    (the file itself when that is missing: it may be that precision)."""
    base = family_base(path)
    if preset:
        found = variants(base)
        if precision == "auto":
            if not found:
                raise UserError(f"model {base} not found; pass --model PATH to an exported .onnx file")
            return [found[p] for p in _ORDER[on_cuda] if p in found]
        if precision not in found:
            raise UserError(f"no {precision} variant of {base.stem} ({variant_path(base, precision).name}); "
                            f"available: {', '.join(found) or 'none'}; export it with "
                            f"`python -m scripts.export_presets`")
        return [found[precision]]
    if precision == "auto":
        return [path]
    wanted = variant_path(base, precision)
    return [wanted if wanted == path or wanted.is_file() else path]


def suits(model: SegModel, precision: str, preset: bool) -> bool:
    """Whether the file opened serves `precision`. auto on a preset: fp16 only on CUDA (fp16 on a CPU is
    slower than fp32), int8 only where it pays off; auto on a file: as given. A named precision the
    file's metadata contradicts is a UserError."""
    if precision == "auto":
        if not preset:
            return True
        if model.precision == "fp16" and model.provider != CUDA:
            return False
        if model.precision == "int8" and not pays_off(model):
            log.info("%s: int8 measured slower than fp32 on this kind of CPU; running fp32", model.path.stem)
            return False
        return True
    if model.precision == precision:
        return True
    wanted = variant_path(family_base(model.path), precision)
    if wanted != model.path:
        raise UserError(f"model {model.path} is {model.precision} and there is no {wanted.name} beside it; "
                        f"export it (python -m realtime_seg export ... --{precision}) or pass --precision auto")
    raise UserError(f"model {wanted} is {model.precision}, not {precision} (its metadata says so); "
                    f"re-export it or pass --precision auto")
