"""Shared fixtures: the small committed data in tests/fixtures and one tiny trained run."""
from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
# Keras reads KERAS_BACKEND once, at import: TensorFlow where it is installed, else JAX.
os.environ.setdefault("KERAS_BACKEND",
                      "tensorflow" if importlib.util.find_spec("tensorflow") else "jax")

import pytest  # noqa: E402

# The interrupt tests play a user pressing Ctrl-C in a terminal. Run as a background job
# (`cmd &`, some CI runners), this process would inherit SIGINT as ignored, and so would every
# child it starts: the product rightly keeps an ignored SIGINT ignored, and the tests would wait.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
if str(ROOT) not in sys.path:  # the package need not be installed to be tested
    sys.path.insert(0, str(ROOT))

# a tqdm bar: "decode train: 67%|███ | 2/3 [00:00<...", or one without a total: "total: 0frame [00:00, ..."
PROGRESS = re.compile(r"\| *\d+/\d+ \[|: *\d+\w* \[\d+:\d+")
TINY = dict(arch="resunet", augmentations="all", width=4, input_size=(32, 48), epochs=2, batch_size=2, workers=1)


def tiny_config(data, out, **overrides):
    """A TrainConfig small enough to train in seconds on 2 CPU cores."""
    from realtime_seg.training.train import TrainConfig
    return TrainConfig(data=str(data), out=str(out), **{**TINY, **overrides})


def run_cli(*args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """`python -m ARGS` from the repository root, capturing text output."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as a user runs it: the CLI must quiet TF itself
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def run_python(code: str, timeout: int = 120) -> subprocess.CompletedProcess:
    """`python -c CODE` in a fresh interpreter from the repository root (what a script imports, alone)."""
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(proc: subprocess.CompletedProcess, code: int = 1) -> str:
    """Exit `code`; stderr has one `error: ...` line of its own, no traceback, and no other
    lines than progress bars (no TensorFlow start-up chatter)."""
    assert proc.returncode == code, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr
    # tqdm moves the cursor up (ESC [A) when a bar below the overall one closes: no text of its own
    lines = [line for line in proc.stderr.replace("\r", "\n").splitlines() if line.replace("\x1b[A", "").strip()]
    errors = [line for line in lines if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith("error: "), proc.stderr
    others = [line for line in lines if line is not errors[0] and not PROGRESS.search(line)]
    assert not others, proc.stderr
    return errors[0]


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def camvid_dir() -> Path:
    return FIXTURES / "camvid"


@pytest.fixture(scope="session")
def carla13_dir() -> Path:
    return FIXTURES / "carla13"


@pytest.fixture(scope="session")
def carla23_dir() -> Path:
    return FIXTURES / "carla23_rgba"


@pytest.fixture(scope="session")
def frames_dir() -> Path:
    return FIXTURES / "frames"


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, camvid_dir) -> tuple[Path, dict]:
    """One 2-epoch, width-4, 32x48 float32 run on the CamVid fixture: (run folder, summary).

    float32 pinned: `auto` trains in bfloat16 on CPUs with AVX512_BF16, and the export tests hold
    float32 parity (test_precision_paths runs both policies on every CPU)."""
    from realtime_seg.training.train import train
    run = tmp_path_factory.mktemp("tiny_run")
    summary = train(tiny_config(camvid_dir, run, augment=False, lr=3e-3, schedule="constant",
                                compute_dtype="float32"))
    return run, summary


class FakeCapture:
    """cv2.VideoCapture stand-in for live sources (no cameras here); subclasses implement read()."""

    fps, width, height = 30.0, 160, 120
    opened, released = True, False

    def isOpened(self) -> bool:
        return self.opened and not self.released

    def grab(self) -> bool:
        return self.read()[0]

    def get(self, prop: int) -> float:
        import cv2
        return {cv2.CAP_PROP_FPS: self.fps, cv2.CAP_PROP_FRAME_WIDTH: float(self.width),
                cv2.CAP_PROP_FRAME_HEIGHT: float(self.height), cv2.CAP_PROP_FRAME_COUNT: -1.0}.get(prop, 0.0)

    def set(self, prop: int, value: float) -> bool:
        return True

    def release(self) -> None:
        self.released = True
