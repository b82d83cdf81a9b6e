"""Video output through PyAV (FFmpeg): the one codec table, and the one writer every command uses.

The writer encodes on its own thread into a temporary file beside the output, closes it, checks
that it holds every frame, and only then renames it into place; a write that fails (disk full,
file too large, I/O error) is one `UserError` naming the file, and the temporary file is removed.
"""
from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from ..errors import UsageError, UserError
from ..system import partial_path, write_error
from .background import WriterThread

# x264's speed/size trade-off: the preset whose encoder never bounded the viewer's pipeline on 2
# busy cores (slower presets did); docs/BENCHMARKS.md, "Video output".
H264_PRESET = "ultrafast"


@dataclass(frozen=True)
class Codec:
    """An FFmpeg encoder, its pixel format and options, the containers it goes in."""

    encoder: str
    pix_fmt: str
    containers: tuple[str, ...]
    browsers: bool                       # plays in web browsers
    options: dict[str, str] = field(default_factory=dict)


_QSCALE = {"flags": "+qscale", "global_quality": str(3 * 118)}  # ffmpeg's -q:v 3 (FF_QP2LAMBDA = 118)
CODECS = {
    "h264": Codec("libx264", "yuv420p", (".mp4", ".mov", ".mkv"), True, {"preset": H264_PRESET, "crf": "23"}),
    "vp8": Codec("libvpx", "yuv420p", (".webm", ".mkv"), True,
                 {"deadline": "realtime", "cpu-used": "8", "crf": "10", "b": "4M"}),
    "vp9": Codec("libvpx-vp9", "yuv420p", (".webm", ".mkv", ".mp4"), True,
                 {"deadline": "realtime", "cpu-used": "8", "row-mt": "1", "crf": "32", "b": "0"}),
    "mp4v": Codec("mpeg4", "yuv420p", (".mp4", ".mov", ".avi", ".mkv"), False, _QSCALE),
    "mjpg": Codec("mjpeg", "yuvj420p", (".avi", ".mov", ".mkv"), False, _QSCALE),
    "huffyuv": Codec("huffyuv", "rgb24", (".avi", ".mkv"), False),  # lossless (tests)
}
DEFAULT_CODEC = {".mp4": "h264", ".mov": "h264", ".mkv": "h264", ".webm": "vp8", ".avi": "mjpg"}
# FourCCs that --codec took when OpenCV wrote the videos, and other common names
ALIASES = {"avc1": "h264", "x264": "h264", "vp80": "vp8", "vp90": "vp9", "fmp4": "mp4v", "xvid": "mp4v",
           "mjpeg": "mjpg", "hfyu": "huffyuv"}


def codec_name(codec: str | None, suffix: str) -> str:
    """The CODECS key for --codec (a name or an old FourCC) in a `suffix` file; by suffix when not given.

    A usage error (exit 2) when the codec is unknown, the container unsupported, or the pair cannot go together.
    """
    suffix = suffix.lower()
    if suffix not in DEFAULT_CODEC:
        raise UsageError(f"unsupported output type {suffix or '(none)'}; use one of "
                         f"{', '.join(DEFAULT_CODEC)}")
    if not codec:
        return DEFAULT_CODEC[suffix]
    name = ALIASES.get(codec.lower(), codec.lower())
    if name not in CODECS:
        raise UsageError(f"unknown codec {codec!r}; use one of {', '.join(CODECS)}")
    if suffix not in CODECS[name].containers:
        raise UsageError(f"codec {name} does not go in {suffix} files; use "
                         f"{' or '.join(CODECS[name].containers)} (or another --codec)")
    return name


def describe(name: str) -> str:
    """e.g. 'h264 (libx264 superfast)': what bench and the docs report."""
    codec = CODECS[name]
    preset = codec.options.get("preset")
    return f"{name} ({codec.encoder}{' ' + preset if preset else ''})"


def count_frames(path: Path, header: bool = False) -> int | None:
    """Video frames in a file, counted by demuxing its packets (exact, no decoding); None when it
    does not open as a video or breaks off. `header`: take the container's own count when it has
    one (mp4, mov, avi: no reading)."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return None
            stream = container.streams.video[0]
            if header and stream.frames > 0:
                return stream.frames
            return sum(1 for packet in container.demux(stream) if packet.size)
    except (OSError, ValueError, av.FFmpegError):
        return None


def _frame_rate(fps: float) -> Fraction:
    """The stream's rate: exact for NTSC-style rates (29.97 = 30000/1001); 30 when unknown."""
    return Fraction(fps).limit_denominator(1001) if fps and 0 < fps <= 1000 else Fraction(30)


