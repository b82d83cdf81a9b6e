"""`python -m realtime_seg bench`: JSON facts computed from the measurements, seed Keras, errors.

No timing thresholds here: speed is measured by the benchmark, on a quiet machine, not by tests.
"""
from __future__ import annotations

import importlib.util
import json
import math
import shutil

import cv2
import pytest

from conftest import ROOT, assert_one_line_error, run_cli

VIDEO = ROOT / "videos" / "dashcam_highway.mp4"
STAGES = {"decode", "preprocess", "inference", "smooth", "edges", "draw", "encode"}
HAS_KERAS = importlib.util.find_spec("keras") is not None

pytestmark = pytest.mark.skipif(not VIDEO.is_file(), reason="demo video not present")


def _bench(*args: str) -> str:
    """Run the bench on the demo video; its stdout."""
    proc = run_cli("realtime_seg", "bench", "--video", str(VIDEO), *args)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-2000:])
    return proc.stdout


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def check_model_result(r: dict, frames: int) -> None:
    """Every number present and positive, and each derived number computed from the measured ones."""
    assert set(r["stages_ms"]) == STAGES and set(r["stages_ms_median"]) == STAGES
    assert all(_positive(v) for v in [*r["stages_ms"].values(), *r["stages_ms_median"].values()])
    slowest = max(r["stages_ms"].values())
    assert r["slowest_stage"] == max(r["stages_ms"], key=r["stages_ms"].get)
    assert r["bound_fps"] == pytest.approx(1000 / slowest)
    assert r["serial_fps"] == pytest.approx(1000 / sum(r["stages_ms"].values()))
    assert r["serial_fps"] < r["bound_fps"]
    for key in ("pipeline_fps", "naive_ort_fps", "latency_ms_b1_median", "flops", "inference_gflops_per_s"):
        assert _positive(r[key]), (key, r[key])
    assert r["frames"] == frames and r["provider"] == "CPUExecutionProvider" and r["output"] == "class_map"
    assert r["input_size"] == [48, 64] and r["classes"] == 11
    assert set(r["throughput_ips"]) == {"1", "4", "8"} and all(map(_positive, r["throughput_ips"].values()))
    assert {"read", "preprocess", "inference", "smooth", "edges", "draw", "encode"} <= set(r["pipeline_stages_ms"])
    flicker = r["flicker"]  # the clip's, without and with the default temporal smoothing, and the pipeline's
    assert set(flicker) == {"smooth_0", "smooth_0.7", "pipeline"} and all(0 < v < 1 for v in flicker.values())
    assert flicker["smooth_0.7"] < flicker["smooth_0"] and flicker["pipeline"] == pytest.approx(flicker["smooth_0.7"])
    assert r["latency_ms_b1_median"] == pytest.approx(r["stages_ms_median"]["inference"])
    assert r["inference_gflops_per_s"] == pytest.approx(r["flops"] / r["stages_ms"]["inference"] / 1e6)
    assert r["ratios"]["pipeline_over_naive_ort"] == pytest.approx(r["pipeline_fps"] / r["naive_ort_fps"])
    assert r["ratios"]["pipeline_over_bound"] == pytest.approx(r["pipeline_fps"] / r["bound_fps"])
    assert r["flops_onnx"] > 0  # from the ONNX graph, with or without a Keras file
    assert set(r["stages_ms_1thread"]) == STAGES and all(map(_positive, r["stages_ms_1thread"].values()))
    assert r["cores"] >= 1 and r["precision"] in ("fp32", "fp16", "int8")
    assert r["cpu_bound_fps"] == pytest.approx(r["cores"] * 1000 / sum(r["stages_ms_1thread"].values()))
    assert r["ratios"]["pipeline_over_cpu_bound"] == pytest.approx(r["pipeline_fps"] / r["cpu_bound_fps"])
    assert _positive(r["pipeline_cpu_ms_per_frame"]) and 0 < r["pipeline_cpu_share"] <= 1.05
    assert r["pipeline_cpu_share"] == pytest.approx(
        r["pipeline_cpu_ms_per_frame"] * r["pipeline_fps"] / (1000 * r["cores"]))


def check_run_facts(doc: dict, frames: int, models: int) -> None:
    assert doc["frames"] == frames and doc["video_size"] == [960, 540] and len(doc["models"]) == models
    m = doc["machine"]
    assert m["cpu"] and m["cores"] >= 1 and isinstance(m["flags"], list) and _positive(m["matmul_gflops"])
    assert {"python", "numpy", "opencv", "onnxruntime", "av"} <= set(doc["versions"])
    assert doc["encoder"] == "h264 (libx264 ultrafast)"  # the product's writer and default codec
    assert {k: doc[k] for k in doc["models"][0]} == doc["models"][0]  # the first model's keys on top


def test_bench_with_keras_beside(tmp_path):
    shutil.copy(ROOT / "tests/fixtures/tiny_camvid.onnx", tmp_path / "tiny.onnx")
    shutil.copy(ROOT / "tests/fixtures/tiny_camvid.keras", tmp_path / "tiny.keras")
    out = tmp_path / "out" / "bench.json"
    stdout = _bench("--model", str(tmp_path / "tiny.onnx"), "--frames", "20", "--json", str(out))
    doc = json.loads(out.read_text())
    check_run_facts(doc, 20, 1)
    check_model_result(doc, 20)
    assert doc["model"] == "tiny.onnx" and doc["keras_path"] == str(tmp_path / "tiny.keras")
    if not HAS_KERAS:
        assert doc["seed_keras_fps"] is None and "keras not installed" in doc["seed_keras_note"]
        return
    assert _positive(doc["seed_keras_fps"]) and doc["seed_keras_note"] == ""
    assert doc["ratios"]["pipeline_over_seed_keras"] == pytest.approx(doc["pipeline_fps"] / doc["seed_keras_fps"])
    assert _positive(doc["seed_keras_cpu_ms_per_frame"]) and doc["ratios"]["seed_keras_cpu_over_pipeline_cpu"] == \
        pytest.approx(doc["seed_keras_cpu_ms_per_frame"] / doc["pipeline_cpu_ms_per_frame"])
    assert doc["flops_source"] == "keras" and doc["flops"] == doc["flops_keras"] == doc["flops_onnx"]
    assert "keras" in doc["versions"]
    for text in ("decode", "encode", "<- slowest", "pipeline", "naive ORT", "seed Keras", "bound"):
        assert text in stdout, text


