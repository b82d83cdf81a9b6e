"""Scale augmentation about the run's resolution: centred on 1, crop and pad, padding is void."""
from __future__ import annotations

import numpy as np
import pytest

from realtime_seg.datasets.augment import augment, resize_pair, sample_scale
from realtime_seg.datasets.classes import CAMVID
from realtime_seg.datasets.readers import Sample, load_pair

GEOMETRIC = ("scale", "flip")  # no rotation: scale 1 is then exactly the resized frame


@pytest.fixture(scope="module")
def frame(camvid_dir):
    """A real CamVid training frame (360x480) and its labels."""
    name = "0001TP_006690.png"
    return load_pair(Sample(camvid_dir / "train" / name, camvid_dir / "trainannot" / name), "camvid", CAMVID)


def test_scale_distribution_is_centred_on_one():
    rng = np.random.default_rng(0)
    scales = np.array([sample_scale(rng, (0.5, 2.0)) for _ in range(4000)])
    assert 0.5 <= scales.min() and scales.max() <= 2.0
    assert np.median(scales) == pytest.approx(1.0, abs=0.05)       # zooms out as often as in
    assert np.mean(np.log2(scales)) == pytest.approx(0.0, abs=0.03)
    assert 0.2 < np.mean(scales < 0.75) < 0.3 and 0.2 < np.mean(scales > 1.5) < 0.3  # log-uniform
    assert sample_scale(rng, (1.0, 1.0)) == pytest.approx(1.0)


def test_scale_one_without_jitter_is_the_resized_frame(frame):
    """At scale 1 the net sees what eval feeds it: the whole frame at the run's size (maybe flipped)."""
    image, mask = frame
    want_image, want_mask = resize_pair(image, mask, (96, 128))
    flips = set()
    for seed in range(8):
        img, m = augment(image, mask, (96, 128), np.random.default_rng(seed), (1.0, 1.0), ops=GEOMETRIC)
        flipped = not np.array_equal(m, want_mask)
        flips.add(flipped)
        np.testing.assert_array_equal(m, want_mask[:, ::-1] if flipped else want_mask)
        np.testing.assert_array_equal(img, want_image[:, ::-1] if flipped else want_image)
    assert flips == {False, True}


def test_zoomed_out_frames_are_padded_with_void(frame):
    image, mask = frame
    for seed in range(5):
        img, m = augment(image, mask, (96, 128), np.random.default_rng(seed), (0.5, 0.5), void=CAMVID.void,
                         ops=GEOMETRIC)
        assert img.shape == (96, 128, 3) and m.shape == (96, 128)
        pad = m == CAMVID.void
        assert pad.mean() >= 0.75 - 0.01  # the frame fills a quarter of the window
        frame_part = ~pad
        rows, cols = np.flatnonzero(frame_part.any(1)), np.flatnonzero(frame_part.any(0))
        assert len(rows) <= 48 and len(cols) <= 64  # one 48x64 block, anywhere in the window
        padding_outside = np.ones_like(pad)
        padding_outside[rows.min():rows.max() + 1, cols.min():cols.max() + 1] = False
        assert (img[padding_outside] == 0).all() and pad[padding_outside].all()


def test_zoomed_in_crops_keep_image_and_mask_aligned(frame):
    """A mask drawn from the image's own pixels stays equal to the augmented image's."""
    image, _ = frame
    mask = (image[..., 0] > 128).astype(np.uint8)  # label = "red channel is bright"
    for seed in range(6):
        img, m = augment(image, mask, (96, 128), np.random.default_rng(seed), (1.5, 2.0), ops=GEOMETRIC)
        agree = np.mean((img[..., 0] > 128) == (m == 1))
        assert agree > 0.95, (seed, agree)  # interpolation blurs the edges only
        assert not (m == 255).any()  # zoomed in: no padding


def test_photometric_jitter_changes_colours_not_labels(frame):
    image, mask = frame
    plain = augment(image, mask, (96, 128), np.random.default_rng(3), (1.0, 1.0), ops=GEOMETRIC)
    jittered = augment(image, mask, (96, 128), np.random.default_rng(3), (1.0, 1.0), ops=(*GEOMETRIC, "colour"))
    np.testing.assert_array_equal(plain[1], jittered[1])
    assert np.abs(plain[0].astype(int) - jittered[0]).mean() > 1


