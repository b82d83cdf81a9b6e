"""Temporal smoothing on real clips: less flicker, a restart at a scene cut, none within a shot."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import FIXTURES
from realtime_seg.runtime.engine import RunOptions, load_model
from realtime_seg.runtime.pipeline import segment_stream
from realtime_seg.runtime.sources import open_video
from realtime_seg.runtime.temporal import (FlickerMeter, TemporalSmoother, argmax_classes, check_smooth,
                                           flicker, one_hot)

DASHCAM = FIXTURES / "videos" / "dashcam_short.mp4"   # 40 frames of the demo drive
CARLA = FIXTURES / "videos" / "carla_small.mp4"       # 31 frames of a CARLA town


def _frames(path) -> list[np.ndarray]:
    cap, frames = cv2.VideoCapture(str(path)), []
    while (got := cap.read())[0]:
        frames.append(got[1])
    return frames


@pytest.fixture(scope="module")
def model():
    return load_model(FIXTURES / "tiny_camvid_probs.onnx", RunOptions("cpu", 1))


@pytest.fixture(scope="module")
def clip(model) -> list[tuple[np.ndarray, np.ndarray]]:
    """(frame, probabilities) of the dash-cam clip, then of the CARLA clip: a cut at index 40."""
    frames = _frames(DASHCAM) + _frames(CARLA)
    _, probs = model.infer_probs(model.prepare(frames))
    return list(zip(frames, probs))


def _flicker(clip, strength: float, scores=lambda p: p) -> float:
    smoother, meter = TemporalSmoother(strength) if strength else None, FlickerMeter()
    for frame, probs in clip:
        meter.add(argmax_classes(smoother.update(scores(probs), frame) if smoother else scores(probs)))
    return meter.mean


def test_smoothing_cuts_flicker_on_a_real_clip(clip):
    shot = clip[:40]
    raw, smoothed = _flicker(shot, 0), _flicker(shot, 0.7)
    assert raw > 0.005  # the tiny model flickers like the shipped ones
    assert smoothed < 0.6 * raw
    assert _flicker(shot, 0.5) < raw and _flicker(shot, 0.8) < smoothed  # stronger is steadier
    # a model without probabilities is smoothed on its one-hot maps: less, but still steadier
    votes = _flicker(shot, 0.7, lambda p: one_hot(argmax_classes(p), p.shape[-1]))
    assert smoothed < votes < raw


def test_restarts_at_the_scene_cut_and_nowhere_else(clip):
    smoother, restarts = TemporalSmoother(0.7), []
    for i, (frame, probs) in enumerate(clip):
        before = smoother.resets
        out = smoother.update(probs, frame)
        if smoother.resets != before:
            restarts.append(i)
            np.testing.assert_array_equal(out, probs)  # the new scene starts from its own scores
    assert restarts == [40]


def test_a_source_break_restarts_and_arrays_are_not_reused(clip):
    smoother = TemporalSmoother(0.7)
    (f0, p0), (f1, p1) = clip[0], clip[1]
    first = smoother.update(p0, f0)
    second = smoother.update(p1, f1)
    assert second is not first and not np.array_equal(second, p1)
    np.testing.assert_allclose(second, 0.7 * p0 + 0.3 * p1, atol=1e-6)
    np.testing.assert_array_equal(smoother.update(p0, f0, discontinuous=True), p0)
    assert smoother.resets == 1


def test_smooth_strength_is_checked():
    for bad in (-0.1, 1.0, 2.0):
        with pytest.raises(ValueError, match=r"\[0, 1\)"):
            TemporalSmoother(bad)
    assert check_smooth(0.0) == 0.0


def test_flicker_is_the_fraction_of_changed_pixels():
    a = np.zeros((4, 5), np.uint8)
    b = a.copy()
    b[0, :2] = 3
    assert flicker(None, a) is None and flicker(a, b) == 0.1
    meter = FlickerMeter()
    assert [meter.add(a), meter.add(b), meter.add(a, restart=True), meter.add(b)] == [None, 0.1, None, 0.1]
    assert meter.mean == pytest.approx(0.1)


def test_the_pipeline_smooths_and_restarts_where_a_looping_file_starts_again(model):
    source = open_video(str(DASHCAM), loop=True)
    source.limit = 45
    packets = list(segment_stream(source, model, smoother=TemporalSmoother(0.7)))
    source.close()
    assert len(packets) == 45
    assert [p.index for p in packets if p.discontinuous] == [40]
    assert [p.index for p in packets if p.restarted] == [40]
    for p in packets:
        np.testing.assert_array_equal(p.class_map, argmax_classes(p.probs))
    raw = model.predict([packets[40].frame])[0]
    np.testing.assert_array_equal(packets[40].class_map, raw)  # nothing carried over the jump


def test_argmax_classes_is_numpys_argmax_but_for_near_ties():
    rng = np.random.default_rng(0)
    probs = rng.random((96, 128, 11), dtype=np.float32)
    probs /= probs.sum(-1, keepdims=True)
    ours, numpys = argmax_classes(probs), probs.argmax(-1)
    top2 = np.sort(probs, -1)[..., -2:]
    clear = top2[..., 1] - top2[..., 0] > 1e-5 * top2[..., 1]
    assert ours.dtype == np.uint8 and ours.shape == (96, 128)
    np.testing.assert_array_equal(ours[clear], numpys[clear])
    assert clear.mean() > 0.999
    # exact ties (averaged one-hot votes, a model without probs): the lower class, as np.argmax
    votes = (np.eye(11, dtype=np.float32)[rng.integers(0, 11, (40, 50))]
             + np.eye(11, dtype=np.float32)[rng.integers(0, 11, (40, 50))]) / 2
    np.testing.assert_array_equal(argmax_classes(votes), votes.argmax(-1))
    # other dtypes go through NumPy
    np.testing.assert_array_equal(argmax_classes(probs.astype(np.float64)), numpys)
