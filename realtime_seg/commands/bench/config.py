"""What one `bench` run measures: the settings its command line gives (command.py) and its report records."""
from __future__ import annotations

from dataclasses import dataclass

from ...runtime.foreign import ForeignSpec


@dataclass
class BenchConfig:
    """The settings of one run, checked by command.config."""

    video: str
    models: list[str]
    keras: str | None = None
    device: str = "auto"
    frames: int = 200
    threads: int = 0
    spinning: bool = False
    batches: tuple[int, ...] = (1, 4, 8)
    seed_keras: bool = True
    json: str | None = None
    precisions: tuple[str, ...] = ("auto",)  # one row per precision of each model
    foreign: ForeignSpec | None = None       # --classes, --mean, ...: the model files are foreign, imported in memory
    plot: str | None = None                   # --plot FILE.png: the stage times per model
    aspects: tuple[str | None, ...] = (None,)  # --aspect: one row per aspect of each model (None: its own)
