"""`inspect` and `import` on foreign-style models, and the same models run straight from the flags:
eval scores an imported copy as the model it wraps, batch compares it with that model, the viewer runs
it without importing; every bad input is one line, exit 2, and no file written."""
from __future__ import annotations

import json
import re

import cv2
import pytest

from conftest import FIXTURES, assert_one_line_error, run_cli
from foreign_models import IMAGENET, foreign_tiny, tiny_graph

IMAGENET_FLAGS = ["--mean", ",".join(map(str, IMAGENET["mean"])), "--std", ",".join(map(str, IMAGENET["std"]))]
VIDEO = FIXTURES / "videos" / "dashcam_short.mp4"
TINY_PROBS = FIXTURES / "tiny_camvid_probs.onnx"  # the wrapped network, with probs as an import has


@pytest.fixture(scope="module")
def foreign(tmp_path_factory):
    """The tiny model behind a PyTorch-style interface (NCHW, ImageNet mean/std, NCHW logits), and its import."""
    folder = tmp_path_factory.mktemp("foreign")
    path = foreign_tiny(folder / "torch_style.onnx")
    out = folder / "imported.onnx"
    proc = run_cli("realtime_seg", "import", str(path), "-o", str(out), "--classes", "camvid", *IMAGENET_FLAGS)
    assert proc.returncode == 0, proc.stderr
    assert "matches the original's on 100.00%" in proc.stdout
    return path, out


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_inspect_names_the_layout_and_the_classes_and_the_import_line(layout, tmp_path):
    path = foreign_tiny(tmp_path / "m.onnx", layout=layout, output="probs_nhwc" if layout == "NHWC" else "logits_nchw",
                        half=True)
    proc = run_cli("realtime_seg", "inspect", str(path))
    assert proc.returncode == 0, proc.stderr
    assert f"layout   {layout}" in proc.stdout and "classes  11" in proc.stdout
    assert "at 1/2 of the input size" in proc.stdout and "metadata: none" in proc.stdout
    assert f"import {path} -o m_rs.onnx --classes camvid --mean" in proc.stdout


def test_inspect_of_a_dynamic_model_with_two_heads_says_what_to_add(tmp_path):
    path = foreign_tiny(tmp_path / "m.onnx", dynamic=True, aux=True)
    out = run_cli("realtime_seg", "inspect", str(path)).stdout
    assert "dynamic (probed at 256x256)" in out and "out, aux" in out
    assert "--input-size 256x256 --output out" in out


def test_the_imported_copy_scores_as_the_model_it_wraps(foreign, tmp_path):
    path, imported = foreign
    inspected = run_cli("realtime_seg", "inspect", str(imported)).stdout
    assert "a realtime_seg model: it describes itself (11 classes" in inspected
    scores = {}
    for name, model, extra in (("wrapped", FIXTURES / "tiny_camvid.onnx", []), ("imported", imported, []),
                               ("flags", path, ["--classes", "camvid", *IMAGENET_FLAGS])):
        proc = run_cli("realtime_seg", "eval", "--model", str(model), *extra, "--data", str(FIXTURES / "camvid"),
                       "--json", str(tmp_path / f"{name}.json"))
        assert proc.returncode == 0, proc.stderr
        scores[name] = json.loads((tmp_path / f"{name}.json").read_text())["miou"]
    assert abs(scores["imported"] - scores["wrapped"]) < 0.001 and scores["flags"] == scores["imported"]


def test_batch_compares_the_imported_copy_with_the_network_it_wraps(foreign, tmp_path):
    proc = run_cli("realtime_seg", "batch", str(VIDEO), "--out", str(tmp_path), "--model", str(foreign[1]),
                   "--compare", str(TINY_PROBS), "--precision", "fp32")
    assert proc.returncode == 0, proc.stderr
    agreement = float(re.search(r"agreement (\d+\.\d)%", proc.stdout).group(1))
    assert agreement >= 95.0, proc.stdout


def test_the_viewer_runs_a_foreign_model_straight_from_the_flags(tmp_path):
    path = foreign_tiny(tmp_path / "m.onnx", layout="NHWC", bgr=True, dynamic=True, output="labels_int64")
    out = tmp_path / "out.mp4"
    proc = run_cli("realtime_seg", "--video", str(VIDEO), "--model", str(path), "--classes", "camvid", "--bgr",
                   *IMAGENET_FLAGS, "--input-size", "48x64", "--no-show", "--max-frames", "3", "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    cap.release()


BAD = {  # model kind -> (extra flags, words of the one line)
    "classifier": ("classifier", ["--classes", "camvid"], "no spatial output"),
    "detector": ("detector", ["--classes", "camvid"], "no spatial output"),
    "class count": ("plain", ["--classes", "cityscapes"], "names 19 classes but output 'out'"),
    "dynamic without size": ("dynamic", ["--classes", "camvid"], "pass --input-size HxW"),
    "mean of two": ("plain", ["--classes", "camvid", "--mean", "1,2"], "expected three numbers"),
    "std of zero": ("plain", ["--classes", "camvid", "--std", "58,0,57"], "a std of 0"),
    "no such output": ("plain", ["--classes", "camvid", "--output", "logits"], "has no output 'logits'"),
    "several outputs": ("aux", ["--classes", "camvid"], "several segmentation-like outputs (out, aux)"),
    "no classes": ("plain", [], "pass --classes"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_exit_2_and_no_file(case, tmp_path):
    kind, flags, words = BAD[case]
    if kind in ("classifier", "detector"):
        path = tiny_graph(tmp_path / "m.onnx", kind)
    else:
        path = foreign_tiny(tmp_path / "m.onnx", dynamic=kind == "dynamic", aux=kind == "aux")
    out = tmp_path / "out.onnx"
    line = assert_one_line_error(run_cli("realtime_seg", "import", str(path), "-o", str(out), *flags), 2)
    assert words in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]  # no copy, no partial file


def test_a_foreign_model_without_flags_points_to_inspect(tmp_path):
    path = foreign_tiny(tmp_path / "m.onnx")
    line = assert_one_line_error(run_cli("realtime_seg", "eval", "--model", str(path), "--data", str(FIXTURES / "camvid")))
    assert "has no metadata" in line and "inspect" in line and "--classes" in line
