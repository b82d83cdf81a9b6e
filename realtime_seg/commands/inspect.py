"""Inspect an ONNX model: its inputs, outputs and metadata, what the tool infers about a model from
another framework, what is missing, and the `import` line that would complete it.

usage: python -m realtime_seg inspect MODEL.onnx [--input-size HxW] [--output TENSOR]
A model of a dynamic size is probed at 256x256 unless --input-size says otherwise.
"""
from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

from ..contract import REQUIRED_METADATA, keep_aspect_size
from ..datasets.classes import CLASS_SETS
from ..errors import ArgumentParser, UsageError
from ..runtime.engine import file_aspect, output_stride
from ..runtime.foreign import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Interface,
    describe_output,
    graph_tensors,
    load_proto,
    open_session,
    parse_size,
    read_interface,
)
from ..system import check_readable


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m realtime_seg inspect", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL.onnx")
    p.add_argument("--input-size", metavar="HxW", help="probe a dynamic-size model at this size (default 256x256)")
    p.add_argument("--output", metavar="TENSOR", help="the segmentation output, when there are several")
    return p


def _metadata(proto) -> dict[str, str]:
    return {p.key: p.value for p in proto.metadata_props}


def _suggest_classes(n: int | None) -> str:
    same = [name for name, table in CLASS_SETS.items() if table.num_classes == n]
    return same[0] if same else "NAMES.txt"


def import_line(path: Path, iface: Interface) -> list[str]:
    """The `import` command line that would complete this model (ImageNet's mean and std for float input:
    most PyTorch models are trained with them; the flags' default is [0, 1])."""
    line = ["python", "-m", "realtime_seg", "import", str(path), "-o", f"{path.stem}_rs.onnx",
            "--classes", _suggest_classes(iface.classes)]
    if iface.input.type != "uint8":
        line += ["--mean", ",".join(f"{v:g}" for v in IMAGENET_MEAN), "--std", ",".join(f"{v:g}" for v in IMAGENET_STD)]
    if iface.size is None:
        line += ["--input-size", f"{iface.probed[0]}x{iface.probed[1]}"]
    if len(iface.candidates) > 1:
        line += ["--output", iface.output or iface.candidates[0]]
    return line


def aspect_line(path: Path, proto, meta: dict[str, str]) -> str:
    """What a realtime_seg model does with a frame of another aspect than its trained size, in words."""
    h, w = json.loads(meta["input_size"])
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    any_size = len(dims) == 4 and not any(d.HasField("dim_value") for d in dims[1:3])
    if not any_size:
        return (f"another aspect: squash: its graph takes {h}x{w} only, so every frame is resized whole to it "
                f"(export it again to keep a frame's aspect)")
    wide = "x".join(map(str, keep_aspect_size((540, 960), (h, w))))
    if file_aspect(path, meta, any_size) == "keep":
        return (f"another aspect: keep: a frame runs at height {h} and its own aspect, the width a multiple of "
                f"32 (a 16:9 frame at {wide}); --aspect squash resizes it whole to {h}x{w}")
    return (f"another aspect: squash: a frame is resized whole to {h}x{w}; its graph takes any size: "
            f"--aspect keep runs it at its own aspect (a 16:9 frame at {wide})")


def report(path: Path, proto, iface: Interface) -> list[str]:
    """The lines inspect prints about a foreign model: inferred, missing, and how to import it."""
    lay = {"NCHW": "NCHW (channels first: most PyTorch and Paddle exports)", "NHWC": "NHWC (channels last)"}
    size = (f"fixed {iface.size[0]}x{iface.size[1]}" if iface.size else
            f"dynamic (probed at {iface.probed[0]}x{iface.probed[1]}): pass --input-size HxW")
    lines = ["inferred:", f"  layout   {lay[iface.layout]}", f"  input    {iface.input.type}"
             + ("" if iface.input.type == "uint8" else ", normalised as it was trained: --mean, --std"),
             f"  size     {size}", f"  batch    {iface.batch or 'any'}", f"  output   {describe_output(iface)}",
             f"  classes  {iface.classes if iface.classes is not None else 'unknown (a label map): as many as --classes names'}"]
    if not iface.candidates:
        return lines[:-2] + ["  output   none is an image of classes",
                             "cannot be imported: not a segmentation model (a classifier or a detector?)"]
    if len(iface.candidates) > 1:
        lines.append(f"  several outputs could be the segmentation: {', '.join(iface.candidates)}; the first is "
                     f"described (--output NAME picks one)")
    missing = ["class names (--classes)"] + (["its input size (--input-size)"] if iface.size is None else [])
    if iface.input.type != "uint8":
        missing.append("its normalisation (--mean, --std; default [0, 1]) and channel order (--bgr; default RGB)")
    lines += ["missing: " + "; ".join(missing), "import it with (check the mean, std and channel order it was trained with):",
              "  " + shlex.join(import_line(path, iface))]
    return lines


def output_line(path: Path, meta: dict[str, str]) -> str:
    """Where a realtime_seg model's outputs are, against its input, in words."""
    stride = output_stride(path, meta)
    if stride == 1:
        return "outputs: at the input's size"
    return (f"outputs: at 1/{stride} of the input's height and width (the head's resolution); the runtime brings "
            f"them to the frame with smooth edges from `probs`")


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    path = Path(args.model)
    check_readable(path, "model")
    proto = load_proto(path)
    inputs, outputs = graph_tensors(proto)
    meta = _metadata(proto)
    opset = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)
    producer = " ".join(filter(None, (proto.producer_name, proto.producer_version))) or "unknown producer"
    print(f"model {path} (opset {opset}, {producer})")
    print("inputs:", *(f"  {t}" for t in inputs), sep="\n")
    print("outputs:", *(f"  {t}" for t in outputs), sep="\n")
    print("metadata:" + ("" if meta else " none"), *(f"  {k}: {v[:100]}" for k, v in meta.items()), sep="\n")
    if set(REQUIRED_METADATA) <= meta.keys():
        classes = json.loads(meta["classes"])
        print(f"a realtime_seg model: it describes itself ({len(classes)} classes: {', '.join(classes)}); "
              f"run it with --model {path}")
        print(aspect_line(path, proto, meta))
        print(output_line(path, meta))
        return 0
    size = parse_size(args.input_size) if args.input_size else None
    try:
        session = open_session(path, threads=0)
    except Exception as e:  # onnxruntime's own error types
        raise UsageError(f"onnxruntime cannot load {path} ({str(e).splitlines()[0][:160]})") from None
    iface = read_interface(path, proto, session, size, args.output, strict=False)
    print(*report(path, proto, iface), sep="\n")
    return 0
