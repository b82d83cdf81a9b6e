"""Rewrites of the converted ONNX graph that keep its outputs and make it faster to run.

tf2onnx moves the NCHW -> NHWC transpose of the logits past the softmax, which then runs over
axis 1 of an NCHW tensor: onnxruntime transposes around that internally, several times slower
than the same softmax over the last axis after the transpose (docs/EXPORT.md).
`softmax_channels_last` puts the transpose back first.

The seed U-Net's 3x3 stride-2 transposed convolutions run in float even in an int8 model
(onnxruntime quantizes Conv, not ConvTranspose), a large share of its inference time.
`subpixel_conv_transpose` writes each as the same arithmetic in a form that quantizes: one
2x2 convolution with 4x the output channels (one group per output phase), then the phases
interleaved. That interleave is written channels-last (Transpose, Reshape, one Transpose that
moves a single axis, Reshape, Transpose back): onnxruntime runs int8 convolutions NHWC and
cancels the outer transposes against its own, where a DepthToSpace (NCHW only) costs its own
time plus transposes around it (the timings: docs/EXPORT.md).

`free_spatial_dims` names the height and width of the graph's input and outputs instead of fixing
them (exports since issue 35 take any multiple of 32: export/any_size.py).
"""
from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

_TO_NHWC = [0, 2, 3, 1]


def _attr(node, name: str, default=None):
    from onnx import helper
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def softmax_channels_last(proto):
    """Softmax(axis=1) -> Transpose(0,2,3,1) becomes Transpose(0,2,3,1) -> Softmax(axis=-1), in place.

    Only where the transpose is the softmax's one consumer, so no other tensor changes; returns
    `proto` (the number of rewrites is logged).
    """
    from onnx import helper
    nodes = list(proto.graph.node)
    consumers: dict[str, list] = {}
    for n in nodes:
        for name in n.input:
            consumers.setdefault(name, []).append(n)
    graph_outputs = {o.name for o in proto.graph.output}
    rewritten = 0
    for i, node in enumerate(nodes):
        if node.op_type != "Softmax" or _attr(node, "axis", -1) != 1 or node.output[0] in graph_outputs:
            continue
        users = consumers.get(node.output[0], [])
        if len(users) != 1 or users[0].op_type != "Transpose" or list(_attr(users[0], "perm", [])) != _TO_NHWC:
            continue
        transpose, nhwc = users[0], node.input[0] + "__nhwc"
        nodes[i] = helper.make_node("Transpose", [node.input[0]], [nhwc], name=node.name + "__to_nhwc", perm=_TO_NHWC)
        nodes[nodes.index(transpose)] = helper.make_node("Softmax", [nhwc], list(transpose.output),
                                                         name=node.name, axis=-1)
        rewritten += 1
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)
    log.info("softmax over the channels' last axis: %d node(s) rewritten", rewritten)
    return proto


def _subpixel_kernel(weight: np.ndarray) -> np.ndarray:
    """ConvTranspose weight (Cin, Cout, 3, 3), stride 2, pads (0, 0, 1, 1) -> Conv weight (4 Cout, Cin, 2, 2).

    Output pixel (2m + py, 2n + px) sums input rows m-1..m and columns n-1..n: an even output row
    takes kernel row 2 from input row m-1 and row 0 from row m; an odd one kernel row 1 from row m.
    Output channel (py * 2 + px) * Cout + o is phase (py, px) of channel o: DepthToSpace (DCR) order.
    """
    cin, cout = weight.shape[:2]
    taps = {0: {0: 2, 1: 0}, 1: {1: 1}}  # phase -> {row of the 2x2 window: kernel row}
    kernel = np.zeros((2, 2, cout, cin, 2, 2), weight.dtype)
    for py in (0, 1):
        for px in (0, 1):
            for a, ky in taps[py].items():
                for b, kx in taps[px].items():
                    kernel[py, px, :, :, a, b] = weight[:, :, ky, kx].T
    return kernel.reshape(4 * cout, cin, 2, 2)


def _is_upsampling_x2(node, weights: dict) -> bool:
    """A 3x3, stride-2 ConvTranspose padded to exactly twice its input (Keras `padding="same"`)."""
    return (node.op_type == "ConvTranspose" and node.input[1] in weights
            and list(_attr(node, "strides", [1, 1])) == [2, 2] and list(_attr(node, "kernel_shape", [])) == [3, 3]
            and list(_attr(node, "pads", [0, 0, 0, 0])) == [0, 0, 1, 1] and _attr(node, "group", 1) == 1
            and list(_attr(node, "dilations", [1, 1])) == [1, 1] and _attr(node, "output_padding") is None
            and _attr(node, "output_shape") is None and _attr(node, "auto_pad", b"NOTSET") == b"NOTSET")


def _interleave_nhwc(phases: str, out: str, name: str, hw: tuple[int, int] | None, cout: int, proto) -> list:
    """Nodes taking (N, 4C, H, W) phases in DCR order to the (N, C, 2H, 2W) picture, written channels-last;
    `hw` None (a graph of any size): the two reshapes' shapes are computed from the tensor's own."""
    from onnx import helper, numpy_helper
    n = name
    nodes = [helper.make_node("Transpose", [phases], [n + "/nhwc"], perm=_TO_NHWC, name=n + "/to_nhwc")]
    if hw is not None:
        (h, w) = hw
        for shape_name, shape in (("/phases_shape", [0, h, w, 2, 2, cout]), ("/picture_shape", [0, 2 * h, 2 * w, cout])):
            proto.graph.initializer.append(numpy_helper.from_array(np.array(shape, np.int64), n + shape_name))
    else:
        nodes += _shapes_of(n, cout, proto)
    return nodes + [
        helper.make_node("Reshape", [n + "/nhwc", n + "/phases_shape"], [n + "/phases"], name=n + "/split_phases"),
        # (N, H, W, py, px, C) -> (N, H, py, W, px, C): one axis moves, blocks of 2C stay whole
        helper.make_node("Transpose", [n + "/phases"], [n + "/rows"], perm=[0, 1, 3, 2, 4, 5], name=n + "/interleave"),
        helper.make_node("Reshape", [n + "/rows", n + "/picture_shape"], [n + "/picture"], name=n + "/merge_phases"),
        helper.make_node("Transpose", [n + "/picture"], [out], perm=[0, 3, 1, 2], name=n + "/to_nchw")]