def test_bench_several_models_without_keras(tmp_path):
    for name in ("a", "b"):
        shutil.copy(ROOT / "tests/fixtures/tiny_camvid.onnx", tmp_path / f"{name}.onnx")
    out = tmp_path / "bench.json"
    stdout = _bench("--models", str(tmp_path / "a.onnx"), str(tmp_path / "b.onnx"),
                       "--frames", "8", "--threads", "2", "--spin", "--json", str(out))
    doc = json.loads(out.read_text())
    check_run_facts(doc, 8, 2)
    assert [r["model"] for r in doc["models"]] == ["a.onnx", "b.onnx"]
    for r in doc["models"]:
        check_model_result(r, 8)
        assert r["threads"] == 2 and r["spinning"] is True and r["flops_source"] == "onnx"
        assert r["seed_keras_fps"] is None
        assert r["seed_keras_note"].startswith("skipped: no Keras file")
        assert r["ratios"]["pipeline_over_seed_keras"] is None
    assert not {"keras", "tensorflow"} & set(doc["versions"])  # the runtime never loaded them
    assert "vs a.onnx:" in stdout and "skipped: no Keras file" in stdout


def test_bench_rows_per_precision(tmp_path):
    """One row per precision of a model's family (M.onnx, M.int8.onnx beside it), same keys each."""
    out = tmp_path / "bench.json"
    plot = tmp_path / "stages.png"
    stdout = _bench("--model", str(ROOT / "tests/fixtures/tiny_family/tiny.onnx"), "--precision", "fp32", "int8",
                    "--frames", "8", "--no-keras", "--json", str(out), "--plot", str(plot))
    doc = json.loads(out.read_text())
    check_run_facts(doc, 8, 2)
    assert [(r["model"], r["precision"]) for r in doc["models"]] == [("tiny.onnx", "fp32"), ("tiny.onnx", "int8")]
    assert doc["models"][1]["model_path"].endswith("tiny.int8.onnx")
    for r in doc["models"]:
        check_model_result(r, 8)
        assert r["seed_keras_note"] == "skipped: --no-keras"
    assert "CPU int8" in stdout and "CPU bound" in stdout and "pipeline / CPU bound" in stdout
    from realtime_seg.commands.bench.report import HEIGHT, ROW_HEIGHT, WIDTH
    picture = cv2.imread(str(plot))  # one bar per row
    assert picture is not None and picture.shape == (HEIGHT + 2 * ROW_HEIGHT, WIDTH, 3)


@pytest.mark.parametrize("args,code,words", [
    (["--video", "nope.mp4", "--model", "tests/fixtures/tiny_camvid.onnx"], 1, "not found"),
    (["--video", str(VIDEO), "--model", "missing.onnx"], 1, "missing.onnx not found"),
    (["--video", str(VIDEO), "--model", "tests/fixtures/tiny_camvid.onnx", "--frames", "0"], 2, "--frames"),
    (["--video", str(VIDEO), "--model", "tests/fixtures/tiny_camvid.onnx", "--threads", "-1"], 2, "--threads"),
    (["--video", str(VIDEO), "--models", "a.onnx", "b.onnx", "--keras", "a.keras"], 2, "--keras"),
    (["--video", str(VIDEO), "--model", "tests/fixtures/tiny_camvid.onnx", "--keras", "none.keras"], 1,
     "none.keras not found"),
    (["--video", str(VIDEO), "--model", "tests/fixtures/tiny_camvid.onnx", "--precision", "int8"], 1,
     "no tiny_camvid.int8.onnx beside it"),
    (["--video", str(VIDEO), "--model", "tests/fixtures/tiny_camvid.onnx", "--precision", "int4"], 2,
     "--precision"),
])
def test_bad_input_is_one_line(args, code, words):
    line = assert_one_line_error(run_cli("realtime_seg", "bench", *args), code)
    assert words in line


def test_onnx_flops_of_the_fixture():
    """Conv + ConvTranspose MACs x2 of the width-4 48x64 U-Net (equal to count_flops on its .keras)."""
    pytest.importorskip("onnx")
    from realtime_seg.commands.bench import onnx_conv_flops
    assert onnx_conv_flops(ROOT / "tests/fixtures/tiny_camvid.onnx") == 20_398_080


def test_product_sessions_do_not_spin_by_default():
    """Idle onnxruntime threads must not busy-wait on the cores that decode and draw need."""
    from realtime_seg.runtime.engine import RunOptions, load_model
    default = load_model(ROOT / "tests/fixtures/tiny_camvid.onnx").session.get_session_options()
    spinning = load_model(ROOT / "tests/fixtures/tiny_camvid.onnx", RunOptions(spinning=True)).session.get_session_options()
    assert default.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    with pytest.raises(RuntimeError):  # not set: onnxruntime's own default (spinning) applies
        spinning.get_session_config_entry("session.intra_op.allow_spinning")
