"""train and export without the training requirements: one line naming the file to install, before any data is read.

The commands run in a child Python whose `sitecustomize` hides installed packages from the import
system, as if they had never been installed (the runtime-only `pip install -r requirements.txt`).
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import FIXTURES, ROOT

HINT = "install the training requirements: pip install -r requirements-train.txt"


def _hide(folder: Path, modules: set[str]) -> Path:
    """A sitecustomize in `folder` that makes `modules` (and their submodules) not found."""
    folder.mkdir(exist_ok=True)
    (folder / "sitecustomize.py").write_text(textwrap.dedent(f"""
        import importlib.machinery
        _find = importlib.machinery.PathFinder.find_spec
        def _hidden(name, path=None, target=None):
            return None if name.split(".")[0] in {sorted(modules)!r} else _find(name, path, target)
        importlib.machinery.PathFinder.find_spec = staticmethod(_hidden)
        """))
    return folder


def _run(argv: list[str], pythonpath: Path, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": f"{pythonpath}{os.pathsep}{ROOT}", **(env or {})}
    return subprocess.run([sys.executable, "-m", *argv], cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=120)


COMMANDS = {
    "train": (["realtime_seg", "train", "--data", str(FIXTURES / "camvid"), "--out", "run", "--epochs", "1"],
              "train needs keras, tensorflow, which are not installed"),
    "python -m export": (["export", str(FIXTURES / "tiny_camvid.keras"), "-o", "m.onnx"],
                         "export needs keras, tensorflow, tf2onnx, which are not installed"),
    "realtime_seg export": (["realtime_seg", "export", str(FIXTURES / "tiny_camvid.keras"), "-o", "m.onnx"],
                            "export needs keras, tensorflow, tf2onnx, which are not installed"),
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_missing_training_packages_are_one_line_before_any_data_is_read(command, tmp_path):
    argv, what = COMMANDS[command]
    hidden = _hide(tmp_path / "site", {"keras", "tensorflow", "tf2onnx", "jax"})
    work = tmp_path / "work"
    work.mkdir()
    start = time.monotonic()
    proc = _run(argv, hidden, work)
    assert time.monotonic() - start < 30
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert proc.stderr.splitlines() == [f"error: {what}; {HINT}"]  # no traceback, no progress bar
    assert proc.stdout == "" and list(work.iterdir()) == []  # no data decoded, no run folder, no model


def test_the_backend_keras_is_told_to_use_is_the_one_checked(tmp_path):
    hidden = _hide(tmp_path / "site", {"jax"})
    proc = _run(COMMANDS["train"][0], hidden, tmp_path, env={"KERAS_BACKEND": "jax"})
    assert proc.returncode == 1 and proc.stderr.splitlines() == [f"error: train needs jax, which is not installed; {HINT}"]


def test_help_works_without_the_training_packages(tmp_path):
    hidden = _hide(tmp_path / "site", {"keras", "tensorflow", "tf2onnx"})
    for argv in (["realtime_seg", "train", "--help"], ["export", "--help"]):
        proc = _run(argv, hidden, tmp_path)
        assert proc.returncode == 0 and proc.stdout.startswith("usage: "), proc.stderr


def test_a_broken_keras_install_is_one_line_too(tmp_path):
    """Keras present but failing to import (its backend broken): the import error's first line and the hint."""
    site = tmp_path / "site"
    (site / "keras").mkdir(parents=True)
    (site / "keras" / "__init__.py").write_text("raise ImportError('libtensorflow_framework.so.2: cannot open')\n")
    proc = _run(COMMANDS["python -m export"][0], site, tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.splitlines() == [f"error: cannot import keras (libtensorflow_framework.so.2: cannot open); "
                                        f"{HINT}"]
    assert not (tmp_path / "m.onnx").exists()
