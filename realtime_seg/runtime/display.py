"""Showing frames in a window: whether a display is there, the window itself, the frame rate
shown and the pace at which a file's frames are shown.
"""
from __future__ import annotations

import os
import re
import socket
import sys
import time
from pathlib import Path

import cv2

WINDOW = "realtime_seg"
WINDOW_MAX = (1280, 720)  # the window opens at the frame's size, scaled down to fit this
X11_SOCKETS = Path("/tmp/.X11-unix")


def display_available() -> bool:
    """True when a window can open; OpenCV's imshow aborts the process (uncatchably) without one."""
    if sys.platform in ("win32", "darwin") or os.environ.get("WAYLAND_DISPLAY"):
        return True
    display = os.environ.get("DISPLAY", "")
    local = re.match(r"^(?:unix)?:(\d+)", display)
    if local:  # a stale DISPLAY (no server, or a dead one's socket file) would abort imshow
        return x_server_listening(int(local.group(1)))
    return bool(display)


def x_server_listening(number: int) -> bool:
    """True when a local X server accepts connections on its socket (file, or Linux abstract)."""
    path = str(X11_SOCKETS / f"X{number}")
    for address in (path, "\0" + path) if sys.platform.startswith("linux") else (path,):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            try:
                sock.connect(address)
                return True
            except OSError:
                pass
    return False


class Window:
    """The OpenCV window frames are shown in: what the play loop needs of a window (show, keys,
    closed). A test or another front end passes its own object with these three methods."""

    def __init__(self, name: str = WINDOW):
        self.name = name

    def show(self, image) -> None:
        cv2.imshow(self.name, image)

    def key(self, wait_ms: int) -> int:
        """The key pressed within `wait_ms` milliseconds (its low byte), or 255 for none."""
        return cv2.waitKey(wait_ms) & 0xFF

    def closed(self) -> bool:
        """True once the user has closed the window."""
        return cv2.getWindowProperty(self.name, cv2.WND_PROP_VISIBLE) < 1

    def close(self) -> None:
        cv2.destroyAllWindows()


def open_window(size: tuple[int, int]) -> Window | None:
    """A resizable window at the frame's `size` (W, H) that keeps its aspect; None without GUI support."""
    try:
        cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL)
    except cv2.error:
        return None
    scale = min(1.0, WINDOW_MAX[0] / max(size[0], 1), WINDOW_MAX[1] / max(size[1], 1))
    cv2.resizeWindow(WINDOW, max(1, round(size[0] * scale)), max(1, round(size[1] * scale)))
    return Window()


class FpsMeter:
    """Smoothed frames per second of the frames shown."""

    def __init__(self, alpha: float = 0.1):
        self.alpha, self.fps, self._last, self._dt = alpha, 0.0, None, None

    def tick(self) -> float:
        """Count a frame; smooths the intervals, not their rates (bursts would inflate a mean of rates)."""
        now = time.perf_counter()
        if self._last is not None:
            dt = now - self._last
            self._dt = dt if self._dt is None else self._dt + self.alpha * (dt - self._dt)
            self.fps = 1.0 / self._dt if self._dt > 0 else self.fps
        self._last = now
        return self.fps


class Pacer:
    """Shows a file's frames at its own rate: each one is due a frame period after the one before.

    Unlike --realtime, which drops the frames it is late for, every frame is shown: a frame that
    comes late (a slower model, a pause) restarts the schedule from now instead of hurrying the
    frames after it, so playback is then as fast as the model allows, and never faster than the file.
    """

    def __init__(self, fps: float):
        self.period = 1.0 / fps
        self._due: float | None = None  # when the next frame is due

    def shown(self) -> None:
        """A frame has just been shown: the next is due one period after it was due itself (or after now, if late)."""
        now = time.perf_counter()
        if self._due is None or now - self._due > self.period:
            self._due = now
        self._due += self.period

    def wait_ms(self) -> int:
        """Milliseconds until the next frame is due (0: due now)."""
        return 0 if self._due is None else max(0, round((self._due - time.perf_counter()) * 1e3))
