"""What runs on the Ray nodes for `batch --ray`: a worker actor and the progress board.

Imported by `cluster.py` (itself imported only with `--ray`). The classes are plain Python, made
Ray actors there; Ray is imported only inside the methods that call it.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

from ...runtime.engine import SegModel
from ...runtime.models import Opened, open_selected
from ...runtime.pipeline import segment_stream
from .chunks import Chunk, RangeSource, RecordingModel, ReplayModel, chunk_path, remove_chunks
from .config import BatchConfig
from .plan import Job
from .runner import Result, Runner

log = logging.getLogger(__name__)


class Board:
    """Frames done per task (the latest report of its latest attempt), the stop flag, and the
    model's object reference (held here for actors that restart)."""

    def __init__(self, model: list):
        self.done: dict[str, int] = {}
        self.stopping = False
        self._model = model  # [ObjectRef]: in a list, so Ray passes the reference, not the bytes

    def model(self) -> list:
        return self._model

    def report(self, key: str, frames: int) -> bool:
        """Record a task's frames; True when the batch is being stopped."""
        self.done[key] = frames
        return self.stopping

    def frames(self) -> int:
        return sum(self.done.values())

    def stop(self) -> None:
        self.stopping = True


class _Progress:
    """The `overall` bar the per-file Runner updates, sent to the board a few times a second.

    `total` stays 0 so that the Runner leaves totals alone: the driver owns the one real bar.
    """

    total = 0

    def __init__(self, board, key: str, stop: threading.Event, every: float = 0.3):
        self.board, self.key, self.stop, self.every = board, key, stop, every
        self.n, self._sent = 0, 0.0

    def update(self, n: int = 1) -> None:
        self.n += n
        if time.monotonic() - self._sent > self.every:
            self.flush()

    def flush(self) -> None:
        import ray
        self._sent = time.monotonic()
        if ray.get(self.board.report.remote(self.key, self.n)):
            self.stop.set()

    def refresh(self) -> None:
        pass


def local_model_copy(files: dict[str, bytes]) -> Path:
    """The model's files (from the object store: a model and its precision variants, by name) in a
    folder of their own on this node, written once per node; the folder."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name])
    folder = Path(tempfile.gettempdir()) / "realtime_seg_models" / digest.hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        path = folder / name
        if not path.exists():
            tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
            tmp.write_bytes(data)
            os.replace(tmp, path)
    return folder


class SegWorker:
    """One onnxruntime session, created once, used for every task sent to this actor."""

    def __init__(self, cfg: BatchConfig, device: str, cores: int, board_name: str):
        import ray
        board = ray.get_actor(board_name)  # by name: a handle among the arguments makes Ray warn
        files = ray.get(ray.get(board.model.remote())[0])  # the object store: once per node
        # the precision this actor's device runs best (int8 on CPUs, fp16 on CUDA, where they pay off),
        # with the threads of the viewer's plan on the actor's cores; one call at a time
        opened = open_selected(cfg.model.moved(local_model_copy(files)), cfg.precision, device, cfg.threads,
                               cores=cores)
        self.model: SegModel = opened.model
        self.plan = replace(opened.plan, workers=1)
        self.cfg = replace(cfg, device=device, threads=self.plan.threads, workers=1)
        self.board = board

    def info(self) -> tuple[str, int, str]:
        """(node id, process id, provider): where this actor runs."""
        import ray
        return ray.get_runtime_context().get_node_id(), os.getpid(), self.model.provider

    def segment_chunk(self, job: Job, chunk: Chunk, key: str) -> int | None:
        """Segment frames [start, end) into the chunk file; frames stored, None if stopped."""
        stop = threading.Event()
        bar = _Progress(self.board, key, stop)
        recorder = RecordingModel(self.model)
        source = RangeSource(job.source, chunk)
        try:
            stream = segment_stream(source, recorder, queue_size=max(2, self.cfg.batch_size),
                                    batch_size=self.cfg.batch_size)
            with contextlib.closing(stream):
                for _ in stream:
                    if stop.is_set():
                        return None
                    bar.update()
        finally:
            source.close()
        bar.flush()
        if stop.is_set():
            return None
        recorder.save(chunk_path(job, chunk), self.model.input_size)
        return len(recorder.maps)

    def write_file(self, job: Job, chunks: list[Chunk], key: str) -> Result:
        """The per-file code of a local batch; with chunks, their stored maps stand in for the model."""
        stop = threading.Event()
        bar = _Progress(self.board, key, stop)
        model = ReplayModel(self.model, job, chunks) if chunks else self.model
        result = Runner(self.cfg, Opened([model], self.plan), stop, bar).run(job)
        bar.flush()
        if chunks and model.recomputed:
            log.warning("%s: %d frames segmented again (a seek into a chunk did not land exactly)",
                        job.source, model.recomputed)
        if chunks and result.status != "interrupted":
            remove_chunks(job)  # written, or failed for good (e.g. truncated): no resume needed
        return result


def check_node(paths: list[str], out: str, probe_name: str) -> list[str]:
    """On one node: which inputs it cannot read, and whether it can write the output folder."""
    problems = [f"cannot read {p}" for p in paths if not os.access(p, os.R_OK)]
    probe = Path(out) / probe_name
    try:
        probe.write_text("realtime_seg batch --ray storage check\n")
    except OSError as e:
        problems.append(f"cannot write the output folder {out} ({e.strerror})")
    return problems