def test_training_batches_give_padding_zero_weight(camvid_dir):
    """The trainer's batches: zoomed-out padding is void, so its pixels weigh nothing in the loss."""
    pytest.importorskip("keras")  # the batch class is a keras PyDataset
    from realtime_seg.datasets.readers import load_dataset
    from realtime_seg.training.inputs import pixel_weights, sequence_class
    ds = load_dataset(camvid_dir)
    pairs = [load_pair(s, ds.format, ds.table) for s in ds.train[:4]]
    seq = sequence_class()(pairs, (48, 64), 4, pixel_weights(ds, pairs, "median"), 11, 0, 1,
                                 ("scale", "flip", "colour"), (0.5, 0.5), CAMVID.void)
    x, y, w = seq[0]
    assert x.shape == (4, 48, 64, 3) and y.shape == w.shape == (4, 48, 64)
    for weights in w:  # each frame fills a 24x32 block of its window; the rest weighs 0
        rows, cols = np.flatnonzero(weights.any(1)), np.flatnonzero(weights.any(0))
        assert len(rows) <= 24 and len(cols) <= 32
        block = weights[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        assert (weights == 0).sum() >= weights.size - 24 * 32 and (block > 0).mean() > 0.8


# --- round 7: rotation and the photometric set (gamma, hue, blur, noise) -------------------------

def _marked(frame):
    """The frame with a bright-green block labelled void and the rest labelled by the red channel:
    labels that are a function of the pixels, so any geometric misstep shows."""
    image, _ = frame
    image = image.copy()
    image[100:200, 150:300] = (0, 255, 0)
    mask = (image[..., 0] > 128).astype(np.uint8)
    mask[100:200, 150:300] = CAMVID.void
    return image, mask


@pytest.mark.parametrize("ops", [("rotate",), ("rotate", "scale", "flip")])
def test_rotation_moves_labels_with_pixels_and_void_stays_void(frame, ops):
    image, mask = _marked(frame)
    rotated = 0
    for seed in range(6):
        img, m = augment(image, mask, (96, 128), np.random.default_rng(seed), (0.8, 1.5), CAMVID.void, ops)
        green = (img[..., 1] > 200) & (img[..., 0] < 60) & (img[..., 2] < 60)
        assert (m[green] == CAMVID.void).mean() > 0.97         # the void block moved with its pixels
        labelled = m != CAMVID.void
        agree = np.mean((img[..., 0] > 128)[labelled] == (m[labelled] == 1))
        assert agree > 0.95, (seed, agree)
        corners = [m[0, 0], m[0, -1], m[-1, 0], m[-1, -1]]
        rotated += any(c == CAMVID.void for c in corners)     # uncovered corners are void, not a class
    assert rotated  # some seed rotated far enough to uncover a corner


@pytest.mark.parametrize("op", ["colour", "gamma", "hue", "blur", "noise"])
def test_each_photometric_op_changes_pixels_never_labels(frame, op):
    image, mask = _marked(frame)
    changed = 0
    for seed in range(6):
        plain = augment(image, mask, (96, 128), np.random.default_rng(seed), (1.0, 1.0), CAMVID.void, ())
        jittered = augment(image, mask, (96, 128), np.random.default_rng(seed), (1.0, 1.0), CAMVID.void, (op,))
        np.testing.assert_array_equal(plain[1], jittered[1])  # labels and void untouched
        assert jittered[0].dtype == np.uint8 and jittered[0].shape == plain[0].shape
        changed += np.abs(plain[0].astype(int) - jittered[0]).mean() > 0.5
    assert changed >= 1 if op in ("blur", "noise") else changed >= 5  # blur and noise: a third of the time


def test_augmentation_names():
    from realtime_seg.datasets.augment import AUGMENTATIONS, BASIC, parse_augmentations
    assert parse_augmentations("all") == AUGMENTATIONS and parse_augmentations("none") == ()
    assert parse_augmentations("basic") == BASIC == ("scale", "flip", "colour")
    assert parse_augmentations("gamma, hue") == ("gamma", "hue")
    with pytest.raises(ValueError, match="unknown augmentation 'sharpen'; allowed: scale, flip, rotate"):
        parse_augmentations("gamma,sharpen")


def test_bad_augmentation_gets_one_line(tmp_path, camvid_dir):
    from tests.conftest import assert_one_line_error, run_cli
    proc = run_cli("realtime_seg", "train", "--data", str(camvid_dir), "--out", str(tmp_path / "r"),
                   "--augment-ops", "scale,jpeg")
    assert "unknown augmentation 'jpeg'" in assert_one_line_error(proc, 2)
    assert not (tmp_path / "r").exists()
