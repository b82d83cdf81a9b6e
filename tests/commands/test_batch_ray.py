"""`batch --ray` on a real two-node Ray cluster (head + second node, 1 CPU each, 127.0.0.1 only).

The outputs must be those of the local batch: same frames (decoded pixel for pixel), same
class-id PNGs and CSVs, the same end table. Long files are split into chunks (`--chunk-frames`)
so that one video spreads over both nodes. Skipped without Ray (requirements-cluster.txt).
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ray_cluster import ENV, start_cluster
from test_batch import CARLA, FULL, ROOT, SHORT, TINY, digest, frames_of, leftovers, status_of, video_info

pytestmark = [pytest.mark.ray,
              pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                                 reason="needs Ray: pip install -r requirements-cluster.txt")]


@pytest.fixture(scope="module")
def cluster():
    """Started once for the module; stopped at the end even when a test fails."""
    c = start_cluster(cpus_per_node=1)
    try:
        yield c
    finally:
        c.stop()


def batch_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "realtime_seg", "batch", *map(str, args), "--model", str(TINY)]


def batch(*args, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(batch_cmd(*args), cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **ENV})


# frames are independent (no temporal smoothing, nearest edges): long files are split into chunks
CHUNKED = ("--smooth", 0, "--edges", "nearest")


def same_outputs(local: Path, remote: Path, names: list[str]) -> None:
    """Decoded frames, class-id PNGs and CSVs of two output folders are identical."""
    for name in names:
        a, b = frames_of(local / f"{name}_seg.mp4"), frames_of(remote / f"{name}_seg.mp4")
        assert len(a) == len(b) > 0, name
        assert all((x == y).all() for x, y in zip(a, b)), name
        assert digest(local / f"{name}_masks") == digest(remote / f"{name}_masks"), name
        assert (local / f"{name}_stats.csv").read_bytes() == (remote / f"{name}_stats.csv").read_bytes()


def test_two_videos_and_a_bad_input_match_the_local_batch(cluster, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(SHORT, inputs)
    shutil.copy(CARLA, inputs)
    (inputs / "notes.mp4").write_text("not a video, just text with a video name\n")
    local = batch(inputs, "--out", tmp_path / "local", "--png-masks", "--stats", *CHUNKED)
    # 40 and 31 frames in chunks of 12: seven chunk tasks over the two nodes, then two writes.
    proc = batch(inputs, "--out", tmp_path / "ray", "--png-masks", "--stats", *CHUNKED,
                 "--ray", cluster.address, "--chunk-frames", 12)
    assert proc.returncode == local.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    for name in ("dashcam_short.mp4", "carla_small.mp4"):
        assert status_of(proc.stdout, name) == "ok"
    assert "corrupt or not a video" in status_of(proc.stdout, "notes.mp4")
    assert "error:" in proc.stderr and "notes.mp4" in proc.stderr
    assert "2 written, 0 skipped, 1 failed" in proc.stdout
    assert "ray: 2 workers on 2 nodes (CPU)" in proc.stderr
    same_outputs(tmp_path / "local", tmp_path / "ray", ["dashcam_short", "carla_small"])
    assert video_info(tmp_path / "ray" / "dashcam_short_seg.mp4")[0] == 40
    assert not leftovers(tmp_path / "ray")
    again = batch(inputs, "--out", tmp_path / "ray", "--png-masks", "--stats", "--ray", cluster.address)
    assert status_of(again.stdout, "dashcam_short.mp4") == "skipped (exists)"


def _kill_a_worker_mid_task(proc: subprocess.Popen, cluster, method: str, timeout: float = 120) -> int:
    """SIGKILL the first worker process found running `method`; its pid."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        pids = cluster.worker_pids(method)
        if pids:
            time.sleep(1.0)  # some frames in
            os.kill(pids[0], signal.SIGKILL)
            return pids[0]
        time.sleep(0.1)
    raise AssertionError(f"no worker ran {method}: {proc.communicate()}")


def test_a_killed_worker_is_restarted_and_its_task_retried(cluster, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen(batch_cmd(FULL, "--out", out, "--png-masks", "--ext", "mp4", "--ray",
                                      cluster.address, "--chunk-frames", 0),
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **ENV})
    _kill_a_worker_mid_task(proc, cluster, "write_file")
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stdout + stderr
    assert status_of(stdout, "dashcam_highway.mp4") == "ok"
    assert video_info(out / "dashcam_highway_seg.mp4")[0] == 221
    assert len(list((out / "dashcam_highway_masks").iterdir())) == 221
    assert not leftovers(out)


def test_interrupted_run_resumes_from_its_finished_chunks(cluster, tmp_path):
    out = tmp_path / "out"
    args = (FULL, "--out", out, "--png-masks", "--ext", "mp4", *CHUNKED, "--ray", cluster.address,
            "--chunk-frames", 40)
    proc = subprocess.Popen(batch_cmd(*args), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, **ENV})
    chunks = out / ".dashcam_highway_seg.chunks"
    deadline = time.monotonic() + 120
    while not (chunks.exists() and list(chunks.glob("*.npz"))):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stdout + stderr
    assert status_of(stdout, "dashcam_highway.mp4") == "interrupted"
    kept = sorted(p.name for p in chunks.iterdir())
    assert kept and all(name.endswith(".npz") and not name.startswith(".") for name in kept), kept
    assert not (out / "dashcam_highway_seg.mp4").exists() and not (out / "dashcam_highway_masks").exists()
    assert not [p for p in leftovers(out) if ".chunks" not in p and "partial" in p]

    resumed = batch(*args)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"{len(kept)} of 6 chunks" in resumed.stderr
    local = batch(FULL, "--out", tmp_path / "local", "--png-masks", "--ext", "mp4", *CHUNKED)
    assert local.returncode == 0, local.stderr
    assert digest(out / "dashcam_highway_masks") == digest(tmp_path / "local" / "dashcam_highway_masks")
    assert video_info(out / "dashcam_highway_seg.mp4")[0] == 221
    assert not chunks.exists() and not leftovers(out)


def test_a_local_ray_runtime_gives_the_local_outputs(tmp_path):
    """`--ray` alone: Ray started on this machine for the run, and stopped after it. With the default
    temporal smoothing and smooth edges, a long file runs whole (frames depend on the ones before)."""
    proc = batch(SHORT, "--out", tmp_path / "ray", "--png-masks", "--stats", "--ray", "--chunk-frames", 16)
    local = batch(SHORT, "--out", tmp_path / "local", "--png-masks", "--stats")
    assert proc.returncode == local.returncode == 0, proc.stdout + proc.stderr
    assert " on 1 node (CPU)" in proc.stderr
    assert "long files run whole, not in chunks" in proc.stderr
    same_outputs(tmp_path / "local", tmp_path / "ray", ["dashcam_short"])
    assert not leftovers(tmp_path / "ray")
