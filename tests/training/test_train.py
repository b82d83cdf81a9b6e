"""Training: loss goes down, checkpoints and metrics are written and reload, resume, the CLI."""
from __future__ import annotations

import csv
import importlib.util
import json
import shutil

import numpy as np
import pytest

from conftest import ROOT, assert_one_line_error, run_cli, tiny_config

keras = pytest.importorskip("keras")


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_two_epochs_lower_the_loss_and_write_the_run(tiny_run):
    run, summary = tiny_run
    assert summary["epochs"] == 2 and summary["train_samples"] == 8 and summary["val_samples"] == 3
    assert summary["table"] == "camvid" and len(summary["classes"]) == 11
    assert np.isfinite(summary["first_loss"]) and summary["last_loss"] < summary["first_loss"]
    for name in ("best.keras", "last.keras", "metrics.csv", "summary.json", "config.json", "state.json"):
        assert (run / name).is_file(), name
    assert not list(run.glob(".*tmp*"))  # atomic saves leave no temporary files
    on_disk = json.loads((run / "summary.json").read_text())
    assert on_disk["best_val_miou"] == summary["best_val_miou"]
    assert 0 < on_disk["best_val_miou"] <= 1 and on_disk["best_epoch"] in (1, 2)
    rows = _rows(run / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    assert {"loss", "val_miou", "val_pixel_accuracy"} <= set(rows[0])
    assert max(float(r["val_miou"]) for r in rows) == pytest.approx(summary["best_val_miou"])
    assert float(rows[-1]["loss"]) == pytest.approx(summary["last_loss"], rel=1e-5)
    config = json.loads((run / "config.json").read_text())
    assert config["table"] == "camvid" and config["classes_list"][0] == "Sky"
    assert len(config["palette"]) == 11


def test_curves_are_drawn_with_the_run(tiny_run):
    """RUN_DIR/curves.png after the 2-epoch run: a PNG of the curves' fixed size."""
    import cv2
    from realtime_seg.training.curves import SIZE
    run, _ = tiny_run
    image = cv2.imread(str(run / "curves.png"))
    assert image is not None and image.shape == (SIZE[1], SIZE[0], 3)
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 20  # drawn on, not a blank canvas


def test_curves_read_the_schedule_and_a_failed_drawing_only_warns(tmp_path, caplog):
    from realtime_seg.training import curves
    from realtime_seg.training.schedule import make_optimizer
    optimizer = make_optimizer("adamw", 1e-3, 1e-4, "poly", total_steps=10, warmup_steps=2)
    assert curves.learning_rate(optimizer, 0) == pytest.approx(1e-4)   # warm-up starts at lr/10
    assert curves.learning_rate(optimizer, 2) == pytest.approx(1e-3)
    assert curves.learning_rate(optimizer, 10) == pytest.approx(2e-5)  # the floor: 2% of lr
    (tmp_path / "metrics.csv").write_text("epoch,loss,val_miou\n0,1.5,0.2\n")
    (tmp_path / "curves.png").mkdir()  # cannot be replaced by a file
    assert curves.update(tmp_path, optimizer, 1, {"loss": 1.0, "val_miou": 0.3}, 2) is None
    assert "could not draw" in caplog.text
    (tmp_path / "curves.png").rmdir()
    assert curves.update(tmp_path, optimizer, 1, {"loss": 1.0, "val_miou": 0.3}, 2) == tmp_path / "curves.png"


def test_checkpoints_reload_and_predict_consistently(tiny_run, camvid_dir):
    from realtime_seg.datasets.readers import load_dataset, load_pair
    from realtime_seg.datasets.metrics import summarize
    from realtime_seg.datasets.metrics import score
    from realtime_seg.training.epochs import keras_predictor
    run, summary = tiny_run
    best = keras.models.load_model(run / "best.keras")
    again = keras.models.load_model(run / "best.keras", compile=False)
    last = keras.models.load_model(run / "last.keras")
    assert tuple(best.inputs[0].shape) == (None, 32, 48, 3)
    assert tuple(best.outputs[0].shape) == (None, 32, 48, 11)
    assert best.optimizer is not None and last.optimizer is not None  # --resume needs it
    x = np.random.default_rng(0).random((2, 32, 48, 3), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(best(x, training=False)),
                               np.asarray(again(x, training=False)), rtol=1e-5, atol=1e-6)
    # the saved best model is the one that scored best_val_miou on the validation split
    ds = load_dataset(camvid_dir)
    val = [load_pair(s, ds.format, ds.table) for s in ds.val]
    cm = score(keras_predictor(best, (32, 48)), val, 11)
    assert summarize(cm)["miou"] == pytest.approx(summary["best_val_miou"], abs=1e-3)
    if summary["best_epoch"] == summary["epochs"]:
        np.testing.assert_allclose(np.asarray(last(x, training=False)),
                                   np.asarray(best(x, training=False)), rtol=1e-5, atol=1e-6)


def test_resume_continues_from_last(tmp_path, camvid_dir):
    from realtime_seg.training.train import train
    run = tmp_path / "run"
    first = train(tiny_config(camvid_dir, run, epochs=1, limit=4))
    assert first["epochs"] == 1 and len(_rows(run / "metrics.csv")) == 1
    weights_after_1 = keras.models.load_model(run / "last.keras").get_weights()
    second = train(tiny_config(camvid_dir, run, epochs=2, limit=4, resume=True))
    assert second["epochs"] == 2
    assert [int(r["epoch"]) for r in _rows(run / "metrics.csv")] == [0, 1]  # appended, one header
    assert len(json.loads((run / "summary.json").read_text())["config"]) > 0
    weights_after_2 = keras.models.load_model(run / "last.keras").get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(weights_after_1, weights_after_2))


