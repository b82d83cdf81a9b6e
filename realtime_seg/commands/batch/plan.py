"""Inputs and outputs: expand files, folders and globs; name each output; skip what exists."""
from __future__ import annotations

import glob
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2

from ...errors import UsageError, UserError
from ...system import check_creatable, partial_path, same_path
from ...runtime.video import count_frames
from .config import BatchConfig
from .writers import png_count, stats_rows

VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".ts",
                  ".mts", ".m2ts", ".wmv", ".flv", ".3gp", ".ogv", ".y4m", ".mjpeg", ".mjpg"}


SUFFIX = "_seg"


_GLOB_CHARS = set("*?[")


@dataclass
class Job:
    """One input and the outputs still to write for it."""

    source: Path
    label: str                     # how the table names it
    video: Path | None             # None: it exists and only masks/stats are missing
    masks: Path | None = None
    stats: Path | None = None
    frames: int = 0                # from the container header (0: unknown or unreadable)
    compare_masks: Path | None = None  # --compare with --png-masks: the compared model's class ids

    def outputs(self) -> list[Path]:
        return [p for p in (self.video, self.masks, self.stats, self.compare_masks) if p is not None]


def _is_output_name(path: Path) -> bool:
    """A file this command writes (x_seg.webm) or its temporary (.x_seg.partial.webm)."""
    return path.stem.endswith(SUFFIX) or path.name.startswith(".")


def _videos_in(folder: Path, recursive: bool, out: Path) -> Iterator[tuple[Path, Path]]:
    """Videos in a folder, sorted, with their subfolder relative to it; never our own outputs."""
    files = folder.rglob("*") if recursive else folder.iterdir()
    for path in sorted(files):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue  # hidden, or one of our temporaries
        if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
            if _is_output_name(path) and out in path.resolve().parents:
                continue  # outputs of an earlier run into a folder that is also an input
            yield path, rel.parent


def expand_inputs(specs: list[str], recursive: bool = False,
                  out: Path | None = None) -> tuple[list[tuple[Path, Path]], list[str]]:
    """(video, output subfolder) pairs in order without repeats, and the specs that matched nothing.

    Files are taken as given (a wrong one is reported later); folders and globs give the
    files with a video extension. Globs are expanded here, so quoted globs work everywhere.
    """
    out = (out or Path(".")).resolve()
    found: dict[Path, tuple[Path, Path]] = {}
    unmatched = []
    for spec in specs:
        path = Path(spec).expanduser()
        if path.is_dir():
            matches = list(_videos_in(path, recursive, out))
        elif path.exists() or not _GLOB_CHARS & set(spec):
            matches = [(path, Path())] if path.exists() else []
        else:
            hits = sorted(Path(p) for p in glob.glob(str(path), recursive=recursive))
            matches = [(p, Path()) for p in hits if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
                       and not (_is_output_name(p) and out in p.resolve().parents)]
        if not matches:
            unmatched.append(spec)
        for p, rel in matches:
            found.setdefault(p.resolve(), (p, rel))
    return list(found.values()), unmatched


def plan(inputs: list[tuple[Path, Path]], cfg: BatchConfig) -> list[Job]:
    """Output paths for each input; refuses name clashes and outputs that would replace an input."""
    jobs, owners = [], {}
    sources = {p.resolve() for p, _ in inputs}
    for path, rel in inputs:
        folder = cfg.out / rel
        job = Job(path, str(path), folder / f"{path.stem}{SUFFIX}.{cfg.ext}",
                  folder / f"{path.stem}_masks" if cfg.png_masks else None,
                  folder / f"{path.stem}_stats.csv" if cfg.stats else None,
                  compare_masks=folder / f"{path.stem}_compare_masks" if cfg.png_masks and cfg.compare else None)
        for output in job.outputs():
            key = output.resolve()
            if key in owners:
                raise UsageError(f"{owners[key]} and {path} would both write {output}; give them "
                                 f"different names or run them with different --out folders")
            owners[key] = path
            clash = next((s for s in sources if s == key or key in s.parents
                          or s == partial_path(output).resolve()), None)
            if clash:
                raise UsageError(f"--out {cfg.out} would overwrite the input {clash} with {output}; "
                                 f"choose another --out folder")
        jobs.append(job)
    return jobs


def pending_outputs(job: Job, overwrite: bool) -> Job | None:
    """The job limited to outputs not yet written (all with `overwrite`); None when all are done.

    An output counts as done only when it holds the source's frames: a video that does not
    open or has fewer frames, a mask folder or CSV short of frames (left by a full disk before
    outputs were checked, or cut off since) is written again.
    """
    if overwrite:
        return job
    existing = [p for p in job.outputs() if p.exists()]
    expected = count_frames(job.source, header=True) if existing else None
    missing = [p for p in job.outputs() if p not in existing or not _holds(job, p, expected)]
    if not missing:
        return None
    # The video is needed again only if it is missing; masks/stats can be added to an old run.
    return Job(job.source, job.label, job.video if job.video in missing else None,
               job.masks if job.masks in missing else None,
               job.stats if job.stats in missing else None, job.frames,
               job.compare_masks if job.compare_masks in missing else None)


def _holds(job: Job, output: Path, expected: int | None) -> bool:
    """True when an existing output has the source's `expected` frames; says so on stderr when not."""
    found = (count_frames(output) if output == job.video else
             png_count(output) if output in (job.masks, job.compare_masks) else stats_rows(output))
    if found is not None and found == expected:
        return True
    what = "does not open" if found is None else f"holds {found} of {expected} frames"
    if expected is not None:
        print(f"note: {output} {what}: writing it again", file=sys.stderr)
    return False


def header_frames(path: Path) -> int:
    """Frame count from the container header (cheap: no decoding); 0 when unknown."""
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        return max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT))) if cap.isOpened() else 0
    finally:
        cap.release()


def check_out(cfg: BatchConfig, inputs: list[tuple[Path, Path]]) -> None:
    """--out is a folder that can be made (nothing is created yet) and not one of the inputs."""
    if cfg.out.exists() and not cfg.out.is_dir():
        if any(same_path(cfg.out, p) for p, _ in inputs):
            raise UsageError(f"--out {cfg.out} is an input video; --out takes a folder for the outputs")
        raise UserError(f"--out {cfg.out} is a file, not a folder; choose another --out")
    check_creatable(cfg.out, "--out")
