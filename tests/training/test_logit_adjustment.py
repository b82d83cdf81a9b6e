"""Logit adjustment: the class weights' prior is taken off the logits at inference, not in training."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import ROOT, assert_one_line_error, tiny_config

keras = pytest.importorskip("keras")

from realtime_seg.datasets.readers import load_dataset  # noqa: E402
from realtime_seg.training.checkpoint import load_keras  # noqa: E402
from realtime_seg.training.inputs import decode_pairs, pixel_weights  # noqa: E402
from realtime_seg.training.model import ADJUSTMENT, get_model, with_logit_adjustment  # noqa: E402

WEIGHTS = np.array([0.27, 0.19, 4.56, 0.14, 1.0, 0.46, 3.82, 3.98, 0.76, 7.02, 15.38])  # CamVid's median


def _frames(camvid_dir, size=(32, 48)) -> np.ndarray:
    images = [cv2.imread(str(p))[:, :, ::-1] for p in sorted((camvid_dir / "val").glob("*.png"))]
    return np.stack([cv2.resize(i, size[::-1], interpolation=cv2.INTER_AREA) for i in images]) / np.float32(255)


def test_inference_subtracts_log_weights_and_training_sees_raw_logits(camvid_dir):
    model = get_model("resunet", (32, 48), 11, width=4)
    adjusted = with_logit_adjustment(model, WEIGHTS)
    x = _frames(camvid_dir)
    raw = np.asarray(model(x, training=False))
    assert adjusted.layers[-1].name == ADJUSTMENT and len(adjusted.layers) == len(model.layers) + 1
    np.testing.assert_allclose(np.asarray(adjusted(x, training=False)), raw - np.log(WEIGHTS), atol=1e-5)
    layer = adjusted.get_layer(ADJUSTMENT)
    np.testing.assert_array_equal(np.asarray(layer(raw, training=True)), raw)  # the loss sees the raw logits
    assert adjusted.count_params() == model.count_params()


def test_uniform_weights_add_nothing_and_readjusting_replaces(camvid_dir):
    model = get_model("resunet", (32, 48), 11, width=4)
    assert with_logit_adjustment(model, np.ones(11)).layers[-1].name == "logits"
    twice = with_logit_adjustment(with_logit_adjustment(model, WEIGHTS), WEIGHTS * 2)
    assert [layer.name for layer in twice.layers].count(ADJUSTMENT) == 1
    np.testing.assert_allclose(twice.get_layer(ADJUSTMENT).log_weights, np.log(WEIGHTS * 2), rtol=1e-6)
    stripped = with_logit_adjustment(twice, np.ones(11))
    x = _frames(camvid_dir)
    np.testing.assert_allclose(np.asarray(stripped(x, training=False)), np.asarray(model(x, training=False)),
                               atol=1e-6)


def test_train_ends_the_model_in_the_run_weights_prior(tiny_run, camvid_dir):
    """The tiny run trains with median weights: last.keras reloads with log(those weights) at its end."""
    run, _ = tiny_run
    model = load_keras(run / "last.keras")
    dataset = load_dataset(camvid_dir)
    weights = pixel_weights(dataset, decode_pairs(dataset, dataset.train, "decode"), "median")[:11]
    np.testing.assert_allclose(model.get_layer(ADJUSTMENT).log_weights, np.log(weights), rtol=1e-5)
    assert json.loads((run / "config.json").read_text())["logit_adjustment"] is True


def test_no_logit_adjustment_trains_without_the_layer(tmp_path, camvid_dir):
    from realtime_seg.training.train import parser, train
    assert parser().parse_args(["--data", "d", "--out", "o", "--no-logit-adjustment"]).logit_adjustment is False
    train(tiny_config(camvid_dir, tmp_path / "run", epochs=1, limit=4, logit_adjustment=False,
                      compute_dtype="float32"))
    names = [layer.name for layer in load_keras(tmp_path / "run" / "last.keras").layers]
    assert ADJUSTMENT not in names and names[-1] == "logits"


def test_adjustment_brings_rare_class_pixels_back_to_their_share(camvid_dir):
    """The shipped fast preset on real val frames: without the adjustment it paints the rare classes
    (Pole, SignSymbol, Fence, Pedestrian, Bicyclist) over more pixels than they hold; with it, closer."""
    path = ROOT / "models" / "camvid_fast.keras"
    model = load_keras(path)
    assert model.layers[-1].name == ADJUSTMENT, f"{path} was exported without logit adjustment"
    _, h, w, _ = model.inputs[0].shape
    x = _frames(camvid_dir, (h, w))
    labels = [cv2.resize(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE), (w, h), interpolation=cv2.INTER_NEAREST)
              for p in sorted((camvid_dir / "valannot").glob("*.png"))]
    rare = [2, 6, 7, 9, 10]
    truth = np.mean([np.isin(label, rare).sum() / (label < 11).sum() for label in labels])
    shares = {}
    for name, m in (("raw", with_logit_adjustment(model, np.ones(11))), ("adjusted", model)):
        pred = np.argmax(np.asarray(m(x, training=False)), -1)
        shares[name] = np.mean([np.isin(p[label < 11], rare).mean() for p, label in zip(pred, labels)])
    assert shares["raw"] > truth  # the weighted loss's bias, measured
    assert abs(shares["adjusted"] - truth) < abs(shares["raw"] - truth), (shares, truth)


def _adjust(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scripts.adjust_logits", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_adjust_script_adds_the_layer_to_an_older_checkpoint(tiny_run, tmp_path):
    run, _ = tiny_run
    old = tmp_path / "old_run"
    old.mkdir()
    for name in ("config.json", "summary.json"):
        shutil.copy(run / name, old / name)
    with_logit_adjustment(load_keras(run / "last.keras"), np.ones(11)).save(old / "last.keras")  # as before
    before = (old / "last.keras").read_bytes()
    proc = _adjust(str(old / "last.keras"), "--out", str(tmp_path / "adjusted"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (old / "last.keras").read_bytes() == before  # the input is never overwritten
    adjusted = load_keras(tmp_path / "adjusted" / "last.keras")
    trained = load_keras(run / "last.keras")
    np.testing.assert_allclose(adjusted.get_layer(ADJUSTMENT).log_weights,
                               trained.get_layer(ADJUSTMENT).log_weights, rtol=1e-6)
    summary = json.loads((tmp_path / "adjusted" / "summary.json").read_text())
    assert 0 <= summary["logit_adjustment"]["val_miou_before"] <= 1 and 0 <= summary["last_val_miou"] <= 1
    assert summary["best_val_miou"] == summary["last_val_miou"]
    assert "val mIoU before adjustment" in proc.stdout and "after adjustment" in proc.stdout


def test_adjust_script_without_a_run_folder_says_so(tmp_path, tiny_run):
    shutil.copy(tiny_run[0] / "last.keras", tmp_path / "lone.keras")
    message = assert_one_line_error(_adjust(str(tmp_path / "lone.keras"), "--out", str(tmp_path / "o")))
    assert "no config.json beside" in message and not (tmp_path / "o").exists()
