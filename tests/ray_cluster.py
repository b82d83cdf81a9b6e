"""A real two-node Ray cluster on 127.0.0.1 for the `batch --ray` tests, started with `ray start`.

Each node is a `ray start --block` in its own session, so stopping it is one signal to its
process group (no `ray stop`, which would end every Ray process of the machine). Ray swaps
127.0.0.1 for the machine's outward address when it starts a node; the nodes here are kept
on loopback by running the `ray` command with that swap turned off.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

# The `ray` CLI without the 127.0.0.1 -> outward address swap (tests stay on loopback).
RAY_CLI = [sys.executable, "-c", ("import sys; from ray._private import services; "
                                  "services.resolve_ip_for_localhost = lambda host: host; "
                                  "from ray.scripts.scripts import main; sys.exit(main())")]
READY = "block forever"  # what `ray start --block` prints once its node is up
# Nodes, and the batch commands that join them: no token authentication (Ray 2.60 turns it on
# when ~/.ray/auth_token exists, which a local `ray.init()` creates); the nodes listen on
# 127.0.0.1 only.
ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Cluster:
    """Nodes started by `start`; `address` is the head's HOST:PORT."""

    root: Path
    address: str = ""
    nodes: list[subprocess.Popen] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def start_node(self, *args: str, timeout: float = 90.0) -> None:
        log = self.root / f"node{len(self.nodes)}.log"
        env = {**os.environ, **ENV}
        with open(log, "w") as f:
            proc = subprocess.Popen([*RAY_CLI, "start", "--block", "--node-ip-address", "127.0.0.1",
                                     "--temp-dir", str(self.root / f"n{len(self.nodes)}"), *args],
                                    stdout=f, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.nodes.append(proc)
        self.logs.append(log)
        deadline = time.monotonic() + timeout
        while READY not in log.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ray node did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)

    def worker_pids(self, method: str) -> list[int]:
        """Processes of this cluster running `ray::SegWorker.<method>` right now."""
        return [pid for pid, title in self._processes().items()
                if title.startswith(f"ray::SegWorker.{method}")]

    def _processes(self) -> dict[int, str]:
        """pid -> title of every process descending from a node (workers have their own groups)."""
        parents, titles = {}, {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                    parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
                    titles[int(entry.name)] = (entry / "cmdline").read_bytes().split(b"\0")[0].decode()
                except (OSError, ValueError, IndexError):
                    continue
        roots, found = {p.pid for p in self.nodes}, {}
        for pid in parents:
            up = pid
            while up in parents and up not in roots and up > 1:
                up = parents[up]
            if up in roots:
                found[pid] = titles[pid]
        return found

    def stop(self) -> None:
        """SIGTERM each node's process group, SIGKILL what is left after a few seconds."""
        workers = set(self._processes()) - {p.pid for p in self.nodes}
        for proc in self.nodes:
            _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 4
        for proc in self.nodes:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
        for pid in workers:  # in their own process groups; normally gone with their node
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def start_cluster(cpus_per_node: int = 1) -> Cluster:
    """A head and a second node, `cpus_per_node` CPUs each, on 127.0.0.1."""
    # Short paths: Ray's unix sockets live under the temp dir (108-byte limit).
    cluster = Cluster(Path(tempfile.mkdtemp(prefix="rs_ray")))
    port = free_port()
    cluster.address = f"127.0.0.1:{port}"
    try:
        cluster.start_node("--head", "--port", str(port), "--num-cpus", str(cpus_per_node),
                           "--include-dashboard", "false", "--disable-usage-stats",
                           "--ray-client-server-port", str(free_port()))
        cluster.start_node("--address", cluster.address, "--num-cpus", str(cpus_per_node))
    except BaseException:
        cluster.stop()
        raise
    return cluster
