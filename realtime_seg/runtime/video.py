"""Video output: the container-to-codec table and an encoder on its own thread that writes to a
temporary file renamed into place only when complete."""
from __future__ import annotations

import os
import queue
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from ..errors import UserError
from ..system import partial_path, quiet_stderr

_END = object()
# Container -> FourCC, for every command. The pip OpenCV has no H.264 encoder; VP8 plays in
# browsers and, unlike VP9, encodes at a usable speed on a small CPU (docs/BATCH.md).
CODECS = {".webm": "VP80", ".mp4": "mp4v", ".avi": "MJPG", ".mkv": "VP80", ".mov": "mp4v"}


def codec_for(path: Path, codec: str | None = None) -> str:
    """The FourCC for a container (CODECS), unless given."""
    if codec:
        if len(codec) != 4:
            raise UserError(f"codec must be a 4-letter FourCC like mp4v, MJPG or VP90, got {codec!r}")
        return codec
    if path.suffix.lower() not in CODECS:
        raise UserError(f"unsupported output type {path.suffix or '(none)'} for {path}; "
                        f"use one of {', '.join(CODECS)}")
    return CODECS[path.suffix.lower()]


_RELEASES: list[threading.Thread] = []  # encoders discarded by VideoOutput.discard, still flushing


def wait_for_releases(timeout: float = 1.5) -> None:
    """Before exiting: OpenCV aborts the process (SIGABRT) if Python shuts down mid-release."""
    deadline = time.monotonic() + timeout
    for thread in _RELEASES:
        thread.join(max(0.0, deadline - time.monotonic()))


class VideoOutput:
    """Encodes frames on a thread into a temporary file; `close(ok=True)` renames it into place."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int], codec: str | None = None,
                 queue_size: int = 4):
        self.path, self.tmp = Path(path), partial_path(Path(path))
        fourcc = codec_for(self.path, codec)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot create output folder {self.path.parent}: {e.strerror}") from None
        if not os.access(self.path.parent, os.W_OK):
            raise UserError(f"output folder {self.path.parent} is not writable; choose another output path")
        with quiet_stderr():  # OpenCV's harmless "tag ... is not supported" line for WebM
            self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*fourcc), fps, size)
        if not self.writer.isOpened():
            self.tmp.unlink(missing_ok=True)
            raise UserError(f"cannot encode {self.path} with codec {fourcc}; try another --codec or extension")
        self.size, self.frames, self.error = size, 0, None
        self.encode_ms = 0.0
        self._q: queue.Queue = queue.Queue(queue_size)
        self._thread = threading.Thread(target=self._run, name="encode", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (frame := self._q.get()) is not _END:
            t = time.perf_counter()
            self.writer.write(frame)
            self.encode_ms += (time.perf_counter() - t) * 1e3
            self.frames += 1

    def write(self, frame: np.ndarray) -> None:
        if (frame.shape[1], frame.shape[0]) != self.size:
            frame = cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA)
        self._q.put(frame)

    def close(self, ok: bool = True) -> Path | None:
        """Finish the file; keep it (renamed into place) only if `ok` and frames were written."""
        self._q.put(_END)
        self._thread.join()
        self.writer.release()
        if ok and self.frames:
            os.replace(self.tmp, self.path)
            return self.path
        self.tmp.unlink(missing_ok=True)
        return None

    def discard(self) -> None:
        """Stop at once (Ctrl-C): drop queued frames and delete the temporary file."""
        while True:
            try:
                self._q.get_nowait()
            except queue.Empty:
                break
        self._q.put(_END)
        self._thread.join()  # at most the frame being encoded
        self.tmp.unlink(missing_ok=True)
        # release() flushes the encoder's look-ahead (VP9: ~25 frames, seconds of work) into a
        # file that is already deleted: run it on a thread; `wait_for_releases` bounds the wait.
        thread = threading.Thread(target=self.writer.release, name="release", daemon=True)
        thread.start()
        _RELEASES.append(thread)
