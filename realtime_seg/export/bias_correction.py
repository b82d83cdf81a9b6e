"""Bias correction: the mean shift that rounding a convolution's weights to int8 adds to its output,
taken back in its bias before quantization.

Rounding W to W_q changes each output channel's mean by E[(W_q - W) x], which is not zero: a
depthwise 3x3 kernel has nine taps per channel, too few for their rounding errors to cancel, and
the inputs after ReLU6 are all positive. The shift passes through every later layer. With the
input's per-channel means from the calibration frames, the shift is known before quantization,
so subtracting it from the float bias removes it (Nagel et al. 2019, "Data-Free Quantization
Through Weight Equalization and Bias Correction", empirical variant). The weights, and so the
int8 arithmetic and its speed, are unchanged.

`quantized_weights` mirrors onnxruntime's symmetric per-channel weight quantization
(tests/export/test_bias_correction.py checks it against the int8 graph's weights).
"""
from __future__ import annotations

import copy

import numpy as np

REDUCED_RANGE = (-64, 64)  # onnxruntime's int8 weight range with reduce_range (7-bit)
FULL_RANGE = (-127, 127)   # symmetric int8 without it


def quantized_weights(w: np.ndarray, qrange: tuple[int, int] = REDUCED_RANGE) -> np.ndarray:
    """(Cout, Cin/g, kh, kw) float weights -> the values int8 per-output-channel quantization leaves."""
    qmin, qmax = qrange
    absmax = np.abs(w).reshape(len(w), -1).max(axis=1)
    scale = (2 * absmax.astype(np.float64) / (qmax - qmin)).astype(np.float32)
    scale[scale == 0] = 1.0
    scale = scale.reshape(-1, *[1] * (w.ndim - 1))
    return (np.clip(np.round(w / scale), qmin, qmax) * scale).astype(np.float32)


def input_means(model, conv_names: list[str], frames: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Per-channel mean of each named Conv's input over `frames` (fp32 graph, NCHW tensors) -> (Cin,)."""
    import onnx
    import onnxruntime as ort
    probe, named = copy.deepcopy(model), set(conv_names)
    convs = [n for n in probe.graph.node if n.name in named]
    wanted = list(dict.fromkeys(c.input[0] for c in convs))
    for name in wanted:
        probe.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0].name
    sums = {name: 0.0 for name in wanted}
    for frame in frames:
        outputs = session.run(wanted, {feed: frame})
        for name, x in zip(wanted, outputs):
            sums[name] = sums[name] + x.mean(axis=(0, 2, 3), dtype=np.float64)
    return {c.name: (sums[c.input[0]] / len(frames)).astype(np.float32) for c in convs}


def output_shift(w: np.ndarray, wq: np.ndarray, group: int, mean_in: np.ndarray) -> np.ndarray:
    """E[(W_q - W) x] per output channel, for inputs with per-channel means `mean_in` (Cin,) -> (Cout,).

    Border taps that see zero padding are counted as if they saw the mean: the error is O(border)."""
    cout, cin_per_group = w.shape[:2]
    channel = (np.arange(cout)[:, None] // (cout // group)) * cin_per_group + np.arange(cin_per_group)
    return ((wq - w).sum(axis=(2, 3), dtype=np.float64) * mean_in[channel]).sum(axis=1).astype(np.float32)


def correct_biases(model, conv_names: list[str], frames: list[np.ndarray],
                   qrange: tuple[int, int] = REDUCED_RANGE):
    """A copy of the fp32 ModelProto whose named 2-D Convs carry the bias that cancels their weights'
    int8 rounding shift; returns (model, number of convs corrected)."""
    from onnx import numpy_helper
    out = copy.deepcopy(model)
    inits = {i.name: i for i in out.graph.initializer}
    means = input_means(model, conv_names, frames)
    corrected = 0
    for conv in out.graph.node:
        if conv.name not in means or conv.input[1] not in inits:
            continue
        w = numpy_helper.to_array(inits[conv.input[1]])
        if w.ndim != 4:
            continue
        group = next((a.i for a in conv.attribute if a.name == "group"), 1)
        shift = output_shift(w, quantized_weights(w, qrange), group, means[conv.name])
        if len(conv.input) > 2 and conv.input[2]:
            bias = inits[conv.input[2]]
            bias.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(bias) - shift, bias.name))
        else:
            name = f"{conv.name}_corrected_bias"
            out.graph.initializer.append(numpy_helper.from_array(-shift, name))
            conv.input.extend([""] * (2 - len(conv.input)) + [name])
        corrected += 1
    return out, corrected
