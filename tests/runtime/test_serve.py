"""The --serve server: a valid MJPEG stream of the published frames, a page a real browser shows live,
loopback unless another host is named, a token beyond it, a cap on viewers and on connections, and
no client able to hold up the others or the run. Clients connect to 127.0.0.1 only."""
from __future__ import annotations

import contextlib
import http.client
import re
import socket
import threading
import time
import urllib.request

import cv2
import numpy as np
import pytest

import browser
from realtime_seg.errors import UsageError, UserError
from realtime_seg.runtime import bounded_http, serve
from realtime_seg.runtime.serve import FrameServer, check_token, connections, is_loopback, parse_address, serving


_NOISE = np.random.default_rng(0).integers(0, 255, (120, 320, 3), dtype=np.uint8)


def _frame(n: int) -> np.ndarray:
    """A frame that shows its number in its grey level and in big digits; noise below them makes its
    JPEG large (tens of kB), so that a client that stops reading soon fills its socket's buffers."""
    image = np.full((240, 320, 3), (n * 7) % 200 + 30, np.uint8)
    cv2.putText(image, str(n), (20, 110), cv2.FONT_HERSHEY_SIMPLEX, 3, (255, 255, 255), 8)
    image[120:] = _NOISE
    return image


class _Publisher:
    """Publishes numbered frames every `period` seconds on a thread, like the viewer's loop."""

    def __init__(self, server: FrameServer, period: float = 0.02):
        self.server, self.period, self.count = server, period, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.server.publish(_frame(self.count))
            self.count += 1
            time.sleep(self.period)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _parts(response, wanted: int) -> list[np.ndarray]:
    """`wanted` JPEG parts of a multipart/x-mixed-replace response, decoded."""
    frames = []
    while len(frames) < wanted:
        boundary = response.readline()
        assert boundary.strip() == b"--frame", boundary
        headers = {}
        while (line := response.readline().strip()):
            key, value = line.decode().split(":", 1)
            headers[key.lower()] = value.strip()
        assert headers["content-type"] == "image/jpeg"
        data = response.read(int(headers["content-length"]))
        assert response.read(2) == b"\r\n"
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.shape == (240, 320, 3)
        frames.append(image)
    return frames


@pytest.mark.parametrize("spec, expected", [
    ("8080", ("127.0.0.1", 8080)), ("0", ("127.0.0.1", 0)), ("0.0.0.0:8080", ("0.0.0.0", 8080)),
    ("localhost:80", ("localhost", 80)), ("[::1]:8080", ("::1", 8080)),
])
def test_address(spec, expected):
    assert parse_address(spec) == expected


@pytest.mark.parametrize("spec", ["", "http", "host:", ":8080", "70000", "8080:host"])
def test_bad_address_is_a_usage_error(spec):
    with pytest.raises(UsageError, match=r"--serve takes \[HOST:\]PORT"):
        parse_address(spec)


def test_loopback_hosts():
    assert all(map(is_loopback, ["127.0.0.1", "127.0.1.1", "::1", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "192.168.1.2", "example.org"]))


def test_stream_is_mjpeg_of_the_newest_frames_and_page_and_still_answer():
    with serving("0") as server, _Publisher(server) as publisher:
        page = urllib.request.urlopen(server.url, timeout=10).read().decode()
        assert "/stream.mjpg" in page and "<img" in page
        response = urllib.request.urlopen(f"{server.url}stream.mjpg", timeout=10)
        assert response.headers["Content-Type"] == "multipart/x-mixed-replace; boundary=frame"
        frames = _parts(response, 10)
        levels = [int(np.median(f[:20, :20])) for f in frames]
        assert len(set(levels)) > 1  # new frames, not one repeated
        assert publisher.count > 0
        still = urllib.request.urlopen(f"{server.url}frame.jpg", timeout=10).read()
        assert cv2.imdecode(np.frombuffer(still, np.uint8), cv2.IMREAD_COLOR).shape == (240, 320, 3)
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(f"{server.url}nothing", timeout=10)


def test_a_client_that_stops_reading_holds_up_no_one_and_the_server_still_stops(monkeypatch):
    monkeypatch.setattr(serve, "STREAM_FPS", 1000.0)  # the stream as fast as frames come: its buffers fill soon
    server = FrameServer("127.0.0.1", 0)
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect(("127.0.0.1", server.port))
    stuck.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")  # and never reads
    with _Publisher(server, period=0.005) as publisher:
        deadline = time.monotonic() + 30
        while server.clients < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        response = urllib.request.urlopen(f"{server.url}stream.mjpg", timeout=10)
        first = publisher.count
        frames = _parts(response, 250)  # 7 MB: the stuck client's socket buffers are full long before
        assert publisher.count > first  # the publisher kept going
        assert len({int(np.median(f[:20, :20])) for f in frames}) > 5
        assert server.clients == 2
    closer = threading.Thread(target=server.close)
    closer.start()
    closer.join(timeout=30)
    assert not closer.is_alive()  # the blocked write to the stuck client did not hold the stop
    stuck.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2)


