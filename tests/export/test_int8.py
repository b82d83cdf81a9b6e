"""`python -m export --int8`: calibration on the run's training images, checks against fp32, metadata,
nothing written when a check fails, and one-line errors for bad options."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import FIXTURES, assert_one_line_error, run_cli

pytest.importorskip("tf2onnx")
onnx = pytest.importorskip("onnx")
pytest.importorskip("keras")

from realtime_seg.export import ExportConfig, export_model  # noqa: E402
from realtime_seg.export.quantize import Int8Config  # noqa: E402
from realtime_seg.errors import UserError  # noqa: E402
from realtime_seg.runtime.engine import RunOptions, load_model  # noqa: E402

# a 2-epoch width-4 model keeps ~88% of its fp32 class maps in int8 (the presets: 93-97%)
LENIENT = dict(min_agreement=0.5, max_miou_drop=0.05)


def _export(run: Path, out: Path, frames_dir: Path, int8: Int8Config) -> dict:
    return export_model(ExportConfig(str(run / "best.keras"), str(out), precision="int8",
                                     frames=str(frames_dir), int8=int8))


@pytest.fixture(scope="module")
def int8_model(tiny_run, frames_dir, tmp_path_factory) -> tuple[Path, dict]:
    """int8 export calibrated on the dataset named by the run's config.json (no --calib)."""
    run, _ = tiny_run
    out = tmp_path_factory.mktemp("int8") / "tiny.int8.onnx"
    return out, _export(run, out, frames_dir, Int8Config(None, **LENIENT))


def test_int8_export_is_quantized_checked_and_described(int8_model, tiny_run, camvid_dir):
    path, checks = int8_model
    proto = onnx.load(str(path))
    ops = {n.op_type for n in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    # the softmax stays float (onnxruntime's QLinearSoftmax is slower): no QuantizeLinear after it
    softmax_out = {n.output[0] for n in proto.graph.node if n.op_type == "Softmax"}
    assert softmax_out and not any(n.op_type == "QuantizeLinear" and n.input[0] in softmax_out
                                   for n in proto.graph.node)
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["precision"] == "int8"
    calibration = json.loads(meta["calibration"])
    assert calibration["data"] == Path(camvid_dir).name and calibration["split"] == "train"
    assert calibration["images"] == len(list((Path(camvid_dir) / "train").glob("*.png")))
    assert calibration["bias_correction"] > 0  # the encoder's convs carry their rounding shift's correction
    check = json.loads(meta["int8_check"])
    assert check == checks["int8"] and check["val_images"] == 3
    assert check["val_miou_fp32"] - check["val_miou_int8"] <= LENIENT["max_miou_drop"]
    assert check["agreement"] >= LENIENT["min_agreement"] and check["speed_vs_fp32"] > 0
    assert checks["agreement"] >= 0.999  # the fp32 graph it was made from matched Keras


def test_preset_int8_keeps_stem_head_and_decoder_float_and_the_encoder_int8():
    """The shipped accurate int8: the first conv (on the image), the decoder and the head (its 1x1
    conv, upsampling, logit adjustment, argmax) take float inputs; the encoder's convs take int8."""
    proto = onnx.load(str(FIXTURES.parent.parent / "models" / "camvid_accurate.int8.onnx"))
    producer = {out: n for n in proto.graph.node for out in n.output}

    def float_input(node) -> bool:  # a DequantizeLinear right before: the op itself runs on int8
        source = producer.get(node.input[0])
        return source is None or source.op_type != "DequantizeLinear"

    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    assert float_input(convs[0]) and float_input(convs[-1])  # stem, head
    sub = next(n for n in proto.graph.node if n.op_type == "Sub" and "logit_adjustment" in n.name)
    assert float_input(sub)
    quantized = [n for n in convs if not float_input(n)]
    assert len(quantized) > len(convs) / 2  # the encoder body: most convs and most of the compute
    assert all("/dec" not in producer[n.input[0]].input[0] for n in quantized)
    # each int8 conv's bias carries the correction for its weights' rounding (export/bias_correction.py)
    calibration = json.loads({p.key: p.value for p in proto.metadata_props}["calibration"])
    int8_weights = [n for n in convs if producer.get(n.input[1]) is not None
                    and producer[n.input[1]].op_type == "DequantizeLinear"]
    assert calibration["bias_correction"] == len(int8_weights) >= len(convs) / 2


def test_int8_runs_in_the_runtime_close_to_fp32(int8_model, fp32_of_run, frames_dir):
    import cv2
    frames = [cv2.imread(str(p)) for p in sorted(frames_dir.glob("*.png"))]
    int8, fp32 = load_model(int8_model[0], RunOptions("cpu")), load_model(fp32_of_run, RunOptions("cpu"))
    assert int8.precision == "int8" and int8.input_dtype == np.uint8
    assert int8.aspect == fp32.aspect == "keep"
    # the 16:9 frames at their own aspect (32x64): the int8 graph takes any size too
    kept = int8.predict(frames)
    assert kept.shape == (3, 32, 64) and np.mean(kept == fp32.predict(frames)) >= LENIENT["min_agreement"]
    for model in (int8, fp32):  # squashed to the trained size: what export's check compared
        model.use_aspect("squash")
    agreement = float(np.mean(int8.infer(int8.prepare(frames)) == fp32.infer(fp32.prepare(frames))))  # the files' outputs
    assert agreement == pytest.approx(json.loads(int8.metadata["int8_check"])["agreement"], abs=1e-6)


@pytest.fixture(scope="module")
def fp32_of_run(tiny_run, frames_dir, tmp_path_factory) -> Path:
    run, _ = tiny_run
    out = tmp_path_factory.mktemp("fp32") / "tiny.onnx"
    export_model(ExportConfig(str(run / "best.keras"), str(out), frames=str(frames_dir)))
    return out


def test_int8_that_loses_mIoU_writes_nothing(tiny_run, frames_dir, tmp_path):
    run, _ = tiny_run
    out = tmp_path / "out" / "x.int8.onnx"
    with pytest.raises(UserError, match="int8 model loses too much.*nothing written"):
        _export(run, out, frames_dir, Int8Config(str(FIXTURES / "camvid"), max_miou_drop=-1.0))
    assert not out.exists() and not list(tmp_path.rglob("*.onnx*"))


def test_cli_int8_without_a_dataset(tmp_path, frames_dir):
    proc = run_cli("export", str(FIXTURES / "tiny_camvid.keras"), "-o", str(tmp_path / "x.onnx"),
                   "--frames", str(frames_dir), "--classes", "camvid", "--int8")
    assert "no dataset to calibrate int8 with" in assert_one_line_error(proc, 1)
    assert not list(tmp_path.iterdir())


def test_cli_calib_needs_int8_and_a_dataset(tmp_path, frames_dir):
    base = ("export", str(FIXTURES / "tiny_camvid.keras"), "-o", str(tmp_path / "x.onnx"), "--frames",
            str(frames_dir), "--classes", "camvid")
    assert "--calib and --calib-images go with --int8" in assert_one_line_error(
        run_cli(*base, "--calib", str(FIXTURES / "camvid")), 2)
    assert "dataset folder" in assert_one_line_error(run_cli(*base, "--int8", "--calib", str(tmp_path / "no")), 1)
    assert "not allowed with argument" in assert_one_line_error(run_cli(*base, "--int8", "--fp16"), 2)
    assert not list(tmp_path.iterdir())
