"""A frame of another aspect than the model's (issue 35): a graph of any size keeps it (the trained
height, the width from the frame), a graph of one size and `--aspect squash` resize it whole."""
from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest

from conftest import FIXTURES
from realtime_seg.contract import INPUT, keep_aspect_size, preprocess
from realtime_seg.errors import UserError
from realtime_seg.runtime.engine import RunOptions, load_model
from realtime_seg.runtime.pipeline import segment_stream
from realtime_seg.runtime.temporal import TemporalSmoother

ANY_SIZE = FIXTURES / "tiny_any_size.onnx"       # exported now: any size, aspect keep, trained at 48x64
FIXED = FIXTURES / "tiny_family" / "tiny.onnx"   # the same weights exported before: 48x64 only


@pytest.fixture(scope="module")
def wide() -> np.ndarray:
    """A real 16:9 dash-cam frame (320x180)."""
    return cv2.imread(str(FIXTURES / "frames" / "frame_0.png"))


@pytest.fixture(scope="module")
def camvid() -> np.ndarray:
    """A real 4:3 CamVid frame (240x180 in the fixture)."""
    return cv2.imread(str(next((FIXTURES / "camvid" / "val").glob("*.png"))))


def _session_at(model, frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The graph run straight on `frame` resized to `size`: what the engine must give."""
    return model.session.run([model.output_name], {INPUT: preprocess([frame], size, np.uint8)})[0][0]


def test_the_width_comes_from_the_frame(wide, camvid):
    model = load_model(ANY_SIZE, RunOptions("cpu", 1))
    assert model.any_size and model.aspect == "keep" and model.input_size == (48, 64)
    assert wide.shape[:2] == (180, 320) and camvid.shape[:2] == (180, 240)
    assert model.size_for(wide.shape) == (48, 96)      # 16:9: 48 x 85.3, to a multiple of 32
    assert model.size_for(camvid.shape) == (48, 64)    # 4:3: the trained size itself
    for frame, size in ((wide, (48, 96)), (camvid, (48, 64)), (wide, (48, 96))):  # sizes change: each its own
        got = model.predict([frame])[0]
        assert got.shape == size
        np.testing.assert_array_equal(got, _session_at(model, frame, size))
    assert len(np.unique(model.predict([wide])[0])) > 1  # a trained model, not a constant map


def test_keep_is_bounded_and_matches_training_rule():
    assert keep_aspect_size((375, 1242), (352, 480)) == (352, 1152)   # KITTI, as training scores it
    assert keep_aspect_size((540, 960), (224, 320)) == (224, 384)     # the demo at the fast preset's height
    assert keep_aspect_size((100, 1000), (48, 64)) == (48, 192)       # 10:1 panorama: no wider than 4:1
    assert keep_aspect_size((1000, 100), (48, 64)) == (48, 32)        # 1:10: at least one step of 32


def test_squash_asked_resizes_whole(wide):
    model = load_model(ANY_SIZE, RunOptions("cpu", 1))
    model.use_aspect("squash")
    assert model.size_for(wide.shape) == (48, 64)
    np.testing.assert_array_equal(model.predict([wide])[0], _session_at(model, wide, (48, 64)))
    with pytest.raises(UserError, match="unknown aspect 'wide'; allowed: keep, squash"):
        model.use_aspect("wide")


def test_a_fixed_size_file_still_squashes(wide, caplog):
    model = load_model(FIXED, RunOptions("cpu", 1))
    assert not model.any_size and model.aspect == "squash"
    with caplog.at_level(logging.WARNING):
        model.use_aspect("keep")
    assert model.aspect == "squash" and "takes 48x64 only" in caplog.text
    assert model.predict([wide]).shape == (1, 48, 64)
    # the same weights: the old file and the new one squashed give the same class map
    new = load_model(ANY_SIZE, RunOptions("cpu", 1))
    new.use_aspect("squash")
    np.testing.assert_array_equal(model.predict([wide]), new.predict([wide]))


class _Frames:
    """A source whose frames change size midway, as an image folder of mixed sizes does."""

    def __init__(self, frames):
        self.frames = list(frames)

    def read(self):
        return self.frames.pop(0) if self.frames else None


def test_the_stream_follows_a_change_of_frame_size(wide, camvid):
    model = load_model(ANY_SIZE, RunOptions("cpu", 1))
    smoother = TemporalSmoother(0.7, cut_threshold=1e9)  # no cut detection: only the size change resets it
    packets = list(segment_stream(_Frames([wide, wide, camvid, camvid, wide]), model, smoother=smoother,
                                  probs=True))
    assert [p.class_map.shape for p in packets] == [(48, 96), (48, 96), (48, 64), (48, 64), (48, 96)]
    assert [p.restarted for p in packets] == [False, False, True, False, True]
    assert all(p.probs.shape[:2] == p.class_map.shape for p in packets)
