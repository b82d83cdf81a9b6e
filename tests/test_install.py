"""`pip install .` gives a working `realtime-seg` command that finds the shipped presets and demo,
and installs no top-level package but `realtime_seg` (the exporter is `realtime-seg export`)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import cv2
import pytest

from conftest import ROOT


@pytest.mark.slow
def test_installed_command_runs_the_presets_away_from_the_repository(tmp_path):
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    wheels, site, src = tmp_path / "wheels", tmp_path / "site", tmp_path / "src"
    # from a copy: a checkout's stale build/ folder (setuptools reuses it) must not leak old files in
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv*", ".git", "build", "*.egg-info",
                                                             "__pycache__", "runs", "out*"))
    build = subprocess.run([*pip, "wheel", str(src), "--no-deps", "--no-build-isolation", "-w", str(wheels)],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    wheel = next(wheels.glob("realtime_seg-*.whl"))
    install = subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)],
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr
    packages = sorted(p.name for p in site.iterdir() if p.is_dir() and not p.name.endswith((".dist-info", "-info")))
    assert packages == ["bin", "realtime_seg"], packages  # no generic top-level `export` to collide with
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    # the installed copy is imported, not the repository, and its presets live inside it
    where = subprocess.run([sys.executable, "-c", "import realtime_seg.paths as p; print(p.MODELS_DIR)"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60)
    assert where.stdout.strip() == str(site / "realtime_seg" / "presets")
    run = subprocess.run([str(site / "bin" / "realtime-seg"), "--model", "fast", "--no-show",
                          "--max-frames", "3", "--output", "demo.mp4"],
                         cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "playing the demo dashcam_highway.mp4" in run.stdout
    export = subprocess.run([str(site / "bin" / "realtime-seg"), "export", "--help"],
                            cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
    assert export.returncode == 0 and "a .keras file written by" in export.stdout, export.stderr  # the exporter
    cap = cv2.VideoCapture(str(elsewhere / "demo.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    cap.release()
