"""A real HTTP server on 127.0.0.1 for the stream tests: serves a folder's files, with byte ranges.

Like nginx or any CDN (and unlike `http.server`), it answers `Range: bytes=A-` with 206 and the
range, which FFmpeg needs to play an .mp4 whose index (moov) is at the end. `cut_at` makes it a
server that fails mid-file: each response stops after that byte of the file and then either
closes the connection or stalls (keeps it open, sending nothing).
"""
from __future__ import annotations

import contextlib
import http.server
import re
import threading
import time
from pathlib import Path
from typing import Iterator


def _handler(folder: Path, cut_at: int | None, stall_s: float) -> type:
    class RangeHandler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            path = folder / self.path.lstrip("/").split("?")[0]
            if not path.is_file():
                self.send_error(404)
                return
            data = path.read_bytes()
            start, end = 0, len(data) - 1
            asked = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
            if asked:
                start, end = int(asked.group(1)), min(end, int(asked.group(2) or end))
            self.send_response(206 if asked else 200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(end + 1 - start))
            if asked:
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            self.end_headers()
            stop = end + 1 if cut_at is None else max(start, min(end + 1, cut_at))
            try:
                self.wfile.write(data[start:stop])
                self.wfile.flush()
                if stop <= end:  # cut: the rest never comes
                    self.server.cut_times.append(time.monotonic())
                    time.sleep(stall_s)
                    self.close_connection = True
            except (BrokenPipeError, ConnectionResetError):  # the client gave up first
                pass

    return RangeHandler


@contextlib.contextmanager
def serve(folder: Path, cut_at: int | None = None, stall_s: float = 0.0) -> Iterator[tuple[str, list[float]]]:
    """http://127.0.0.1:PORT serving `folder` on a thread; yields (base URL, monotonic times of each cut)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(folder, cut_at, stall_s))
    server.daemon_threads = True
    server.cut_times = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.cut_times
    finally:
        server.shutdown()
        server.server_close()
