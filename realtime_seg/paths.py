"""Where the shipped files are: the preset models' folder and the demo video, in the repository or,
installed with `pip install .`, inside the package."""
from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _shipped(folder: str, installed: str) -> Path:
    """The repository's folder, or its copy inside the package when installed with `pip install .`."""
    repo = _PACKAGE.parent / folder
    return repo if repo.is_dir() else _PACKAGE / installed


MODELS_DIR = _shipped("models", "presets")
DEMO_VIDEO = _shipped("videos", "demo") / "dashcam_highway.mp4"
