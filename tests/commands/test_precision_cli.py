"""--precision in the viewer, batch and eval (one shared option), on the tiny_family fixtures and the
shipped presets: the variant that runs is the one the summaries name."""
from __future__ import annotations

import json

import pytest

from conftest import FIXTURES, assert_one_line_error, run_cli
from realtime_seg.paths import MODELS_DIR
from realtime_seg.runtime.models import PRESETS, RunOptions, choose_model, open_model
from realtime_seg.contract import INT8_CHECK
from realtime_seg.runtime.precision import variant_path
from realtime_seg.system import cpu_int8_dot, usable_cores

FAMILY = FIXTURES / "tiny_family" / "tiny.onnx"
VIDEO = FIXTURES / "videos" / "dashcam_short.mp4"
CPU = RunOptions("cpu")


def test_viewer_names_the_precision_it_runs(tmp_path):
    proc = run_cli("realtime_seg", "--video", str(VIDEO), "--model", str(FAMILY), "--precision", "int8",
                   "--no-show", "--output", str(tmp_path / "o.mp4"), "--max-frames", "5")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "FPS mean on CPUExecutionProvider int8, dropped" in proc.stdout
    assert (tmp_path / "o.mp4").is_file()


@pytest.mark.parametrize("threads, in_flight", [("0", usable_cores() >= 2), ("1", False)])
def test_viewer_says_when_frames_share_inference(tmp_path, threads, in_flight):
    """Automatic threads on 2+ cores: two frames in inference at once, and the summary says so."""
    proc = run_cli("realtime_seg", "--video", str(VIDEO), "--model", str(FAMILY), "--threads", threads,
                   "--no-show", "--output", str(tmp_path / "o.mp4"), "--max-frames", "8")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert ("| 2 frames in inference at once" in proc.stdout) == in_flight, proc.stdout


def test_eval_scores_the_variant_asked_for(tmp_path):
    out = tmp_path / "s.json"
    proc = run_cli("realtime_seg", "eval", "--model", str(FAMILY), "--precision", "int8",
                   "--data", str(FIXTURES / "camvid"), "--json", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(out.read_text())
    assert (doc["model"], doc["file"], doc["precision"]) == ("tiny.onnx", "tiny.int8.onnx", "int8")
    assert "with tiny.onnx (CPU int8, tiny.int8.onnx)" in proc.stdout
    # the same score export measured for this file on the same split when it checked the int8 model
    check = json.loads(open_model(choose_model(str(FAMILY), "int8"), CPU).metadata[INT8_CHECK])
    assert doc["miou"] == pytest.approx(check["val_miou_int8"], abs=1e-9)


def test_batch_says_what_runs_and_takes_one_frame_per_call_on_cpu(tmp_path):
    proc = run_cli("realtime_seg", "batch", str(VIDEO), "--out", str(tmp_path / "seg"), "--model", str(FAMILY),
                   "--precision", "fp16", "--ext", "mp4")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "model tiny.onnx on CPU fp16, 1 frame(s) per inference call" in proc.stdout
    assert (tmp_path / "seg" / "dashcam_short_seg.mp4").is_file()


@pytest.mark.parametrize("command", [[], ["eval", "--data", str(FIXTURES / "camvid")]])
def test_missing_variant_is_one_line(command, tmp_path):
    args = ["--video", str(VIDEO), "--no-show", "--output", str(tmp_path / "o.mp4")] if not command else command
    proc = run_cli("realtime_seg", *args, "--model", str(FIXTURES / "tiny_camvid.onnx"), "--precision", "int8")
    assert "no tiny_camvid.int8.onnx beside it" in assert_one_line_error(proc, 1)
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_auto_runs_int8_on_cpu_where_it_pays_off(name):
    model = open_model(choose_model(name), RunOptions("cpu", 1))
    int8 = variant_path(MODELS_DIR / PRESETS[name], "int8")
    if not int8.is_file():
        assert model.precision == "fp32"
        return
    check = json.loads(open_model(choose_model(str(int8)), CPU).metadata[INT8_CHECK])
    slower_here = check["speed_vs_fp32"] < 1.0 and check["cpu_int8_dot"] == cpu_int8_dot()
    assert model.precision == ("fp32" if slower_here else "int8") and model.path.parent == MODELS_DIR
    assert open_model(choose_model(name, "fp32"), CPU).path == MODELS_DIR / PRESETS[name]
    assert check["val_miou_fp32"] - check["val_miou_int8"] <= 0.003  # export's bound (issue 28)
