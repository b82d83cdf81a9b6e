"""The batch: plan the inputs, probe the codec, run the files on worker threads under one progress bar."""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
import threading
from pathlib import Path

import numpy as np

from ...errors import UsageError, UserError
from ...runtime.models import Opened, open_streams
from ...runtime.sources import is_url
from ...runtime.video import VideoOutput
from ...system import progress
from .config import BatchConfig, check_config
from .images import ImageRunner
from .plan import Frames, Job, check_out, expand_inputs, header_frames, pending_outputs, plan
from .runner import Result, report_failure


def probe_codec(cfg: BatchConfig) -> None:
    """Encode (and delete) one tiny frame in DIR: an encoder this PyAV lacks, or a folder that cannot be written, fails here, once."""
    try:
        cfg.out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create output folder {cfg.out}: {e.strerror}; choose another --out") from None
    if not os.access(cfg.out, os.W_OK):
        raise UserError(f"output folder {cfg.out} is not writable; choose another --out")
    probe = VideoOutput(cfg.out / f".codec_probe_{os.getpid()}.{cfg.ext}", 25.0, (64, 48), cfg.codec_name)
    try:
        probe.encode(np.zeros((48, 64, 3), np.uint8))
        probe.finish()
    finally:
        probe.discard()


def run_batch(specs: list[str], cfg: BatchConfig, stop: threading.Event | None = None) -> list[Result]:
    """Expand, plan and process every input; one Result per input, in input order."""
    check_config(cfg)
    if cfg.ray is not None:
        from .cluster import import_ray
        import_ray(cfg.ray)  # the install hint before any work
    stop = stop or threading.Event()
    streams = [spec for spec in specs if is_url(spec)]
    if streams:
        raise UsageError(f"batch reads video files, not streams ({streams[0]}); record it first with "
                         f"`python -m realtime_seg --video URL --no-show --output rec.mp4`")
    inputs, unmatched = expand_inputs(specs, cfg.recursive, cfg.out)
    if not inputs:
        raise UsageError(f"no videos or images found in {' '.join(specs) or '(no inputs)'}; pass video or image "
                         f"files, folders or globs (folders: --recursive for subfolders)")
    if cfg.ray is not None and any(isinstance(item, Frames) for item, _ in inputs):
        raise UsageError("--ray runs video files; images and frame folders run on this machine: batch them "
                         "without --ray")
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
        report_failure(f"{spec} not found (no such file, or no videos or images match); check the path")
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
        for _, job in todo:
            job.frames = job.frames or header_frames(job.source)  # images: counted when planned
        if cfg.ray is not None:
            from .cluster import run_on_ray
            results.update(run_on_ray(todo, cfg, stop))
        else:
            # each file runs the viewer's plan on its share of the cores; one session shared by the
            # threads (as fast here, one copy of the weights) unless asked for one each
            copies = 1 if cfg.share_model else cfg.workers
            models = open_streams(cfg.model, cfg.options, streams=cfg.workers, copies=copies)
            compared = open_streams(cfg.compare, cfg.options, streams=cfg.workers, copies=copies) if cfg.compare else None
            print(f"model {models.name} on {models.model.runs_on}, "
                  f"{cfg.batch_size or models.plan.batch} frame(s) per inference call, "
                  f"{models.plan.workers} call(s) in flight", flush=True)
            results.update(_run_jobs(todo, cfg, models, stop, compared))
    ordered = [results[i] for i in range(len(jobs))]
    return [Result(spec, "failed: not found (no such file, or no videos or images match)")
            for spec in unmatched] + ordered


def _run_jobs(todo: list[tuple[int, Job]], cfg: BatchConfig, models: Opened, stop: threading.Event,
              compared: Opened | None = None) -> dict[int, Result]:
    """Run jobs on `workers` threads under an overall progress bar (`compared`: --compare's model);
    waits in short steps so that signals reach the main thread promptly."""
    overall = progress(total=sum(job.frames for _, job in todo), desc="total", unit="frame", position=0)
    runner = ImageRunner(cfg, models, stop, overall, compared)
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
