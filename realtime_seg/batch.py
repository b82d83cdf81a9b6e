"""Batch export: segment many videos into overlay videos, class-id PNGs and class-area CSVs.

usage: python -m realtime_seg batch INPUTS... --out DIR [--model accurate|fast|M.onnx]
       python -m realtime_seg batch videos/ 'clips/*.mp4' --out seg/ --png-masks --stats
       python -m realtime_seg batch drive.mp4 --out seg/ --ext mp4     (faster; not for browsers)

INPUTS are video files, folders (their videos; --recursive for subfolders) and globs (quote
them; they are expanded here). For each input, DIR/<name>_seg.webm is written (VP8 WebM: plays
in browsers and common players; see docs/BATCH.md), plus DIR/<name>_masks/ and
DIR/<name>_stats.csv when asked. Outputs are written under temporary names and renamed when
complete; existing outputs are skipped unless --overwrite, so re-running resumes a batch.
Exit code: 0 all ok, 1 some input failed, 2 usage error, 130/143 interrupted.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import glob
import logging
import os
import queue
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from .engine import DEVICES, PRESETS, SegModel, load_model, resolve_model
from .errors import ArgumentParser, UsageError, UserError, first_line
from .paths import check_creatable, partial_path, same_path
from .pipeline import StageTimes, VideoOutput, segment_stream, wait_for_releases
from .progress import progress
from .render import Legend, compose, draw_hud
from .sources import Source, is_url, open_video_file

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".ts",
                  ".mts", ".m2ts", ".wmv", ".flv", ".3gp", ".ogv", ".y4m", ".mjpeg", ".mjpg"}
# Container -> FourCC. VP8 WebM is the default: browsers play it and, unlike VP9, it encodes
# at a usable speed on a small CPU (docs/BATCH.md has the measurements).
EXT_CODECS = {"webm": "VP80", "mp4": "mp4v", "avi": "MJPG", "mkv": "VP80", "mov": "mp4v"}
DEFAULT_EXT = "webm"
SUFFIX = "_seg"
_GLOB_CHARS = set("*?[")
_STDERR_LOCK = threading.Lock()


@dataclass
class BatchConfig:
    """What to write and how; one per run."""

    out: Path
    model: str | None = None
    device: str = "auto"
    opacity: float = 0.5
    mask_only: bool = False
    hud: bool = False
    legend: bool = True
    png_masks: bool = False
    stats: bool = False
    codec: str | None = None
    ext: str = DEFAULT_EXT
    overwrite: bool = False
    recursive: bool = False
    workers: int = 1
    batch_size: int = 1
    threads: int = 0              # onnxruntime threads per session (0: half the cores per worker)
    share_model: bool = True      # one session for all workers: as fast here, one copy of the weights

    @property
    def fourcc(self) -> str:
        return self.codec or EXT_CODECS.get(self.ext, "")


@dataclass
class Job:
    """One input and the outputs still to write for it."""

    source: Path
    label: str                     # how the table names it
    video: Path | None             # None: it exists and only masks/stats are missing
    masks: Path | None = None
    stats: Path | None = None
    frames: int = 0                # from the container header (0: unknown or unreadable)

    def outputs(self) -> list[Path]:
        return [p for p in (self.video, self.masks, self.stats) if p is not None]


@dataclass
class Result:
    """How one input went: status is ok, skipped (exists), failed: REASON, interrupted, not started."""

    label: str
    status: str
    frames: int = 0
    seconds: float = 0.0
    written: list[Path] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.status.startswith("failed")

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


# ---------------------------------------------------------------- inputs and outputs


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
                  folder / f"{path.stem}_stats.csv" if cfg.stats else None)
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
    """The job limited to outputs not yet written (all with `overwrite`); None when all exist."""
    if overwrite:
        return job
    missing = [p for p in job.outputs() if not p.exists()]
    if not missing:
        return None
    # The video is needed again only if it is missing; masks/stats can be added to an old run.
    return Job(job.source, job.label, job.video if job.video in missing else None,
               job.masks if job.masks in missing else None,
               job.stats if job.stats in missing else None, job.frames)


def header_frames(path: Path) -> int:
    """Frame count from the container header (cheap: no decoding); 0 when unknown."""
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        return max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT))) if cap.isOpened() else 0
    finally:
        cap.release()


# ---------------------------------------------------------------- writers


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Hide C-level stderr: OpenCV prints a harmless 'tag ... is not supported' line for WebM."""
    with _STDERR_LOCK:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            with open(os.devnull, "w") as null:
                os.dup2(null.fileno(), 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def open_video_output(path: Path, fps: float, size: tuple[int, int], fourcc: str) -> VideoOutput:
    """A VideoOutput (temporary name, encoder thread) without OpenCV's WebM tag chatter."""
    with _quiet_stderr():
        return VideoOutput(path, fps, size, fourcc)


def _replace_dir(tmp: Path, final: Path) -> None:
    """Move a finished folder into place; an old one (--overwrite) is removed only afterwards."""
    old = final.with_name(f".{final.name}.old")
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


class MaskPngs:
    """Class-id PNGs (one per frame, lossless, at the frame's size) written on a thread."""

    def __init__(self, folder: Path, size: tuple[int, int]):
        self.folder, self.size = folder, size
        self.tmp = folder.with_name(f".{folder.name}.partial")
        shutil.rmtree(self.tmp, ignore_errors=True)  # left by a killed run
        self.tmp.mkdir(parents=True)
        self.error: str | None = None
        self._q: queue.Queue = queue.Queue(8)
        self._thread = threading.Thread(target=self._run, name="png", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._q.get()) is not None:
            index, mask = item
            path = self.tmp / f"{index:06d}.png"
            if self.error is None and not cv2.imwrite(str(path), mask):
                self.error = f"cannot write {path}; check free space and permissions"

    def write(self, index: int, class_map: np.ndarray) -> None:
        # Nearest keeps ids exact; the mask lines up pixel for pixel with the video frame.
        self._q.put((index, cv2.resize(class_map, self.size, interpolation=cv2.INTER_NEAREST)))

    def close(self, ok: bool) -> Path | None:
        self._q.put(None)
        self._thread.join()
        if ok and self.error is None:
            _replace_dir(self.tmp, self.folder)
            return self.folder
        shutil.rmtree(self.tmp, ignore_errors=True)
        if ok:
            raise OSError(self.error)
        return None

    def discard(self) -> None:
        """Stop at once (Ctrl-C): queued frames are dropped, the temporary folder removed."""
        _drain(self._q)
        self.close(False)


class ClassStats:
    """Per-frame class-area fractions of the model's class map, written as CSV when complete."""

    def __init__(self, path: Path, classes: list[str]):
        self.path, self.classes = path, classes
        self.rows: list[np.ndarray] = []

    def write(self, index: int, class_map: np.ndarray) -> None:
        counts = np.bincount(class_map.ravel(), minlength=len(self.classes))[:len(self.classes)]
        self.rows.append(counts / class_map.size)

    def close(self, ok: bool) -> Path | None:
        if not ok:
            return None
        tmp = partial_path(self.path)
        tmp.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w", newline="") as f:
            f.write(",".join(["frame", *self.classes]) + "\n")
            for i, row in enumerate(self.rows):
                f.write(f"{i}," + ",".join(f"{v:.6f}" for v in row) + "\n")
        os.replace(tmp, self.path)
        return self.path

    def discard(self) -> None:
        self.rows.clear()


def _drain(q: queue.Queue) -> None:
    while True:
        try:
            q.get_nowait()
        except queue.Empty:
            return


# ---------------------------------------------------------------- one file


class Models:
    """One session shared by the workers (onnxruntime runs concurrent calls), or one each."""

    def __init__(self, path: Path, cfg: BatchConfig):
        copies = 1 if cfg.share_model else cfg.workers
        # Half the cores for inference: the (single-threaded) encoders, decoders and drawing need
        # the rest. On 2 cores, 1 thread instead of onnxruntime's 2 cut CPU/frame ~25% (BATCH.md).
        threads = cfg.threads or max(1, _cores() // (2 * cfg.workers))
        self.sessions = [load_model(path, cfg.device, threads) for _ in range(copies)]

    def get(self, slot: int) -> SegModel:
        return self.sessions[slot % len(self.sessions)]


def _cores() -> int:
    """CPUs this process may run on (a container or taskset may allow fewer than the machine has)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


class Runner:
    """Processes jobs; `stop` (Ctrl-C, SIGTERM) ends every file at its next frame."""

    def __init__(self, cfg: BatchConfig, models: Models, stop: threading.Event, overall=None):
        self.cfg, self.models, self.stop, self.overall = cfg, models, stop, overall
        self._overall_lock = threading.Lock()  # workers share the overall bar
        self._slots: queue.Queue = queue.Queue()
        for slot in range(cfg.workers):
            self._slots.put(slot)

    def run(self, job: Job) -> Result:
        """Process one job in a worker thread; never raises."""
        if self.stop.is_set():
            return Result(job.label, "not started")
        slot = self._slots.get()
        try:
            return self._process(job, slot)
        except Exception as e:  # one bad file must not stop the batch
            log.debug("%s failed", job.source, exc_info=True)
            return Result(job.label, f"failed: {_reason(e, job.source)}")
        finally:
            self._slots.put(slot)

    def _process(self, job: Job, slot: int) -> Result:
        start = time.perf_counter()
        try:
            cap, first = open_video_file(job.source)
        except UserError as e:
            self._uncount(job.frames)
            report_failure(str(e))
            return Result(job.label, f"failed: {_reason(e, job.source)}")
        source = Source(str(job.source), cap, first=first)
        model = self.models.get(slot)
        size = (first.shape[1], first.shape[0])  # as decoded: rotation metadata is already applied
        writers = self._open_writers(job, source, size, model)
        bar = progress(total=source.frame_count, desc=_short(job.source.name), unit="frame",
                       position=slot + 1, leave=False)
        frames, status = 0, "ok"
        try:
            frames, stopped = self._frames(source, model, writers, bar, start)
            if stopped:
                status = "interrupted"
            elif source.frame_count and frames < source.frame_count:
                status = (f"failed: truncated or corrupt, decoded {frames} of "
                          f"{source.frame_count} frames")
        except BaseException:
            status = "failed"
            raise
        finally:
            bar.close()
            source.close()
            written = self._close_writers(writers, status)
            if status.startswith("failed"):
                self._uncount((source.frame_count or frames) - frames)
        if status.startswith("failed"):
            report_failure(f"{job.source}: {status.removeprefix('failed: ')}; re-copy or re-encode it")
        return Result(job.label, status, frames, time.perf_counter() - start, written)

    def _open_writers(self, job: Job, source: Source, size: tuple[int, int], model: SegModel) -> dict:
        writers = {}
        try:
            if job.video:
                writers["video"] = open_video_output(job.video, source.fps, size, self.cfg.fourcc)
            if job.masks:
                writers["masks"] = MaskPngs(job.masks, size)
            if job.stats:
                writers["stats"] = ClassStats(job.stats, model.classes)
        except BaseException:
            source.close()
            self._close_writers(writers, "failed")
            raise
        return writers

    def _frames(self, source: Source, model: SegModel, writers: dict, bar,
                start: float) -> tuple[int, bool]:
        """Segment, draw and write every frame: (frames decoded, whether `stop` cut it short)."""
        cfg, times = self.cfg, StageTimes()
        legend = Legend(model.classes, model.palette_bgr) if cfg.legend else None
        view = "mask" if cfg.mask_only else "blend"
        frames = 0
        # Decoded frames must be able to queue up for a batch to fill (it never waits for them).
        stream = segment_stream(source, model, times, queue_size=max(2, cfg.batch_size),
                                batch_size=cfg.batch_size)
        with contextlib.closing(stream):
            for packet in stream:
                if self.stop.is_set():
                    return frames, True
                if "video" in writers:
                    image = compose(packet.frame, packet.class_map, model.palette_bgr, cfg.opacity, view)
                    if legend:
                        legend.draw(image)
                    if cfg.hud:
                        draw_hud(image, _hud(source, model, times, packet.index, frames, start))
                    writers["video"].write(image)
                for key in ("masks", "stats"):
                    if key in writers:
                        writers[key].write(packet.index, packet.class_map)
                frames += 1
                bar.update()
                if self.overall is not None:
                    with self._overall_lock:
                        self.overall.update()
        return frames, False

    def _close_writers(self, writers: dict, status: str) -> list[Path]:
        """Rename finished outputs into place; remove every temporary file otherwise."""
        written = []
        for name, writer in writers.items():
            if status == "interrupted":
                writer.discard()
                continue
            path = writer.close(status == "ok")
            if path:
                written.append(path)
        return written

    def _uncount(self, frames: int) -> None:
        """Frames the overall bar expected that will not come (failed or truncated input)."""
        if self.overall is not None and frames > 0 and self.overall.total:
            with self._overall_lock:
                self.overall.total = max(self.overall.n, self.overall.total - frames)
                self.overall.refresh()


def report_failure(message: str) -> None:
    """One `error: ...` line per failed input on stderr, above the progress bars (the batch goes on)."""
    from tqdm import tqdm
    tqdm.write(f"error: {message}", file=sys.stderr)


def _hud(source: Source, model: SegModel, times: StageTimes, index: int, done: int, start: float) -> list[str]:
    elapsed = time.perf_counter() - start
    total = f"/{source.frame_count}" if source.frame_count else ""
    ms = "  ".join(f"{k} {v:.1f}" for k, v in times.ema.items())
    return [f"{Path(source.name).name}  frame {index + 1}{total}",
            f"{done / elapsed if elapsed > 0 else 0:.1f} FPS  {model.provider.replace('ExecutionProvider', '')}",
            f"{ms} ms"]


def _short(name: str, width: int = 24) -> str:
    return name if len(name) <= width else name[:width - 1] + "…"


def _reason(error: BaseException, path: Path) -> str:
    """One line, without repeating the path the table already shows."""
    text = first_line(error, limit=None)
    return text.replace(f"{path} ", "").replace(str(path), path.name)


# ---------------------------------------------------------------- the batch


def check_config(cfg: BatchConfig) -> None:
    """Usage errors in the options, found before any file is touched."""
    if not 0.0 <= cfg.opacity <= 1.0:
        raise UsageError(f"--opacity must be between 0 and 1, got {cfg.opacity:g}")
    if cfg.workers < 1:
        raise UsageError(f"--workers must be 1 or more, got {cfg.workers}")
    if cfg.batch_size < 1:
        raise UsageError(f"--batch-size must be 1 or more, got {cfg.batch_size}")
    if cfg.threads < 0:
        raise UsageError(f"--threads must be 0 or more, got {cfg.threads}")
    if not cfg.ext.isalnum():
        raise UsageError(f"--ext must be a container name like webm or mp4, got {cfg.ext!r}")
    if not cfg.fourcc:
        raise UsageError(f"no default codec for --ext {cfg.ext}; use one of {', '.join(EXT_CODECS)} "
                         f"or give --codec")
    if len(cfg.fourcc) != 4:
        raise UsageError(f"--codec must be a 4-letter FourCC like VP80, mp4v or MJPG, got {cfg.fourcc!r}")


def check_out(cfg: BatchConfig, inputs: list[tuple[Path, Path]]) -> None:
    """--out is a folder that can be made (nothing is created yet) and not one of the inputs."""
    if cfg.out.exists() and not cfg.out.is_dir():
        if any(same_path(cfg.out, p) for p, _ in inputs):
            raise UsageError(f"--out {cfg.out} is an input video; --out takes a folder for the outputs")
        raise UserError(f"--out {cfg.out} is a file, not a folder; choose another --out")
    check_creatable(cfg.out, "--out")


def probe_codec(cfg: BatchConfig) -> None:
    """Open (and delete) a tiny video in DIR: a codec this OpenCV cannot write fails here, once."""
    try:
        cfg.out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create output folder {cfg.out}: {e.strerror}; choose another --out") from None
    if not os.access(cfg.out, os.W_OK):
        raise UserError(f"output folder {cfg.out} is not writable; choose another --out")
    path = cfg.out / f".codec_probe_{os.getpid()}.partial.{cfg.ext}"
    with _quiet_stderr():
        writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*cfg.fourcc), 25.0, (64, 48))
    ok = writer.isOpened()
    writer.release()
    path.unlink(missing_ok=True)
    if not ok:
        raise UsageError(f"this OpenCV cannot write codec {cfg.fourcc} in .{cfg.ext} files; "
                         f"use the default (.webm VP80) or --ext mp4 (mp4v)")


def run_batch(specs: list[str], cfg: BatchConfig, stop: threading.Event | None = None) -> list[Result]:
    """Expand, plan and process every input; one Result per input, in input order."""
    check_config(cfg)
    stop = stop or threading.Event()
    streams = [spec for spec in specs if is_url(spec)]
    if streams:
        raise UsageError(f"batch reads video files, not streams ({streams[0]}); record it first with "
                         f"`python -m realtime_seg --video URL --no-show --output rec.mp4`")
    inputs, unmatched = expand_inputs(specs, cfg.recursive, cfg.out)
    if not inputs:
        raise UsageError(f"no videos found in {' '.join(specs) or '(no inputs)'}; pass video files, "
                         f"folders or globs (folders: --recursive for subfolders)")
    check_out(cfg, inputs)
    existed = cfg.out.exists()
    try:
        return _run_planned(inputs, unmatched, cfg, stop)
    finally:
        if not existed:  # nothing written (all failed, or interrupted): no empty folder left behind
            with contextlib.suppress(OSError):
                cfg.out.rmdir()


def _run_planned(inputs: list[tuple[Path, Path]], unmatched: list[str], cfg: BatchConfig,
                 stop: threading.Event) -> list[Result]:
    """Process the inputs that have outputs to write; the others are skipped or not found."""
    jobs = plan(inputs, cfg)
    for spec in unmatched:
        report_failure(f"{spec} not found (no such file, or no videos match); check the path")
    results: dict[int, Result] = {}
    todo = []
    for i, job in enumerate(jobs):
        pending = pending_outputs(job, cfg.overwrite)
        if pending is None:
            results[i] = Result(job.label, "skipped (exists)")
        else:
            todo.append((i, pending))
    if todo:
        probe_codec(cfg)
        models = Models(resolve_model(cfg.model), cfg)
        for _, job in todo:
            job.frames = header_frames(job.source)
        results.update(_run_jobs(todo, cfg, models, stop))
    ordered = [results[i] for i in range(len(jobs))]
    return [Result(spec, "failed: not found (no such file, or no videos match)") for spec in unmatched] + ordered


def _run_jobs(todo: list[tuple[int, Job]], cfg: BatchConfig, models: Models,
              stop: threading.Event) -> dict[int, Result]:
    """Run jobs on `workers` threads under an overall progress bar; waits in short steps so
    that signals reach the main thread promptly."""
    overall = progress(total=sum(job.frames for _, job in todo), desc="total", unit="frame", position=0)
    runner = Runner(cfg, models, stop, overall)
    pool = cf.ThreadPoolExecutor(cfg.workers, thread_name_prefix="batch")
    futures = {pool.submit(runner.run, job): i for i, job in todo}
    try:
        pending = set(futures)
        while pending:
            _, pending = cf.wait(pending, timeout=0.2)
    except BaseException:  # e.g. KeyboardInterrupt where no signal handler sets `stop`
        stop.set()
        raise
    finally:
        stop_early = stop.is_set()
        pool.shutdown(wait=True, cancel_futures=stop_early)
        overall.close()
    labels = {i: job.label for i, job in todo}
    return {i: (f.result() if f.done() and not f.cancelled() else Result(labels[i], "not started"))
            for f, i in futures.items()}


# ---------------------------------------------------------------- command line


def format_table(results: list[Result]) -> str:
    """file, frames, fps (processing rate), status: one row per input."""
    rows = [(r.label, str(r.frames) if r.frames else "-", f"{r.fps:.1f}" if r.frames else "-", r.status)
            for r in results]
    heads = ("file", "frames", "fps", "status")
    width = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(heads[:3])]

    def line(c: tuple[str, ...]) -> str:
        return f"{c[0]:<{width[0]}}  {c[1]:>{width[1]}}  {c[2]:>{width[2]}}  {c[3]}"
    return "\n".join([line(heads), *(line(row) for row in rows)])


def summary_line(results: list[Result], out: Path) -> str:
    """e.g. '2 written, 1 skipped, 1 failed; outputs in seg/'."""
    counts = {k: sum(r.status.startswith(k) for r in results)
              for k in ("ok", "skipped", "failed", "interrupted", "not started")}
    parts = [f"{counts['ok']} written", f"{counts['skipped']} skipped", f"{counts['failed']} failed"]
    parts += [f"{counts[k]} {k}" for k in ("interrupted", "not started") if counts[k]]
    return f"{', '.join(parts)}; outputs in {out}"


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m realtime_seg batch", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="video files, folders or globs")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder (created)")
    p.add_argument("--model", help=f"ONNX model or preset ({', '.join(PRESETS)}); default: accurate")
    p.add_argument("--device", default="auto", choices=DEVICES, help="auto prefers CUDA when usable")
    p.add_argument("--opacity", type=float, default=0.5, help="mask opacity in the blend, 0-1")
    p.add_argument("--mask-only", action="store_true", help="colour mask video instead of the blend")
    p.add_argument("--hud", action="store_true", help="draw frame number, FPS and stage times")
    p.add_argument("--no-legend", action="store_true", help="no class legend")
    p.add_argument("--png-masks", action="store_true", help="also DIR/<name>_masks/NNNNNN.png: class ids")
    p.add_argument("--stats", action="store_true", help="also DIR/<name>_stats.csv: class-area fractions")
    p.add_argument("--ext", default=DEFAULT_EXT, help=f"output container (default {DEFAULT_EXT}: VP8, "
                   f"plays in browsers; mp4: mp4v, ~20x faster to encode, not for browsers)")
    p.add_argument("--codec", help="FourCC, e.g. VP80, VP90, mp4v, MJPG (default: by --ext)")
    p.add_argument("--overwrite", action="store_true", help="redo outputs that exist (default: skip)")
    p.add_argument("--recursive", action="store_true", help="folders: include subfolders; globs: ** matches")
    p.add_argument("--workers", type=int, default=1, help="files processed in parallel (default 1)")
    p.add_argument("--batch-size", type=int, default=1, help="frames per inference call (default 1)")
    p.add_argument("--threads", type=int, default=0,
                   help="onnxruntime threads per worker (0: half the cores / workers, at least 1)")
    return p


def config_from_args(args: argparse.Namespace) -> BatchConfig:
    return BatchConfig(out=args.out, model=args.model, device=args.device, opacity=args.opacity,
                       mask_only=args.mask_only, hud=args.hud, legend=not args.no_legend,
                       png_masks=args.png_masks, stats=args.stats, codec=args.codec,
                       ext=args.ext.lstrip(".").lower(), overwrite=args.overwrite,
                       recursive=args.recursive, workers=args.workers, batch_size=args.batch_size,
                       threads=args.threads)


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[list[int]]:
    """SIGINT/SIGTERM set `stop` (files end at their next frame); a second Ctrl-C aborts at once."""
    received: list[int] = []

    def handler(signum, frame):
        if received and signum == signal.SIGINT:
            raise KeyboardInterrupt
        received.append(signum)
        stop.set()

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    cfg = config_from_args(args)
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # decode errors are reported per file
    from tqdm.contrib.logging import logging_redirect_tqdm
    stop = threading.Event()
    with stop_on_signals(stop) as received, logging_redirect_tqdm():
        results = run_batch(args.inputs, cfg, stop)
    print(format_table(results))
    print(summary_line(results, cfg.out))
    if received:
        print(f"interrupted ({signal.Signals(received[0]).name}): unfinished outputs were removed",
              file=sys.stderr)
        wait_for_releases()
        return 128 + received[0]
    return 1 if any(r.failed for r in results) else 0

