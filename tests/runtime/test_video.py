"""runtime/video.py and runtime/background.py: the codec table, the writer, frame counting."""
from __future__ import annotations

import threading
import time

import av
import cv2
import numpy as np
import pytest

from conftest import FIXTURES
from realtime_seg.errors import UsageError, UserError
from realtime_seg.runtime.background import WriterThread
from realtime_seg.runtime.video import CODECS, VideoOutput, codec_name, count_frames

SHORT = FIXTURES / "videos" / "dashcam_short.mp4"   # 40 frames, 480x270, 25 fps
DECODERS = {"h264": "h264", "vp8": "vp8", "vp9": "vp9", "mp4v": "mpeg4", "mjpg": "mjpeg", "huffyuv": "huffyuv"}


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(SHORT))
    out = []
    while (item := cap.read())[0]:
        out.append(item[1])
    cap.release()
    return out


def decoded(path) -> tuple[str, str, float, list[np.ndarray]]:
    """(codec, pixel format, frame rate, BGR frames) as FFmpeg decodes the file."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        images = [f.to_ndarray(format="bgr24") for f in container.decode(stream)]
        return stream.codec_context.name, stream.codec_context.pix_fmt, float(stream.average_rate), images


@pytest.mark.parametrize("suffix, codec, expected", [
    (".mp4", None, "h264"), (".MOV", None, "h264"), (".mkv", None, "h264"), (".webm", None, "vp8"),
    (".avi", None, "mjpg"), (".webm", "VP90", "vp9"), (".mp4", "mp4v", "mp4v"), (".avi", "HFYU", "huffyuv"),
    (".mp4", "avc1", "h264"), (".mkv", "vp8", "vp8"),
])
def test_codec_by_container_and_by_name(suffix, codec, expected):
    assert codec_name(codec, suffix) == expected


@pytest.mark.parametrize("suffix, codec, message", [
    (".gif", None, r"unsupported output type \.gif"),
    (".mp4", "theora", "unknown codec 'theora'"),
    (".mp4", "vp8", r"codec vp8 does not go in \.mp4 files"),
    (".webm", "h264", r"codec h264 does not go in \.webm files"),
])
def test_codec_usage_errors(suffix, codec, message):
    with pytest.raises(UsageError, match=message):
        codec_name(codec, suffix)


@pytest.mark.parametrize("name", sorted(CODECS))
def test_every_codec_writes_every_frame(tmp_path, frames, name):
    path = tmp_path / f"out{CODECS[name].containers[0]}"
    output = VideoOutput(path, 25.0, (480, 270), name)
    for frame in frames:
        output.write(frame)
    assert output.close() == path
    codec, _, rate, images = decoded(path)
    assert codec == DECODERS[name]
    assert rate == 25.0 and len(images) == 40 and count_frames(path) == 40
    error = np.mean([np.abs(a.astype(int) - b).mean() for a, b in zip(images, frames)])
    assert error < (0.01 if name == "huffyuv" else 4.0), error  # colours kept (limited-range BT.601)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_default_mp4_is_h264_yuv420p_with_its_index_first(tmp_path, frames):
    path = tmp_path / "out.mp4"
    output = VideoOutput(path, 30000 / 1001, (480, 270))
    for frame in frames[:10]:
        output.write(frame)
    output.close()
    codec, pix_fmt, rate, images = decoded(path)
    assert (codec, pix_fmt, len(images)) == ("h264", "yuv420p", 10)
    assert abs(rate - 29.97) < 0.01
    head = path.read_bytes()[:4096]
    assert head[4:8] == b"ftyp" and 0 < head.find(b"moov") and b"mdat" not in head[:head.find(b"moov")]


def test_odd_sizes_lose_the_last_column_and_row(tmp_path, frames):
    path = tmp_path / "odd.mp4"
    output = VideoOutput(path, 25.0, (333, 187))
    for frame in frames[:3]:
        output.write(cv2.resize(frame, (333, 187)))
    output.close()
    assert decoded(path)[3][0].shape == (186, 332, 3)


def test_discard_and_not_ok_leave_nothing(tmp_path, frames):
    for ending in ("discard", "close"):
        output = VideoOutput(tmp_path / "x.webm", 25.0, (480, 270))
        for frame in frames:
            output.write(frame)
        output.discard() if ending == "discard" else output.close(ok=False)
        assert list(tmp_path.iterdir()) == []


def test_count_frames_of_cut_and_broken_files(tmp_path, frames):
    path = tmp_path / "whole.webm"
    output = VideoOutput(path, 25.0, (480, 270))
    for frame in frames:
        output.write(frame)
    output.close()
    data = path.read_bytes()
    cut = tmp_path / "cut.webm"
    cut.write_bytes(data[:len(data) // 2])
    assert 5 < count_frames(cut) < 35
    (tmp_path / "text.mp4").write_text("not a video\n")
    assert count_frames(tmp_path / "text.mp4") is None
    assert count_frames(tmp_path / "missing.mp4") is None
    assert count_frames(SHORT, header=True) == count_frames(SHORT) == 40


def test_unwritable_place_is_a_user_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="cannot create output folder"):
        VideoOutput(tmp_path / "file" / "out.mp4", 25.0, (64, 48))


def test_writer_thread_keeps_the_first_error_and_never_blocks():
    done, started = [], threading.Event()

    def work(item):
        started.set()
        if item == 2:
            raise OSError(28, "No space left on device")
        done.append(item)

    writer = WriterThread(work, "test", queue_size=2)
    for item in range(3):
        writer.put(item)
    started.wait(5)
    deadline = time.monotonic() + 5
    while writer.error is None and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(OSError, match="No space"):
        writer.put(3)   # the producer hears of it at its next frame
    with pytest.raises(OSError, match="No space"):
        writer.finish()
    assert done == [0, 1]

    slow = WriterThread(lambda item: time.sleep(0.2), "slow", queue_size=2)
    for item in range(4):
        slow.put(item)
    t = time.monotonic()
    slow.drop()  # queued items are thrown away: at most the one being written is waited for
    assert time.monotonic() - t < 0.6


def test_a_file_without_frames_is_never_kept(tmp_path):
    output = VideoOutput(tmp_path / "empty.mp4", 25.0, (64, 48))
    output.finish()
    with pytest.raises(UserError, match="no frames were encoded"):
        output.commit()
    assert list(tmp_path.iterdir()) == []
    assert VideoOutput(tmp_path / "none.mp4", 25.0, (64, 48)).close() is None
    assert list(tmp_path.iterdir()) == []
