"""The overlapped pipeline gives the same class maps, in order, as running the model frame by frame."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from conftest import FIXTURES
from realtime_seg.runtime.engine import RunOptions, load_model
from realtime_seg.runtime.models import StreamPlan, stream_plan
from realtime_seg.runtime.pipeline import StageTimes, segment_stream
from realtime_seg.runtime.sources import open_video
from realtime_seg.runtime.temporal import TemporalSmoother

CLIP = FIXTURES / "videos" / "dashcam_short.mp4"


@pytest.fixture(scope="module")
def model():
    return load_model(FIXTURES / "tiny_camvid.onnx", RunOptions("cpu", 1))


@pytest.mark.parametrize("batch_size, workers", [(1, 1), (4, 1), (1, 2), (2, 3)])
def test_stream_equals_frame_by_frame(model, batch_size, workers):
    with open_video(str(CLIP)) as source:
        expected = [model.predict([f])[0] for f in _all(source)]
    times = StageTimes()
    with open_video(str(CLIP)) as source:
        packets = list(segment_stream(source, model, times, queue_size=4, batch_size=batch_size, workers=workers))
    assert [p.index for p in packets] == list(range(len(expected)))
    for packet, class_map in zip(packets, expected):
        np.testing.assert_array_equal(packet.class_map, class_map)
    assert {"read", "preprocess", "inference"} <= set(times.mean())
    assert all(v > 0 for v in times.mean().values())


def test_frames_in_flight_are_smoothed_in_order(model):
    """Two inference workers: the running average still sees the frames in order (same maps as one)."""
    def smoothed(workers: int) -> list[tuple[int, np.ndarray, np.ndarray]]:
        with open_video(str(CLIP)) as source:
            return [(p.index, p.class_map, p.probs) for p in
                    segment_stream(source, model, smoother=TemporalSmoother(0.7), probs=True, workers=workers)]
    one, two = smoothed(1), smoothed(2)
    assert [i for i, _, _ in two] == list(range(len(one))) and len(one) > 10
    for (_, map1, probs1), (_, map2, probs2) in zip(one, two):
        np.testing.assert_array_equal(map2, map1)
        np.testing.assert_allclose(probs2, probs1, atol=1e-6)
    # an average over frames (of one-hot votes: this model has no probabilities), not one frame's
    assert any(np.any((probs > 0) & (probs < 1)) for _, _, probs in two)


def test_stream_plan():
    assert stream_plan(0, cores=2) == StreamPlan(threads=1, workers=2)
    assert stream_plan(0, cores=16) == StreamPlan(threads=8, workers=2)
    assert stream_plan(3, cores=16) == StreamPlan(threads=3, workers=1)  # --threads N: one frame at a time
    assert stream_plan(0, cores=1) == StreamPlan(threads=1, workers=1)
    with pytest.raises(ValueError, match="at least 1"):
        next(segment_stream(object(), None, workers=0))


def _all(source) -> list[np.ndarray]:
    """Every frame `source.read()` gives until it returns None."""
    frames = []
    while (frame := source.read()) is not None:
        frames.append(frame)
    return frames


@pytest.mark.parametrize("workers", [1, 2])
def test_a_slow_consumer_loses_no_frame_and_closing_stops_the_threads(model, workers):
    before = threading.active_count()
    with open_video(str(CLIP)) as source:
        stream = segment_stream(source, model, workers=workers)
        seen = []
        for packet in stream:
            time.sleep(0.01)  # slower than decoding
            seen.append(packet.index)
            if len(seen) == 5:
                stream.close()  # the consumer stops early: stage threads must end
                break
    assert seen == [0, 1, 2, 3, 4]
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= before


@pytest.mark.parametrize("workers", [1, 2])
def test_an_error_in_a_stage_reaches_the_consumer(model, workers):
    class Broken:
        def read(self):
            raise RuntimeError("camera fell off")
    with pytest.raises(RuntimeError, match="camera fell off"):
        list(segment_stream(Broken(), model, workers=workers))


def test_an_error_in_inference_reaches_the_consumer_with_frames_in_flight(model):
    class Failing:
        def __getattr__(self, name):
            return getattr(model, name)

        def infer(self, batch):
            raise RuntimeError("model exploded")
    with open_video(str(CLIP)) as source, pytest.raises(RuntimeError, match="model exploded"):
        list(segment_stream(source, Failing(), workers=2))
