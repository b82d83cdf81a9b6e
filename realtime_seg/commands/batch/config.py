"""A batch run's settings (what to write and how) and their checks."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ...errors import UsageError, check_at_least
from ...runtime.look import Look
from ...runtime.media import DEFAULT_FPS
from ...runtime.models import ModelChoice, RunOptions, choose_model
from ...runtime.video import codec_name

DEFAULT_EXT = "mp4"  # H.264: browsers play it (runtime/video.py's CODECS)


@dataclass
class BatchConfig:
    """What to write and how; one per run."""

    out: Path
    model: ModelChoice = field(default_factory=choose_model)  # --model, --precision, --aspect (cli.model_choice)
    options: RunOptions = RunOptions()  # --device, --threads (per session; 0: half the cores per worker)
    look: Look = field(default_factory=lambda: Look(hud=False))  # how the video is painted (no HUD by default)
    png_masks: bool = False
    stats: bool = False
    codec: str | None = None
    ext: str = DEFAULT_EXT
    overwrite: bool = False
    recursive: bool = False
    workers: int = 1
    batch_size: int = 0           # frames per inference call (0: by device, models.StreamPlan.batch)
    share_model: bool = True      # one session for all workers: as fast here, one copy of the weights
    ray: str | None = None        # --ray: None (local threads), "local" (a Ray runtime here) or an address
    ray_cpus: float = 1.0         # CPUs per Ray worker actor
    ray_gpus: float | None = None  # GPUs per Ray worker actor (None: 1 on nodes with GPUs, else 0)
    chunk_frames: int = 1500      # --ray: files longer than this are split into chunks of it (0: never)
    compare: ModelChoice | None = None  # --compare MODEL[:PRECISION]: a second model, both drawn side by side
    compare_view: str = "side"
    as_video: bool = False        # a group of images (a folder's) written as one video, not image by image
    fps: float = DEFAULT_FPS      # --as-video: the rate of its video

    @property
    def codec_name(self) -> str:
        """The CODECS entry --codec and --ext select (a UsageError when they do not go together)."""
        return codec_name(self.codec, f".{self.ext}")


def check_config(cfg: BatchConfig) -> None:
    """Usage errors in the options, found before any file is touched."""
    check_at_least("--workers", cfg.workers, 1)
    check_at_least("--batch-size", cfg.batch_size, 0)
    check_at_least("--threads", cfg.options.threads, 0)
    check_at_least("--chunk-frames", cfg.chunk_frames, 0)
    if not cfg.fps > 0:
        raise UsageError(f"--fps must be more than 0, got {cfg.fps:g}")
    if cfg.ray_cpus <= 0 or (cfg.ray_gpus is not None and cfg.ray_gpus < 0):
        raise UsageError(f"--ray-cpus must be more than 0 and --ray-gpus 0 or more, got "
                         f"{cfg.ray_cpus:g} and {cfg.ray_gpus}")
    if cfg.compare is not None and cfg.ray is not None:
        raise UsageError("--compare runs on this machine, not on Ray; drop --ray or --compare")
    if not cfg.ext.isalnum():
        raise UsageError(f"--ext must be a container name like webm or mp4, got {cfg.ext!r}")
    codec_name(cfg.codec, f".{cfg.ext}")
