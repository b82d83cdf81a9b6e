"""Precision families (M.onnx, M.int8.onnx, M.fp16.onnx), uint8 and float32 inputs, I/O binding.

Fixtures: tests/fixtures/tiny_family/ holds one width-4 CamVid U-Net exported three ways (uint8
input); tests/fixtures/tiny_camvid.onnx holds the same weights as exported before uint8 inputs.
"""
from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

from conftest import FIXTURES
from realtime_seg.contract import INT8_CHECK
from realtime_seg.errors import UserError
from realtime_seg.runtime.engine import load_model
from realtime_seg.runtime.models import ModelChoice, RunOptions, choose_model, open_model
from realtime_seg.runtime.precision import family_base, pays_off, variant_path, variants
from realtime_seg.system import cpu_int8_dot

FAMILY = FIXTURES / "tiny_family" / "tiny.onnx"
OLD = FIXTURES / "tiny_camvid.onnx"


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return [cv2.imread(str(p)) for p in sorted((FIXTURES / "frames").glob("*.png"))]


def test_variant_names_and_family():
    assert variant_path(FAMILY, "int8").name == "tiny.int8.onnx"
    assert variant_path(FAMILY, "fp32") == FAMILY
    assert family_base(FAMILY.with_name("tiny.fp16.onnx")) == FAMILY == family_base(FAMILY)
    assert set(variants(FAMILY)) == {"fp32", "int8", "fp16"}
    with pytest.raises(UserError, match="allowed: auto, fp32, fp16, int8"):
        variant_path(FAMILY, "int4")


def test_new_exports_take_uint8_old_ones_float32(frames):
    new, old = load_model(FAMILY, RunOptions("cpu", 1)), load_model(OLD, RunOptions("cpu", 1))
    assert new.input_dtype == np.uint8 and new.session.get_inputs()[0].type == "tensor(uint8)"
    assert old.input_dtype == np.float32 and old.session.get_inputs()[0].type == "tensor(float)"
    assert new.prepare(frames).dtype == np.uint8 and old.prepare(frames).dtype == np.float32
    np.testing.assert_allclose(old.prepare(frames), new.prepare(frames) / np.float32(255), atol=1e-6)
    # same weights: the graph's own scaling gives the old model's class maps
    assert np.mean(new.predict(frames) == old.predict(frames)) >= 0.999
    assert (new.precision, old.precision) == ("fp32", "fp32") and new.runs_on == "CPU fp32"


def test_int8_and_fp16_variants_agree_with_fp32(frames):
    fp32 = load_model(FAMILY, RunOptions("cpu")).predict(frames)
    int8, fp16 = (load_model(variant_path(FAMILY, p), RunOptions("cpu")) for p in ("int8", "fp16"))
    assert (int8.precision, fp16.precision) == ("int8", "fp16") and int8.runs_on == "CPU int8"
    onnx = pytest.importorskip("onnx")
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in onnx.load(str(int8.path)).graph.node}
    assert np.mean(fp16.predict(frames) == fp32) >= 0.99
    assert np.mean(int8.predict(frames) == fp32) >= 0.8  # the export checked 87.8% (a 2-epoch model)
    check = json.loads(int8.metadata[INT8_CHECK])
    assert {"agreement", "val_miou_fp32", "val_miou_int8", "speed_vs_fp32", "cpu_int8_dot"} <= set(check)
    assert json.loads(int8.metadata["calibration"])["images"] == 8  # the fixture's train split


CPU = RunOptions("cpu")


def family(base, precision: str = "auto") -> ModelChoice:
    """`base`'s family opened as a preset's is (auto picks among its variants)."""
    return ModelChoice("tiny", base, True, precision)


def test_auto_on_cpu_picks_int8_where_it_pays_off():
    model = open_model(family(FAMILY), CPU)
    check = json.loads(load_model(variant_path(FAMILY, "int8"), RunOptions("cpu")).metadata[INT8_CHECK])
    # the fixture's int8 was measured slower than fp32 on an AVX2 CPU without VNNI (a width-4 model)
    slower_here = check["speed_vs_fp32"] < 1.0 and check["cpu_int8_dot"] == cpu_int8_dot()
    assert model.precision == ("fp32" if slower_here else "int8")
    assert model.provider == "CPUExecutionProvider"  # fp16 never on a CPU under auto


def test_pays_off_reads_the_measurement_of_the_same_cpu_kind():
    class Fake:
        def __init__(self, check):
            self.metadata = {INT8_CHECK: json.dumps(check)} if check is not None else {}
    here = cpu_int8_dot()
    assert pays_off(Fake(None)) and pays_off(Fake({"speed_vs_fp32": 1.7, "cpu_int8_dot": here}))
    assert not pays_off(Fake({"speed_vs_fp32": 0.8, "cpu_int8_dot": here}))
    assert pays_off(Fake({"speed_vs_fp32": 0.8, "cpu_int8_dot": not here}))  # measured elsewhere


def test_explicit_precisions_and_missing_variants(tmp_path):
    assert open_model(family(FAMILY, "fp16"), CPU).precision == "fp16"
    assert open_model(choose_model(str(FAMILY), "int8"), CPU).path.name == "tiny.int8.onnx"   # beside a file
    assert open_model(choose_model(str(FAMILY)), CPU).path == FAMILY                          # the file as given
    fp16 = FAMILY.with_name("tiny.fp16.onnx")
    assert open_model(choose_model(str(fp16)), CPU).path == fp16  # as given, even where auto would not pick it
    lone = tmp_path / "lone.onnx"
    shutil.copy(FAMILY, lone)
    with pytest.raises(UserError, match=r"lone.onnx is fp32 and there is no lone.int8.onnx"):
        open_model(choose_model(str(lone), "int8"), CPU)
    assert open_model(choose_model(str(lone), "fp32"), CPU).precision == "fp32"
    with pytest.raises(UserError, match=r"no int8 variant of lone .*available: fp32"):
        open_model(family(lone, "int8"), CPU)
    shutil.copy(FAMILY, tmp_path / "lone.int8.onnx")  # an fp32 file under an int8 name
    with pytest.raises(UserError, match="is fp32, not int8"):
        open_model(choose_model(str(lone), "int8"), CPU)


def test_io_binding_gives_the_same_class_maps(frames):
    """The CUDA path (bound input, output copied back once) run on the CPU provider."""
    model = load_model(FAMILY, RunOptions("cpu"))
    x = model.prepare(frames)
    np.testing.assert_array_equal(model._run_bound([model.output_name], x)[0], model.infer(x))
    names = [o.name for o in model.session.get_outputs()]  # every output, as infer_probs binds them
    for bound, plain in zip(model._run_bound(names, x), model.session.run(names, {model.input_name: x})):
        np.testing.assert_array_equal(bound, plain)


@pytest.mark.gpu
def test_auto_on_cuda_runs_fp16_with_io_binding(frames):
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("no CUDA provider in this onnxruntime")
    model = open_model(family(FAMILY), RunOptions("cuda"))
    assert model.precision == "fp16" and model.provider == "CUDAExecutionProvider"
    cpu = load_model(FAMILY, RunOptions("cpu")).predict(frames)
    assert np.mean(model.predict(frames) == cpu) >= 0.99
