"""`batch --ray [ADDRESS]`: the same per-file work, spread over a Ray cluster's actors.

Tasks are whole files, or frame ranges of long files (`--chunk-frames`, see chunks.py) whose
outputs are then written from the stored class maps. Each actor holds one onnxruntime session
(the model's bytes travel once through the object store); actors that die are restarted and
their task retried. The driver keeps one progress bar for all frames, and the end table.
Ray is optional: only this module imports it, and only when `--ray` is given.
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import uuid
from dataclasses import replace
from pathlib import Path

from ...errors import UserError, first_line
from ...runtime.models import open_choice
from . import cluster_worker as cw
from .cluster_run import Scheduler
from .cluster_tasks import Plan, note, plan_tasks, ray_reason
from .config import BatchConfig
from .plan import Job
from .runner import Result

log = logging.getLogger(__name__)

INSTALL = "pip install -r requirements-cluster.txt"
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_RETRIES = 3  # a killed actor is restarted and its task run again, this many times


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
    probe_task = ray.remote(num_cpus=0, max_retries=0)(cw.check_node)
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
        per_gpu = cfg.ray_gpus if cfg.ray_gpus is not None else (1.0 if gpus and cfg.device != "cpu" else 0.0)
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
    return ray.remote(cw.Board).options(num_cpus=0, name=name).remote([ray.put(_model_files(cfg))]), name


def _model_files(cfg: BatchConfig) -> dict[str, bytes]:
    """The model the workers run, with its precision variants when --precision may choose one of them."""
    paths = cfg.model.files(cfg.precision)
    try:
        return {path.name: path.read_bytes() for path in paths}
    except OSError as e:
        raise UserError(f"cannot read model {e.filename}: {e.strerror}; pass --model PATH to an exported "
                        f".onnx") from None


def start_actors(ray, cfg: BatchConfig, board_name: str) -> list:
    """One SegWorker per slot, each with its own onnxruntime session."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    worker = ray.remote(cw.SegWorker)
    actors = []
    for node_id, cpus, gpus in actor_slots(ray, cfg):
        device = cfg.device if cfg.device != "auto" else ("cuda" if gpus else "cpu")
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
    open_choice(cfg.model, cfg.precision, "cpu", 1)  # a bad model fails here, once, not in every worker
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
