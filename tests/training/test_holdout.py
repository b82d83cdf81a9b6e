"""Whole drives held out of training (--holdout-drive): none of their frames is trained on, and
they are scored apart after every epoch and by eval."""
from __future__ import annotations

import json
import shutil
from collections import Counter

import pytest

from realtime_seg.datasets.readers import drives, hold_out, load_dataset, parse_drives
from realtime_seg.errors import UsageError
from tests.conftest import assert_one_line_error, run_cli, tiny_config


def _prefixes(folder):
    return Counter(p.name.split("_")[0] for p in folder.glob("*.png"))


def test_camvid_drives_are_the_file_name_prefixes(camvid_dir):
    ds = load_dataset(camvid_dir)
    want = _prefixes(camvid_dir / "train") + _prefixes(camvid_dir / "val")
    assert drives(ds.train + ds.val, ds.format) == dict(sorted(want.items()))
    assert len(want) == 3  # the fixture keeps CamVid's three drives


def test_carla_drives_are_capture_folders(tmp_path, carla13_dir):
    for name in ("town01_run", "town02_run"):
        shutil.copytree(carla13_dir, tmp_path / name)
    ds = load_dataset(tmp_path)
    counts = drives(ds.train + ds.val, ds.format)
    assert set(counts) == {"town01_run", "town02_run"} and len(set(counts.values())) == 1
    kept, held = hold_out(ds.train + ds.val, ds.format, ("town02_run",), str(tmp_path))
    assert {s.image.parent.parent.name for s in held} == {"town02_run"}
    assert {s.image.parent.parent.name for s in kept} == {"town01_run"}


@pytest.mark.parametrize("split", ["train", "trainval"])
def test_no_frame_of_the_held_out_drive_is_trained_on(camvid_dir, tmp_path, split):
    from realtime_seg.training.inputs import run_samples
    ds = load_dataset(camvid_dir)
    cfg = tiny_config(camvid_dir, tmp_path / "run", holdout_drive="0006R0", train_split=split)
    train_s, val_s, held = run_samples(cfg, ds)
    every = ds.train + ds.val
    assert sorted(s.image.name for s in held) == sorted(s.image.name for s in every
                                                        if s.image.name.startswith("0006R0_"))
    assert held and not any(s.image.name.startswith("0006R0_") for s in train_s + val_s)
    assert set(train_s + val_s + held) == set(every)  # nothing else dropped
    assert bool(set(val_s) & set(train_s)) == (split == "trainval")


def test_two_drives_held_out_and_an_unknown_one(camvid_dir):
    ds = load_dataset(camvid_dir)
    assert parse_drives(" 0001TP, 0006R0 ") == ("0001TP", "0006R0")
    kept, held = hold_out(ds.train + ds.val, ds.format, ("0001TP", "0006R0"), "camvid")
    assert {s.image.name[:6] for s in held} == {"0001TP", "0006R0"} and {s.image.name[:6] for s in kept} == {"0016E5"}
    with pytest.raises(UsageError, match=r"unknown --holdout-drive '0006r0'.*0006R0 \(2 frames\)"):
        hold_out(ds.train + ds.val, ds.format, ("0006r0",), "camvid")


def test_training_scores_the_held_out_drive_every_epoch(tmp_path, camvid_dir):
    pytest.importorskip("keras")
    from realtime_seg.training.train import train
    run = tmp_path / "run"
    summary = train(tiny_config(camvid_dir, run, holdout_drive="0006R0", compute_dtype="float32"))
    assert summary["holdout_samples"] == 2 and summary["train_samples"] == 6 and summary["val_samples"] == 3
    assert 0 <= summary["last_holdout_miou"] <= 1
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"holdout_miou", "val_miou"} <= set(header)
    assert json.loads((run / "config.json").read_text())["holdout_drive"] == "0006R0"


def test_bad_drive_names_get_one_line(tmp_path, camvid_dir):
    proc = run_cli("realtime_seg", "train", "--data", str(camvid_dir), "--out", str(tmp_path / "r"),
                   "--holdout-drive", "0007XX")
    line = assert_one_line_error(proc, 2)
    assert "0007XX" in line and "0006R0" in line and not (tmp_path / "r").exists()
    proc = run_cli("realtime_seg", "train", "--data", str(camvid_dir), "--out", str(tmp_path / "r"),
                   "--holdout-drive", "0001TP,0006R0,0016E5")
    assert "leaves no training frames" in assert_one_line_error(proc, 2)
    proc = run_cli("realtime_seg", "eval", "--model", "tests/fixtures/tiny_camvid.onnx", "--data",
                   str(camvid_dir), "--split", "val", "--holdout-drive", "0006R0")
    assert "0016E5 (3 frames)" in assert_one_line_error(proc, 2)


def test_eval_scores_only_the_held_out_drive(tmp_path, camvid_dir):
    out = tmp_path / "scores.json"
    proc = run_cli("realtime_seg", "eval", "--model", "tests/fixtures/tiny_camvid.onnx", "--data",
                   str(camvid_dir), "--holdout-drive", "0006R0", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["images"] == 2 and result["split"] == "all" and "0006R0" in result["scored"]
