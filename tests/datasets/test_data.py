"""Dataset readers, class ids, void handling, augmentation, and errors for bad data."""
from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from realtime_seg.datasets import augment as data, metrics
from realtime_seg.datasets.classes import CAMVID, CARLA13, CARLA23
from realtime_seg.datasets.readers import Sample, load_dataset, load_pair, read_image, read_mask
from realtime_seg.datasets.augment import VOID, augment
from realtime_seg.errors import UsageError, UserError


def _all_pairs(ds):
    return [(s, *load_pair(s, ds.format, ds.table)) for s in ds.train + ds.val]


# --- readers -------------------------------------------------------------------------------

def test_carla13_ids_are_the_red_channel(carla13_dir):
    ds = load_dataset(carla13_dir)
    assert ds.format == "carla" and ds.table is CARLA13
    assert len(ds.train) + len(ds.val) == 4 and len(ds.val) == 1
    seen = set()
    for sample, image, mask in _all_pairs(ds):
        raw = cv2.imread(str(sample.mask), cv2.IMREAD_UNCHANGED)
        assert raw.ndim == 3  # the fixture keeps the 3-channel capture format
        np.testing.assert_array_equal(mask, raw[..., 2])  # OpenCV is BGR: red is index 2
        assert mask.dtype == np.uint8 and image.shape == (*mask.shape, 3)
        seen |= set(np.unique(mask).tolist())
    assert seen <= set(range(13))
    assert len(seen) > 5  # a real scene, not an empty mask


def test_carla13_image_is_rgb(carla13_dir):
    path = carla13_dir / "CameraRGB" / "train_0.png"
    np.testing.assert_array_equal(read_image(path), cv2.imread(str(path))[..., ::-1])


def test_carla23_rgba_variant(carla23_dir):
    ds = load_dataset(carla23_dir)
    assert ds.format == "carla" and ds.table is CARLA23 and ds.table.num_classes == 23
    top = 0
    for sample, image, mask in _all_pairs(ds):
        raw = cv2.imread(str(sample.mask), cv2.IMREAD_UNCHANGED)
        assert raw.shape[2] == 4  # RGBA on disk
        np.testing.assert_array_equal(mask, raw[..., 2])
        rgba = cv2.imread(str(sample.image), cv2.IMREAD_UNCHANGED)
        assert rgba.shape[2] == 4 and image.shape == (*rgba.shape[:2], 3)
        np.testing.assert_array_equal(image, rgba[..., 2::-1])  # alpha dropped, BGR -> RGB
        top = max(top, int(mask.max()))
    assert 12 < top < 23


def test_carla23_can_be_forced_and_13_rejects_its_ids(carla23_dir):
    assert load_dataset(carla23_dir, classes="carla23").table is CARLA23
    ds = load_dataset(carla23_dir, classes="carla13")
    assert ds.table is CARLA13
    with pytest.raises(UserError, match="outside the carla13 table"):
        for s in ds.train + ds.val:
            load_pair(s, ds.format, ds.table)
    with pytest.raises(UserError, match="--classes carla99: CARLA labels are CARLA.s tags"):
        load_dataset(carla23_dir, classes="carla99")


def test_camvid_ids_and_void(camvid_dir):
    ds = load_dataset(camvid_dir)
    assert ds.format == "camvid" and ds.table is CAMVID and ds.table.void == 11
    assert [s.image.name for s in ds.train] == [s.mask.name for s in ds.train]
    assert len(ds.train) == 8 and len(ds.val) == 3
    seen = set()
    for sample, image, mask in _all_pairs(ds):
        np.testing.assert_array_equal(mask, cv2.imread(str(sample.mask), cv2.IMREAD_UNCHANGED))
        assert image.shape == (180, 240, 3)
        seen |= set(np.unique(mask).tolist())
    assert seen <= set(range(12)) and 11 in seen