class VideoOutput:
    """Encodes frames on a thread into a temporary file; `close(ok=True)` checks it and renames it into place.

    `finish` and `commit` split `close` for callers with several outputs (batch renames them all
    only when every one finished); `encode` is the synchronous step the thread runs (bench times it).
    """

    def __init__(self, path: Path, fps: float, size: tuple[int, int], codec: str | None = None,
                 queue_size: int = 4):
        self.path, self.tmp = Path(path), partial_path(Path(path))
        self.codec = codec_name(codec, self.path.suffix)
        _make_folder(self.path.parent)
        self.input_size = size
        self.size = (size[0] - size[0] % 2, size[1] - size[1] % 2)  # yuv420p: even sizes only
        self.frames, self.encode_ms = 0, 0.0
        self._container, self._stream = self._open(fps)
        self._thread = WriterThread(self.encode, "encode", queue_size)

    def _open(self, fps: float):
        codec = CODECS[self.codec]
        options = {"movflags": "+faststart"} if self.path.suffix.lower() in (".mp4", ".mov") else {}
        try:
            container = av.open(str(self.tmp), "w", options=options)
        except (OSError, ValueError, av.FFmpegError) as e:
            raise write_error(self.path, e) from None
        try:
            stream = container.add_stream(codec.encoder, rate=_frame_rate(fps), options=dict(codec.options))
            stream.width, stream.height, stream.pix_fmt = *self.size, codec.pix_fmt
            stream.codec_context.thread_count = 1  # one core per encoder: the others segment
        except (ValueError, av.FFmpegError) as e:
            container.close()
            self.tmp.unlink(missing_ok=True)
            raise UserError(f"cannot encode {self.path} with {self.codec}: {e}; try another --codec") from None
        return container, stream

    def encode(self, frame: np.ndarray) -> None:
        """Encode one BGR frame now (resized to the output's size when it differs)."""
        t = time.perf_counter()
        if (frame.shape[1], frame.shape[0]) != self.input_size:
            frame = cv2.resize(frame, self.input_size, interpolation=cv2.INTER_AREA)
        image = _to_frame(frame[:self.size[1], :self.size[0]], self._stream.pix_fmt)
        image.pts = self.frames
        self._container.mux(self._stream.encode(image))
        self.frames += 1
        self.encode_ms += (time.perf_counter() - t) * 1e3

    def write(self, frame: np.ndarray) -> None:
        """Queue a frame for the encoder thread; a write that failed raises its UserError here."""
        try:
            self._thread.put(frame)
        except Exception as e:
            raise self._failed(e) from None

    def finish(self) -> None:
        """Encode what is queued, flush the encoder, close the file and check that every frame is in it."""
        try:
            self._thread.finish()
            if not self.frames:
                return  # nothing to keep: the caller discards it
            self._container.mux(self._stream.encode(None))
            container, self._container = self._container, None
            container.close()
        except Exception as e:
            raise self._failed(e) from None
        found = count_frames(self.tmp)
        if found != self.frames:
            self.discard()
            raise UserError(f"cannot write {self.path}: it holds {found or 0} of the {self.frames} frames "
                            f"encoded; check the disk, or write it elsewhere")

    def commit(self) -> Path:
        """Rename the finished file into place (a file without frames is not a video: never kept)."""
        if not self.frames:
            self.discard()
            raise UserError(f"cannot write {self.path}: no frames were encoded")
        try:
            os.replace(self.tmp, self.path)
        except OSError as e:
            self.discard()
            raise write_error(self.path, e) from None
        return self.path

    def close(self, ok: bool = True) -> Path | None:
        """Finish and keep the file if `ok` and frames were written (its path); else remove it (None)."""
        if ok:
            self.finish()
            if self.frames:
                return self.commit()
        self.discard()
        return None

    def discard(self) -> None:
        """Stop at once (Ctrl-C, a failure): queued frames are dropped, the temporary file removed."""
        self._thread.drop()
        self.tmp.unlink(missing_ok=True)  # first: closing an .mp4 would move its whole data (faststart)
        if self._container is not None:
            container, self._container = self._container, None
            with contextlib.suppress(Exception):
                container.close()

    def _failed(self, error: BaseException) -> UserError:
        self.discard()
        return error if isinstance(error, UserError) else write_error(self.path, error)


def _to_frame(bgr: np.ndarray, pix_fmt: str) -> av.VideoFrame:
    """A PyAV frame in the encoder's format; yuv420p through OpenCV (~10x faster than swscale here)."""
    if pix_fmt == "yuv420p":
        return av.VideoFrame.from_ndarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420), format="yuv420p")
    return av.VideoFrame.from_ndarray(np.ascontiguousarray(bgr), format="bgr24").reformat(format=pix_fmt)


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create output folder {folder}: {e.strerror}") from None
    if not os.access(folder, os.W_OK):
        raise UserError(f"output folder {folder} is not writable; choose another output path")
