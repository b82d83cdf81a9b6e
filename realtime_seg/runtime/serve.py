"""Watch a run from a browser (`--serve [HOST:]PORT`): the annotated frames as an MJPEG stream and a
page that shows it, served by the standard library's `ThreadingHTTPServer`, bounded.

    publish(frame) ─► latest frame ─► encoder thread (one JPEG per frame) ─► each client's 1-slot mailbox ─► its socket

`publish` never waits: it only swaps the latest frame. A frame's JPEG is made once, whoever asks,
and the streams get at most STREAM_FPS a second; each client's mailbox holds only the newest: a
slow or vanished browser misses frames, nobody else does, and the pipeline never waits for it.

Who and how many: 127.0.0.1 unless a host is named; beyond loopback every request needs `?token=`
(random, or --serve-token; compared in constant time) or gets 403. At most `max_clients` streams
(one more: 503) and `connections(max_clients)` connections (one more: 503 from the accepting thread, no thread
started); headers not all in after HEADER_S, or a stream not read for STALL_S: closed. No TLS
(docs/RELIABILITY.md, "Serving"). `serving` starts the server and stops it with the run.
"""
from __future__ import annotations

import contextlib
import hmac
import ipaddress
import re
import secrets
import socket
import sys
import threading
import time
import urllib.parse
from typing import Iterator

import cv2
import numpy as np

from ..errors import UsageError, UserError
from .bounded_http import BoundedHandler, BoundedHTTPServer

DEFAULT_HOST = "127.0.0.1"
MAX_CLIENTS = 16     # streams at once (--serve-max-clients)
STALL_S = 10.0       # a client whose socket takes no data for this long is dropped
STREAM_FPS = 30.0    # frames a second to the streams at most: a run faster than that (a file, headless)
                     # would spend its CPU on frames no one needs to see; /frame.jpg is always the newest