def test_resume_without_checkpoint_is_an_error(tmp_path, camvid_dir):
    from realtime_seg.errors import UserError
    from realtime_seg.training.train import train
    with pytest.raises(UserError, match="last.keras does not exist"):
        train(tiny_config(camvid_dir, tmp_path / "fresh", epochs=1, limit=2, resume=True))


def test_mixed_precision_policy_does_not_leak(tmp_path, camvid_dir):
    """train() sets the policy it runs under and gives the caller's back when it returns."""
    from realtime_seg.training.train import train
    try:
        keras.mixed_precision.set_global_policy("mixed_float16")  # left by someone before us
        summary = train(tiny_config(camvid_dir, tmp_path / "plain", epochs=1, limit=2, compute_dtype="float32"))
        assert summary["policy"] == "float32"
        assert keras.mixed_precision.global_policy().name == "mixed_float16"  # the caller's, restored
        keras.mixed_precision.set_global_policy("float32")
        model = keras.models.load_model(tmp_path / "plain" / "last.keras")
        assert all(layer.dtype_policy.name == "float32" for layer in model.layers)
        summary = train(tiny_config(camvid_dir, tmp_path / "bf16", epochs=1, limit=2, compute_dtype="bfloat16"))
        assert summary["policy"] == "mixed_bfloat16"
        assert keras.mixed_precision.global_policy().name == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


# --- the command line ----------------------------------------------------------------------

