"""Inputs and outputs: expand files, folders and globs (videos and images); name each output; skip what exists."""
from __future__ import annotations

import csv
import glob
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

import cv2

from ...errors import UsageError, UserError
from ...system import check_creatable, partial_path, same_path
from ...runtime.media import JPEG_SUFFIXES, glob_images, images_in, is_image_name
from ...runtime.video import count_frames
from .config import BatchConfig
from .writers import png_count, stats_rows

VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".ts",
                  ".mts", ".m2ts", ".wmv", ".flv", ".3gp", ".ogv", ".y4m", ".mjpeg", ".mjpg"}


SUFFIX = "_seg"
MASK = "_mask"   # an image's class ids: NAME_mask.png


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
    images: tuple[Path, ...] | None = None  # --as-video: the frames (a folder's images), played at --fps

    def outputs(self) -> list[Path]:
        return [p for p in (self.video, self.masks, self.stats, self.compare_masks) if p is not None]


@dataclass(frozen=True)
class Frames:
    """Images that run as one input: a folder's (each subfolder's with --recursive), a glob's matches
    in one folder, or one image file."""

    label: str                     # how the table names it: the folder, the glob, the image
    name: str                      # the folder's name, or the image's stem: NAME_stats.csv, NAME_seg.mp4
    images: tuple[Path, ...]


@dataclass
class ImageJob:
    """A group of images and what is still to write: each image's annotated picture (NAME_seg.png, .jpg
    for a JPEG) and with --png-masks its class ids (NAME_mask.png), and the group's stats CSV."""

    label: str
    name: str
    images: tuple[Path, ...]       # the group's images, in natural order
    folder: Path                   # where their outputs go: DIR, or DIR/SUBFOLDER with --recursive
    masks: bool = False
    stats: Path | None = None
    compare_masks: bool = False
    todo: tuple[Path, ...] = ()    # the images to segment: every one when the stats are written
    write: frozenset[Path] = field(default_factory=frozenset)  # the images whose outputs are written
    frames: int = 0                # len(todo): the progress bar's share

    def outputs_of(self, image: Path) -> list[Path]:
        """An image's outputs: annotated picture, and its class ids (and the compared model's) when asked."""
        ext = ".jpg" if image.suffix.lower() in JPEG_SUFFIXES else ".png"
        named = [f"{SUFFIX}{ext}", *[f"{MASK}.png"] * self.masks, *[f"_compare{MASK}.png"] * self.compare_masks]
        return [self.folder / f"{image.stem}{end}" for end in named]

    def outputs(self) -> list[Path]:
        return [p for image in self.images for p in self.outputs_of(image)] + ([self.stats] if self.stats else [])


def _is_output_name(path: Path) -> bool:
    """A file this command writes (x_seg.webm, x_mask.png) or its temporary (.x_seg.partial.webm)."""
    return path.stem.endswith((SUFFIX, MASK)) or path.name.startswith(".")


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


def _own(path: Path, out: Path) -> bool:
    """An output of an earlier run inside DIR (when DIR is also an input folder)."""
    return _is_output_name(path) and out in path.resolve().parents


def _image_groups(spec: str, path: Path, recursive: bool, out: Path) -> list[tuple[Frames, Path]]:
    """A folder's images (one group per subfolder with `recursive`, mirrored under DIR), a glob's
    (one group per folder they are in), or one image file; our own outputs left out."""
    if path.is_dir():
        groups: dict[Path, list[Path]] = {}
        for image in images_in(path, recursive):
            if not _own(image, out):
                groups.setdefault(image.parent.relative_to(path), []).append(image)
        return [(Frames(str(path / rel) if rel.parts else spec, (path / rel).resolve().name or "frames",
                        tuple(images)), rel) for rel, images in groups.items()]
    if path.is_file():
        return [(Frames(spec, path.stem, (path,)), Path())] if is_image_name(path) else []
    groups = {}
    for image in glob_images(str(path), recursive):
        if not _own(image, out):
            groups.setdefault(image.parent, []).append(image)
    return [(Frames(spec if len(groups) == 1 else str(folder), folder.resolve().name or "frames", tuple(images)),
             Path()) for folder, images in groups.items()]


def expand_inputs(specs: list[str], recursive: bool = False,
                  out: Path | None = None) -> tuple[list[tuple[Path | Frames, Path]], list[str]]:
    """(video or group of images, output subfolder) pairs in order without repeats, and the specs
    that matched nothing.

    Files are taken as given (a wrong one is reported later; an image file is a group of one);
    folders and globs give the files with a video extension, and their images as groups.
    Globs are expanded here, so quoted globs work everywhere.
    """
    out = (out or Path(".")).resolve()
    found: dict[object, tuple[Path | Frames, Path]] = {}
    unmatched = []
    for spec in specs:
        path = Path(spec).expanduser()
        if path.is_dir():
            matches = list(_videos_in(path, recursive, out))
        elif path.exists() or not _GLOB_CHARS & set(spec):
            matches = [(path, Path())] if path.exists() and not is_image_name(path) else []
        else:
            hits = sorted(Path(p) for p in glob.glob(str(path), recursive=recursive))
            matches = [(p, Path()) for p in hits if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
                       and not _own(p, out)]
        matches += _image_groups(spec, path, recursive, out)
        if not matches:
            unmatched.append(spec)
        for p, rel in matches:
            key = tuple(i.resolve() for i in p.images) if isinstance(p, Frames) else p.resolve()
            found.setdefault(key, (p, rel))
    return list(found.values()), unmatched


