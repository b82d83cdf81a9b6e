"""The --serve server: a valid MJPEG stream of the published frames, a page a real browser shows live,
loopback unless another host is named, and no client able to hold up the others or the run."""
from __future__ import annotations

import http.client
import socket
import threading
import time
import urllib.request

import cv2
import numpy as np
import pytest

import browser
from realtime_seg.errors import UsageError, UserError
from realtime_seg.runtime.serve import FrameServer, is_loopback, parse_address, serving


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


def test_a_client_that_stops_reading_holds_up_no_one_and_the_server_still_stops():
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


def test_another_host_only_when_named_and_with_a_warning(capsys):
    outward = browser.outward_address()
    if outward is None:
        pytest.skip("this machine has no address other than loopback")
    with serving("0.0.0.0:0") as server:
        connection = http.client.HTTPConnection(outward, server.port, timeout=10)
        connection.request("GET", "/")
        assert connection.getresponse().status == 200
        connection.close()
    err = capsys.readouterr().err
    assert "warning: --serve 0.0.0.0:0" in err and "unauthenticated" in err


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
def test_a_real_browser_shows_the_frames_live(tmp_path):
    with serving("0") as server, _Publisher(server, period=0.04):
        first, second = _live_shots(server.url, tmp_path)
    assert not np.array_equal(first, second)  # the page moved on between the shots
