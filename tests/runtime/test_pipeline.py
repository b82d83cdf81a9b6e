"""The overlapped pipeline gives the same class maps, in order, as running the model frame by frame."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from conftest import FIXTURES
from realtime_seg.runtime.engine import load_model
from realtime_seg.runtime.pipeline import StageTimes, segment_stream
from realtime_seg.runtime.sources import open_video

CLIP = FIXTURES / "videos" / "dashcam_short.mp4"


@pytest.fixture(scope="module")
def model():
    return load_model(FIXTURES / "tiny_camvid.onnx", "cpu", threads=1)


@pytest.mark.parametrize("batch_size", [1, 4])
def test_stream_equals_frame_by_frame(model, batch_size):
    with open_video(str(CLIP)) as source:
        expected = [model.predict([f])[0] for f in _all(source)]
    times = StageTimes()
    with open_video(str(CLIP)) as source:
        packets = list(segment_stream(source, model, times, queue_size=4, batch_size=batch_size))
    assert [p.index for p in packets] == list(range(len(expected)))
    for packet, class_map in zip(packets, expected):
        np.testing.assert_array_equal(packet.class_map, class_map)
    assert {"read", "preprocess", "inference"} <= set(times.mean())
    assert all(v > 0 for v in times.mean().values())


def _all(source) -> list[np.ndarray]:
    """Every frame `source.read()` gives until it returns None."""
    frames = []
    while (frame := source.read()) is not None:
        frames.append(frame)
    return frames


def test_a_slow_consumer_loses_no_frame_and_closing_stops_the_threads(model):
    before = threading.active_count()
    with open_video(str(CLIP)) as source:
        stream = segment_stream(source, model)
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


def test_an_error_in_a_stage_reaches_the_consumer(model):
    class Broken:
        def read(self):
            raise RuntimeError("camera fell off")
    with pytest.raises(RuntimeError, match="camera fell off"):
        list(segment_stream(Broken(), model))
