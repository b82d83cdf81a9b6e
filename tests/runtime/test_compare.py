"""Two models on the same frames: each side's class maps are the single-model run's, the agreement is
the share of equal pixels, and the pictures show what the docs say they show."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from conftest import FIXTURES
from realtime_seg.cli import split_compare
from realtime_seg.errors import UsageError, UserError
from realtime_seg.runtime.compare import Comparison, agreement
from realtime_seg.runtime.engine import RunOptions, load_model
from realtime_seg.runtime.pipeline import Packet, StageTimes, segment_stream
from realtime_seg.runtime.render import Overlay
from realtime_seg.runtime.sources import open_video
from realtime_seg.runtime.temporal import TemporalSmoother

CLIP = FIXTURES / "videos" / "dashcam_short.mp4"
FAMILY = FIXTURES / "tiny_family"


@pytest.fixture(scope="module")
def pair():
    return load_model(FAMILY / "tiny.onnx", RunOptions("cpu", 1)), load_model(FAMILY / "tiny.int8.onnx", RunOptions("cpu", 1))


def _single(model, smooth: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """(class map, probs) of each frame from a run of `model` alone."""
    with open_video(str(CLIP)) as source:
        smoother = TemporalSmoother(smooth) if smooth else None
        return [(p.class_map, p.probs) for p in segment_stream(source, model, probs=True, smoother=smoother)]


@pytest.mark.parametrize("workers", [1, 2])
def test_each_side_of_a_compared_stream_is_its_single_model_run(pair, workers):
    main, other = pair
    compare = Comparison(main, other, ("tiny", "tiny"), smoother=TemporalSmoother(0.7))
    times = StageTimes()
    with open_video(str(CLIP)) as source:
        packets = list(segment_stream(source, main, times, probs=True, smoother=TemporalSmoother(0.7),
                                      workers=workers, compare=compare.lane()))
    alone = {"main": _single(main, 0.7), "other": _single(other, 0.7)}
    assert len(packets) == len(alone["main"]) == 40
    for packet, (main_map, main_probs), (other_map, other_probs) in zip(packets, alone["main"], alone["other"]):
        np.testing.assert_array_equal(packet.class_map, main_map)
        np.testing.assert_array_equal(packet.compared.class_map, other_map)
        np.testing.assert_allclose(packet.compared.probs, other_probs, rtol=1e-6)
    assert any(not np.array_equal(p.class_map, p.compared.class_map) for p in packets)  # int8 differs somewhere
    assert {"inference", "compare", "smooth", "compare smooth"} <= set(times.mean())


def test_agreement_is_the_share_of_equal_pixels():
    a = np.zeros((4, 6), np.uint8)
    b = a.copy()
    b[0, :3] = 2
    assert agreement(a, b) == pytest.approx(1 - 3 / 24)
    assert agreement(a, a) == 1.0
    # another input size: brought to the main map's, nearest (2x2 blocks)
    assert agreement(a, np.kron(b, np.ones((2, 2), np.uint8))) == pytest.approx(1 - 3 / 24)


def _packet(main_map: np.ndarray, other_map: np.ndarray) -> Packet:
    frame = np.random.default_rng(0).integers(0, 255, (240, 360, 3), dtype=np.uint8)
    packet = Packet(0, frame, main_map)
    packet.compared = Packet(0, frame, other_map)
    return packet


def test_side_layout_shows_each_model_on_its_half_and_counts_a_frame_once(pair):
    main, other = pair
    h, w = main.input_size
    main_map = np.zeros((h, w), np.uint8)
    other_map = np.full((h, w), 3, np.uint8)
    packet = _packet(main_map, other_map)
    compare = Comparison(main, other, ("a", "b"))
    overlay = Overlay(main.classes, main.palette_bgr, opacity=1.0, view="mask", legend=False, hud=False,
                      edges="nearest")
    image = compare.paint(packet, overlay, [], StageTimes())
    compare.paint(packet, overlay, [], StageTimes())  # a redraw (pause, key) is no new frame
    assert image.shape == packet.frame.shape
    top = (240 - 120) // 2  # the halves: 180x120 each, centred; below each one's label (its model's name)
    np.testing.assert_array_equal(image[top + 40:top + 120, :180], np.broadcast_to(main.palette_bgr[0], (80, 180, 3)))
    np.testing.assert_array_equal(image[top + 40:top + 120, 180:], np.broadcast_to(main.palette_bgr[3], (80, 180, 3)))
    assert compare.values == [0.0] and compare.mean == 0.0
    labels = image[top:top + 40]
    assert (labels != image[top + 40:top + 80]).any()  # the names are drawn even with the HUD off


def test_diff_layout_greys_agreement_and_colours_disagreement_by_the_compared_class(pair):
    main, other = pair
    h, w = main.input_size
    main_map = np.zeros((h, w), np.uint8)
    other_map = main_map.copy()
    other_map[:, w // 2:] = 5  # the right half disagrees
    packet = _packet(main_map, other_map)
    compare = Comparison(main, other, ("a", "b"), layout="diff")
    overlay = Overlay(main.classes, main.palette_bgr, legend=False, hud=False, edges="nearest")
    image = compare.paint(packet, overlay, [], StageTimes())
    left, right = image[60:180, :150], image[60:180, 210:]  # between the labels above and the key below
    assert (left[..., 0] == left[..., 1]).all() and (left[..., 1] == left[..., 2]).all()  # grey
    np.testing.assert_array_equal(right, np.broadcast_to(main.palette_bgr[5], right.shape))
    assert compare.mean == pytest.approx(0.5)


def test_models_with_other_classes_cannot_be_compared(pair):
    main, other = pair
    with pytest.raises(UserError, match="same classes"):
        Comparison(main, replace(other, classes=[f"c{i}" for i in range(len(other.classes))]), ("a", "b"))


@pytest.mark.parametrize("spec, expected", [
    ("fast", ("fast", None)), ("fast:fp32", ("fast", "fp32")), (":int8", ("accurate", "int8")),
    ("models/mine.onnx:auto", ("models/mine.onnx", "auto")), ("C:/models/mine.onnx", ("C:/models/mine.onnx", None)),
])
def test_compare_spec(spec, expected):
    assert split_compare(spec, "accurate") == expected


@pytest.mark.parametrize("spec", ["accurate:fp8", ":"])
def test_bad_compare_precision_is_a_usage_error(spec):
    with pytest.raises(UsageError, match="unknown precision"):
        split_compare(spec, "accurate")


