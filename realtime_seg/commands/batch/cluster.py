"""`batch --ray [ADDRESS]`: the same per-file work, spread over a Ray cluster's actors.

The driver (here) connects, checks that every node sees the same storage, starts one actor per
slot (each holds one onnxruntime session; the model's bytes travel once through the object store)
and hands out tasks: whole files, or the chunks of long ones (chunks.py), each job's write task
jumping the queue once its chunks are stored. Actors that die are restarted and their task
retried; Ctrl-C asks running tasks to stop at their next frame, and those that do not answer
within `GRACE` seconds are killed and their temporaries removed here. One progress bar counts
all frames. What runs on the nodes (`SegWorker`, the progress `Board`, `check_node`) is plain
Python, made Ray actors and tasks by the driver. Ray is optional: only this module imports it,
only with `--ray`.
"""
from __future__ import annotations

import collections
import contextlib
import hashlib
import logging
import os
import re
import signal
import socket
import tempfile
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path

from ...errors import UserError, first_line
from ...runtime.engine import SegModel
from ...runtime.models import Opened, RunOptions, open_model, open_streams
from ...runtime.pipeline import segment_stream
from ...system import progress
from .chunks import (
    Chunk,
    Plan,
    RangeSource,
    RecordingModel,
    ReplayModel,
    chunk_path,
    note,
    plan_tasks,
    remove_chunks,
    remove_temporaries,
)
from .config import BatchConfig
from .plan import Job
from .runner import Result, Runner, report_failure

log = logging.getLogger(__name__)

INSTALL = "pip install -r requirements-cluster.txt"
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_RETRIES = 3  # a killed actor is restarted and its task run again, this many times
GRACE = 10.0  # seconds running tasks get to stop cleanly after Ctrl-C


# --- the driver: connect, check, start the actors ---


def import_ray(address: str = "local"):
    """Ray, set up for `address`, or a one-line error that says how to install it."""
    host = _host(address)
    if address == "local" or host in _LOOPBACK:
        # This machine only: Ray otherwise swaps 127.0.0.1 for the machine's outward address
        # (read when Ray is imported, so set before).
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError:
        raise UserError(f"--ray needs Ray, which is not installed; install it with `{INSTALL}` "
                        f"(or run without --ray)") from None
    return ray


def _host(address: str) -> str:
    return address.removeprefix("ray://").rsplit(":", 1)[0].strip("[]")


def _check_reachable(address: str) -> None:
    """A HOST:PORT that does not answer fails at once (Ray itself retries for minutes)."""
    if address in ("local", "auto") or ":" not in address:
        return
    port = address.rsplit(":", 1)[1]
    try:
        socket.create_connection((_host(address), int(port)), timeout=5).close()
    except (OSError, ValueError) as e:
        raise UserError(f"no Ray cluster answers at {address} ({getattr(e, 'strerror', None) or e}); "
                        f"start one with `ray start --head` or check --ray HOST:PORT") from None


def connect(address: str):
    """Join the cluster at `address` ('local': start a Ray runtime on this machine)."""
    ray = import_ray(address)
    _check_reachable(address)
    root = str(Path(__file__).resolve().parents[3])  # workers import realtime_seg from here
    sigterm = signal.getsignal(signal.SIGTERM)
    try:
        ray.init(address=None if address == "local" else address, logging_level=logging.ERROR,
                 log_to_driver=False, include_dashboard=False,
                 runtime_env={"env_vars": {"PYTHONPATH": root, "OPENCV_FFMPEG_LOGLEVEL": "-8"}})
    except Exception as e:  # ConnectionError, or Ray's own types for a bad address
        raise UserError(f"cannot connect to the Ray cluster at {address}: {first_line(e)}; start one "
                        f"with `ray start --head` or check the address") from None
    finally:
        if sigterm is not None:  # ray.init installs its own SIGTERM handler: keep the command's policy
            signal.signal(signal.SIGTERM, sigterm)
    return ray


