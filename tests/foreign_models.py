"""Foreign-style ONNX models for the tests: this project's tiny model behind another framework's
interface (NCHW or NHWC, float normalised with a mean and std or uint8, RGB or BGR, fixed or dynamic
size, logits, probabilities or label maps at full or half size, no metadata), and tiny graphs
built with onnx.helper (one sigmoid channel, a classifier, a detector).

`reference` runs a foreign model as its flags say, by hand with NumPy: what an import must match.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from conftest import FIXTURES

TINY = FIXTURES / "tiny_camvid.onnx"            # image: (N, 48, 64, 3) float RGB in [0, 1]
TINY_LOGITS = "unet_1/logits_1/BiasAdd:0"        # (N, 11, 48, 64) logits inside it
SIZE = (48, 64)
IMAGENET = dict(mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375))
NO_NORM = dict(mean=(0.0, 0.0, 0.0), std=(255.0, 255.0, 255.0))


def _const(name: str, value) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(value), name))


def _head(kind: str, half: bool) -> tuple[list, int, list]:
    """Nodes from the tiny model's NCHW logits to output `out` of `kind`; its type and shape."""
    x, nodes, (h, w) = TINY_LOGITS, [], SIZE
    if half:
        nodes.append(helper.make_node("AveragePool", [x], ["half"], kernel_shape=[2, 2], strides=[2, 2]))
        x, h, w = "half", h // 2, w // 2
    heads = {
        "logits_nchw": ([helper.make_node("Identity", [x], ["out"])], TensorProto.FLOAT, ["N", 11, h, w]),
        "logits_nhwc": ([helper.make_node("Transpose", [x], ["out"], perm=[0, 2, 3, 1])], TensorProto.FLOAT,
                        ["N", h, w, 11]),
        "probs_nchw": ([helper.make_node("Softmax", [x], ["out"], axis=1)], TensorProto.FLOAT, ["N", 11, h, w]),
        "probs_nhwc": ([helper.make_node("Transpose", [x], ["t"], perm=[0, 2, 3, 1]),
                        helper.make_node("Softmax", ["t"], ["out"], axis=-1)], TensorProto.FLOAT, ["N", h, w, 11]),
        "labels_int64": ([helper.make_node("ArgMax", [x], ["out"], axis=1, keepdims=0)], TensorProto.INT64,
                         ["N", h, w]),
        "labels_int32_channel": ([helper.make_node("ArgMax", [x], ["a"], axis=1, keepdims=1),
                                  helper.make_node("Cast", ["a"], ["out"], to=TensorProto.INT32)],
                                 TensorProto.INT32, ["N", 1, h, w]),
    }
    more, elem, shape = heads[kind]
    return nodes + more, elem, shape


