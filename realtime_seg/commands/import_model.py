"""Import a segmentation ONNX from another framework: write a self-describing copy that every
command runs like a preset (docs/FOREIGN_MODELS.md).

usage: python -m realtime_seg import FOREIGN.onnx -o OUT.onnx --classes cityscapes|camvid|carla13|carla23|FILE
           [--mean R,G,B] [--std R,G,B] [--bgr] [--input-size HxW] [--output TENSOR]
The model sees (pixel - mean) / std, in 0-255 units (default mean 0,0,0 and std 255,255,255: input in
[0, 1]). The copy takes uint8 RGB and gives `class_map` (and `probs`), with thin adapters around the
original graph; before it is written its class map on a real frame is checked against the original's,
run as the flags say. `python -m realtime_seg inspect FOREIGN.onnx` shows what a model needs.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..cli import add_foreign_options, foreign_spec
from ..errors import ArgumentParser, UsageError
from ..runtime.adapter import adapt
from ..runtime.foreign import describe_output
from ..system import check_output_file, check_readable, write_atomic


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m realtime_seg import", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="FOREIGN.onnx", help="a segmentation model exported by another framework")
    p.add_argument("-o", dest="out", required=True, metavar="OUT.onnx", help="the self-describing copy to write")
    add_foreign_options(p)
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.classes is None:
        raise UsageError("import needs the class names: pass --classes (a class set or a file); "
                         "`python -m realtime_seg inspect MODEL` shows how many the model has")
    spec = foreign_spec(args)
    source, out = Path(args.model), Path(args.out)
    if out.suffix.lower() != ".onnx":
        raise UsageError(f"-o {out}: name the copy NAME.onnx (the runtime finds its variants by that name)")
    check_readable(source, "model")
    check_output_file(out, "-o", {"model": source})
    data, iface, agreement = adapt(source, spec)
    write_atomic(out, lambda tmp: tmp.write_bytes(data), hint="choose a writable -o path")
    size = iface.size or spec.input_size
    normalised = "uint8 pixels as they are" if iface.input.type == "uint8" else (
        f"(pixel - {_triple(spec.mean)}) / {_triple(spec.std)}")
    print(f"imported {source.name}: {iface.layout} {iface.input.type} input at {size[0]}x{size[1]}, "
          f"{'BGR' if spec.bgr else 'RGB'}, {normalised}; output {describe_output(iface)}; "
          f"{spec.classes.num_classes} classes ({spec.classes.name})")
    print(f"wrote {out}: its class map of a real frame matches the original's on {agreement:.2%} of the pixels; "
          f"run it with --model {out}")
    return 0


def _triple(values) -> str:
    return ",".join(f"{v:g}" for v in values)
