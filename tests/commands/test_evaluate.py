"""eval: scores at label size, and CARLA's held-out split drawn as the training run drew it."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from conftest import FIXTURES, run_cli
from realtime_seg.commands.evaluate import describe_split, find_split
from realtime_seg.contract import SPLIT
from realtime_seg.datasets.metrics import confusion_matrix, summarize
from realtime_seg.datasets.readers import load_dataset, load_pair, load_split
from realtime_seg.runtime.edges import smooth_upsample
from realtime_seg.runtime.engine import RunOptions, load_model

TINY = FIXTURES / "tiny_camvid.onnx"


def test_eval_scores_at_label_size_and_says_what_it_scored(tmp_path):
    out = tmp_path / "scores.json"
    proc = run_cli("realtime_seg", "eval", "--model", str(TINY), "--data", str(FIXTURES / "camvid"),
                   "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["scored"] == "CamVid val (val/ folder)" and "CamVid val (val/ folder)" in proc.stdout
    # the same number by hand: predict, resize to the label (nearest), count
    model, ds = load_model(TINY, RunOptions("cpu")), load_dataset(FIXTURES / "camvid")
    cm = np.zeros((11, 11), np.int64)
    for sample in ds.val:
        image, label = load_pair(sample, ds.format, ds.table)
        class_map = model.predict([cv2.cvtColor(image, cv2.COLOR_RGB2BGR)])[0]
        full = cv2.resize(class_map, label.shape[::-1], interpolation=cv2.INTER_NEAREST)
        cm += confusion_matrix(label, full, 11)
    assert result["miou"] == pytest.approx(summarize(cm)["miou"])
    assert result["images"] == len(ds.val) and result["pixels"] == int(cm.sum())


def test_eval_with_smooth_edges_scores_the_viewers_upsampling(tmp_path):
    out = tmp_path / "smooth.json"
    model_path = FIXTURES / "tiny_camvid_probs.onnx"
    proc = run_cli("realtime_seg", "eval", "--model", str(model_path), "--data", str(FIXTURES / "camvid"),
                   "--edges", "smooth", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    model, ds = load_model(model_path, RunOptions("cpu")), load_dataset(FIXTURES / "camvid")
    cm = np.zeros((11, 11), np.int64)
    for sample in ds.val:  # by hand: scores, smooth edges at the label's size, count
        image, label = load_pair(sample, ds.format, ds.table)
        class_map, probs = model.infer_probs(model.prepare([cv2.cvtColor(image, cv2.COLOR_RGB2BGR)]))
        cm += confusion_matrix(label, smooth_upsample(class_map[0], label.shape[::-1], probs[0]), 11)
    assert result["edges"] == "smooth" and result["miou"] == pytest.approx(summarize(cm)["miou"])


def test_carla_val_is_the_split_the_run_held_out(carla13_dir):
    ds = load_dataset(carla13_dir, val_fraction=0.5, seed=3)
    _, val = load_split(carla13_dir, "val", "auto", 0.5, 3)
    _, train = load_split(carla13_dir, "train", "auto", 0.5, 3)
    assert val == ds.val and train == ds.train and not set(val) & set(train)
    _, default_val = load_split(carla13_dir, "val")
    assert default_val == load_dataset(carla13_dir).val


def test_split_settings_come_from_the_run_then_the_model_then_defaults(tmp_path):
    model = load_model(TINY, RunOptions("cpu"))
    assert find_split(model, None) == ({"val_fraction": 0.1, "seed": 0}, "the trainer's defaults")
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"dataset": "carla", "val_fraction": 0.25, "seed": 7}))
    settings, origin = find_split(model, str(run))
    assert settings == {"format": "carla", "val_fraction": 0.25, "seed": 7, "train_split": "train",
                        "holdout_drive": ""} and origin == str(run / "config.json")
    onnx = pytest.importorskip("onnx")
    proto = onnx.load(str(TINY))
    entry = proto.metadata_props.add()
    entry.key, entry.value = SPLIT, json.dumps({"format": "carla", "val_fraction": 0.3, "seed": 5})
    tagged = tmp_path / "tagged.onnx"
    onnx.save(proto, str(tagged))
    settings, origin = find_split(load_model(tagged, RunOptions("cpu")), None)
    assert (settings["val_fraction"], settings["seed"], origin) == (0.3, 5, "tagged.onnx metadata")
    text = describe_split("carla", "val", settings, origin)
    assert text == "CARLA val: the held-out 30%, seed 5 (split settings from tagged.onnx metadata)"


def test_val_of_a_trainval_model_is_not_called_held_out(tmp_path):
    """A model trained on train+val (its run's config.json) is scored on val with a note saying so."""
    run = tmp_path / "run"
    run.mkdir()
    args = ("realtime_seg", "eval", "--model", str(TINY), "--data", str(FIXTURES / "camvid"), "--run", str(run))
    notes = []
    for train_split in ("train", "trainval"):
        (run / "config.json").write_text(json.dumps({"dataset": "camvid", "train_split": train_split}))
        proc = run_cli(*args)
        assert proc.returncode == 0, proc.stderr
        notes.append("trained on train+val, so this is not a held-out score" in proc.stdout)
    assert notes == [False, True]


@pytest.mark.parametrize("dataset, note", [("camvid", False), ("camvid + kitti", True)])
def test_a_trainval_model_on_another_camera_is_not_called_trained_on(tmp_path, dataset, note):
    """KITTI frames scored with a CamVid-only train+val model are a camera it never saw: no note."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"dataset": dataset, "train_split": "trainval"}))
    proc = run_cli("realtime_seg", "eval", "--model", str(TINY), "--data", str(FIXTURES / "kitti"),
                   "--split", "all", "--run", str(run))
    assert proc.returncode == 0, proc.stderr
    assert ("not a held-out score" in proc.stdout) is note


def test_a_run_folder_without_config_is_a_clear_error(tmp_path):
    proc = run_cli("realtime_seg", "eval", "--model", str(TINY), "--data", str(FIXTURES / "camvid"),
                   "--run", str(tmp_path))
    assert proc.returncode == 1 and proc.stderr.startswith("error: --run config") and "not found" in proc.stderr
