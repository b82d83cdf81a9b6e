"""Progressive resizing (train --progressive HxW:EPOCHS): the first epochs at a smaller size, the
rest at --input-size; checkpoints, val scores and the optimizer's state stay the full-size run's."""
from __future__ import annotations

import csv

import pytest

from tests.conftest import assert_one_line_error, run_cli, tiny_config

FULL, SMALL = (64, 96), (32, 48)
STEPS = 2  # --limit 4, --batch-size 2
RUN = dict(input_size=FULL, progressive="32x48:2", epochs=3, limit=4, compute_dtype="float32")


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _recording_sequence(monkeypatch) -> list[tuple[int, tuple]]:
    """Make train's batches record (the sequence's epoch, the batch's image size), in order."""
    from realtime_seg.training import train as train_module
    from realtime_seg.training.inputs import sequence_class
    seen: list[tuple[int, tuple]] = []

    class Recording(sequence_class()):
        def __getitem__(self, idx):
            batch = super().__getitem__(idx)
            seen.append((self.epoch, tuple(batch[0].shape[1:3])))
            return batch

    monkeypatch.setattr(train_module, "sequence_class", lambda: Recording)
    return seen


def _trained_epochs(seen, first: int) -> dict[tuple, set]:
    """size -> the (0-based) epochs that trained on batches of it, in a run from epoch `first` that
    switches at epoch 2, checking that the sizes never go back from full to small.

    Each fit reads two batches (to learn their shapes) before it starts; then Keras's adapter calls
    the sequence's on_epoch_end as the fit starts, so while epoch e trains the sequence is numbered
    e + 1, in any run (uninterrupted, resumed or progressive).
    """
    sizes = [size for _, size in seen]
    switch = sizes.index(FULL)
    assert set(sizes[:switch]) <= {SMALL} and set(sizes[switch:]) == {FULL}
    starts = {SMALL: first, FULL: max(first, 2)}
    return {size: {e - 1 for e, s in seen if s == size and e > start} for size, start in starts.items()}


def _interrupt_at(monkeypatch, stop: int) -> None:
    """Train as if Ctrl-C came as epoch `stop` (0-based) begins."""
    import keras

    from realtime_seg.training import train as train_module
    real = train_module.epoch_callbacks

    class Stop(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == stop:
                raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "epoch_callbacks", lambda *a, **k: real(*a, **k) + [Stop()])


@pytest.fixture(scope="module")
def progressive_run(tmp_path_factory, camvid_dir):
    pytest.importorskip("keras")
    from realtime_seg.training.train import train
    run = tmp_path_factory.mktemp("progressive") / "run"
    with pytest.MonkeyPatch.context() as monkeypatch:
        seen = _recording_sequence(monkeypatch)
        summary = train(tiny_config(camvid_dir, run, **RUN))
    return run, summary, seen


def test_first_epochs_train_small_and_the_checkpoints_are_full_size(progressive_run, capsys):
    import keras
    run, summary, seen = progressive_run
    assert _trained_epochs(seen, 0) == {SMALL: {0, 1}, FULL: {2}}
    assert summary["epochs"] == 3 and 0 <= summary["last_val_miou"] <= 1
    rows = _rows(run / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]  # one file across the switch
    assert [(int(float(r["input_height"])), int(float(r["input_width"]))) for r in rows] == [SMALL, SMALL, FULL]
    assert all(float(r["seconds"]) > 0 and float(r["val_miou"]) >= 0 for r in rows)
    for name in ("last.keras", "best.keras"):
        model = keras.models.load_model(run / name)
        assert tuple(model.inputs[0].shape) == (None, *FULL, 3), name


def test_the_optimizer_continues_across_the_switch(progressive_run):
    import keras
    run, summary, _ = progressive_run
    model = keras.models.load_model(run / "last.keras")
    optimizer = model.optimizer
    assert int(optimizer.iterations) == 3 * STEPS  # every step of both phases, on one optimizer
    assert float(optimizer.learning_rate) == pytest.approx(0.02 * 1e-3, rel=1e-4)  # poly's floor at the end
    moments = [v for v in optimizer.variables if "momentum" in v.path]
    assert moments and all(float(keras.ops.max(keras.ops.abs(v))) > 0 for v in moments[:5])


