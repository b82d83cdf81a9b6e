"""--compare and --serve from the command line: a recorded comparison whose two sides are the single
runs of each model, the agreement it reports, a headless run watched from a real browser, and bad
input in one line."""
from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import pytest

from conftest import ROOT, assert_one_line_error

sys.path.insert(0, str(ROOT / "tests"))
import browser  # noqa: E402
import xwindow  # noqa: E402

VIDEO = ROOT / "videos" / "dashcam_highway.mp4"   # the demo video
SHORT = ROOT / "tests" / "fixtures" / "videos" / "dashcam_short.mp4"
FP32 = ROOT / "tests" / "fixtures" / "tiny_family" / "tiny.onnx"
AGREEMENT = re.compile(r"compared with tiny\.onnx \(CPU int8\): agreement ([\d.]+)%")


def cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "realtime_seg", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def _masks(folder: Path) -> list[np.ndarray]:
    return [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted(folder.glob("*.png"))]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """The demo video through batch: fp32 alone, int8 alone, and fp32 compared with int8."""
    out = tmp_path_factory.mktemp("compare")
    common = ["--model", FP32, "--device", "cpu", "--png-masks", "--ext", "mp4"]
    procs = {name: cli("batch", VIDEO, "--out", out / name, *common, *extra)
             for name, extra in [("fp32", ["--precision", "fp32"]), ("int8", ["--precision", "int8"]),
                                 ("both", ["--precision", "fp32", "--compare", ":int8"])]}
    for proc in procs.values():
        assert proc.returncode == 0, proc.stderr[-2000:]
    return {"out": out, "procs": procs}


def test_each_side_of_a_recorded_comparison_is_its_single_model_run(runs):
    out = runs["out"]
    both_main, both_other = _masks(out / "both" / "dashcam_highway_masks"), \
        _masks(out / "both" / "dashcam_highway_compare_masks")
    alone_main, alone_other = _masks(out / "fp32" / "dashcam_highway_masks"), \
        _masks(out / "int8" / "dashcam_highway_masks")
    assert len(both_main) == len(both_other) == len(alone_main) == len(alone_other) == 221
    for got, expected in ((both_main, alone_main), (both_other, alone_other)):
        for a, b in zip(got, expected):
            np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(both_main, both_other))  # int8 differs somewhere
    cap = cv2.VideoCapture(str(out / "both" / "dashcam_highway_seg.mp4"))
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (960, 540)
    cap.release()


def test_viewer_and_batch_report_the_same_agreement(runs, tmp_path):
    batch = AGREEMENT.search(runs["procs"]["both"].stdout)
    assert batch, runs["procs"]["both"].stdout
    proc = cli("--video", VIDEO, "--model", FP32, "--device", "cpu", "--precision", "fp32", "--compare", ":int8",
               "--no-show", "--output", tmp_path / "both.mp4")
    assert proc.returncode == 0, proc.stderr[-2000:]
    viewer = AGREEMENT.search(proc.stdout)
    assert viewer, proc.stdout
    assert 50.0 < float(viewer.group(1)) < 100.0
    assert viewer.group(1) == batch.group(1)  # the same maps, the same figure


def test_a_finished_comparison_is_skipped_and_a_short_compared_mask_folder_redone(tmp_path):
    """Resume counts the compared model's PNG masks as frames, like the main model's."""
    run = ("batch", SHORT, "--out", tmp_path, "--model", FP32, "--device", "cpu", "--precision", "fp32",
           "--compare", ":int8", "--png-masks")
    assert cli(*run, timeout=300).returncode == 0
    again = cli(*run, timeout=300)
    assert again.returncode == 0 and "skipped (exists)" in again.stdout, again.stdout + again.stderr
    (tmp_path / "dashcam_short_compare_masks" / "000003.png").unlink()
    redone = cli(*run, timeout=300)
    assert redone.returncode == 0 and "1 written" in redone.stdout, redone.stdout + redone.stderr
    assert "dashcam_short_compare_masks holds 39 of 40 frames" in redone.stderr
    assert len(_masks(tmp_path / "dashcam_short_compare_masks")) == 40


@pytest.mark.parametrize("args, code, message", [
    (["--compare", "accurate:fp8"], 2, "--compare accurate:fp8: unknown precision 'fp8'"),
    (["--compare", "missing.onnx"], 1, "model missing.onnx not found"),
    (["--serve", "host:"], 2, "--serve takes [HOST:]PORT"),
    (["--serve", "0", "--serve-token", "short"], 2, "--serve-token takes 16 or more letters, digits or -._~"),
    (["--serve-token", "x" * 20], 2, "--serve-token is the token of --serve; add --serve [HOST:]PORT"),
    (["--serve", "0", "--serve-max-clients", "0"], 2, "--serve-max-clients must be 1 or more, got 0"),
])
def test_bad_compare_or_serve_is_one_line(args, code, message):
    line = assert_one_line_error(cli("--video", SHORT, "--model", FP32, "--no-show", *args, timeout=120), code)
    assert message in line


