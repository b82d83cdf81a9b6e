"""Cityscapes-format datasets (KITTI semantics, Cityscapes): layouts, labelIds onto a class set, bad input.

The frames are three real KITTI frames (tests/fixtures/kitti, Cityscapes labelIds); the Cityscapes
layout is the same frames filed as Cityscapes files them.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import FIXTURES, assert_one_line_error, run_cli
from realtime_seg.datasets.augment import augment, cover_size
from realtime_seg.datasets.classes import CAMVID, CITYSCAPES
from realtime_seg.datasets.readers import detect_format, drives, load_dataset, load_datasets, load_pair, load_split
from realtime_seg.errors import DataError

KITTI = FIXTURES / "kitti"
FRAMES = ("000003_10", "000010_10", "000042_10")
# ../shared/data/kitti/README.md's table, written out again here: labelId -> CamVid name
README_TO_CAMVID = {23: "Sky", 11: "Building", 12: "Building", 15: "Building", 16: "Building", 17: "Pole",
                    18: "Pole", 7: "Road", 8: "Pavement", 21: "Tree", 22: "Tree", 19: "SignSymbol",
                    20: "SignSymbol", 13: "Fence", 14: "Fence", 26: "Car", 27: "Car", 28: "Car", 29: "Car",
                    30: "Car", 31: "Car", 24: "Pedestrian", 25: "Bicyclist", 32: "Bicyclist", 33: "Bicyclist"}


def _raw(name: str) -> np.ndarray:
    return cv2.imread(str(KITTI / "training" / "semantic" / f"{name}.png"), cv2.IMREAD_UNCHANGED)


def _cityscapes_tree(root: Path) -> Path:
    """The KITTI fixture frames filed as Cityscapes files them (two in train, one in val)."""
    for i, name in enumerate(FRAMES):
        split = "val" if i == 2 else "train"
        for kind, folder, suffix in (("image_2", "leftImg8bit", "leftImg8bit"), ("semantic", "gtFine", "gtFine_labelIds")):
            target = root / folder / split / "karlsruhe" / f"karlsruhe_{name}_{suffix}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(KITTI / "training" / kind / f"{name}.png", target)
    return root


def _copy_kitti(tmp_path: Path) -> Path:
    root = tmp_path / "kitti"
    shutil.copytree(KITTI, root)
    for f in root.rglob("*.png"):
        f.chmod(0o644)
    return root


def test_kitti_layout_found_at_its_root_or_training_folder():
    assert detect_format(KITTI) == detect_format(KITTI / "training") == "kitti"
    fmt, samples = load_split(KITTI, "all")
    assert [s.image.stem for s in samples] == list(FRAMES)
    assert list(drives(samples, fmt)) == ["000003", "000010", "000042"]  # each frame its own scene


def test_labelids_map_onto_camvid_as_the_table_says():
    ds = load_datasets([str(KITTI)], classes="camvid")[0]
    assert ds.table == CAMVID
    for sample in ds.train + ds.val:
        raw = _raw(sample.image.stem)
        _, mask = load_pair(sample, ds.format, ds.table)
        for label in np.unique(raw):
            mapped = np.unique(mask[raw == label])
            expected = CAMVID.classes.index(README_TO_CAMVID[label]) if label in README_TO_CAMVID else 255
            assert mapped.tolist() == [expected], (sample.image.name, label, mapped)


def test_unknown_labelids_are_void_and_weigh_nothing():
    from realtime_seg.training.inputs import pixel_weights
    ds = load_datasets([str(KITTI)], classes="camvid")[0]
    pairs = [load_pair(s, ds.format, ds.table) for s in ds.train + ds.val]
    raw = np.concatenate([_raw(s.image.stem).ravel() for s in ds.train + ds.val])
    masks = np.concatenate([m.ravel() for _, m in pairs])
    unlisted = ~np.isin(raw, list(README_TO_CAMVID))  # unlabeled, static, ground, parking, rail...
    assert unlisted.any() and np.all(masks[unlisted] == 255) and np.all(masks[~unlisted] < 11)
    assert pixel_weights(ds, pairs, "median")[255] == 0


def test_alone_they_train_cityscapes_19_classes():
    ds = load_dataset(KITTI)
    assert ds.table == CITYSCAPES
    _, mask = load_pair(ds.train[0], ds.format, ds.table)
    raw = _raw(ds.train[0].image.stem)
    assert np.all(mask[raw == 7] == 0) and np.all(mask[raw == 26] == 13)   # road, car (trainIds)
    assert np.all(mask[raw == 4] == 255)                                    # static: void


def test_cityscapes_layout_splits_and_cities(tmp_path):
    root = _cityscapes_tree(tmp_path / "cityscapes")
    assert detect_format(root) == "cityscapes"
    ds = load_dataset(root)
    assert [len(ds.train), len(ds.val)] == [2, 1] and ds.table == CITYSCAPES
    assert drives(ds.train, "cityscapes") == {"karlsruhe": 2}
    _, mask = load_pair(ds.val[0], ds.format, ds.table)
    assert mask.shape == _raw(FRAMES[2]).shape


def test_mixing_camvid_and_kitti_gives_camvid_classes(camvid_dir):
    sets = load_datasets([str(camvid_dir), str(KITTI)])
    assert [s.format for s in sets] == ["camvid", "kitti"] and all(s.table == CAMVID for s in sets)


def test_mixing_class_sets_that_differ_is_one_line(carla13_dir, camvid_dir):
    with pytest.raises(DataError, match="carla13's classes but .* camvid's"):
        load_datasets([str(camvid_dir), str(carla13_dir)])


def test_wide_frames_are_cropped_never_squashed():
    ds = load_datasets([str(KITTI)], classes="camvid")[0]
    image, mask = load_pair(ds.train[0], ds.format, ds.table)
    ch, cw = cover_size(mask.shape, (96, 128))
    assert round(ch) == 96 and cw / ch == pytest.approx(mask.shape[1] / mask.shape[0], rel=0.01)
    covered = cv2.resize(mask, (round(cw), round(ch)), interpolation=cv2.INTER_NEAREST)
    for seed in range(3):
        _, crop = augment(image, mask, (96, 128), np.random.default_rng(seed), ops=())
        windows = [x for x in range(covered.shape[1] - 127) if np.array_equal(covered[:, x:x + 128], crop)]
        assert windows, "the crop is not a window of the frame at its own aspect"


def _train(tmp_path, *args):
    return run_cli("realtime_seg", "train", "--out", str(tmp_path / "run"), "--epochs", "1", "--width", "4",
                   "--input-size", "32x48", *args)


@pytest.mark.parametrize("damage, message", [
    ("size", "000010_10.png is 621x187 but its image is 1242x375"),
    ("labelid", "000010_10.png has labelId 40, outside the Cityscapes table (0-33)"),
    ("unpaired", "000010_10.png has no label in"),
])
def test_bad_labels_are_one_line_exit_2(tmp_path, damage, message):
    root = _copy_kitti(tmp_path)
    label = root / "training" / "semantic" / "000010_10.png"
    raw = cv2.imread(str(label), cv2.IMREAD_UNCHANGED)
    if damage == "size":
        cv2.imwrite(str(label), cv2.resize(raw, (621, 187), interpolation=cv2.INTER_NEAREST))
    elif damage == "labelid":
        raw[:5, :5] = 40
        cv2.imwrite(str(label), raw)
    else:
        label.unlink()
    assert message in assert_one_line_error(_train(tmp_path, "--data", str(root)), 2)
    assert not (tmp_path / "run").exists()


def test_folder_of_neither_layout_is_one_line_exit_2(tmp_path):
    (tmp_path / "photos").mkdir()
    shutil.copy(KITTI / "training" / "image_2" / "000003_10.png", tmp_path / "photos")
    line = assert_one_line_error(_train(tmp_path, "--data", str(tmp_path / "photos")), 2)
    assert "is neither a CamVid folder" in line and "KITTI semantics folder (image_2/ + semantic/)" in line


def test_eval_scores_kitti_with_camvid_classes():
    proc = run_cli("realtime_seg", "eval", "--model", str(FIXTURES / "tiny_camvid.onnx"), "--data", str(KITTI),
                   "--split", "all")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "scoring 3 images" in proc.stdout and "every KITTI pair" in proc.stdout and "mIoU" in proc.stdout
