"""A real headless browser for the `--serve` tests: Chromium from the system's packages
(Debian: apt-get install chromium), one screenshot per run; and the machine's outward address.
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

_NAMES = ("chromium", "chromium-browser", "google-chrome")
_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--hide-scrollbars")


def chromium() -> str | None:
    """The Chromium on PATH (or /usr/bin/chromium); None when there is none."""
    found = next((shutil.which(name) for name in _NAMES if shutil.which(name)), None)
    return found or ("/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None)


def screenshot(url: str, path: Path, size: tuple[int, int] = (800, 600), wait_ms: int = 3000) -> Path:
    """Load `url` in a fresh headless Chromium, let it run `wait_ms`, and save what it shows as PNG."""
    with tempfile.TemporaryDirectory(prefix="chromium_") as profile:
        proc = subprocess.run([chromium(), *_FLAGS, f"--user-data-dir={profile}", f"--screenshot={path}",
                               f"--window-size={size[0]},{size[1]}", f"--timeout={wait_ms}", url],
                              capture_output=True, text=True, timeout=180)
    if not path.is_file():
        raise RuntimeError(f"chromium wrote no screenshot (exit {proc.returncode}): {proc.stderr[-1000:]}")
    return path


def outward_address() -> str | None:
    """An IPv4 address of this machine other than loopback (the route's source); None without one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("10.255.255.255", 1))  # UDP: nothing is sent, only a route is chosen
            address = sock.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address
