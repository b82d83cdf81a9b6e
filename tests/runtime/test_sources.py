"""Sources: files read whole and in order, limits, loops, truncation, and clear errors."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import FIXTURES
from realtime_seg.errors import UsageError, UserError
from realtime_seg.runtime.sources import is_url, open_video

CLIP = FIXTURES / "videos" / "dashcam_short.mp4"


def _all(source) -> list[np.ndarray]:
    """Every frame `source.read()` gives until it returns None."""
    frames = []
    while (frame := source.read()) is not None:
        frames.append(frame)
    return frames


def _decoded(path) -> list[np.ndarray]:
    cap, frames = cv2.VideoCapture(str(path)), []
    while True:
        ok, frame = cap.read()
        if not ok:
            cap.release()
            return frames
        frames.append(frame)


def test_a_file_yields_every_frame_in_order():
    expected = _decoded(CLIP)
    with open_video(str(CLIP)) as source:
        got = _all(source)
        assert source.length == len(expected) == source.frame_count
        assert source.size == (expected[0].shape[1], expected[0].shape[0]) and source.fps > 0
    assert len(got) == len(expected) and all(np.array_equal(a, b) for a, b in zip(got, expected))


def test_limit_loop_and_cancel():
    n = len(_decoded(CLIP))
    with open_video(str(CLIP), loop=True) as source:
        source.limit = n + 5
        frames = _all(source)
        assert len(frames) == n + 5 and source.loops == 1
        assert np.array_equal(frames[n], frames[0])  # started again at the first frame
    with open_video(str(CLIP)) as source:
        source.read()
        source.cancel()
        assert source.read() is None and source.cancelled


def test_truncated_file_is_broken(tmp_path):
    cut = tmp_path / "cut.mp4"
    data = CLIP.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    try:
        source = open_video(str(cut))
    except UserError:
        return  # cut before the first frame: refused at open, also fine
    with source:
        frames = _all(source)
        assert len(frames) < (source.frame_count or 10 ** 9)
        assert source.broken and "truncated" in source.broken


@pytest.mark.parametrize("spec, error, words", [
    ("{tmp}/missing.mp4", UserError, "not found"),
    ("{tmp}", UserError, "is a folder"),
    ("{frame}", UserError, "is an image, not a video"),
    ("ftp://host/x.mp4", UserError, "unsupported URL scheme 'ftp'"),
])
def test_bad_specs_are_clear_errors(tmp_path, spec, error, words):
    spec = spec.format(tmp=tmp_path, frame=FIXTURES / "frames" / "frame_0.png")
    with pytest.raises(error, match=words):
        open_video(spec)


def test_streams_cannot_loop_and_urls_are_recognised():
    with pytest.raises(UsageError, match="--loop replays video files"):
        open_video("rtsp://127.0.0.1:1/x", loop=True)
    assert is_url("rtsp://h/x") and is_url("http://h/x.mp4")
    assert not is_url("C:/videos/x.mp4") and not is_url("videos/x.mp4")