def test_compare_on_ray_is_a_usage_error(tmp_path):
    proc = cli("batch", SHORT, "--out", tmp_path, "--model", FP32, "--compare", ":int8", "--ray", timeout=120)
    assert "--compare runs on this machine, not on Ray" in assert_one_line_error(proc, 2)


def test_a_port_in_use_is_one_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = cli("--video", SHORT, "--model", FP32, "--no-show", "--serve", str(port), timeout=120)
    assert f"--serve 127.0.0.1:{port}: cannot listen there" in assert_one_line_error(proc, 1)


@contextlib.contextmanager
def _served(*args: str, env: dict | None = None) -> Iterator[tuple[subprocess.Popen, str]]:
    """The viewer looping the short clip, compared with its int8 variant, with --serve on a free port:
    (process, its page's URL); killed if still running after the block."""
    proc = subprocess.Popen([sys.executable, "-m", "realtime_seg", "--video", str(SHORT), "--model", str(FP32),
                             "--loop", "--compare", ":int8", "--serve", "0", *args], cwd=ROOT,
                            env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    try:
        line = proc.stdout.readline()
        match = re.search(r"serving the annotated frames at (http://127\.0\.0\.1:\d+/)", line)
        assert match, line
        yield proc, match.group(1)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _first_part(url: str, query: str = "") -> np.ndarray:
    """The first JPEG of the MJPEG stream, decoded."""
    response = urllib.request.urlopen(f"{url}stream.mjpg{query}", timeout=60)
    assert response.headers["Content-Type"].startswith("multipart/x-mixed-replace")
    assert response.readline().strip() == b"--frame"
    headers = dict(line.decode().split(": ", 1) for line in iter(lambda: response.readline().strip(), b""))
    image = cv2.imdecode(np.frombuffer(response.read(int(headers["Content-Length"])), np.uint8), cv2.IMREAD_COLOR)
    response.close()
    return image


def test_headless_run_is_watched_from_a_browser_and_the_server_stops_with_it(tmp_path):
    with _served("--no-show") as (proc, url):
        assert _first_part(url).shape == (270, 480, 3)   # the clip's size, the comparison's picture
        if browser.chromium() is not None:  # a real browser shows the page updating
            shots = [cv2.imread(str(browser.screenshot(url, tmp_path / f"{i}.png", (640, 420)))) for i in range(2)]
            assert not np.array_equal(*shots)
        proc.send_signal(signal.SIGTERM)
        stdout, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "agreement" in stdout
    port = int(url.rstrip("/").rsplit(":", 1)[1])
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=5)


def test_beyond_loopback_the_printed_url_has_the_token_and_nothing_is_served_without_it():
    """--serve 0.0.0.0:0 (asked from 127.0.0.1 only): the URL printed carries a token; /, the stream and
    the still answer 403 without it, 200 with it, and the page's stream carries it."""
    proc = subprocess.Popen([sys.executable, "-m", "realtime_seg", "--video", str(SHORT), "--model", str(FP32),
                             "--loop", "--no-show", "--serve", "0.0.0.0:0"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        port, token = re.search(r"at http://0\.0\.0\.0:(\d+)/\?token=([\w-]{22,}) ", line).groups()
        base = f"http://127.0.0.1:{port}/"
        for path in ["", "stream.mjpg", "frame.jpg"]:
            with pytest.raises(urllib.error.HTTPError, match="403"):
                urllib.request.urlopen(base + path, timeout=30)
        page = urllib.request.urlopen(f"{base}?token={token}", timeout=30).read().decode()
        assert f'src="/stream.mjpg?token={token}"' in page
        assert _first_part(base, f"?token={token}").shape == (270, 480, 3)
    finally:
        proc.kill()
        _, err = proc.communicate()
    assert "listens beyond this machine" in err and "no TLS" in err


def _still(url: str) -> np.ndarray:
    data = urllib.request.urlopen(f"{url}frame.jpg", timeout=30).read()
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def _bottom_left(image: np.ndarray) -> float:
    """Mean level of the bottom-left corner: black below the side-by-side halves, the frame in the
    disagreement view."""
    return float(image[-45:-5, :60].mean())


def _wait_for(condition, tries: int = 100) -> bool:
    """Poll `condition` (a served frame's look) up to `tries` times, 0.2 s apart."""
    for _ in range(tries):
        if condition():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.skipif(bool(xwindow.missing_tools()), reason="needs Xvfb and xdotool")
def test_in_a_window_key_c_switches_the_layout_and_the_browser_sees_it():
    with xwindow.xvfb() as (display, _), _served(env={"DISPLAY": display}) as (proc, url):
        window = xwindow.find_window(display)
        assert _wait_for(lambda: _bottom_left(_still(url)) < 8)   # side by side: black below the halves
        xwindow.xdotool(display, "key", "--window", window, "c")
        assert _wait_for(lambda: _bottom_left(_still(url)) > 20)  # the disagreement view: the whole frame
        xwindow.xdotool(display, "key", "--window", window, "q")
        stdout, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "agreement" in stdout