def foreign_tiny(path: Path, layout: str = "NCHW", norm: dict = IMAGENET, bgr: bool = False,
                 output: str = "logits_nchw", half: bool = False, dynamic: bool = False, batch1: bool = False,
                 uint8: bool = False, aux: bool = False, name: str = "input") -> Path:
    """The tiny CamVid model behind a foreign interface, written to `path` (no metadata)."""
    proto = onnx.load(str(TINY))
    g = proto.graph
    n = 1 if batch1 else "N"
    h, w = ("H", "W") if dynamic else SIZE
    dims = [n, 3, h, w] if layout == "NCHW" else [n, h, w, 3]
    x, pre = name, []
    if layout == "NCHW":
        pre.append(helper.make_node("Transpose", [x], ["f_nhwc"], perm=[0, 2, 3, 1]))
        x = "f_nhwc"
    if bgr:
        pre += [_const("f_order", np.array([2, 1, 0], np.int64)),
                helper.make_node("Gather", [x, "f_order"], ["f_rgb"], axis=3)]
        x = "f_rgb"
    if uint8:
        pre += [helper.make_node("Cast", [x], ["f_float"], to=TensorProto.FLOAT), _const("f_255", np.float32(255)),
                helper.make_node("Div", ["f_float", "f_255"], ["image"])]
    else:  # the model sees (pixel - mean) / std: undo it back to the tiny model's [0, 1]
        pre += [_const("f_std", np.array(norm["std"], np.float32) / 255),
                _const("f_mean", np.array(norm["mean"], np.float32) / 255),
                helper.make_node("Mul", [x, "f_std"], ["f_scaled"]),
                helper.make_node("Add", ["f_scaled", "f_mean"], ["image"])]
    head, elem, shape = _head(output, half)
    if batch1:
        shape = [1, *shape[1:]]
    nodes = pre + list(g.node) + head
    outputs = [helper.make_tensor_value_info("out", elem, shape)]
    if aux:
        nodes.append(helper.make_node("Identity", [TINY_LOGITS], ["aux"]))
        outputs.append(helper.make_tensor_value_info("aux", TensorProto.FLOAT, [n, 11, *SIZE]))
    graph = helper.make_graph(nodes, "foreign", [helper.make_tensor_value_info(
        name, TensorProto.UINT8 if uint8 else TensorProto.FLOAT, dims)], outputs, list(g.initializer))
    model = helper.make_model(graph, opset_imports=list(proto.opset_import), producer_name="pytorch")
    model.ir_version = proto.ir_version
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def tiny_graph(path: Path, kind: str) -> Path:
    """Tiny onnx.helper graphs on a (1, 3, 32, 32) input: sigmoid, sigmoid_logit, classifier, detector."""
    weight = numpy_helper.from_array(np.array([[[[1.0]], [[0.0]], [[0.0]]]], np.float32), "w")
    bias = numpy_helper.from_array(np.array([-0.4], np.float32), "b")  # class 1 where red > 0.4
    nodes = [helper.make_node("Conv", ["input", "w", "b"], ["score"])]
    inits, out = [weight, bias], ("out", TensorProto.FLOAT, [1, 1, 32, 32])
    if kind == "sigmoid":
        nodes.append(helper.make_node("Sigmoid", ["score"], ["out"]))
    elif kind == "sigmoid_logit":
        nodes.append(helper.make_node("Identity", ["score"], ["out"]))
    elif kind == "classifier":
        inits.append(numpy_helper.from_array(np.ones((1, 10), np.float32), "fc"))
        nodes += [helper.make_node("GlobalAveragePool", ["score"], ["pooled"]),
                  helper.make_node("Flatten", ["pooled"], ["flat"]),
                  helper.make_node("MatMul", ["flat", "fc"], ["out"])]
        out = ("out", TensorProto.FLOAT, [1, 10])
    elif kind == "detector":
        inits.append(numpy_helper.from_array(np.array([1, 6, -1], np.int64), "rows"))
        nodes += [helper.make_node("Concat", ["score"] * 6, ["six"], axis=1),
                  helper.make_node("Reshape", ["six", "rows"], ["flat"]),
                  helper.make_node("Transpose", ["flat"], ["boxes"], perm=[0, 2, 1]),
                  _const("s0", np.array([0], np.int64)), _const("s1", np.array([100], np.int64)),
                  _const("ax", np.array([1], np.int64)),
                  helper.make_node("Slice", ["boxes", "s0", "s1", "ax"], ["out"])]
        out = ("out", TensorProto.FLOAT, [1, 100, 6])
    graph = helper.make_graph(nodes, kind, [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info(*out)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def reference(path: Path, frames_bgr: list[np.ndarray], layout: str, norm: dict = NO_NORM, bgr: bool = False,
              size=SIZE, uint8: bool = False, sigmoid: bool = False) -> np.ndarray:
    """Class maps of foreign model `path` run by hand: the contract's resize to RGB, then normalise,
    reorder, run, upsample (bilinear scores, nearest labels), argmax (one channel: p > 0.5, or logit > 0
    with `sigmoid`). Written apart from the adapter on purpose."""
    import onnxruntime as ort

    from realtime_seg.contract import preprocess
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0].name
    maps = []
    for frame in frames_bgr:
        rgb = preprocess([frame], size, np.uint8)[0]
        x = rgb.astype(np.uint8) if uint8 else (rgb.astype(np.float32) - norm["mean"]) / np.float32(norm["std"])
        x = x[..., ::-1] if bgr else x
        x = x.transpose(2, 0, 1) if layout == "NCHW" else x
        out = session.run(None, {inp: np.ascontiguousarray(x[None]).astype(np.uint8 if uint8 else np.float32)})[0][0]
        if np.issubdtype(out.dtype, np.integer):
            out = out.reshape(out.shape[-2:]) if out.ndim == 3 and out.shape[0] == 1 else out
            maps.append(cv2.resize(out.astype(np.uint8), size[::-1], interpolation=cv2.INTER_NEAREST))
            continue
        chw = out if out.shape[0] in (1, 11) and out.shape[-1] != 11 else out.transpose(2, 0, 1)
        up = np.stack([cv2.resize(c, size[::-1], interpolation=cv2.INTER_LINEAR) for c in chw.astype(np.float32)])
        maps.append((up[0] > (0.0 if sigmoid else 0.5)).astype(np.uint8) if len(up) == 1
                    else np.argmax(up, 0).astype(np.uint8))
    return np.stack(maps)
