"""Wrap a foreign segmentation graph in thin adapters so that it keeps this project's contract.

    image (N,H,W,3) uint8 RGB -> Cast -> (x - mean) / std -> (BGR) -> (NCHW) -> the foreign graph
    its output -> (NCHW) -> Resize to H x W (bilinear scores, nearest labels) -> NHWC
        -> Softmax (logits; one sigmoid channel -> two classes) -> `probs`, ArgMax -> `class_map` uint8

plus the metadata contract.py asks for. The runtime then runs it like an export: one path, and the
file can be quantized like one. Before a copy is used, `adapt` checks it on a real frame against the
original graph run as the flags say, by NumPy (`reference_maps`). `onnx` is imported lazily.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from ..contract import CLASS_MAP, INPUT, PROBS, REQUIRED_METADATA, preprocess
from ..errors import UsageError, UserError
from ..paths import DEMO_VIDEO
from ..system import sha256_file
from .foreign import ForeignSpec, Interface, check_classes, load_proto, open_session, read_interface

MIN_AGREEMENT = 0.999  # of the check frame's pixels: float rounding may flip a tie, nothing more
_ONNX_TYPES = {"float32": 1, "float16": 10, "float64": 11, "uint8": 2}
_cache: dict[tuple, tuple[bytes, Interface]] = {}


def _const(nodes: list, name: str, value: np.ndarray) -> str:
    from onnx import helper, numpy_helper
    nodes.append(helper.make_node("Constant", [], [name], name=name, value=numpy_helper.from_array(value, name)))
    return name


def _node(nodes: list, op: str, inputs: list[str], out: str, **attrs) -> str:
    from onnx import helper
    nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
    return out


def _rename(graph, old: str, new: str) -> None:
    """Tensor `old` is called `new` everywhere in `graph` (its own names may clash with the contract's)."""
    for node in graph.node:
        node.input[:] = [new if n == old else n for n in node.input]
        node.output[:] = [new if n == old else n for n in node.output]
    for value in [*graph.input, *graph.output, *graph.value_info, *graph.initializer]:
        if value.name == old:
            value.name = new


def _input_nodes(iface: Interface, spec: ForeignSpec, target: str) -> list:
    """image (uint8 NHWC RGB) -> what the foreign input takes, written to `target`."""
    nodes, x = [], INPUT
    if iface.input.type != "uint8":
        x = _node(nodes, "Cast", [x], "rs/float", to=1)
        mean = _const(nodes, "rs/mean", np.array(spec.mean, np.float32).reshape(1, 1, 1, 3))
        std = _const(nodes, "rs/std", np.array(spec.std, np.float32).reshape(1, 1, 1, 3))
        x = _node(nodes, "Div", [_node(nodes, "Sub", [x, mean], "rs/centred"), std], "rs/normalised")
    if spec.bgr:
        x = _node(nodes, "Gather", [x, _const(nodes, "rs/bgr_order", np.array([2, 1, 0], np.int64))], "rs/bgr", axis=3)
    if iface.layout == "NCHW":
        x = _node(nodes, "Transpose", [x], "rs/nchw", perm=[0, 3, 1, 2])
    if iface.input.type not in ("uint8", "float32"):
        x = _node(nodes, "Cast", [x], "rs/input_type", to=_ONNX_TYPES.get(iface.input.type, 1))
    nodes.append(_identity(x, target))
    return nodes


def _identity(src: str, dst: str):
    from onnx import helper
    return helper.make_node("Identity", [src], [dst], name="rs/to_" + dst)


def _resize(nodes: list, x: str, size: tuple[int, int], linear: bool, opset: int) -> str:
    """x (N, C, h, w) -> (N, C, H, W): bilinear (half-pixel, as OpenCV and PyTorch) or nearest (floor)."""
    shape = _node(nodes, "Shape", [x], x + "/shape")
    starts, ends = (_const(nodes, f"{x}/{n}", np.array(v, np.int64)) for n, v in (("starts", [0]), ("ends", [2])))
    nc = _node(nodes, "Slice", [shape, starts, ends], x + "/nc")
    sizes = _node(nodes, "Concat", [nc, _const(nodes, x + "/hw", np.array(size, np.int64))], x + "/sizes", axis=0)
    empty = "" if opset >= 13 else _const(nodes, x + "/empty", np.zeros(0, np.float32))
    attrs = ({"mode": "linear", "coordinate_transformation_mode": "half_pixel"} if linear else
             {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"})
    return _node(nodes, "Resize", [x, empty, empty, sizes], x + "/resized", **attrs)


def _output_nodes(iface: Interface, size: tuple[int, int], out: str) -> tuple[list, bool]:
    """The foreign output -> class_map (and probs unless it is a label map); returns (nodes, has probs)."""
    nodes, x, h, w = [], out, *iface.out_size
    if iface.out_layout is None:
        x = _node(nodes, "Reshape", [x, _const(nodes, "rs/one_channel", np.array([-1, 1, h, w], np.int64))], "rs/nchw_out")
    elif iface.out_layout == "NHWC":
        x = _node(nodes, "Transpose", [x], "rs/nchw_out", perm=[0, 3, 1, 2])
    if iface.kind == "labels":
        x = _node(nodes, "Cast", [x], "rs/labels", to=2)
        if (h, w) != size:
            x = _resize(nodes, x, size, False, iface.opset)
        flat = _const(nodes, "rs/map_shape", np.array([-1, *size], np.int64))
        _node(nodes, "Reshape", [x, flat], CLASS_MAP)
        return nodes, False
    x = _node(nodes, "Cast", [x], "rs/scores", to=1)
    if (h, w) != size:
        x = _resize(nodes, x, size, True, iface.opset)
    kind = iface.kind
    if iface.channels == 1:  # one sigmoid channel: P(class 1); class 0 is its complement
        p = _node(nodes, "Sigmoid", [x], "rs/sigmoid") if kind == "logits" else x
        rest = _node(nodes, "Sub", [_const(nodes, "rs/one", np.ones((), np.float32)), p], "rs/complement")
        x, kind = _node(nodes, "Concat", [rest, p], "rs/two_classes", axis=1), "probs"
    x = _node(nodes, "Transpose", [x], "rs/nhwc_scores", perm=[0, 2, 3, 1])
    arg = _node(nodes, "ArgMax", [x], "rs/argmax", axis=-1, keepdims=0)
    _node(nodes, "Cast", [arg], CLASS_MAP, to=2)
    if kind == "logits":
        _node(nodes, "Softmax", [x], PROBS, axis=-1)
    else:
        nodes.append(_identity(x, PROBS))
    return nodes, True


def _prune(graph) -> None:
    """Drop the nodes and weights no output needs (a foreign graph's other heads)."""
    needed = {o.name for o in graph.output}
    kept = []
    for node in reversed(graph.node):
        if any(o in needed for o in node.output):
            kept.append(node)
            needed |= set(node.input)
    del graph.node[:]
    graph.node.extend(reversed(kept))
    weights = [t for t in graph.initializer if t.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(weights)


def build(proto, iface: Interface, spec: ForeignSpec, metadata: dict[str, str]):
    """The adapted copy of `proto` (changed in place and returned)."""
    from onnx import TensorProto, helper
    if iface.opset < 11:
        raise UserError(f"the model's opset {iface.opset} is older than 11; re-export it with opset 11 or later")
    graph, inp, out = proto.graph, iface.input.name, iface.output
    for reserved in (INPUT, CLASS_MAP, PROBS):
        if reserved in {inp, out} or any(reserved in n.output for n in graph.node):
            _rename(graph, reserved, reserved + "__foreign")
            inp, out = (n + "__foreign" if n == reserved else n for n in (inp, out))
    size = iface.size or spec.input_size
    head, has_probs = _output_nodes(iface, size, out)
    nodes = [*_input_nodes(iface, spec, inp), *graph.node, *head]
    del graph.node[:]
    graph.node.extend(nodes)
    batch = iface.batch or "N"
    new_input = helper.make_tensor_value_info(INPUT, TensorProto.UINT8, [batch, *size, 3])
    outputs = [helper.make_tensor_value_info(CLASS_MAP, TensorProto.UINT8, [batch, *size])]
    if has_probs:
        outputs.append(helper.make_tensor_value_info(PROBS, TensorProto.FLOAT, [batch, *size, iface.classes]))
    kept_inputs = [v for v in graph.input if v.name != inp]
    del graph.input[:]
    graph.input.extend([new_input, *kept_inputs])
    del graph.output[:]
    graph.output.extend(outputs)
    _prune(graph)
    del proto.metadata_props[:]
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    return proto


def reference_maps(session, iface: Interface, spec: ForeignSpec, frames_bgr: list[np.ndarray]) -> np.ndarray:
    """Class maps of the ORIGINAL graph run as the flags say, by NumPy: the imported copy must match them."""
    size = iface.size or spec.input_size
    x = preprocess(frames_bgr, size, np.uint8)
    if iface.input.type != "uint8":
        x = (x.astype(np.float32) - np.float32(spec.mean)) / np.float32(spec.std)
    x = x[..., ::-1] if spec.bgr else x
    x = np.ascontiguousarray(x.transpose(0, 3, 1, 2) if iface.layout == "NCHW" else x).astype(iface.input_dtype)
    maps = []
    for one in x:  # one at a time: a fixed batch of 1 is common
        out = np.asarray(session.run([iface.output], {iface.input.name: one[None]})[0])[0].astype(np.float32)
        out = out[None] if iface.out_layout is None else out  # (1, h, w): one channel
        out = out.transpose(1, 2, 0) if iface.out_layout in ("NCHW", None) else out
        inter = cv2.INTER_NEAREST if iface.kind == "labels" else cv2.INTER_LINEAR
        up = cv2.resize(out, (size[1], size[0]), interpolation=inter).reshape(*size, -1)
        if iface.kind == "labels":
            maps.append(up[..., 0].astype(np.uint8))
        elif iface.channels == 1:
            maps.append((up[..., 0] > (0.0 if iface.kind == "logits" else 0.5)).astype(np.uint8))
        else:
            maps.append(np.argmax(up, axis=-1).astype(np.uint8))
    return np.stack(maps)


def check_frame() -> list[np.ndarray]:
    """A real frame for the import check: the demo video's first (a grey gradient if it is missing)."""
    cap = cv2.VideoCapture(str(DEMO_VIDEO))
    ok, frame = cap.read()
    cap.release()
    if ok:
        return [frame]
    return [np.repeat(np.linspace(0, 255, 640, dtype=np.uint8)[None, :, None], 360, 0).repeat(3, 2)]


def metadata(path: Path, iface: Interface, spec: ForeignSpec) -> dict[str, str]:
    """The contract's metadata for the imported copy, and how it was imported."""
    size, table = iface.size or spec.input_size, spec.classes
    return {"classes": json.dumps(list(table.classes)), "palette": json.dumps([list(c) for c in table.palette]),
            "input_size": json.dumps(list(size)), "input_layout": "NHWC",
            "preprocessing": json.dumps({"color": "RGB", "dtype": "uint8", "resize": "area",
                                         "normalise": "(pixel - mean) / std in the graph"}),
            "output": CLASS_MAP, "dataset": table.name, "precision": "fp32", "val_miou": "null",
            "foreign": json.dumps({"source": path.name, "sha256": sha256_file(path), "input": iface.input.name,
                                   "layout": iface.layout, "input_type": iface.input.type, "mean": spec.mean,
                                   "std": spec.std, "bgr": spec.bgr, "output": iface.output, "kind": iface.kind,
                                   "output_layout": iface.out_layout, "output_size": iface.out_size})}



def adapt(path: Path, spec: ForeignSpec) -> tuple[bytes, Interface, float]:
    """The self-describing copy of foreign model `path` as serialised ONNX, its interface, and its
    agreement with the original on a real frame (UsageError on bad flags, UserError if they differ)."""
    path = Path(path)
    key = (str(path.resolve()), path.stat().st_mtime_ns, spec)
    if key in _cache:
        return _cache[key]
    proto = load_proto(path)
    if set(REQUIRED_METADATA) <= {p.key for p in proto.metadata_props}:
        raise UsageError(f"model {path} describes itself (exported or imported by this tool); drop --classes, "
                         f"--mean, --std, --bgr and --input-size")
    original = open_session(path, threads=0)
    iface = read_interface(path, proto, original, spec.input_size, spec.output)
    check_classes(path, iface, spec.classes)
    if iface.input.type == "uint8" and spec.normalised:
        raise UsageError(f"model {path} takes uint8 pixels: it normalises them itself; drop --mean and --std")
    data = build(proto, iface, spec, metadata(path, iface, spec)).SerializeToString()
    frames = check_frame()
    expected = reference_maps(original, iface, spec, frames)
    if iface.kind == "labels" and expected.max() >= spec.classes.num_classes:
        raise UsageError(f"output {iface.output!r} of {path} gives class id {int(expected.max())} but --classes "
                         f"{spec.classes.name} names {spec.classes.num_classes}; pass the model's class set")
    size = iface.size or spec.input_size
    got = open_session(data, threads=0).run([CLASS_MAP], {INPUT: preprocess(frames, size, np.uint8)})[0]
    agreement = float((got == expected).mean())
    if agreement < MIN_AGREEMENT:
        raise UserError(f"the imported copy of {path} agrees with the original on {agreement:.2%} of a frame's "
                        f"pixels (below {MIN_AGREEMENT:.1%}); nothing written: please report this model")
    _cache[key] = (data, iface, agreement)
    return data, iface, agreement


def imported_graph(path: Path, spec: ForeignSpec) -> bytes:
    """A foreign model imported in memory (checked as `import` checks it), serialised: what
    runtime/models.py's `open_model` opens like an export."""
    return adapt(path, spec)[0]
