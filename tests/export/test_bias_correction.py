"""Bias correction of int8 weights (export/bias_correction.py): its rounding is onnxruntime's, and the
corrected bias cancels the mean shift rounding leaves in each channel, on real frames."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import FIXTURES

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from realtime_seg.export.bias_correction import (REDUCED_RANGE, correct_biases, output_shift,  # noqa: E402
                                                  quantized_weights)

C = 3  # RGB in; a depthwise conv (group 3, x4 channels) then a dense 1x1 conv


def _frames(n: int = 4) -> list[np.ndarray]:
    """Real CamVid frames as (1, 3, 48, 64) float32 in [0, 1] (NCHW, as the graphs inside an export)."""
    paths = sorted((FIXTURES / "camvid" / "train").glob("*.png"))[:n]
    images = [cv2.resize(cv2.imread(str(p)), (64, 48), interpolation=cv2.INTER_AREA) for p in paths]
    return [(i.transpose(2, 0, 1)[None] / 255.0).astype(np.float32) for i in images]


def _model(pads: int, bias: bool = True):
    """x -> depthwise 3x3 conv (12 channels) -> ReLU -> 1x1 conv (5 channels); weights with
    coarse-step outliers so 7-bit rounding leaves a visible shift."""
    rng = np.random.default_rng(0)
    w1 = rng.normal(0, 0.3, (12, 1, 3, 3)).astype(np.float32)
    w1[:, 0, 0, 0] = 4.0  # one large tap per channel: the rest round to a coarse grid
    w2 = rng.normal(0, 0.2, (5, 12, 1, 1)).astype(np.float32)
    w2[:, 0] = 3.0
    inits = [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")]
    conv1_inputs = ["x", "w1"]
    if bias:
        inits.append(numpy_helper.from_array(rng.normal(0, 0.1, 12).astype(np.float32), "b1"))
        conv1_inputs.append("b1")
    nodes = [helper.make_node("Conv", conv1_inputs, ["h"], name="dw", group=C, pads=[pads] * 4),
             helper.make_node("Relu", ["h"], ["r"], name="relu"),
             helper.make_node("Conv", ["r", "w2"], ["y"], name="pw")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, C, 48, 64])],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("y", "h")], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _run(model, frames, outputs=("y",)) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return [session.run(list(outputs), {"x": f}) for f in frames]


def _with_weights(model, values: dict[str, np.ndarray]):
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for init in out.graph.initializer:
        if init.name in values:
            init.CopyFrom(numpy_helper.from_array(values[init.name], init.name))
    return out


def test_quantized_weights_are_onnxruntimes(tmp_path: Path):
    """The int8 graph onnxruntime writes (per channel, reduce_range) dequantizes to quantized_weights."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    class Reader:
        def __init__(self):
            self.it = iter(_frames())

        def get_next(self):
            frame = next(self.it, None)
            return None if frame is None else {"x": frame}

    model = _model(pads=1)
    onnx.save(model, tmp_path / "fp32.onnx")
    quantize_static(str(tmp_path / "fp32.onnx"), str(tmp_path / "int8.onnx"), Reader(),
                    quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(tmp_path / "int8.onnx")).graph.initializer}
    float_weights = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for name in ("w1", "w2"):
        q, scale = inits[f"{name}_quantized"], inits[f"{name}_scale"]
        assert q.min() >= REDUCED_RANGE[0] and q.max() <= REDUCED_RANGE[1]
        dequantized = q.astype(np.float32) * scale.reshape(-1, 1, 1, 1)
        np.testing.assert_allclose(quantized_weights(float_weights[name]), dequantized, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("bias", [True, False])
def test_corrected_bias_cancels_the_rounding_shift(bias: bool):
    """Corrected, each channel's mean output over the frames is fp32's up to the border (the means are
    whole-frame ones); rounded without correction it is not. A conv without a bias gets one."""
    model, frames = _model(pads=0, bias=bias), _frames()
    w = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    rounded = {name: quantized_weights(w[name]) for name in ("w1", "w2")}
    corrected, count = correct_biases(model, ["dw"], frames)  # the depthwise conv only
    assert count == 1
    fp32 = np.mean([o[0] for o in _run(model, frames, ("h",))], axis=0).mean(axis=(0, 2, 3))
    plain = np.mean([o[0] for o in _run(_with_weights(model, rounded), frames, ("h",))], axis=0).mean(axis=(0, 2, 3))
    fixed = np.mean([o[0] for o in _run(_with_weights(corrected, rounded), frames, ("h",))],
                    axis=0).mean(axis=(0, 2, 3))
    shift = np.abs(plain - fp32)
    assert shift.max() > 1e-3  # rounding did shift the channels
    residual = np.abs(fixed - fp32)  # left over: a 3x3 window without padding sees less of the border
    assert residual.sum() < 0.1 * shift.sum() and np.all(residual < shift)
    # the dense conv was not asked for: its weights and (absent) bias are as they were
    pw = next(n for n in corrected.graph.node if n.name == "pw")
    assert list(pw.input) == ["r", "w2"]


def test_output_shift_maps_grouped_channels():
    """Output channel o of a grouped conv reads input channels of its own group only."""
    w = np.zeros((4, 1, 1, 1), np.float32)
    wq = np.array([1, 2, 3, 4], np.float32).reshape(4, 1, 1, 1)
    means = np.array([10.0, 100.0], np.float32)  # 2 input channels, group 2: outputs 0-1 read 0, 2-3 read 1
    np.testing.assert_allclose(output_shift(w, wq, 2, means), [10, 20, 300, 400])
