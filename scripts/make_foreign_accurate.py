"""Write the shipped `accurate` model behind a foreign, PyTorch-style interface: float NCHW input
normalised with ImageNet's mean and std, NCHW logits out (optionally at half resolution), no metadata,
a batch fixed at 1. What docs/FOREIGN_MODELS.md measures `import` and `eval` on.

usage: python -m scripts.make_foreign_accurate OUT_DIR
writes OUT_DIR/accurate_nchw.onnx and OUT_DIR/accurate_nchw_half.onnx; import them with
    python -m realtime_seg import OUT_DIR/accurate_nchw.onnx -o OUT_DIR/accurate_imported.onnx --classes camvid \
        --mean 123.675,116.28,103.53 --std 58.395,57.12,57.375
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parent.parent
ACCURATE = ROOT / "models" / "camvid_accurate.onnx"
LOGITS_NCHW = "lite0_unet_1/logit_adjustment_1/sub:0"  # (N, 11, 352, 480), before the export's own heads
MEAN, STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)


def foreign_accurate(out: Path, half: bool = False) -> Path:
    proto = onnx.load(str(ACCURATE))
    g = proto.graph
    cast = next(n for n in g.node if n.op_type == "Cast" and list(n.input) == ["image"])
    pixels = cast.output[0]  # float RGB pixels, 0-255, NHWC: what the original graph normalises itself
    pre = [helper.make_node("Transpose", ["input"], ["nhwc"], perm=[0, 2, 3, 1]),
           helper.make_node("Constant", [], ["std"], value=numpy_helper.from_array(np.array(STD, np.float32), "std")),
           helper.make_node("Constant", [], ["mean"], value=numpy_helper.from_array(np.array(MEAN, np.float32), "mean")),
           helper.make_node("Mul", ["nhwc", "std"], ["scaled"]), helper.make_node("Add", ["scaled", "mean"], [pixels])]
    h, w = 352, 480
    if half:
        head = [helper.make_node("AveragePool", [LOGITS_NCHW], ["out"], kernel_shape=[2, 2], strides=[2, 2])]
        h, w = h // 2, w // 2
    else:
        head = [helper.make_node("Identity", [LOGITS_NCHW], ["out"])]
    nodes = pre + [n for n in g.node if n is not cast] + head
    needed, kept = {"out"}, []
    for node in reversed(nodes):  # drop the export's own heads (class_map, probs, logits)
        if set(node.output) & needed:
            kept.append(node)
            needed |= set(node.input)
    graph = helper.make_graph(list(reversed(kept)), "foreign_accurate",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 352, 480])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 11, h, w])],
                              [t for t in g.initializer if t.name in needed])
    model = helper.make_model(graph, opset_imports=list(proto.opset_import), producer_name="pytorch")
    model.ir_version = proto.ir_version
    onnx.checker.check_model(model)
    onnx.save(model, str(out))
    return out


if __name__ == "__main__":
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    folder.mkdir(parents=True, exist_ok=True)
    for half in (False, True):
        print("wrote", foreign_accurate(folder / f"accurate_nchw{'_half' if half else ''}.onnx", half))
