"""The driver's loop for `batch --ray`: hand tasks to free actors, collect results, one progress bar.

A job's chunks go first (any actor, any node); when its last chunk is stored, its write task
jumps the queue. Ctrl-C asks every running task to stop at its next frame (the workers then
remove their temporaries, as locally); tasks that do not answer within `GRACE` seconds have
their actors killed and their temporaries removed here.
"""
from __future__ import annotations

import collections
import logging
import threading
import time

from ...system import progress
from .cluster_tasks import Plan, ray_reason, remove_temporaries
from .runner import Result, report_failure

log = logging.getLogger(__name__)

GRACE = 10.0  # seconds running tasks get to stop cleanly after Ctrl-C


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