@pytest.mark.slow
def test_cli_trains_on_carla13(tmp_path, carla13_dir):
    out = tmp_path / "cli_run"
    proc = run_cli("realtime_seg", "train", "--data", str(carla13_dir), "--epochs", "1",
                   "--width", "4", "--input-size", "32x48", "--workers", "1", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["table"] == "carla13" and summary["dataset"] == "carla"
    assert summary["train_samples"] == 3 and summary["val_samples"] == 1
    assert (out / "best.keras").is_file() and "done: 1 epochs" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_cli_missing_data_folder(tmp_path):
    proc = run_cli("realtime_seg", "train", "--data", str(tmp_path / "missing"),
                   "--out", str(tmp_path / "out"), "--epochs", "1")
    line = assert_one_line_error(proc, 1)
    assert "missing does not exist" in line
    assert not (tmp_path / "out").exists()


def test_cli_bad_data_file(tmp_path, carla13_dir):
    root = tmp_path / "data"
    shutil.copytree(carla13_dir, root)
    (root / "CameraRGB" / "val_1.png").write_bytes(b"broken")
    proc = run_cli("realtime_seg", "train", "--data", str(root), "--out", str(tmp_path / "out"),
                   "--epochs", "1", "--width", "4", "--input-size", "32x48")
    assert "val_1.png" in assert_one_line_error(proc, 1)
    assert not (tmp_path / "out").exists()  # failed before creating the run folder


@pytest.mark.parametrize("args", [["--input-size", "30x40"], ["--input-size", "big"],
                                  ["--epochs", "0"], ["--width", "-1"], ["--limit", "-1"],
                                  ["--format", "kitti"]])
def test_cli_usage_errors_exit_2(tmp_path, camvid_dir, args):
    proc = run_cli("realtime_seg", "train", "--data", str(camvid_dir), "--out", str(tmp_path / "o"),
                   *args)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and proc.stderr.strip()
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("jax") is None
                    or importlib.util.find_spec("tensorflow") is not None,
                    reason="needs an environment with JAX and without TensorFlow")
def test_jax_backend_trains_without_tensorflow(tmp_path, camvid_dir):
    out = tmp_path / "jax_run"
    proc = run_cli("realtime_seg", "train", "--data", str(camvid_dir), "--epochs", "1",
                   "--width", "4", "--input-size", "32x48", "--limit", "4", "--out", str(out),
                   env={"KERAS_BACKEND": "jax"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["backend"] == "jax" and summary["epochs"] == 1
    assert (out / "best.keras").is_file() and (ROOT / "realtime_seg").is_dir()


def test_no_augment_feeds_plain_resized_pairs(camvid_dir):
    """--no-augment gives the resized pairs themselves; augmentation changes them (was ignored once)."""
    from realtime_seg.datasets.readers import load_dataset, load_pair
    from realtime_seg.datasets.augment import resize_pair
    from realtime_seg.training.inputs import pixel_weights, sequence_class

    ds = load_dataset(camvid_dir)
    pairs = [load_pair(s, ds.format, ds.table) for s in ds.train[:4]]
    weights = pixel_weights(ds, pairs, "none")
    seq_class = sequence_class()
    plain = seq_class(pairs, (48, 64), 4, weights, ds.table.num_classes, 0, 1, ops=())
    augmented = seq_class(pairs, (48, 64), 4, weights, ds.table.num_classes, 0, 1)
    x, y, _ = plain[0]
    for image, label, i in zip(x, y, plain.order):
        want_image, want_label = resize_pair(*pairs[i], (48, 64))
        np.testing.assert_allclose(image, want_image / 255.0, atol=1e-6)
        np.testing.assert_array_equal(label, np.where(want_label < 11, want_label, 0))
    assert not np.allclose(augmented[0][0], x)


def test_init_fine_tunes_from_a_checkpoint_at_another_size(tiny_run, tmp_path, camvid_dir):
    """--init starts from a checkpoint's weights, even at another input size (fully convolutional)."""
    import keras

    from realtime_seg.training.train import train

    run, _ = tiny_run
    source = keras.models.load_model(run / "best.keras", compile=False)
    train(tiny_config(camvid_dir, tmp_path / "ft", epochs=1, lr=1e-12, input_size=(48, 64),
                      init=str(run / "best.keras"), schedule="constant"))
    tuned = keras.models.load_model(tmp_path / "ft" / "last.keras", compile=False)
    assert tuned.inputs[0].shape[1:3] == (48, 64)
    # lr ~0: the trainable weights are the checkpoint's (batch norm's running statistics move)
    for a, b in zip(source.trainable_weights, tuned.trainable_weights):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)


def test_init_with_another_width_is_a_clear_error(tiny_run, tmp_path, camvid_dir):
    run, _ = tiny_run
    result = run_cli("realtime_seg", "train", "--data", str(camvid_dir), "--out", str(tmp_path / "x"),
                     "--width", "8", "--input-size", "32x48", "--epochs", "1",
                     "--init", str(run / "best.keras"))
    assert "--init" in assert_one_line_error(result)
