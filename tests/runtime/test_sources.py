"""Sources: files read whole and in order (also over HTTP), limits, loops, replays, truncation, clear errors."""
from __future__ import annotations

import functools
import http.server
import socket
import threading
import time

import cv2
import numpy as np
import pytest

import http_video
from conftest import FIXTURES, ROOT
from realtime_seg.errors import UsageError, UserError
from realtime_seg.runtime import sources
from realtime_seg.runtime.sources import is_url, open_video

CLIP = FIXTURES / "videos" / "dashcam_short.mp4"   # 40 frames; its index (moov) is at the end
DEMO = ROOT / "videos" / "dashcam_highway.mp4"     # 221 frames; index first (plays while downloading)


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
    ("{tmp}/missing.png", UserError, "cannot read image .*missing.png: not found"),
    ("{tmp}", UsageError, "holds no images"),  # an empty folder (a folder of frames plays: test_media.py)
    ("{tmp}/*.jpg", UsageError, "no images match"),
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


def test_restart_plays_the_file_again_from_its_first_frame():
    expected = _decoded(CLIP)
    with open_video(str(CLIP)) as source:
        source.limit = 30
        first = _all(source)
        assert source.restart()
        again = _all(source)  # --max-frames counts afresh
    assert len(first) == len(again) == 30
    assert all(np.array_equal(a, b) for a, b in zip(again, expected))


# ---------------------------------------------------------------- URLs: a video file over HTTP

def test_a_video_file_over_http_is_read_like_a_file():
    """Every frame, in order, none dropped: the container reports its length (a live reader kept 27 of 221)."""
    expected = _decoded(CLIP)
    with http_video.serve(CLIP.parent) as (base, _):
        with open_video(f"{base}/{CLIP.name}") as source:
            assert not source.live and source.length == len(expected) == 40
            got = _all(source)
            assert source.broken is None and source.dropped == 0
    assert len(got) == len(expected) and all(np.array_equal(a, b) for a, b in zip(got, expected))


@pytest.mark.parametrize("stall_s", [0.0, 30.0], ids=["closes", "stalls"])
def test_a_video_file_cut_off_over_http_is_broken(stall_s, monkeypatch):
    """Half the file, then the server closes or stalls: the source ends early and says so, promptly."""
    monkeypatch.setattr(sources, "READ_TIMEOUT_MS", 1500)  # a stall is given up on after this
    data = DEMO.read_bytes()
    with http_video.serve(DEMO.parent, cut_at=len(data) // 2, stall_s=stall_s) as (base, cuts):
        with open_video(f"{base}/{DEMO.name}") as source:
            frames = _all(source)
            ended = time.monotonic()
    assert 10 < len(frames) < 221 and source.frame_count == 221
    assert source.broken == (f"video {base}/{DEMO.name} ended after {len(frames)} of 221 frames: the connection "
                             f"closed or stalled; check the server, or download the file and play that")
    # after the cut: the frames already downloaded are decoded (seconds on a busy machine), then a
    # stall is given up on after the read timeout, not after the server's 30 s
    assert ended - cuts[0] < (1.5 if stall_s else 0) + 6.0


def test_plain_http_server_and_an_index_at_the_end_is_a_clear_error():
    """Python's http.server ignores ranges: FFmpeg cannot reach an index at the end, and no frame comes."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(
        type("Quiet", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *a: None}),
        directory=str(CLIP.parent)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(UserError, match="it opened but gave no frame .*range requests"):
            open_video(f"http://127.0.0.1:{server.server_address[1]}/{CLIP.name}")
    finally:
        server.shutdown()
        server.server_close()


def test_a_stream_that_does_not_open_says_why():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # released: nothing listens there
    start = time.monotonic()
    with pytest.raises(UserError, match=f"cannot open stream http://127.0.0.1:{port}/x.mp4: connection refused"):
        open_video(f"http://127.0.0.1:{port}/x.mp4")
    assert time.monotonic() - start < 3  # refused at once, not a 5 s timeout
    with http_video.serve(CLIP.parent) as (base, _):
        with pytest.raises(UserError, match="the server answered but sent no video; check the path"):
            open_video(f"{base}/missing.mp4")
