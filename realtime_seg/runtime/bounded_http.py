"""A `ThreadingHTTPServer` whose threads are bounded, for runtime/serve.py: a flood of connections
must not become a flood of threads, and a client that sends its request slowly, or never, must not
hold a thread for long.

    accept ─► over max_connections? ─► 503 from the accepting thread, closed (no thread)
           └► a thread (BoundedHandler) ─► headers not all in after HEADER_S? ─► closed

The deadline is checked by `serve_forever`'s own loop (`service_actions`, every poll), so a
trickle of header bytes cannot stretch it, and no timer thread is needed.
"""
from __future__ import annotations

import contextlib
import http.server
import socket
import threading
import time

HEADER_S = 5.0       # a request whose line and headers have not all arrived by then is closed
_BUSY = (b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"
         b"too many connections to this server; try again later\n")


class BoundedHandler(http.server.BaseHTTPRequestHandler):
    """A request handler that tells its BoundedHTTPServer when its headers are in; logs nothing."""

    server: "BoundedHTTPServer"

    def parse_request(self) -> bool:
        ok = super().parse_request()  # reads the headers: an end of file, once hung up, reads as their end
        return self.server.arrived(self.connection) and ok  # answered only when in before the deadline

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the standard library's name)
        pass  # no request log over the run's progress bar


class BoundedHTTPServer(http.server.ThreadingHTTPServer):
    """A ThreadingHTTPServer with bounded threads: at most `max_connections` connections at once (one
    more is answered 503 by the accepting thread and closed: no thread started for it), and a
    request whose line and headers are not all in within HEADER_S is closed (slow-header clients)."""

    daemon_threads = True
    request_queue_size = 64  # connections waiting to be accepted (5 in socketserver): a burst of browsers
                             # is not left to retry its connection a second later

    def __init__(self, address: tuple[str, int], handler: type[BoundedHandler], max_connections: int):
        self.max_connections = max_connections
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()           # every connection, each on its own thread
        self._waiting: dict[socket.socket, float] = {}   # those whose headers are not all in: their deadline
        super().__init__(address, handler)

    def process_request(self, request: socket.socket, client_address) -> None:
        with self._lock:
            full = len(self._open) >= self.max_connections
            if not full:
                self._open.add(request)
                self._waiting[request] = time.monotonic() + HEADER_S
        if full:
            _refuse(request)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)  # its thread
        except BaseException:
            self._forget(request)
            raise

    def process_request_thread(self, request: socket.socket, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._forget(request)

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._open)

    def arrived(self, request: socket.socket) -> bool:
        """The headers of `request` are in: True if before its deadline (False: it was hung up)."""
        with self._lock:
            return self._waiting.pop(request, None) is not None

    def service_actions(self) -> None:
        """Called by serve_forever every poll (0.2 s): close the connections past their headers' deadline."""
        now = time.monotonic()
        with self._lock:
            late = [r for r, deadline in self._waiting.items() if deadline < now]
            for request in late:
                del self._waiting[request]
        for request in late:
            _hang_up(request)  # its thread's read returns: the thread ends

    def hang_up_all(self) -> None:
        with self._lock:
            requests = list(self._open)
        for request in requests:
            _hang_up(request)

    def _forget(self, request: socket.socket) -> None:
        with self._lock:
            self._open.discard(request)
            self._waiting.pop(request, None)

    def handle_error(self, request, client_address) -> None:
        pass  # a browser that closed its connection mid-answer: nothing to report over the run's output


def _refuse(request: socket.socket) -> None:
    """Answer 503 on a new connection without waiting for it (its buffers are empty) and read what it
    sent, so that closing it does not reset the connection before the answer is read."""
    with contextlib.suppress(OSError):
        request.setblocking(False)
        request.send(_BUSY)
        request.recv(65536)


def _hang_up(request: socket.socket) -> None:
    with contextlib.suppress(OSError):
        request.shutdown(socket.SHUT_RDWR)
