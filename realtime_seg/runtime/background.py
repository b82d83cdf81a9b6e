"""One writer thread for every output: items queued by the frame loop, written in order on a thread.

The video encoder and the PNG masks of batch both use it, so that a slow disk or encoder
overlaps with segmentation and a failed write is handled the same way everywhere: the first
error is kept, later items are dropped (the frame loop never blocks on a writer that stopped),
and the next `put` or `finish` raises it.
"""
from __future__ import annotations

import queue
import threading
from typing import Callable

_END = object()


class WriterThread:
    """Runs `work(item)` for every queued item on its own thread (started at the first item)."""

    def __init__(self, work: Callable[[object], None], name: str, queue_size: int = 4):
        self._work, self._name = work, name
        self._q: queue.Queue = queue.Queue(queue_size)
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def _run(self) -> None:
        while (item := self._q.get()) is not _END:
            if self.error is None:
                try:
                    self._work(item)
                except Exception as e:  # kept for the producer: raised by its next put or finish
                    self.error = e

    def put(self, item: object) -> None:
        """Queue an item; raises the thread's error, if one happened, instead."""
        if self.error is not None:
            raise self.error
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
        self._q.put(item)

    def finish(self) -> None:
        """Wait until every queued item is written; raises the first error."""
        self._stop()
        if self.error is not None:
            raise self.error

    def drop(self) -> None:
        """Stop at once (Ctrl-C, or a failure elsewhere): queued items are thrown away."""
        while True:
            try:
                self._q.get_nowait()
            except queue.Empty:
                break
        self._stop()

    def _stop(self) -> None:
        if self._thread is not None:
            self._q.put(_END)
            self._thread.join()  # at most the item being written
            self._thread = None