JPEG_QUALITY = 80
_TOKEN = re.compile(r"[A-Za-z0-9._~-]{16,}")  # safe as is in a URL, the page's HTML and its script
_BOUNDARY = "frame"
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{margin:0;background:#111;color:#ccc;font:14px sans-serif}}
#live{{display:block;max-width:100vw;max-height:calc(100vh - 2em);margin:auto}}
p{{margin:.3em;text-align:center}}</style></head>
<body><img id="live" src="/stream.mjpg?{query}" alt="live frames"><p id="state">{title}: live</p>
<script>
const img = document.getElementById("live"), state = document.getElementById("state");
img.onerror = () => {{ state.textContent = "{title}: the run has ended or cannot be reached; retrying";
                      setTimeout(() => {{ img.src = "/stream.mjpg?{query}&t=" + Date.now(); }}, 2000); }};
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


def connections(max_clients: int) -> int:
    """Connections (threads) at once for `max_clients` streams: the streams, as many requests being
    answered or still arriving (slow or silent ones hold theirs up to HEADER_S), and 8 to spare."""
    return 2 * max_clients + 8


def check_token(token: str | None) -> None:
    """A usage error unless `token` (--serve-token, when given) is long enough and safe in a URL."""
    if token is not None and not _TOKEN.fullmatch(token):
        raise UsageError(f"--serve-token takes 16 or more letters, digits or -._~ (it goes into URLs), "
                         f"got {len(token)} characters{'' if token.isascii() else ' not all ASCII'}")


class _Mailbox:
    """One client's newest part (a JPEG with its multipart header): a new one replaces an untaken one
    (that client drops a frame)."""

    def __init__(self):
        self._cond, self._part, self.closed = threading.Condition(), None, False

    def put(self, part: bytes) -> None:
        with self._cond:
            self._part = part
            self._cond.notify()

    def take(self, timeout: float) -> bytes | None:
        """The newest part not yet taken; None after `timeout` or once closed."""
        with self._cond:
            if self._part is None and not self.closed:
                self._cond.wait(timeout)
            part, self._part = self._part, None
            return None if self.closed else part

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify()


class _Handler(BoundedHandler):
    """GET /: the page; /stream.mjpg: the MJPEG stream; /frame.jpg: the latest frame. With a token,
    every request without it is refused (403), whatever the path."""

    server: "_HTTPServer"
    timeout = STALL_S  # socket timeout: a client that stops reading is dropped, not waited for

    def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
        frames = self.server.frames
        path, _, query = self.path.partition("?")
        if not frames.allows(urllib.parse.parse_qs(query).get("token", [""])[0]):
            self.send_error(403, "this --serve needs its token: open the URL it printed, with ?token=")
        elif path == "/":
            self._send(frames.page().encode(), "text/html; charset=utf-8")
        elif path == "/frame.jpg":
            jpeg = frames.latest_jpeg()
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
        frames = self.server.frames
        box = frames.join()
        if box is None:
            self.send_error(503, f"{frames.max_clients} viewers already (--serve-max-clients); try again later")
            return
        try:
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={_BOUNDARY}")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            while not box.closed:
                part = box.take(timeout=0.5)
                if part is not None:
                    self.wfile.write(part)
        except OSError:  # the browser went away, or stopped reading for STALL_S
            pass
        finally:
            frames.leave(box)


class _HTTPServer(BoundedHTTPServer):
    frames: "FrameServer"


class _HTTPServer6(_HTTPServer):
    address_family = socket.AF_INET6


class FrameServer:
    """The HTTP server of one run: `publish` each annotated frame, `close` at the end. `token`: every
    request must carry `?token=` it (None: no check); `max_clients`: streams at once."""

    def __init__(self, host: str = DEFAULT_HOST, port: int = 0, title: str = "realtime_seg",
                 token: str | None = None, max_clients: int = MAX_CLIENTS):
        self.title, self.token, self.max_clients = title, token, max_clients
        kind = _HTTPServer6 if ":" in host else _HTTPServer
        try:
            self._http = kind((host, port), _Handler, connections(max_clients))
        except OSError as e:
            raise UserError(f"--serve {host}:{port}: cannot listen there ({e.strerror or e}); pick another "
                            f"port, or a host this machine has") from None
        self._http.frames = self
        self.host, self.port = host, self._http.server_address[1]
        self._lock, self._new, self._encoding = threading.Lock(), threading.Condition(), threading.Lock()
        self._boxes: set[_Mailbox] = set()
        self._latest: np.ndarray | None = None
        self._number = 0                     # frames published
        self._jpeg: tuple[int, bytes] = (0, b"")  # the newest JPEG made, with its frame's number
        self.encoded = 0                     # JPEGs made (one per frame at most, whoever asks)
        self._closed = False
        self._threads = [threading.Thread(target=self._http.serve_forever, args=(0.2,), name="serve", daemon=True),
                         threading.Thread(target=self._encode, name="serve-jpeg", daemon=True)]
        for t in self._threads:
            t.start()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def link(self, path: str = "") -> str:
        """The URL of `path` ("" the page, "stream.mjpg", "frame.jpg") with the token, if any."""
        return self.url + path + (f"?token={self.token}" if self.token else "")

    @property
    def clients(self) -> int:
        with self._lock:
            return len(self._boxes)

    @property
    def connections(self) -> int:
        """Open connections (streams, requests being answered or still arriving), one thread each."""
        return self._http.connections

    def allows(self, token: str) -> bool:
        """Whether a request that carries `token` is answered (compared in constant time)."""
        return self.token is None or hmac.compare_digest(token.encode(), self.token.encode())

    def page(self) -> str:
        """The page, its stream's URL with the token (when there is one), also when it retries."""
        return PAGE.format(title=self.title, query=f"token={self.token}" if self.token else "")

    def publish(self, image: np.ndarray) -> None:
        """Offer the newest annotated frame; never waits (kept, not copied: frames are not drawn on again)."""
        with self._new:
            self._latest, self._number = image, self._number + 1
            self._new.notify()

    def latest_jpeg(self) -> bytes | None:
        """The newest frame as JPEG, made once per frame; None before the first."""
        with self._new:
            image, number = self._latest, self._number
        if image is None:
            return None
        with self._encoding:
            if self._jpeg[0] != number:
                self._jpeg = (number, _encode_jpeg(image))
                self.encoded += 1
            return self._jpeg[1]

    def join(self) -> _Mailbox | None:
        """A new stream's mailbox; None when `max_clients` streams are already open."""
        with self._lock:
            if len(self._boxes) >= self.max_clients:
                return None
            box = _Mailbox()
            self._boxes.add(box)
            return box

    def leave(self, box: _Mailbox) -> None:
        with self._lock:
            self._boxes.discard(box)

    def _encode(self) -> None:
        """Encode the newest frame once, while anyone streams, and put it in every mailbox; at most
        STREAM_FPS times a second."""
        sent = 0
        while True:
            with self._new:
                while self._number == sent and not self._closed:
                    self._new.wait()
                if self._closed:
                    return
                sent, start = self._number, time.monotonic()
            with self._lock:
                boxes = list(self._boxes)
            if boxes:
                jpeg = self.latest_jpeg()
                part = (f"--{_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
                        + jpeg + b"\r\n")  # made once, sent to every client
                for box in boxes:
                    box.put(part)
                time.sleep(max(0.0, start + 1 / STREAM_FPS - time.monotonic()))

    def close(self) -> None:
        """Stop serving: end every stream, close every connection, stop the threads."""
        with self._new:
            self._closed = True
            self._new.notify_all()
        self._http.shutdown()
        with self._lock:
            boxes = list(self._boxes)
        for box in boxes:
            box.close()
        self._http.hang_up_all()  # a write blocked on a stalled client, a read of slow headers: both return
        self._http.server_close()
        for t in self._threads:
            t.join(timeout=5.0)


def _encode_jpeg(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    return data.tobytes()


@contextlib.contextmanager
def serving(spec: str | None, title: str = "realtime_seg", token: str | None = None,
            max_clients: int = MAX_CLIENTS) -> Iterator[FrameServer | None]:
    """A FrameServer at `spec` ([HOST:]PORT; None: no server) for the block, stopped when it ends.
    Beyond loopback it needs a token: `token`, or a random one (128+ bits); on loopback only `token`."""
    if spec is None:
        yield None
        return
    host, port = parse_address(spec)
    check_token(token)
    if token is None and not is_loopback(host):
        token = secrets.token_urlsafe(24)  # 192 bits
    server = FrameServer(host, port, title, token, max_clients)
    print(f"serving the annotated frames at {server.link()} (MJPEG stream: {server.link('stream.mjpg')})",
          flush=True)
    if not is_loopback(host):
        print(f"warning: --serve {spec} listens beyond this machine: only requests with the token above are "
              f"answered, over plain HTTP (no TLS: put an HTTPS reverse proxy in front on networks you do not "
              f"trust)", file=sys.stderr)
    try:
        yield server
    finally:
        server.close()