def test_default_bind_is_loopback_only():
    outward = browser.outward_address()
    if outward is None:
        pytest.skip("this machine has no address other than loopback")
    with serving("0") as server:
        assert server.host == "127.0.0.1"
        socket.create_connection(("127.0.0.1", server.port), timeout=5).close()
        with pytest.raises(OSError):
            socket.create_connection((outward, server.port), timeout=5)


def _status(port: int, target: str) -> int:
    """The status of GET `target` from the server on 127.0.0.1:`port` (the body is not read)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", target)
        return connection.getresponse().status
    finally:
        connection.close()


def test_another_host_only_when_named_and_with_a_warning(capsys):
    outward = browser.outward_address()
    if outward is None:
        pytest.skip("this machine has no address other than loopback")
    with serving("0.0.0.0:0") as server:
        connection = http.client.HTTPConnection(outward, server.port, timeout=10)
        connection.request("GET", f"/?token={server.token}")
        assert connection.getresponse().status == 200
        connection.close()
    err = capsys.readouterr().err
    assert "warning: --serve 0.0.0.0:0 listens beyond this machine" in err and "no TLS" in err


def test_beyond_loopback_every_request_needs_the_token(capsys):
    with serving("0.0.0.0:0") as server, _Publisher(server):
        printed = capsys.readouterr().out
        token = re.search(rf"http://0\.0\.0\.0:{server.port}/\?token=(\S+) ", printed).group(1)
        assert token == server.token and len(token) >= 22  # token_urlsafe: 22 characters are 128 bits
        for target in ["/", "/stream.mjpg", "/frame.jpg", "/nothing", "/?token=", f"/?token={token[:-1]}",
                       f"/stream.mjpg?token={token}x", f"/?token={token.upper() if token != token.upper() else token.lower()}"]:
            assert _status(server.port, target) == 403, target
        url = f"http://127.0.0.1:{server.port}/"
        page = urllib.request.urlopen(f"{url}?token={token}", timeout=10).read().decode()
        stream = re.search(r'<img id="live" src="([^"]+)"', page).group(1)
        assert stream == f"/stream.mjpg?token={token}"                  # the page's stream carries the token
        assert f'"/stream.mjpg?token={token}&t=" + Date.now()' in page  # and so does its retry
        assert len(_parts(urllib.request.urlopen(url + stream.lstrip("/"), timeout=10), 3)) == 3
        still = urllib.request.urlopen(f"{url}frame.jpg?token={token}", timeout=10).read()
        assert cv2.imdecode(np.frombuffer(still, np.uint8), cv2.IMREAD_COLOR).shape == (240, 320, 3)
    with serving("0.0.0.0:0") as other:
        assert other.token != token  # random each run


def test_a_given_token_is_asked_on_loopback_too_and_none_otherwise(capsys):
    token = "my-own.token_1234~"
    with serving("0", token=token) as server, _Publisher(server):
        assert f"http://127.0.0.1:{server.port}/?token={token} " in capsys.readouterr().out
        assert _status(server.port, "/") == 403 and _status(server.port, "/stream.mjpg") == 403
        assert _status(server.port, f"/?token={token}") == 200
    with serving("0") as server:
        assert server.token is None and _status(server.port, "/") == 200
        assert f"http://127.0.0.1:{server.port}/ (MJPEG stream: http://127.0.0.1:{server.port}/stream.mjpg)" \
            in capsys.readouterr().out


@pytest.mark.parametrize("token", ["short", "x" * 15, "with space in it!!", "ünïcödé-tökén-1234", "a&b=c" * 4])
def test_a_bad_token_is_a_usage_error(token):
    with pytest.raises(UsageError, match="--serve-token takes 16 or more letters, digits or -._~"):
        check_token(token)
    with pytest.raises(UsageError, match="--serve-token"):
        with serving("0", token=token):
            pass


def test_a_stream_beyond_the_cap_gets_503_at_once_and_a_freed_slot_is_taken():
    with serving("0", max_clients=2) as server, _Publisher(server):
        first = urllib.request.urlopen(f"{server.url}stream.mjpg", timeout=10)
        second = urllib.request.urlopen(f"{server.url}stream.mjpg", timeout=10)
        _parts(first, 1), _parts(second, 1)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{server.url}stream.mjpg", timeout=10)
        assert refused.value.code == 503 and b"2 viewers already" in refused.value.read()
        assert _status(server.port, "/") == 200 and _status(server.port, "/frame.jpg") == 200  # the page still
        first.close()
        deadline = time.monotonic() + 30  # the server notices at its next write to the closed socket
        while server.clients > 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(_parts(urllib.request.urlopen(f"{server.url}stream.mjpg", timeout=10), 2)) == 2


def test_connections_beyond_the_bound_get_503_and_no_thread():
    server = FrameServer("127.0.0.1", 0, max_clients=2)
    bound = connections(2)
    silent = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(bound)]
    deadline = time.monotonic() + 30
    while server.connections < bound and time.monotonic() < deadline:  # all accepted
        time.sleep(0.05)
    threads = threading.active_count()
    for _ in range(10):
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as extra:
            assert extra.recv(1024).startswith(b"HTTP/1.0 503 Service Unavailable")
    assert threading.active_count() == threads
    server.close()
    for s in silent:
        s.close()


def test_a_half_sent_request_is_dropped_within_the_timeout(monkeypatch):
    monkeypatch.setattr(bounded_http, "HEADER_S", 1.0)
    with serving("0") as server:
        client = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        client.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n")  # the blank line that ends it never comes
        client.settimeout(0.3)
        start, answer = time.monotonic(), None
        while answer is None and time.monotonic() - start < 8:  # a byte now and then: no single read times out
            with contextlib.suppress(socket.timeout):
                answer = client.recv(1024)
            with contextlib.suppress(OSError):
                client.sendall(b"X")
        assert answer == b"" and time.monotonic() - start < 3  # closed after 1 s (checked every 0.2 s)
        deadline = time.monotonic() + 10
        while server.connections and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.connections == 0  # its thread is gone
        client.close()


def test_streams_get_at_most_stream_fps(monkeypatch):
    monkeypatch.setattr(serve, "STREAM_FPS", 10.0)
    with serving("0") as server, _Publisher(server, period=0.002) as publisher:
        response = urllib.request.urlopen(f"{server.url}stream.mjpg", timeout=10)
        _parts(response, 1)
        start, first = time.monotonic(), publisher.count
        _parts(response, 5)
        assert time.monotonic() - start >= 0.45  # 5 parts at 10 a second
        assert publisher.count - first > 5 * 2   # while many more frames were published


def test_a_frame_is_encoded_once_whatever_the_viewers():
    with serving("0") as server, _Publisher(server, period=0.05) as publisher:
        streams = [urllib.request.urlopen(f"{server.url}stream.mjpg", timeout=10) for _ in range(4)]
        for _ in range(5):
            for stream in streams:
                _parts(stream, 1)
            urllib.request.urlopen(f"{server.url}frame.jpg", timeout=10).read()
        assert server.encoded <= publisher.count  # 4 streams and the stills: one JPEG per frame at most


def test_a_port_in_use_is_a_one_line_error():
    with serving("0") as server:
        with pytest.raises(UserError, match=f"--serve 127.0.0.1:{server.port}: cannot listen there"):
            FrameServer("127.0.0.1", server.port)


def _live_shots(url: str, folder, size=(400, 320), wanted: int = 2, tries: int = 5) -> list[np.ndarray]:
    """`wanted` screenshots of the page showing a frame (bright digits); a browser's first start on a
    busy machine may take longer than its wait, so up to `tries` are taken."""
    shots = []
    for i in range(tries):
        image = cv2.imread(str(browser.screenshot(url, folder / f"shot{i}.png", size)))
        if (image > 240).all(axis=2).sum() > 500:
            shots.append(image)
        if len(shots) == wanted:
            break
    assert len(shots) == wanted, f"the page showed no frame in {tries - len(shots)} of {tries} screenshots"
    return shots


@pytest.mark.skipif(browser.chromium() is None, reason="Chromium is not installed (apt-get install chromium)")
@pytest.mark.parametrize("spec", ["0", "0.0.0.0:0"])  # loopback: no token; beyond: the page passes it on
def test_a_real_browser_shows_the_frames_live(tmp_path, spec):
    with serving(spec) as server, _Publisher(server, period=0.04):
        url = f"http://127.0.0.1:{server.port}/" + (f"?token={server.token}" if server.token else "")
        first, second = _live_shots(url, tmp_path)
    assert not np.array_equal(first, second)  # the page moved on between the shots