def test_confusion_matrix_ignores_void():
    labels = np.array([[0, 1, 11], [2, 11, 1]], np.uint8)
    preds = np.array([[0, 2, 5], [2, 7, 1]], np.int64)
    cm = metrics.confusion_matrix(labels, preds, 11)
    assert cm.shape == (11, 11) and cm.sum() == 4  # the two void pixels are not counted
    assert cm[0, 0] == 1 and cm[1, 2] == 1 and cm[2, 2] == 1 and cm[1, 1] == 1
    scores = metrics.summarize(cm)
    assert scores["pixel_accuracy"] == pytest.approx(0.75)
    # IoU: class 0 = 1, class 1 = 1/2, class 2 = 1/2; absent classes do not count
    assert scores["miou"] == pytest.approx((1 + 0.5 + 0.5) / 3)


def test_void_pixels_have_zero_weight(camvid_dir):
    from realtime_seg.training.inputs import pixel_weights
    ds = load_dataset(camvid_dir)
    pairs = [load_pair(s, ds.format, ds.table) for s in ds.train]
    for mode in ("none", "median"):
        w = pixel_weights(ds, pairs, mode)
        assert w.shape == (256,) and w[11] == 0 and not w[11:].any()
        assert (w[:11] > 0).all() or mode == "median"
    w = pixel_weights(ds, pairs, "median")
    counts = sum(np.bincount(m.ravel(), minlength=256) for _, m in pairs)[:11]
    rare, common = int(np.argmin(np.where(counts > 0, counts, np.inf))), int(np.argmax(counts))
    assert w[rare] > 1 > w[common]  # median balancing lifts rare classes, lowers common ones
    with pytest.raises(UsageError):
        pixel_weights(ds, pairs, "inverse")


def test_training_batches_mask_void(camvid_dir):
    keras = pytest.importorskip("keras")  # noqa: F841  (the batch class is a keras PyDataset)
    from realtime_seg.training.inputs import pixel_weights, sequence_class
    ds = load_dataset(camvid_dir)
    pairs = [load_pair(s, ds.format, ds.table) for s in ds.train[:4]]
    weights = pixel_weights(ds, pairs, "none")
    seq = sequence_class()(pairs, (32, 48), 4, weights, 11, 0, 1, ops=())
    x, y, w = seq[0]
    assert x.shape == (4, 32, 48, 3) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert y.shape == (4, 32, 48) and y.dtype == np.int32 and y.max() < 11
    raw = np.stack([data.resize_pair(*pairs[i], (32, 48))[1] for i in seq.order])  # shuffled order
    np.testing.assert_array_equal(w == 0, raw == 11)


# --- augmentation ----------------------------------------------------------------------------

def _stripe_pair():
    """A mask with class 1 on a left stripe, and an image that is bright exactly there."""
    mask = np.zeros((120, 160), np.uint8)
    mask[:, 10:50] = 1
    image = np.where(mask[..., None] == 1, 255, 0).astype(np.uint8).repeat(3, axis=2)
    return image, mask


def test_augment_is_deterministic_per_seed(camvid_dir):
    image, mask = load_pair(Sample(camvid_dir / "train" / "0001TP_006690.png",
                                   camvid_dir / "trainannot" / "0001TP_006690.png"),
                            "camvid", CAMVID)
    a = augment(image, mask, (64, 96), np.random.default_rng(7))
    b = augment(image, mask, (64, 96), np.random.default_rng(7))
    c = augment(image, mask, (64, 96), np.random.default_rng(8))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[0].shape == (64, 96, 3) and a[1].shape == (64, 96)
    assert a[0].dtype == np.uint8 and a[1].dtype == np.uint8
    assert not np.array_equal(a[0], c[0])
    assert set(np.unique(a[1])) <= set(np.unique(mask)) | {VOID}  # nearest: no invented ids; padding void


def test_augment_keeps_image_and_mask_aligned():
    image, mask = _stripe_pair()
    flipped = 0
    for seed in range(20):
        img, m = augment(image, mask, (48, 64), np.random.default_rng(seed))
        bright = img[..., 0] > 127
        assert np.mean(bright == (m == 1)) > 0.9, seed  # stripe edges may differ by a column
        cols = np.flatnonzero(m.any(axis=0))
        flipped += cols.size > 0 and cols.mean() > 32  # the stripe moved to the right half
    assert 0 < flipped < 20  # both flipped and unflipped examples were checked


# --- bad input: always a UserError that names the file ---------------------------------------