def check_storage(ray, plans: list[Plan], out: Path) -> None:
    """Every node reads every input and writes the output folder this machine sees, or an error."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    paths = [str(p.job.source.resolve()) for p in plans]
    probe_task = ray.remote(num_cpus=0, max_retries=0)(check_node)
    nodes = [n for n in ray.nodes() if n["Alive"]]
    refs = {}
    for node in nodes:
        name = f".ray_storage_probe_{uuid.uuid4().hex[:12]}"
        strategy = NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
        refs[name] = (node, probe_task.options(scheduling_strategy=strategy).remote(paths, str(out.resolve()), name))
    try:
        for name, (node, ref) in refs.items():
            where = f"node {node['NodeManagerAddress']} ({node['NodeID'][:8]})"
            try:
                problems = ray.get(ref, timeout=120)
            except ray.exceptions.RayError as e:  # the node died or has no room for a task
                raise UserError(f"{where} did not answer the storage check ({ray_reason(e)}); "
                                f"check the node with `ray status`") from None
            if problems:
                raise UserError(f"{where}: {problems[0]}; inputs and --out must be on storage every node "
                                f"mounts at the same path (e.g. NFS)")
            if not (out / name).exists():
                raise UserError(f"{where} writes {out} to its own disk, not the folder this machine sees; "
                                f"put --out on storage every node mounts at the same path (e.g. NFS)")
    finally:
        for name in refs:
            with contextlib.suppress(OSError):
                (out / name).unlink()


def actor_slots(ray, cfg: BatchConfig) -> list[tuple[str, float, float]]:
    """(node id, CPUs, GPUs) of each actor to start: GPU actors where there are GPUs, CPU ones elsewhere."""
    slots = []
    for node in ray.nodes():
        if not node["Alive"]:
            continue
        cpus, gpus = node["Resources"].get("CPU", 0), node["Resources"].get("GPU", 0)
        per_gpu = cfg.ray_gpus if cfg.ray_gpus is not None else (1.0 if gpus and cfg.options.device != "cpu" else 0.0)
        if per_gpu > 0 and gpus >= per_gpu:
            n = int(gpus // per_gpu)
            slots += [(node["NodeID"], min(1.0, cpus / n), per_gpu)] * n
            continue
        slots += [(node["NodeID"], cfg.ray_cpus, 0.0)] * int(cpus // cfg.ray_cpus)
    if not slots:
        raise UserError(f"no node of the Ray cluster has {cfg.ray_cpus:g} CPUs for a worker; "
                        f"lower --ray-cpus or add nodes")
    return slots


def start_board(ray, cfg: BatchConfig) -> tuple[object, str]:
    """The progress board (and its name), holding the model's files put in the object store once."""
    name = f"realtime_seg_board_{uuid.uuid4().hex[:12]}"
    return ray.remote(Board).options(num_cpus=0, name=name).remote([ray.put(_model_files(cfg))]), name


def _model_files(cfg: BatchConfig) -> dict[str, bytes]:
    """The model the workers run, with its precision variants when --precision may choose one of them."""
    paths = cfg.model.files()
    try:
        return {path.name: path.read_bytes() for path in paths}
    except OSError as e:
        raise UserError(f"cannot read model {e.filename}: {e.strerror}; pass --model PATH to an exported "
                        f".onnx") from None


