"""Several datasets in one run (`--data A --data B`) and a held-out camera (`--holdout-data`), end to end.

CamVid's fixture frames with real KITTI frames (Cityscapes labelIds, mapped onto CamVid's classes):
two KITTI scenes trained on, one held out as the camera the run never sees.
"""
from __future__ import annotations

import csv
import json
import shutil

import pytest

from conftest import FIXTURES, assert_one_line_error, run_cli

KITTI = FIXTURES / "kitti" / "training"


def _kitti(tmp_path, name: str, frames: list[str]):
    root = tmp_path / name
    for kind in ("image_2", "semantic"):
        (root / kind).mkdir(parents=True)
        for frame in frames:
            shutil.copy(KITTI / kind / f"{frame}.png", root / kind)
    return root


def _train(tmp_path, *args, timeout=600):
    return run_cli("realtime_seg", "train", "--out", str(tmp_path / "run"), "--arch", "resunet", "--width", "4", "--input-size",
                   "32x64", "--batch-size", "2", "--workers", "1", *args,
                   timeout=timeout)


def test_mixed_run_with_a_held_out_camera(tmp_path, camvid_dir):
    seen = _kitti(tmp_path, "kitti_seen", ["000003_10", "000010_10"])
    unseen = _kitti(tmp_path, "kitti_unseen", ["000042_10"])
    proc = _train(tmp_path, "--data", str(camvid_dir), "--data", str(seen), "--data-weights", "1,3",
                  "--holdout-data", str(unseen), "--epochs", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    # CamVid fixture: 8 train / 3 val; the two KITTI scenes: 1 train / 1 val (10% held out, at least one)
    assert "camvid + kitti data: 9 train (11 drawn an epoch: --data-weights 1,3) / 4 val" in proc.stdout
    assert "1 of held-out camera" in proc.stdout and "held-out camera mIoU" in proc.stdout
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["table"] == "camvid" and summary["dataset"] == "camvid + kitti"
    assert summary["camera_samples"] == 1 and 0 <= summary["last_camera_miou"] <= 1
    assert set(summary["last_camera_per_class_iou"]) == set(summary["classes"])
    with open(tmp_path / "run" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and all(0 <= float(r["camera_miou"]) <= 1 for r in rows)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["data"] == [str(camvid_dir), str(seen)] and config["holdout_data"] == [str(unseen)]
    # a run of several --data exports to int8 like any other (calibrated on --calib's own layout)
    out = tmp_path / "mixed.int8.onnx"
    proc = run_cli("realtime_seg", "export", str(tmp_path / "run" / "last.keras"), "-o", str(out), "--int8",
                   "--calib", str(camvid_dir), timeout=600)
    assert out.is_file() or "int8 check" in proc.stderr, proc.stderr[-3000:]


@pytest.mark.parametrize("args, message", [
    (["--data-weights", "1"], "--data-weights 1: give 2 whole number(s) >= 1, one per --data"),
    (["--data-weights", "1,0"], "--data-weights 1,0: give 2 whole number(s) >= 1"),
    (["--holdout-data", "SEEN"], "--holdout-data names a folder that --data trains on"),
    (["--classes", "carla13"], "--classes carla13: CamVid labels are CamVid's 11 classes"),
])
def test_bad_mixes_are_one_line_exit_2(tmp_path, camvid_dir, args, message):
    seen = _kitti(tmp_path, "kitti_seen", ["000003_10"])
    args = [str(seen) if a == "SEEN" else a for a in args]
    proc = _train(tmp_path, "--data", str(camvid_dir), "--data", str(seen), "--epochs", "1", *args)
    assert message in assert_one_line_error(proc, 2)
    assert not (tmp_path / "run").exists()


def test_held_out_camera_of_other_classes_is_one_line(tmp_path, camvid_dir, carla13_dir):
    proc = _train(tmp_path, "--data", str(camvid_dir), "--holdout-data", str(carla13_dir), "--epochs", "1")
    assert "has carla13's classes, not the run's camvid" in assert_one_line_error(proc, 2)
