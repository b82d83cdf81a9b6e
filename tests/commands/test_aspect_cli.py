"""`--aspect keep|squash` (issue 35): one option on the viewer, batch, eval and bench; `inspect` says
what a model does with a frame of another aspect."""
from __future__ import annotations

import json

import pytest

from conftest import FIXTURES, ROOT, assert_one_line_error, run_cli

ANY_SIZE = FIXTURES / "tiny_any_size.onnx"       # exported now: any size, aspect keep, trained at 48x64
FIXED = FIXTURES / "tiny_family" / "tiny.onnx"   # exported before: 48x64 only
VIDEO = FIXTURES / "videos" / "dashcam_short.mp4"  # 480x270: 16:9


@pytest.mark.parametrize("command", [[], ["batch", str(VIDEO), "--out", "seg"], ["eval", "--data", "x"], ["bench"]],
                         ids=["viewer", "batch", "eval", "bench"])
def test_a_bad_aspect_is_one_line(command, tmp_path):
    args = [*command, "--video", str(VIDEO)] if command in ([], ["bench"]) else command
    proc = run_cli("realtime_seg", *args, "--model", str(ANY_SIZE), "--aspect", "wide")
    line = assert_one_line_error(proc, 2)
    assert "--aspect: invalid choice: 'wide' (choose from 'keep', 'squash')" in line


def test_eval_records_the_aspect_it_ran(tmp_path):
    out = tmp_path / "scores.json"
    proc = run_cli("realtime_seg", "eval", "--model", str(ANY_SIZE), "--data", str(FIXTURES / "camvid"),
                   "--aspect", "squash", "--json", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "aspect squash" in proc.stdout and json.loads(out.read_text())["aspect"] == "squash"


@pytest.mark.skipif(not (ROOT / "videos" / "dashcam_highway.mp4").is_file(), reason="demo video not present")
def test_bench_rows_per_aspect(tmp_path):
    """The 16:9 demo through the model of any size: kept at 48x96, squashed at 48x64, one row each."""
    out = tmp_path / "bench.json"
    proc = run_cli("realtime_seg", "bench", "--model", str(ANY_SIZE), "--aspect", "keep", "squash",
                   "--frames", "4", "--batches", "1", "--no-keras", "--json", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    keep, squash = json.loads(out.read_text())["models"]
    assert (keep["aspect"], keep["input_size"]) == ("keep", [48, 96])
    assert (squash["aspect"], squash["input_size"]) == ("squash", [48, 64])
    assert keep["flops_onnx"] == pytest.approx(1.5 * squash["flops_onnx"], rel=0.01)  # 1.5x the pixels
    assert "48x96 (keep)" in proc.stdout and "48x64 (squash)" in proc.stdout


@pytest.mark.parametrize("model, words", [
    (ANY_SIZE, "another aspect: keep: a frame runs at height 48 and its own aspect, the width a multiple of 32 "
               "(a 16:9 frame at 48x96); --aspect squash resizes it whole to 48x64"),
    (FIXED, "another aspect: squash: its graph takes 48x64 only, so every frame is resized whole to it"),
], ids=["any-size", "fixed"])
def test_inspect_says_what_another_aspect_gets(model, words):
    proc = run_cli("realtime_seg", "inspect", str(model))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert words in proc.stdout