def start_actors(ray, cfg: BatchConfig, board_name: str) -> list:
    """One SegWorker per slot, each with its own onnxruntime session."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    worker = ray.remote(SegWorker)
    actors = []
    for node_id, cpus, gpus in actor_slots(ray, cfg):
        device = cfg.options.device if cfg.options.device != "auto" else ("cuda" if gpus else "cpu")
        actors.append(worker.options(
            num_cpus=cpus, num_gpus=gpus, max_restarts=_RETRIES, max_task_retries=_RETRIES,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=True),
        ).remote(cfg, device, max(1, int(cpus)), board_name))
    try:  # a model that does not load fails here, once, with the engine's message
        infos = ray.get([a.info.remote() for a in actors])
    except ray.exceptions.RayActorError as e:
        raise UserError(f"the workers could not start: {ray_reason(e)}") from None
    providers = sorted({p.replace("ExecutionProvider", "") for _, _, p in infos})
    nodes = len({n for n, _, _ in infos})
    note(f"ray: {len(actors)} worker{'s' * (len(actors) != 1)} on {nodes} node{'s' * (nodes != 1)} "
         f"({', '.join(providers)})")
    return actors


def _absolute(job: Job) -> Job:
    """The job with absolute paths: workers run in other folders (the table keeps the label)."""
    def full(path: Path | None) -> Path | None:
        return None if path is None else path.absolute()
    return replace(job, source=full(job.source), video=full(job.video), masks=full(job.masks),
                   stats=full(job.stats))


def run_on_ray(todo: list[tuple[int, Job]], cfg: BatchConfig, stop: threading.Event) -> dict[int, Result]:
    """Process the jobs on the cluster at `cfg.ray`; one Result per job index."""
    todo = [(i, _absolute(job)) for i, job in todo]
    cfg = replace(cfg, out=cfg.out.absolute())
    open_model(cfg.model, RunOptions("cpu", 1))  # a bad model fails here, once, not in every worker
    ray = connect(cfg.ray)
    try:
        plans = plan_tasks(todo, cfg)
        check_storage(ray, plans, cfg.out)
        board, board_name = start_board(ray, cfg)
        actors = start_actors(ray, cfg, board_name)
        return Scheduler(ray, plans, actors, board, stop).run()
    finally:
        with contextlib.suppress(Exception):
            ray.shutdown()


# --- the driver: its loop ---


def ray_reason(error: BaseException) -> str:
    """The one-line reason inside a Ray error: the worker's own exception message when it has one."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))  # Ray colours its messages
    raised = re.findall(r"^[\w.]*(?:Error|Exception): (.+)$", text, re.MULTILINE)
    return raised[-1].strip() if raised else first_line(RuntimeError(text))