def _job(item: Path | Frames, rel: Path, cfg: BatchConfig) -> Job | ImageJob:
    """The outputs of one input: a video's (or, with --as-video, a group of images'), or each image's."""
    folder = cfg.out / rel
    if isinstance(item, Frames) and not cfg.as_video:
        return ImageJob(item.label, item.name, item.images, folder, cfg.png_masks,
                        folder / f"{item.name}_stats.csv" if cfg.stats else None, cfg.png_masks and bool(cfg.compare))
    stem = item.name if isinstance(item, Frames) else item.stem
    images = item.images if isinstance(item, Frames) else None
    return Job(Path(item.label) if images else item, item.label if images else str(item),
               folder / f"{stem}{SUFFIX}.{cfg.ext}", folder / f"{stem}_masks" if cfg.png_masks else None,
               folder / f"{stem}_stats.csv" if cfg.stats else None, len(images or ()),
               folder / f"{stem}_compare_masks" if cfg.png_masks and cfg.compare else None, images)


def plan(inputs: list[tuple[Path | Frames, Path]], cfg: BatchConfig) -> list[Job | ImageJob]:
    """Output paths for each input; refuses name clashes and outputs that would replace an input."""
    jobs, owners = [], {}
    sources = {i.resolve() for p, _ in inputs for i in (p.images if isinstance(p, Frames) else (p,))}
    folders = {folder for source in sources for folder in source.parents}  # an output must not be one
    for item, rel in inputs:
        job = _job(item, rel, cfg)
        path = job.label
        for output in job.outputs():
            key = output.resolve()
            if key in owners:
                raise UsageError(f"{owners[key]} and {path} would both write {output}; give them "
                                 f"different names or run them with different --out folders")
            owners[key] = path
            clash = next((s for s in (key, partial_path(output).resolve()) if s in sources), None)
            if clash is None and key in folders:
                clash = next(s for s in sources if key in s.parents)
            if clash:
                raise UsageError(f"--out {cfg.out} would overwrite the input {clash} with {output}; "
                                 f"choose another --out folder")
        jobs.append(job)
    return jobs


def pending_images(job: ImageJob, overwrite: bool) -> ImageJob | None:
    """The images still to segment (None: all done): those without every output (all with `overwrite`),
    or every image when the stats CSV is to be written (missing, or not covering exactly these images)."""
    missing = [image for image in job.images if overwrite or not all(p.exists() for p in job.outputs_of(image))]
    stats_due = job.stats is not None and (overwrite or bool(missing) or _stats_names(job.stats) != [
        image.name for image in job.images])
    if not missing and not stats_due:
        return None
    todo = job.images if stats_due else tuple(missing)
    return replace(job, todo=todo, write=frozenset(missing), stats=job.stats if stats_due else None, frames=len(todo))


def _stats_names(path: Path) -> list[str] | None:
    """The first column of a stats CSV (the images it covers); None when it cannot be read."""
    try:
        with open(path, newline="") as f:
            return [row[0] for row in list(csv.reader(f))[1:] if row]
    except OSError:
        return None


def pending_outputs(job: Job | ImageJob, overwrite: bool) -> Job | ImageJob | None:
    """The job limited to outputs not yet written (all with `overwrite`); None when all are done.

    An output counts as done only when it holds the source's frames: a video that does not
    open or has fewer frames, a mask folder or CSV short of frames (left by a full disk before
    outputs were checked, or cut off since) is written again.
    """
    if isinstance(job, ImageJob):
        return pending_images(job, overwrite)
    if overwrite:
        return job
    existing = [p for p in job.outputs() if p.exists()]
    expected = None if not existing else len(job.images) if job.images else count_frames(job.source, header=True)
    missing = [p for p in job.outputs() if p not in existing or not _holds(job, p, expected)]
    if not missing:
        return None
    # The video is needed again only if it is missing; masks/stats can be added to an old run.
    return Job(job.source, job.label, job.video if job.video in missing else None,
               job.masks if job.masks in missing else None,
               job.stats if job.stats in missing else None, job.frames,
               job.compare_masks if job.compare_masks in missing else None, job.images)


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


def check_out(cfg: BatchConfig, inputs: list[tuple[Path | Frames, Path]]) -> None:
    """--out is a folder that can be made (nothing is created yet) and not one of the inputs."""
    if cfg.out.exists() and not cfg.out.is_dir():
        if any(same_path(cfg.out, i) for p, _ in inputs for i in (p.images if isinstance(p, Frames) else (p,))):
            raise UsageError(f"--out {cfg.out} is an input video; --out takes a folder for the outputs")
        raise UserError(f"--out {cfg.out} is a file, not a folder; choose another --out")
    check_creatable(cfg.out, "--out")
