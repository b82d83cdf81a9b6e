"""`train --preset`: each shipped model's recipe in one place (training/presets.py), run end to end,
and the card that shows it (models/README.md) agreeing with the code."""
from __future__ import annotations

import json

import pytest

from conftest import FIXTURES, ROOT, assert_one_line_error, run_cli
from realtime_seg.training.options import ARCHS
from realtime_seg.training.presets import PRESETS, recipe_table, stage_settings
from realtime_seg.training.train import TrainConfig, check_config

CARD = ROOT / "models" / "README.md"


@pytest.mark.parametrize("name", PRESETS)
def test_card_shows_the_recipe_and_its_one_command(name):
    card = CARD.read_text()
    assert recipe_table(name) in card, f"models/README.md does not show {name}'s stages as presets.py has them"
    assert (f"python -m realtime_seg train --preset {name} --data ../shared/data/camvid "
            f"--data ../shared/data/kitti --out runs/{name}") in card


@pytest.mark.parametrize("name", PRESETS)
def test_every_stage_is_a_valid_config(tmp_path, name):
    for stage in PRESETS[name].stages:
        cfg = TrainConfig(**stage_settings(PRESETS[name], stage, ["a", "b"]), out=str(tmp_path / stage.name))
        check_config(cfg)
        assert ARCHS[cfg.arch].pretrained and cfg.augmentations == "basic"


def test_shipped_metadata_matches_the_last_stage():
    """The exported presets record the input size their last stage trained at."""
    import onnx
    for name, file in (("accurate", "camvid_accurate.onnx"), ("fast", "camvid_fast.onnx")):
        meta = {p.key: p.value for p in onnx.load(str(ROOT / "models" / file), load_external_data=False).metadata_props}
        assert tuple(json.loads(meta["input_size"])) == PRESETS[name].stages[-1].settings["input_size"]


def test_preset_fast_runs_every_stage_end_to_end(tmp_path, camvid_dir):
    out = tmp_path / "fast"
    proc = run_cli("realtime_seg", "train", "--preset", "fast", "--data", str(camvid_dir), "--data",
                   str(FIXTURES / "kitti"), "--epochs", "1", "--limit", "8", "--out", str(out), timeout=1500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    stages = [s.name for s in PRESETS["fast"].stages]
    for i, stage in enumerate(stages):
        summary = json.loads((out / stage / "summary.json").read_text())
        config = summary["config"]
        assert summary["epochs"] == 1 and config["init"] == (str(out / stages[i - 1] / "last.keras") if i else "")
        assert tuple(config["input_size"]) == PRESETS["fast"].stages[i].settings["input_size"]
    assert summary["dataset"] == "camvid + kitti" and config["data_weights"] == "1,2"
    assert f"preset fast: {out / 'fast' / 'last.keras'}" in proc.stdout
    again = run_cli("realtime_seg", "train", "--preset", "fast", "--data", str(camvid_dir), "--data",
                    str(FIXTURES / "kitti"), "--epochs", "1", "--limit", "8", "--out", str(out))
    assert again.returncode == 0 and again.stdout.count("done before, kept") == len(stages)


@pytest.mark.parametrize("args, message", [
    (["--preset", "huge"], "--preset: unknown preset 'huge'; allowed: accurate, fast"),
    (["--preset", "fast", "--lr", "0.1"], "--preset fast sets --lr itself; drop it"),
    (["--preset", "fast", "--input-size", "64x64"], "--preset fast sets --input-size itself"),
])
def test_preset_misuse_is_one_line(tmp_path, camvid_dir, args, message):
    proc = run_cli("realtime_seg", "train", "--data", str(camvid_dir), "--out", str(tmp_path / "x"), *args)
    assert message in assert_one_line_error(proc, 2)
    assert not (tmp_path / "x").exists()
