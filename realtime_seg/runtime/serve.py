"""Watch a run from a browser (`--serve [HOST:]PORT`): the annotated frames as an MJPEG stream and a
page that shows it, served by the standard library's `ThreadingHTTPServer`.

    publish(frame) ─► latest frame ─► encoder thread (one JPEG per frame) ─► each client's 1-slot mailbox ─► its socket

`publish` never waits: it only swaps the latest frame (nothing at all while nobody watches). Each
client has a mailbox that holds only the newest JPEG: a slow or vanished browser misses frames,
nobody else does, and the pipeline never waits for it; a client that stops reading is dropped
after `STALL_S`. `serving` starts the server and stops it (closing every connection) with the run.
Binds to 127.0.0.1 unless a host is named; the stream is unauthenticated.
"""
from __future__ import annotations

import contextlib
import http.server
import ipaddress
import socket
import sys
import threading
from typing import Iterator

import cv2
import numpy as np

from ..errors import UsageError, UserError

DEFAULT_HOST = "127.0.0.1"
STALL_S = 10.0       # a client whose socket takes no data for this long is dropped
JPEG_QUALITY = 80
_BOUNDARY = "frame"
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{margin:0;background:#111;color:#ccc;font:14px sans-serif}}
#live{{display:block;max-width:100vw;max-height:calc(100vh - 2em);margin:auto}}
p{{margin:.3em;text-align:center}}</style></head>
<body><img id="live" src="/stream.mjpg" alt="live frames"><p id="state">{title}: live</p>
<script>
const img = document.getElementById("live"), state = document.getElementById("state");
img.onerror = () => {{ state.textContent = "{title}: the run has ended or cannot be reached; retrying";
                      setTimeout(() => {{ img.src = "/stream.mjpg?" + Date.now(); }}, 2000); }};
img.onload = () => {{ state.textContent = "{title}: live"; }};
</script></body></html>
"""


def parse_address(spec: str) -> tuple[str, int]:
    """`[HOST:]PORT` -> (host, port); 127.0.0.1 when no host is named; `[::1]:PORT` for IPv6."""
    host, sep, port = spec.rpartition(":")
    host = host.strip("[]") if sep else DEFAULT_HOST
    if not port.isdigit() or int(port) > 65535 or (sep and not host):
        raise UsageError(f"--serve takes [HOST:]PORT, e.g. 8080 or 0.0.0.0:8080, got {spec!r}")
    return host, int(port)


def is_loopback(host: str) -> bool:
    """True for addresses only this machine reaches (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Mailbox:
    """One client's newest JPEG: a new one replaces an untaken one (that client drops a frame)."""

    def __init__(self):
        self._cond, self._jpeg, self.closed = threading.Condition(), None, False

    def put(self, jpeg: bytes) -> None:
        with self._cond:
            self._jpeg = jpeg
            self._cond.notify()

    def take(self, timeout: float) -> bytes | None:
        """The newest JPEG not yet taken; None after `timeout` or once closed."""
        with self._cond:
            if self._jpeg is None and not self.closed:
                self._cond.wait(timeout)
            jpeg, self._jpeg = self._jpeg, None
            return None if self.closed else jpeg

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify()


class _Handler(http.server.BaseHTTPRequestHandler):
    """GET /: the page; /stream.mjpg: the MJPEG stream; /frame.jpg: the latest frame."""

    server: "_HTTPServer"
    timeout = STALL_S  # socket timeout: a client that stops reading is dropped, not waited for

    def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
        path = self.path.split("?")[0]
        if path == "/":
            self._send(PAGE.format(title=self.server.frames.title).encode(), "text/html; charset=utf-8")
        elif path == "/frame.jpg":
            jpeg = self.server.frames.latest_jpeg()
            if jpeg is None:
                self.send_error(503, "no frame yet")
            else:
                self._send(jpeg, "image/jpeg")
        elif path == "/stream.mjpg":
            self._stream()
        else:
            self.send_error(404)

    def _send(self, body: bytes, kind: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={_BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        frames = self.server.frames
        box = frames.join(self.connection)
        try:
            while not box.closed:
                jpeg = box.take(timeout=0.5)
                if jpeg is not None:
                    self.wfile.write(f"--{_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                     f"{len(jpeg)}\r\n\r\n".encode() + jpeg + b"\r\n")
        except OSError:  # the browser went away, or stopped reading for STALL_S
            pass
        finally:
            frames.leave(box)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the standard library's name)
        pass  # no request log over the progress bar


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    frames: "FrameServer"

    def handle_error(self, request, client_address) -> None:
        pass  # a browser that closed its connection mid-answer: nothing to report over the run's output


class _HTTPServer6(_HTTPServer):
    address_family = socket.AF_INET6


class FrameServer:
    """The HTTP server of one run: `publish` each annotated frame, `close` at the end."""

    def __init__(self, host: str = DEFAULT_HOST, port: int = 0, title: str = "realtime_seg"):
        self.title = title
        kind = _HTTPServer6 if ":" in host else _HTTPServer
        try:
            self._http = kind((host, port), _Handler)
        except OSError as e:
            raise UserError(f"--serve {host}:{port}: cannot listen there ({e.strerror or e}); pick another "
                            f"port, or a host this machine has") from None
        self._http.frames = self
        self.host, self.port = host, self._http.server_address[1]
        self._lock, self._new = threading.Lock(), threading.Condition()
        self._boxes: dict[_Mailbox, socket.socket] = {}
        self._latest: np.ndarray | None = None
        self._fresh = False          # _latest not yet sent to the streams
        self._closed = False
        self._threads = [threading.Thread(target=self._http.serve_forever, args=(0.2,), name="serve", daemon=True),
                         threading.Thread(target=self._encode, name="serve-jpeg", daemon=True)]
        for t in self._threads:
            t.start()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def clients(self) -> int:
        with self._lock:
            return len(self._boxes)

    def publish(self, image: np.ndarray) -> None:
        """Offer the newest annotated frame; never waits (kept, not copied: frames are not drawn on again)."""
        with self._new:
            self._latest, self._fresh = image, True
            self._new.notify()

    def latest_jpeg(self) -> bytes | None:
        """The newest frame as JPEG; None before the first."""
        with self._new:
            image = self._latest
        return None if image is None else _encode_jpeg(image)

    def join(self, connection: socket.socket) -> _Mailbox:
        box = _Mailbox()
        with self._lock:
            self._boxes[box] = connection
        return box

    def leave(self, box: _Mailbox) -> None:
        with self._lock:
            self._boxes.pop(box, None)

    def _encode(self) -> None:
        """Encode each new frame once, while anyone streams, and put it in every mailbox."""
        while True:
            with self._new:
                while not self._fresh and not self._closed:
                    self._new.wait()
                if self._closed:
                    return
                image, self._fresh = self._latest, False
            with self._lock:
                boxes = list(self._boxes)
            if boxes:
                jpeg = _encode_jpeg(image)
                for box in boxes:
                    box.put(jpeg)

    def close(self) -> None:
        """Stop serving: end every stream, close every connection, stop the threads."""
        with self._new:
            self._closed = True
            self._new.notify_all()
        self._http.shutdown()
        with self._lock:
            boxes = dict(self._boxes)
        for box, connection in boxes.items():
            box.close()
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)  # a write blocked on a stalled client returns
        self._http.server_close()
        for t in self._threads:
            t.join(timeout=5.0)


def _encode_jpeg(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    return data.tobytes()


@contextlib.contextmanager
def serving(spec: str | None, title: str = "realtime_seg") -> Iterator[FrameServer | None]:
    """A FrameServer at `spec` ([HOST:]PORT; None: no server) for the block, stopped when it ends."""
    if spec is None:
        yield None
        return
    host, port = parse_address(spec)
    server = FrameServer(host, port, title)
    print(f"serving the annotated frames at {server.url} (MJPEG stream: {server.url}stream.mjpg)", flush=True)
    if not is_loopback(host):
        print(f"warning: --serve {spec} listens beyond this machine and the stream is unauthenticated: "
              f"anyone who reaches port {server.port} can watch it", file=sys.stderr)
    try:
        yield server
    finally:
        server.close()