def _shapes_of(n: str, cout: int, proto) -> list:
    """Nodes computing `n/phases_shape` (N, H, W, 2, 2, C) and `n/picture_shape` (N, 2H, 2W, C) from
    the shape of `n/nhwc` (N, H, W, 4C) at run time."""
    from onnx import helper, numpy_helper
    consts = {"/at0": [0], "/at1": [1], "/at3": [3], "/two": [2], "/tail6": [2, 2, cout], "/tail4": [cout]}
    for suffix, value in consts.items():
        proto.graph.initializer.append(numpy_helper.from_array(np.array(value, np.int64), n + suffix))
    return [helper.make_node("Shape", [n + "/nhwc"], [n + "/shape"], name=n + "/shape"),
            helper.make_node("Slice", [n + "/shape", n + "/at0", n + "/at3"], [n + "/nhw"], name=n + "/nhw"),
            helper.make_node("Slice", [n + "/shape", n + "/at0", n + "/at1"], [n + "/batch"], name=n + "/batch"),
            helper.make_node("Slice", [n + "/shape", n + "/at1", n + "/at3"], [n + "/hw"], name=n + "/hw"),
            helper.make_node("Mul", [n + "/hw", n + "/two"], [n + "/hw2"], name=n + "/hw2"),
            helper.make_node("Concat", [n + "/nhw", n + "/tail6"], [n + "/phases_shape"], name=n + "/phases_shape", axis=0),
            helper.make_node("Concat", [n + "/batch", n + "/hw2", n + "/tail4"], [n + "/picture_shape"],
                             name=n + "/picture_shape", axis=0)]


def _spatial_sizes(proto) -> dict[str, tuple[int, int]]:
    """(H, W) of every NCHW tensor whose shape inference knows them."""
    import onnx
    graph = onnx.shape_inference.infer_shapes(proto).graph
    sizes = {}
    for v in [*graph.value_info, *graph.input]:
        dims = [d.dim_value for d in v.type.tensor_type.shape.dim]
        if len(dims) == 4 and dims[2] > 0 and dims[3] > 0:
            sizes[v.name] = (dims[2], dims[3])
    return sizes


def subpixel_conv_transpose(proto):
    """Each x2 ConvTranspose becomes Conv (2x2, 4x channels) -> interleave, in place; returns `proto`."""
    from onnx import helper, numpy_helper
    weights = {t.name: t for t in proto.graph.initializer}
    sizes = _spatial_sizes(proto)
    nodes, rewritten = [], 0
    for node in proto.graph.node:
        if not _is_upsampling_x2(node, weights):
            nodes.append(node)
            continue
        weight = numpy_helper.to_array(weights[node.input[1]])
        kernel = numpy_helper.from_array(_subpixel_kernel(weight), node.name + "/subpixel_kernel")
        inputs = [node.input[0], kernel.name]
        if len(node.input) > 2 and node.input[2]:
            bias = numpy_helper.from_array(np.tile(numpy_helper.to_array(weights[node.input[2]]), 4),
                                           node.name + "/subpixel_bias")
            proto.graph.initializer.append(bias)
            inputs.append(bias.name)
        proto.graph.initializer.append(kernel)
        phases = node.output[0] + "__phases"
        nodes.append(helper.make_node("Conv", inputs, [phases], name=node.name + "/subpixel_conv",
                                      kernel_shape=[2, 2], pads=[1, 1, 0, 0]))
        # sizes unknown (a graph of any size): its reshapes read them at run time; a DepthToSpace (NCHW
        # only) would cost its own time plus transposes around onnxruntime's NHWC int8 convolutions
        nodes += _interleave_nhwc(phases, node.output[0], node.name, sizes.get(node.input[0]), weight.shape[1], proto)
        rewritten += 1
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)
    used = {name for n in nodes for name in n.input}
    kept = [t for t in proto.graph.initializer if t.name in used]
    del proto.graph.initializer[:]
    proto.graph.initializer.extend(kept)
    log.info("x2 transposed convolutions as sub-pixel convolutions: %d rewritten", rewritten)
    return proto


def free_spatial_dims(proto, stride: int = 1):
    """The input's height and width (axes 1 and 2, NHWC) named `height` and `width` instead of fixed,
    the outputs' `height/2` and `width/2` when they are `stride` 2 smaller, and the intermediate shapes
    tf2onnx recorded dropped, in place; returns `proto`. The graph then runs at any size its operators
    allow: export checks it at a second size."""
    graph = proto.graph
    for values, suffix in ((graph.input, ""), (graph.output, f"/{stride}" if stride > 1 else "")):
        for value in values:
            dims = value.type.tensor_type.shape.dim
            for axis, name in ((1, "height"), (2, "width")):
                if len(dims) > axis:
                    dims[axis].Clear()
                    dims[axis].dim_param = name + suffix
    del graph.value_info[:]
    return proto