def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    return dst


def _decode_all(root: Path, **kw):
    ds = load_dataset(root, **kw)
    for s in ds.train + ds.val:
        load_pair(s, ds.format, ds.table)


def test_image_without_mask(tmp_path, carla13_dir):
    root = _copy(carla13_dir, tmp_path)
    (root / "CameraSeg" / "train_1.png").unlink()
    with pytest.raises(UserError, match=r"train_1\.png has no label"):
        load_dataset(root)


def test_mask_size_differs(tmp_path, camvid_dir):
    root = _copy(camvid_dir, tmp_path)
    path = root / "trainannot" / "0016E5_01770.png"
    cv2.imwrite(str(path), cv2.resize(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), (120, 90),
                                      interpolation=cv2.INTER_NEAREST))
    with pytest.raises(UserError, match=r"0016E5_01770\.png is 120x90 but its image is 240x180"):
        _decode_all(root)


def test_class_id_outside_table(tmp_path, camvid_dir):
    root = _copy(camvid_dir, tmp_path)
    path = root / "valannot" / "0016E5_08059.png"
    label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    label[:4, :4] = 12  # CamVid has 0-10 and void 11
    cv2.imwrite(str(path), label)
    with pytest.raises(UserError, match=r"0016E5_08059\.png has class id 12, outside the camvid"):
        _decode_all(root)


def test_carla_id_past_23_classes(tmp_path, carla13_dir):
    root = _copy(carla13_dir, tmp_path)
    path = root / "CameraSeg" / "val_1.png"
    seg = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    seg[0, 0, 2] = 40
    cv2.imwrite(str(path), seg)
    with pytest.raises(UserError, match=r"val_1\.png has class id 40, outside the carla23"):
        _decode_all(root)


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="empty is neither a CamVid folder"):
        load_dataset(tmp_path / "empty")


def test_missing_folder(tmp_path):
    with pytest.raises(UserError, match="nope does not exist"):
        load_dataset(tmp_path / "nope")


def test_capture_with_no_images(tmp_path):
    """The shared coursera_23class sample's layout: CameraRGB/ + CameraMask/ holding only `temp`."""
    root = tmp_path / "coursera_23class"
    for sub in ("CameraRGB", "CameraMask"):
        (root / sub).mkdir(parents=True)
        (root / sub / "temp").write_bytes(b"\n")
    with pytest.raises(UserError, match="no image/mask pairs found under .*coursera_23class"):
        load_dataset(root)


def test_unrecognised_layout(tmp_path):
    root = tmp_path / "photos"
    (root / "images").mkdir(parents=True)
    (root / "images" / "a.png").write_bytes(b"x")
    (root / "notes.txt").write_text("not a dataset")
    with pytest.raises(UserError, match="photos is neither a CamVid folder"):
        load_dataset(root)


def test_camvid_without_val_split(tmp_path, camvid_dir):
    root = _copy(camvid_dir, tmp_path)
    shutil.rmtree(root / "valannot")
    with pytest.raises(UserError, match="no CamVid split 'val'"):
        load_dataset(root)


@pytest.mark.parametrize("which", ["image", "mask"])
@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_corrupt_file(tmp_path, carla13_dir, which, damage):
    root = _copy(carla13_dir, tmp_path)
    path = root / ("CameraRGB" if which == "image" else "CameraSeg") / "train_2.png"
    content = path.read_bytes()
    path.write_bytes({"garbage": b"definitely not a PNG", "truncated": content[:len(content) // 2],
                      "empty": b""}[damage])
    with pytest.raises(UserError, match=rf"cannot read {which} .*train_2\.png"):
        _decode_all(root)


def test_unknown_format(carla13_dir):
    with pytest.raises(UserError, match="unknown format"):
        load_dataset(carla13_dir, fmt="mapillary")


def test_split_is_deterministic_and_disjoint(carla13_dir):
    a, b = load_dataset(carla13_dir, seed=3), load_dataset(carla13_dir, seed=3)
    assert a.train == b.train and a.val == b.val
    assert not set(a.train) & set(a.val)
    assert len(read_mask(a.val[0].mask, "carla").shape) == 2