@pytest.mark.parametrize("stop", [1, 2], ids=["in-small-phase", "after-switch"])
def test_resume_continues_in_the_phase_it_was_cut_off_in(tmp_path, camvid_dir, monkeypatch, stop):
    keras = pytest.importorskip("keras")

    from realtime_seg.errors import Interrupted
    from realtime_seg.training.train import train
    run = tmp_path / "run"
    with monkeypatch.context() as patch:
        _interrupt_at(patch, stop)
        with pytest.raises(Interrupted):
            train(tiny_config(camvid_dir, run, **RUN))
    assert int(keras.models.load_model(run / "last.keras").optimizer.iterations) == stop * STEPS
    seen = _recording_sequence(monkeypatch)
    summary = train(tiny_config(camvid_dir, run, resume=True, **RUN))
    assert _trained_epochs(seen, stop) == {SMALL: set(range(stop, 2)), FULL: {2}}
    assert summary["epochs"] == 3
    assert [int(r["epoch"]) for r in _rows(run / "metrics.csv")] == [0, 1, 2]
    model = keras.models.load_model(run / "last.keras")
    assert int(model.optimizer.iterations) == 3 * STEPS and tuple(model.inputs[0].shape) == (None, *FULL, 3)


@pytest.mark.parametrize("arch, small", [("resunet", (32, 48)), ("seed", (32, 48)), ("lite0", (32, 64))])
def test_the_small_view_is_the_architecture_at_the_small_size(arch, small):
    """Same outputs as the arch built at the small size with the full model's weights, sharing them."""
    pytest.importorskip("keras")
    import numpy as np

    from realtime_seg.training.model import get_model
    from realtime_seg.training.progressive import small_view
    full = get_model(arch, FULL, 11, 4)
    view = small_view(full, small)
    built_small = get_model(arch, small, 11, 4)
    built_small.set_weights(full.get_weights())
    x = np.random.default_rng(0).random((2, *small, 3), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(view(x, training=False)), np.asarray(built_small(x, training=False)),
                               atol=1e-6)
    assert {id(v) for v in view.weights} == {id(v) for v in full.weights}


def test_schedule_lines():
    from realtime_seg.training.progressive import Phase, describe, phases, switch_line
    cfg = tiny_config("d", "o", input_size=(352, 480), progressive="256x352:30", epochs=45)
    assert describe(cfg) == "progressive resizing: epochs 1-30 at 256x352, epochs 31-45 at 352x480"
    assert phases(cfg, 0) == [Phase((256, 352), 0, 30), Phase((352, 480), 30, 45)]
    assert phases(cfg, 12) == [Phase((256, 352), 12, 30), Phase((352, 480), 30, 45)]
    assert phases(cfg, 30) == [Phase((352, 480), 30, 45)]
    assert switch_line(phases(cfg, 0)[1]) == "progressive resizing: epoch 31 on at full size 352x480"
    assert phases(tiny_config("d", "o", epochs=5), 2) == [Phase((32, 48), 2, 5)]


@pytest.mark.parametrize("value, extra, message", [
    ("abc", [], "HEIGHTxWIDTH:EPOCHS"),
    ("64x96", [], "HEIGHTxWIDTH:EPOCHS"),
    ("40x64:5", [], "multiples of 16"),
    ("48x64:5", ["--arch", "lite0"], "multiples of 32 for --arch lite0"),
    ("96x128:5", [], "smaller than --input-size 96x128"),
    ("112x64:5", [], "smaller than --input-size 96x128"),
    ("64x96:0", [], "below --epochs (40), got 0"),
    ("64x96:40", [], "below --epochs (40), got 40"),
])
def test_bad_values_get_one_line(tmp_path, camvid_dir, value, extra, message):
    proc = run_cli("realtime_seg", "train", "--data", str(camvid_dir), "--out", str(tmp_path / "r"),
                   "--limit", "1", "--width", "4", "--progressive", value, *extra)  # tiny, were it to train
    line = assert_one_line_error(proc, 2)
    assert "--progressive" in line and message in line, line
    assert not (tmp_path / "r").exists()
