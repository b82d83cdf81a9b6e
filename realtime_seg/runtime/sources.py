"""Frame sources: video files, images and frame folders, cameras and stream URLs, all read the same way.

`open_video(spec)` and `open_camera(index)` return a `Source`; `source.read()` gives the next BGR
frame or None at the end, whatever the source, so the pipeline never branches on its type.
A folder of frames, a glob or one image (`FrameSource`) plays like a video file at `fps`, each
frame at its own size (runtime/media.py reads and lists them).
Live sources (cameras, streams without a length) are read on their own thread that keeps
only the newest frame: a slow consumer never builds up lag, and the frames it missed are
counted. A URL whose container reports a length (a video file over HTTP) is read like a file.
"""
from __future__ import annotations

import logging
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

import cv2
import numpy as np

from ..errors import UsageError, UserError
from .media import DEFAULT_FPS, ImageCapture, file_capture, frame_files, open_video_file

log = logging.getLogger(__name__)

STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
OPEN_TIMEOUT_MS = 5000
READ_TIMEOUT_MS = 5000
# V4L2 directly on Linux: CAP_ANY also probes other backends, which print errors for a missing camera
CAMERA_BACKEND = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY


class Source:
    """A video file read frame by frame: no frame is lost unless `realtime` asks to drop.

    `loop` starts the file again at its end (kiosk demos); `limit` ends the source after that
    many frames. A file that ends before the frame count in its header is `broken` (truncated).
    """

    live = False

    def __init__(self, name: str, capture: cv2.VideoCapture, realtime: bool = False,
                 first: np.ndarray | None = None, loop: bool = False, limit: int | None = None):
        self.name, self.cap, self.realtime, self.loop, self.limit = name, capture, realtime, loop, limit
        self._pending = first  # decoded at open time to prove the file is a video
        self.fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
        if not 1 <= self.fps <= 240:  # containers without a rate report 0 or nonsense
            self.fps = 30.0
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self.frame_count: int | None = count if count > 0 else None
        self.size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        self.dropped = 0
        self.delivered = 0           # frames returned by read()
        self.loops = 0               # times a looping file started again
        self.reconnects = 0          # times a lost camera or stream came back
        self.error: str | None = None   # a live source was lost (a warning: what was read is good)
        self.broken: str | None = None  # a file could not be read to its end (an error)
        self.cancelled = False
        self._index, self._pass, self._t0 = 0, 0, None  # frames taken from the file: in all, this pass

    @property
    def length(self) -> int | None:
        """How many frames read() will return if nothing goes wrong; None when unknown or endless."""
        if self.loop or self.frame_count is None:
            return self.limit
        return self.frame_count if self.limit is None else min(self.frame_count, self.limit)

    @property
    def breaks(self) -> int:
        """Jumps in the frame sequence so far (loops, reconnections): temporal smoothing restarts at each."""
        return self.loops + self.reconnects

    def cancel(self) -> None:
        """End the source early, as if it had ended: read() returns None from now on (signal-safe: no locks)."""
        self.cancelled = True

    def read(self) -> np.ndarray | None:
        """The next frame, or None at the end (of the file, of `limit` frames, or after cancel())."""
        if self.cancelled or (self.limit is not None and self.delivered >= self.limit):
            return None
        frame = self._next()
        if frame is not None:
            self.delivered += 1
        return frame

    def _next(self) -> np.ndarray | None:
        if self.realtime:
            self._keep_pace()
        if self._pending is not None:
            frame, self._pending = self._pending, None
        else:
            ok, frame = self.cap.read()
            if not ok:
                return None if self._ended_short() or not self.loop else self._rewind()
        self._index, self._pass = self._index + 1, self._pass + 1
        return frame

    def _ended_short(self) -> bool:
        """True (and `broken` set) when the file ended before the frame count in its header."""
        if self.frame_count and self._pass < self.frame_count:
            why = ("the connection closed or stalled; check the server, or download the file and play that"
                   if is_url(self.name) else "truncated or corrupt; re-copy or re-encode it")
            self.broken = f"video {self.name} ended after {self._pass} of {self.frame_count} frames: {why}"
        return self.broken is not None

    def _first_again(self) -> np.ndarray | None:
        """The first frame again, by seeking or (streams that cannot seek) by reopening; None if neither works."""
        self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        ok, frame = self.cap.read()
        if not ok:
            self.cap.release()
            self.cap = file_capture(self.name)
            ok, frame = self.cap.read()
        return frame if ok else None

    def _rewind(self) -> np.ndarray | None:
        """Loop: the first frame again, at the end of the file (pacing goes on as if the file were longer)."""
        frame = self._first_again()
        if frame is None:
            self.broken = f"cannot loop {self.name}: it gives no frame after a restart; re-encode it"
            return None
        self.loops += 1
        self._index, self._pass = self._index + 1, 1
        return frame

    def restart(self) -> bool:
        """Read the file again from its first frame once it has ended (the viewer's replay, in a new
        stream); --max-frames and --realtime's pace start afresh. False if it cannot."""
        frame = self._first_again()
        if frame is None:
            return False
        self._pending, self.delivered, self._index, self._pass, self._t0 = frame, 0, 0, 0, None
        return True

    def _keep_pace(self) -> None:
        """Play at the file's own rate: wait for a frame that is early, skip (grab) the ones we are late for."""
        now = time.perf_counter()
        if self._t0 is None:
            self._t0 = now
        due = int((now - self._t0) * self.fps)
        while self._index < due and self.cap.grab():
            self._index, self._pass = self._index + 1, self._pass + 1
            self.dropped += 1
        early = self._t0 + self._index / self.fps - now
        if early > 0:
            time.sleep(early)

    def close(self) -> None:
        self.cap.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class LiveSource(Source):
    """A camera or stream read on a thread that keeps only the newest frame."""

    live = True
    retries = 3        # reconnection attempts after a lost camera or stream
    backoff_s = 0.5    # first wait before reconnecting; doubles on each attempt

    def __init__(self, name: str, open_capture: Callable[[], cv2.VideoCapture],
                 retries: int | None = None, backoff_s: float | None = None,
                 capture: cv2.VideoCapture | None = None):
        """`capture`: one `open_capture` already opened (else it is opened here)."""
        super().__init__(name, capture if capture is not None else _opened(open_capture, name))
        self.frame_count = None
        self._open = open_capture
        self._retries = self.retries if retries is None else retries
        self._backoff = self.backoff_s if backoff_s is None else backoff_s
        self._failures = 0  # reconnections in a row that brought no frame
        self._latest: np.ndarray | None = None
        self._fresh = False
        self._done = False
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"read:{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        """The reader thread: owns the capture, keeps the newest frame, ends the source when done."""
        try:
            self._read_frames()
        except Exception as e:  # a backend error ends the source; the consumer must not wait forever
            self.error = f"{self.name} failed: {e}"
        finally:
            self.cap.release()
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def _read_frames(self) -> None:
        while not self._stop.is_set() and not self.cancelled:
            start = time.monotonic()
            ok, frame = self.cap.read()
            if not ok:
                if self._stop.is_set() or not self._reconnect(self._loss(time.monotonic() - start)):
                    break
                continue
            self._failures = 0
            with self._cond:
                self.dropped += self._fresh  # the previous frame was never taken
                self._latest, self._fresh = frame, True
                self._cond.notify()

    def _loss(self, waited_s: float) -> str:
        """How the source was lost: a read that failed at once (closed, unplugged) or one that timed out."""
        if waited_s >= 0.9 * READ_TIMEOUT_MS / 1000:
            return f"{self.name} stalled (no frame for {waited_s:.1f}s)"
        return f"{self.name} lost"

    def _reconnect(self, loss: str) -> bool:
        """Reopen a lost or stalled camera or stream, with growing waits; False when it stays lost.

        An attempt counts as failed until a frame arrives: a server that accepts connections but
        sends nothing is given up on after `retries` attempts, not retried for ever.
        """
        self.cap.release()
        while self._failures < self._retries:
            delay = self._backoff * 2 ** self._failures
            self._failures += 1
            log.warning("%s; reconnecting in %.1fs (%d/%d)", loss, delay, self._failures, self._retries)
            if self._stop.wait(delay):
                return False
            cap = self._open()
            if cap.isOpened():
                self.cap = cap
                self.reconnects += 1
                return True
            cap.release()
        self.error = f"{self.name} was lost and did not come back after {self._retries} tries"
        return False

    @property
    def length(self) -> int | None:
        return self.limit

    def _next(self) -> np.ndarray | None:
        """The newest frame not yet taken; waits for one; None when the source has ended."""
        with self._cond:
            while not self._fresh and not self._done and not self.cancelled:
                self._cond.wait(0.1)
            if not self._fresh or self.cancelled:
                return None
            self._fresh = False
            return self._latest

    def close(self) -> None:
        """Stop the reader thread; it releases the capture (never while a read is under way)."""
        self._stop.set()
        self._thread.join(timeout=2.0)
        if self._thread.is_alive():
            log.warning("%s: reader still blocked in a read; it releases the capture when it returns",
                        self.name)


def _opened(open_capture: Callable[[], cv2.VideoCapture], name: str) -> cv2.VideoCapture:
    cap = open_capture()
    if not cap.isOpened():
        cap.release()
        raise UserError(f"cannot open {name}; check that it exists and is reachable")
    return cap


def _stream_capture(url: str) -> Callable[[], cv2.VideoCapture]:
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, READ_TIMEOUT_MS]
    return lambda: cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)


def open_camera(index: int, backend: int = CAMERA_BACKEND) -> LiveSource:
    """A webcam by index; buffering is kept to one frame where the driver allows it."""
    if index < 0:
        raise UsageError(f"--camera must be 0 or more, got {index}")

    def open_capture() -> cv2.VideoCapture:
        cap = cv2.VideoCapture(index, backend)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # honoured by V4L2 only; the thread handles the rest
        return cap

    try:
        return LiveSource(f"camera {index}", open_capture)
    except UserError:
        raise UserError(f"camera {index} not found or busy; list cameras with "
                        f"`v4l2-ctl --list-devices` (Linux) or try another --camera index") from None


def is_url(spec: str) -> bool:
    """True for `scheme://...` (one letter is a Windows drive, not a scheme)."""
    return len(urlparse(spec).scheme) > 1


def open_video(spec: str, realtime: bool = False, loop: bool = False, fps: float | None = None) -> Source:
    """A video file, a stream URL (rtsp, http, ...), or images played as a video: a folder of frames,
    a glob or one image, at `fps` (default DEFAULT_FPS); `loop` (not streams) starts again at the end."""
    images = None if is_url(spec) else frame_files(spec)
    if images is not None:
        return open_frames(spec, images, fps or DEFAULT_FPS, realtime, loop)
    if fps is not None:
        raise UsageError(f"--fps sets the rate of images played as a video; {spec} plays at its own: drop --fps")
    if is_url(spec):
        return open_stream(spec, realtime, loop)
    cap, first = open_video_file(Path(spec))
    return Source(spec, cap, realtime, first, loop=loop)


class FrameSource(Source):
    """Image files played as a video (runtime/media.py's ImageCapture): every frame at its own size;
    an image that cannot be read is skipped and kept in `skipped`, never the end of the source."""

    @property
    def skipped(self) -> dict[Path, str]:
        """The images skipped so far (path: why)."""
        return self.cap.skipped

    @property
    def names(self) -> list[Path]:
        """The files of the frames read in this pass: the i-th frame read is names[i]."""
        return self.cap.names

    @property
    def still(self) -> bool:
        """One image: shown until a key is pressed, written as an image."""
        return len(self.cap.paths) == 1

    @property
    def sizes(self) -> list[tuple[int, int]]:
        """The frame sizes (W, H) seen so far, the first's first."""
        return self.cap.sizes

    def _ended_short(self) -> bool:
        return False  # unreadable images are skipped and reported, the others played


def open_frames(name: str, images: list[Path], fps: float = DEFAULT_FPS, realtime: bool = False,
                loop: bool = False) -> FrameSource:
    """Images played as a video at `fps`; an error when not one of them can be read."""
    if not fps > 0:
        raise UsageError(f"--fps must be more than 0, got {fps:g}")
    cap = ImageCapture(images, fps)
    ok, first = cap.read()
    if not ok:
        raise cap.unreadable(name)
    return FrameSource(name, cap, realtime, first, loop=loop)


def open_stream(url: str, realtime: bool = False, loop: bool = False) -> Source:
    """A stream URL: a file (every frame, in order; ends early = broken) when its container reports a
    length, like a video file over HTTP; else a live source (newest frame, reconnected when lost)."""
    scheme = urlparse(url).scheme.lower()
    if scheme not in STREAM_SCHEMES:
        raise UserError(f"unsupported URL scheme {scheme!r} in {url}; use one of "
                        f"{', '.join(STREAM_SCHEMES)} or a file path")
    if loop:
        raise UsageError(f"--loop replays video files, not streams ({url}); drop --loop")
    open_capture, start = _stream_capture(url), time.monotonic()
    cap = open_capture()
    if not cap.isOpened():
        cap.release()
        raise UserError(_not_opened(url, time.monotonic() - start))
    if cap.get(cv2.CAP_PROP_FRAME_COUNT) <= 0:  # no frame count nor duration in the container: live
        return LiveSource(url, open_capture, capture=cap)
    ok, first = cap.read()
    if not ok:
        cap.release()
        raise UserError(f"cannot decode {url}: it opened but gave no frame (an .mp4 with its index at the "
                        f"end needs a server that supports range requests); download it and play the file")
    return Source(url, cap, realtime, first)


DEFAULT_PORTS = {"http": 80, "https": 443, "rtsp": 554, "rtsps": 322, "rtmp": 1935}


def _not_opened(url: str, waited_s: float) -> str:
    """Why a stream did not open: no answer within the timeout, a refused connection, or no video."""
    if waited_s >= 0.9 * OPEN_TIMEOUT_MS / 1000:
        return (f"cannot open stream {url}: no answer within {OPEN_TIMEOUT_MS // 1000}s; check the URL "
                f"and that the server is reachable")
    parts = urlparse(url)
    try:  # schemes over TCP: ask the port ourselves (FFmpeg's reason is not passed on)
        address = (parts.hostname, parts.port or DEFAULT_PORTS.get(parts.scheme.lower()))
        if parts.scheme.lower() in DEFAULT_PORTS and all(address):
            socket.create_connection(address, timeout=1.0).close()
            return f"cannot open stream {url}: the server answered but sent no video; check the path in the URL"
    except ConnectionRefusedError:
        return f"cannot open stream {url}: connection refused; check the port and that the server is running"
    except (OSError, ValueError):  # unreachable, unknown host, or a port that is no number
        pass
    return f"cannot open stream {url} (failed after {waited_s:.1f}s); check the URL and that the server is reachable"
