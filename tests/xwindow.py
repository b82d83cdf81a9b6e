"""Drive a real window under a virtual X server (Xvfb) with xdotool, and read its pixels.

Test helpers for the viewer's window tests; scripts/screenshot.py uses them too. Needs `Xvfb` and
`xdotool` (Debian/Ubuntu: apt-get install xvfb xdotool).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

WINDOW = "realtime_seg"


def missing_tools() -> list[str]:
    """The X tools this needs that are not on PATH."""
    return [tool for tool in ("Xvfb", "xdotool") if shutil.which(tool) is None]


@contextlib.contextmanager
def xvfb(size: tuple[int, int] = (1280, 800), timeout_s: float = 10.0) -> Iterator[tuple[str, Path]]:
    """A virtual X server on a free display: yields (DISPLAY, path of its XWD framebuffer)."""
    with tempfile.TemporaryDirectory(prefix="xvfb_") as tmp:
        read_fd, write_fd = os.pipe()
        proc = subprocess.Popen(["Xvfb", "-displayfd", str(write_fd), "-screen", "0", f"{size[0]}x{size[1]}x24",
                                 "-fbdir", tmp, "-nolisten", "tcp", "-noreset"], pass_fds=(write_fd,),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(write_fd)
        try:
            display = _read_display(read_fd, proc, timeout_s)
            yield f":{display}", Path(tmp) / "Xvfb_screen0"
        finally:
            os.close(read_fd)
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _read_display(fd: int, proc: subprocess.Popen, timeout_s: float) -> str:
    """The display number Xvfb writes to -displayfd once it accepts connections."""
    import select
    ready, _, _ = select.select([fd], [], [], timeout_s)
    text = os.read(fd, 64).decode().strip() if ready else ""
    if not text:
        raise RuntimeError(f"Xvfb did not start within {timeout_s:.0f}s (exit code {proc.poll()})")
    return text


def xdotool(display: str, *args: str, timeout_s: float = 10.0) -> str:
    """Run xdotool on `display`; its stdout."""
    proc = subprocess.run(["xdotool", *args], env={**os.environ, "DISPLAY": display},
                          capture_output=True, text=True, timeout=timeout_s)
    if proc.returncode != 0:
        raise RuntimeError(f"xdotool {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def find_window(display: str, name: str = WINDOW, timeout_s: float = 30.0) -> str:
    """The id of the first window titled `name`, waiting for it to appear."""
    return xdotool(display, "search", "--sync", "--name", f"^{name}$", timeout_s=timeout_s).split()[0]


def park_cursor(display: str) -> None:
    """Move the mouse pointer to the screen's bottom-right corner, off the window."""
    xdotool(display, "mousemove", "--sync", "10000", "10000")


def window_geometry(display: str, window: str) -> tuple[int, int, int, int]:
    """(x, y, width, height) of a window on the screen."""
    values = dict(line.split("=", 1) for line in xdotool(display, "getwindowgeometry", "--shell", window).split())
    return int(values["X"]), int(values["Y"]), int(values["WIDTH"]), int(values["HEIGHT"])


def read_xwd(path: Path) -> np.ndarray:
    """A 24/32-bit TrueColor XWD image (Xvfb's -fbdir framebuffer) as BGR uint8 (H, W, 3)."""
    data = path.read_bytes()
    (header_size, _version, _format, _depth, width, height, _xoff, byte_order, _unit, _bit_order, _pad,
     bits_per_pixel, bytes_per_line, _visual, red_mask, _green, blue_mask, _bits_rgb, _entries,
     ncolors) = struct.unpack(">20I", data[:80])
    if bits_per_pixel != 32:
        raise ValueError(f"{path}: {bits_per_pixel} bits per pixel; start Xvfb with depth 24")
    pixels = np.frombuffer(data, np.uint8, count=bytes_per_line * height, offset=header_size + 12 * ncolors)
    pixels = pixels.reshape(height, bytes_per_line // 4, 4)[:, :width]
    if byte_order == 1:  # most significant byte first: X R G B
        pixels = pixels[..., ::-1]
    bgr = pixels[..., :3]  # least significant first: B G R X (when red is the high byte)
    return np.ascontiguousarray(bgr if red_mask > blue_mask else bgr[..., ::-1])


def grab_window(display: str, framebuffer: Path, window: str) -> np.ndarray:
    """The window's pixels, cut out of the screen (with no window manager, nothing covers it)."""
    x, y, w, h = window_geometry(display, window)
    return read_xwd(framebuffer)[y:y + h, x:x + w].copy()
