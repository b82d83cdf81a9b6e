"""Where int8 loses: only the weights of the convolutions int8 quantizes are rounded, in an fp32 graph.

usage: python -m scripts.int8_weight_rounding models/camvid_accurate.onnx [--data ../shared/data/camvid]

Prints val mIoU of the fp32 graph and of copies whose quantized convolutions (those export's int8
keeps int8: not the stem, decoder or head) have 7-bit or 8-bit per-channel weights, and 7-bit
weights with bias correction; activations stay float. The table in docs/EXPORT.md ("Bias
correction") comes from it.
"""
import argparse
import copy
import json
import sys
import tempfile
from pathlib import Path

import onnx
from onnx import numpy_helper

from realtime_seg.datasets.metrics import summarize
from realtime_seg.datasets.readers import load_split
from realtime_seg.export.bias_correction import (FULL_RANGE, REDUCED_RANGE, correct_biases,
                                                  quantized_weights)
from realtime_seg.export.quantize import Int8Config, calibration_frames, prepared, quantized_convs
from realtime_seg.runtime.models import RunOptions, choose_model, open_model
from realtime_seg.runtime.scoring import evaluate

CPU = RunOptions("cpu")

VARIANTS = {"fp32": None, "7-bit weights": REDUCED_RANGE, "8-bit weights": FULL_RANGE,
            "7-bit weights, bias-corrected": REDUCED_RANGE}


def rounded(model, convs: list[str], qrange) -> onnx.ModelProto:
    """A copy of `model` whose named convolutions' weights are what int8 would store."""
    out = copy.deepcopy(model)
    inits = {i.name: i for i in out.graph.initializer}
    for node in out.graph.node:
        if node.name in convs:
            w = inits[node.input[1]]
            w.CopyFrom(numpy_helper.from_array(quantized_weights(numpy_helper.to_array(w), qrange), w.name))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path, help="an fp32 export")
    p.add_argument("--data", default="../shared/data/camvid")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = onnx.load(str(prepared(onnx.load(str(args.model)), Path(tmp))))  # as quantize() sees it
        convs = quantized_convs(model.graph)
        size = tuple(json.loads({m.key: m.value for m in model.metadata_props}["input_size"]))
        frames = calibration_frames(Int8Config(args.data), size)
        fmt, val = load_split(args.data, "val")
        print(f"{len(convs)} of {sum(n.op_type == 'Conv' for n in model.graph.node)} convolutions quantized")
        for name, qrange in VARIANTS.items():
            variant = model
            if "bias-corrected" in name:
                variant, _ = correct_biases(model, convs, frames, qrange)
            if qrange is not None:
                variant = rounded(variant, convs, qrange)
            path = Path(tmp) / "variant.onnx"
            onnx.save(variant, path)
            miou = summarize(evaluate(open_model(choose_model(str(path)), CPU), val, fmt))["miou"]
            print(f"| {name} | {miou * 100:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