class Scheduler:
    """Runs the plans' tasks on the actors; `run` returns one Result per job index."""

    def __init__(self, ray, plans: list[Plan], actors: list, board, stop: threading.Event):
        self.ray, self.plans, self.board, self.stop = ray, plans, board, stop
        self.free = list(actors)
        self.actors = list(actors)
        self.queue: collections.deque = collections.deque()
        self.running: dict = {}                       # ref -> (actor, kind, plan, chunk)
        self.results: dict[int, Result] = {}
        self.left = {p.index: len(p.todo) for p in plans}  # chunks not yet stored
        self.started: dict[int, float] = {}
        for p in plans:
            self.queue.extend(("chunk", p, c) for c in p.todo)
            if not p.todo:
                self.queue.append(("file", p, None))
        self.bar = progress(total=sum(p.expected for p in plans), desc="total", unit="frame", position=0)

    def run(self) -> dict[int, Result]:
        deadline = None
        try:
            while self.running or (self.queue and not self.stop.is_set()):
                if self.stop.is_set() and deadline is None:
                    deadline = time.monotonic() + GRACE
                    self.board.stop.remote()
                if deadline is not None and time.monotonic() > deadline:
                    self._abandon()
                    break
                self._submit()
                if self.queue and not self.running and not self.free:
                    self._no_workers_left()
                if self.running:
                    ready, _ = self.ray.wait(list(self.running), num_returns=1, timeout=0.2)
                    for ref in ready:
                        self._finish(ref)
                self._update_bar()
        except BaseException:  # a second Ctrl-C: kill everything, leave no temporaries
            self._abandon()
            raise
        finally:
            self._update_bar()
            self.bar.close()
            for actor in self.actors:
                self.ray.kill(actor, no_restart=True)
        for p in self.plans:
            if p.index not in self.results:
                begun = p.index in self.started or len(p.todo) < len(p.chunks)
                self.results[p.index] = Result(p.job.label, "interrupted" if begun else "not started")
        return self.results

    def _submit(self) -> None:
        while self.free and self.queue and not self.stop.is_set():
            kind, plan, chunk = self.queue.popleft()
            if plan.index in self.results:
                continue  # the job failed meanwhile
            actor = self.free.pop()
            self.started.setdefault(plan.index, time.perf_counter())
            if kind == "chunk":
                key = f"{plan.index}:{chunk.start}"
                ref = actor.segment_chunk.remote(plan.job, chunk, key)
            else:
                ref = actor.write_file.remote(plan.job, plan.chunks, f"{plan.index}:write")
            self.running[ref] = (actor, kind, plan, chunk)

    def _finish(self, ref) -> None:
        actor, kind, plan, chunk = self.running.pop(ref)
        try:
            value = self.ray.get(ref)
        except self.ray.exceptions.RayActorError as e:  # restarted and retried, and still lost
            self.actors.remove(actor)
            self._fail(plan, f"worker lost ({ray_reason(e)})")
            return
        except self.ray.exceptions.RayError as e:
            self.free.append(actor)
            self._fail(plan, ray_reason(e))
            return
        self.free.append(actor)
        if kind == "chunk":
            if value is not None:
                self.left[plan.index] -= 1
                if self.left[plan.index] == 0 and plan.index not in self.results:
                    self.queue.appendleft(("file", plan, None))
            return
        if plan.chunks:  # the table's rate covers segmenting the chunks too
            value.seconds = time.perf_counter() - self.started[plan.index]
        self.results[plan.index] = value
        if value.failed:
            self._uncount(plan, value.frames)
            report_failure(f"{plan.job.source}: {value.status.removeprefix('failed: ')}")

    def _no_workers_left(self) -> None:
        """Every actor was lost for good (restarts used up): the jobs still queued cannot run."""
        while self.queue:
            _, plan, _ = self.queue.popleft()
            self._fail(plan, "no Ray workers left (all were lost); check the nodes with `ray status`")

    def _fail(self, plan: Plan, reason: str) -> None:
        log.debug("%s failed: %s", plan.job.source, reason)
        if plan.index in self.results:
            return
        remove_temporaries(plan.job, plan.chunks)
        reason = reason.replace(str(plan.job.source), plan.job.source.name)
        self.results[plan.index] = Result(plan.job.label, f"failed: {reason}")
        self._uncount(plan, 0)
        report_failure(f"{plan.job.source}: {reason}")

    def _uncount(self, plan: Plan, frames: int) -> None:
        """Frames the bar expected that will not come (failed or truncated input)."""
        self.bar.total = max(self.bar.n, self.bar.total - (plan.expected - frames))

    def _update_bar(self) -> None:
        try:
            done = self.ray.get(self.board.frames.remote(), timeout=5)
        except Exception:  # the board is only for display
            return
        self.bar.update(min(done, self.bar.total or done) - self.bar.n)  # may go back: a task retried

    def _abandon(self) -> None:
        """Kill the actors of tasks still running and remove what they were writing."""
        for ref, (actor, kind, plan, chunk) in list(self.running.items()):
            self.ray.kill(actor, no_restart=True)
            remove_temporaries(plan.job, [chunk] if chunk else [])
        self.running.clear()


# --- on the nodes: the worker actor, the progress board, the storage check ---


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
        options = replace(cfg.options, device=device)
        opened = open_streams(cfg.model.moved(local_model_copy(files)), options, cores=cores)
        self.model: SegModel = opened.model
        self.plan = replace(opened.plan, workers=1)
        self.cfg = replace(cfg, options=replace(options, threads=self.plan.threads), workers=1)
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
        result = Runner(self.cfg, Opened([model], self.plan, self.cfg.model.name), stop, bar).run(job)
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
