"""Frame sources: video files, cameras and stream URLs, all read the same way.

`open_source(spec)` returns a `Source`; `source.read()` gives the next BGR frame or
None at the end, whatever the source, so the pipeline never branches on its type.
Live sources (cameras, URLs) are read on their own thread that keeps only the newest
frame: a slow consumer never builds up lag, and the frames it missed are counted.
"""
from __future__ import annotations

import logging
import sys
import threading
import time
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

import cv2
import numpy as np

from .errors import UserError

log = logging.getLogger(__name__)

STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
OPEN_TIMEOUT_MS = 5000
READ_TIMEOUT_MS = 5000
# V4L2 directly on Linux: CAP_ANY also probes other backends, which print errors for a missing camera
CAMERA_BACKEND = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY


class Source:
    """A video file read frame by frame: no frame is lost unless `realtime` asks to drop."""

    live = False

    def __init__(self, name: str, capture: cv2.VideoCapture, realtime: bool = False,
                 first: np.ndarray | None = None):
        self.name, self.cap, self.realtime = name, capture, realtime
        self._pending = first  # decoded at open time to prove the file is a video
        self.fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
        if not 1 <= self.fps <= 240:  # containers without a rate report 0 or nonsense
            self.fps = 30.0
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self.frame_count: int | None = count if count > 0 else None
        self.size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        self.dropped = 0
        self.error: str | None = None
        self.cancelled = False
        self._index, self._t0 = 0, None

    def cancel(self) -> None:
        """End the source early, as if it had ended: read() returns None from now on (signal-safe: no locks)."""
        self.cancelled = True

    def read(self) -> np.ndarray | None:
        """The next frame, or None at the end."""
        if self.cancelled:
            return None
        if self.realtime:
            self._keep_pace()
        if self._pending is not None:
            frame, self._pending = self._pending, None
            self._index += 1
            return frame
        ok, frame = self.cap.read()
        if not ok:
            return None
        self._index += 1
        return frame

    def _keep_pace(self) -> None:
        """Play at the file's own rate: wait for a frame that is early, skip (grab) the ones we are late for."""
        now = time.perf_counter()
        if self._t0 is None:
            self._t0 = now
        due = int((now - self._t0) * self.fps)
        while self._index < due and self.cap.grab():
            self._index += 1
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
                 retries: int | None = None, backoff_s: float | None = None):
        super().__init__(name, _opened(open_capture, name))
        self.frame_count = None
        self._open = open_capture
        self._retries = self.retries if retries is None else retries
        self._backoff = self.backoff_s if backoff_s is None else backoff_s
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
            ok, frame = self.cap.read()
            if not ok:
                if self._stop.is_set() or _has_length(self.cap) or not self._reconnect():
                    break
                continue
            with self._cond:
                self.dropped += self._fresh  # the previous frame was never taken
                self._latest, self._fresh = frame, True
                self._cond.notify()

    def _reconnect(self) -> bool:
        """Reopen a lost camera or stream, with growing waits; False when it stays lost."""
        self.cap.release()
        for attempt in range(self._retries):
            delay = self._backoff * 2 ** attempt
            log.warning("%s lost; reconnecting in %.1fs (%d/%d)", self.name, delay, attempt + 1, self._retries)
            if self._stop.wait(delay):
                return False
            cap = self._open()
            if cap.isOpened():
                self.cap = cap
                return True
            cap.release()
        self.error = f"{self.name} was lost and did not come back after {self._retries} tries"
        return False

    def read(self) -> np.ndarray | None:
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


def _has_length(cap: cv2.VideoCapture) -> bool:
    """A stream of known length (a video file over HTTP) has ended; reopening would replay it."""
    return cap.get(cv2.CAP_PROP_FRAME_COUNT) > 0


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
        raise UserError(f"camera index must be 0 or more, got {index}")

    def open_capture() -> cv2.VideoCapture:
        cap = cv2.VideoCapture(index, backend)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # honoured by V4L2 only; the thread handles the rest
        return cap

    try:
        return LiveSource(f"camera {index}", open_capture)
    except UserError:
        raise UserError(f"camera {index} not found or busy; list cameras with "
                        f"`v4l2-ctl --list-devices` (Linux) or try another --camera index") from None


def open_video(spec: str, realtime: bool = False) -> Source:
    """A video file or a stream URL (rtsp, http, ...)."""
    scheme = urlparse(spec).scheme.lower()
    if len(scheme) > 1:  # one letter is a Windows drive, not a scheme
        if scheme not in STREAM_SCHEMES:
            raise UserError(f"unsupported URL scheme {scheme!r} in {spec}; use one of "
                            f"{', '.join(STREAM_SCHEMES)} or a file path")
        try:
            return LiveSource(spec, _stream_capture(spec))
        except UserError:
            raise UserError(f"cannot open stream {spec} within {OPEN_TIMEOUT_MS // 1000}s; check "
                            f"the URL and that the server is reachable") from None
    cap, first = open_video_file(Path(spec))
    return Source(spec, cap, realtime, first)


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def open_video_file(path: Path) -> tuple[cv2.VideoCapture, np.ndarray]:
    """An opened capture and its first frame; a clear error for anything that is not a video."""
    if not path.exists():
        raise UserError(f"video {path} not found; check the path")
    if path.is_dir():
        raise UserError(f"{path} is a folder, not a video; pass a video file "
                        f"(`python -m realtime_seg batch` takes folders)")
    if path.stat().st_size == 0:
        raise UserError(f"video {path} is empty (0 bytes); pass a real video file")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        raise UserError(f"{path} is an image, not a video; pass a video file")
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    ok, first = cap.read() if cap.isOpened() else (False, None)
    if not ok:  # a header alone, or bytes FFmpeg cannot decode
        cap.release()
        raise UserError(f"cannot decode {path}: corrupt or not a video; pass an mp4, avi, mkv "
                        f"or webm file")
    return cap, first
