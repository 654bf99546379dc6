"""The hub's writer: one thread that runs every SQLite write (and the caller checks that go
with them) in turn, so that the hub needs no write locks and a commit sees the state its
checks read.

A single FIFO queue made a small publish wait behind every large bundle queued before it:
under load, a one-indicator publish, and the checkpoint that lets followers receive it,
queued behind a few hundred milliseconds of other members' 1,000-indicator commits.  So
jobs come in two classes.  *Prompt* jobs (checkpoints, every publish's authorization, a
small envelope's validation and commit, identification, admin changes) run before *bulk*
ones (a large envelope's commit, its validation on a hub without validation workers, the
expiry sweep); bulk jobs take turns per member, so one member's flood of large bundles
delays another member's large bundle by one of its own per turn.  Neither class starves:
after ``PROMPT_BURST`` prompt jobs in a row while a bulk job waited, that bulk job runs.

What stays: one job at a time, each commit one transaction; log sequences are assigned in
commit order, so each collaboration's order is the log's.  Only the order of *concurrent*
publishes (none acknowledged before the other was sent) can differ from their arrival
order, which no client can observe or rely on.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Final, TypeVar

__all__ = ["PROMPT_BURST", "Writer", "WriterClosed"]

T = TypeVar("T")

# Prompt jobs that may run in a row while a bulk job waits: a bulk commit then waits for at
# most this many small jobs (each about a millisecond) per turn.
PROMPT_BURST: Final = 16


class WriterClosed(RuntimeError):
    """Work submitted after shutdown began: the caller answers UNAVAILABLE (retry)."""


class Writer:
    """A one-thread executor with a prompt lane and per-member bulk lanes."""

    def __init__(self, name: str = "sighub-writer") -> None:
        self._cv = threading.Condition()
        self._prompt: deque[tuple[Future[Any], Callable[[], Any]]] = deque()
        self._bulk: OrderedDict[str, deque[tuple[Future[Any], Callable[[], Any]]]] = OrderedDict()
        self._in_a_row = 0  # prompt jobs run in a row while a bulk one waited
        self._closing = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[], T], bulk_lane: str | None = None) -> Future[T]:
        """Run ``fn`` on the writer's thread: promptly, or with ``bulk_lane`` (the member
        whose large envelope it handles) in that member's turn among the bulk jobs."""
        future: Future[T] = Future()
        with self._cv:
            if self._closing:
                raise WriterClosed("the hub's writer is shut down: no new work")
            if bulk_lane is None:
                self._prompt.append((future, fn))
            else:
                self._bulk.setdefault(bulk_lane, deque()).append((future, fn))
            self._cv.notify()
        return future

    def bulk_waiting(self) -> bool:
        """Whether a large job waits (not counting the one running)."""
        with self._cv:
            return bool(self._bulk)

    def _next(self) -> tuple[Future[Any], Callable[[], Any]] | None:
        """The next job (under the lock), or None once shut down with nothing left."""
        while True:
            if self._prompt and (not self._bulk or self._in_a_row < PROMPT_BURST):
                self._in_a_row = self._in_a_row + 1 if self._bulk else 0
                return self._prompt.popleft()
            if self._bulk:
                member, lane = self._bulk.popitem(last=False)
                job = lane.popleft()
                if lane:  # its next job after the other members' turns
                    self._bulk[member] = lane
                self._in_a_row = 0
                return job
            if self._closing:
                return None
            self._cv.wait()

    def _loop(self) -> None:
        while True:
            with self._cv:
                job = self._next()
            if job is None:
                return
            future, fn = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn()
            except BaseException as exc:  # the caller gets it, as from an executor
                future.set_exception(exc)
            else:
                future.set_result(result)

    def shutdown(self) -> None:
        """Run what is queued, then end the thread (waits for it)."""
        with self._cv:
            self._closing = True
            self._cv.notify()
        self._thread.join()
