"""A `batch --ray` job as tasks: the plan of its chunks, the temporaries a killed task leaves, and the
reason inside a Ray error. Shared by the driver's set-up (cluster.py) and its loop (cluster_run.py).
"""
from __future__ import annotations

import contextlib
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import first_line
from ...system import partial_path
from .chunks import Chunk, chunk_dir, chunk_path, remove_chunks, split, stored_chunks, temporary
from .config import BatchConfig
from .plan import Job
from .writers import picture_path


@dataclass
class Plan:
    """One job's tasks: chunks still to segment, then the write task."""

    index: int
    job: Job
    chunks: list[Chunk] = field(default_factory=list)     # all chunks (empty: a whole-file task)
    todo: list[Chunk] = field(default_factory=list)       # chunks not yet stored
    failed: str | None = None

    @property
    def expected(self) -> int:
        """Frames the bar counts for this job: chunk frames to segment, then every frame written."""
        return sum(c.end - c.start for c in self.todo) + self.job.frames


def note(message: str) -> None:
    """A line on stderr above the progress bar."""
    from tqdm import tqdm
    tqdm.write(message, file=sys.stderr)


def plan_tasks(todo: list[tuple[int, Job]], cfg: BatchConfig) -> list[Plan]:
    """Split long files into chunks; finished chunks of an earlier run are kept (resume).

    Only when frames are independent: temporal smoothing and smooth edges need every frame's class
    scores, in order (a chunk stores class maps only), so with them each file is one task.
    """
    independent = cfg.look.smooth == 0 and cfg.look.edges == "nearest"
    if cfg.chunk_frames and not independent and any(job.frames > cfg.chunk_frames for _, job in todo):
        note("ray: long files run whole, not in chunks: --smooth and smooth edges need each frame's "
             "class scores in order (--smooth 0 --edges nearest splits them)")
    plans = []
    for index, job in todo:
        if cfg.chunk_frames and independent and job.frames > cfg.chunk_frames:
            chunks = split(job.frames, cfg.chunk_frames)
            if cfg.overwrite:
                remove_chunks(job)
            done = stored_chunks(job, chunks)
            if done:
                note(f"{job.source}: {len(done)} of {len(chunks)} chunks already segmented by an earlier run")
            plans.append(Plan(index, job, chunks, [c for c in chunks if c not in done]))
        else:
            plans.append(Plan(index, job))
    return plans


def ray_reason(error: BaseException) -> str:
    """The one-line reason inside a Ray error: the worker's own exception message when it has one."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))  # Ray colours its messages
    raised = re.findall(r"^[\w.]*(?:Error|Exception): (.+)$", text, re.MULTILINE)
    return raised[-1].strip() if raised else first_line(RuntimeError(text))


def temporaries(job: Job, chunks: list[Chunk]) -> list[Path]:
    """The temporary names a task on `job` may leave when its worker is killed."""
    paths = [partial_path(p) for p in (job.video, job.stats) if p is not None]
    if job.stats is not None:
        paths.append(partial_path(picture_path(job.stats)))
    if job.masks is not None:
        paths.append(job.masks.with_name(f".{job.masks.name}.partial"))
    return paths + [temporary(chunk_path(job, c)) for c in chunks]


def remove_temporaries(job: Job, chunks: list[Chunk]) -> None:
    for path in temporaries(job, chunks):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                path.unlink()
    with contextlib.suppress(OSError):
        chunk_dir(job).rmdir()  # only when empty
