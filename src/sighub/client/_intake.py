"""The daemon's intake: a thread reads sync batches off the stream and has each checked at
once (inline when small, in worker processes when large), so that checking runs ahead of
the writing, in stream order."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from concurrent.futures import Future
from typing import Final, cast

from sighub.client._rpc import Change, SyncBatch
from sighub.client._verify import Checked, Directory, check_changes
from sighub.client._workers import WorkerPool

__all__ = ["CheckedBatch", "Checker", "Reader", "change_args"]

log = logging.getLogger("sighub.sync")
POOL_MIN_BYTES: Final = 1 << 20  # a batch this large is checked in a worker process
# A batch, its results, and the key directory they were checked against (a later batch's
# leaves may have changed it by the time the batch is applied).
CheckedBatch = tuple[SyncBatch, list[Checked], Directory]
_END: Final = object()


def _size(changes: Sequence[Change]) -> int:
    return sum(len(c.envelope) for c in changes)


def change_args(change: Change) -> tuple[int, str, bytes]:
    return (change.sequence, change.collaboration, change.envelope)


# What a log leaf (a hash, or an event of a few hundred bytes) counts for when batches are
# joined: a stream of leaves and no envelopes is flushed like one of envelopes.
LEAF_BYTES: Final = 64


def _joined(batches: Iterator[SyncBatch]) -> Iterator[SyncBatch]:
    """The stream's batches, consecutive ones joined until they hold POOL_MIN_BYTES: the
    hub sends small messages (so that idle streams cost it little), while checking pays off
    in worker processes only for large batches.  A batch at the tail of the log (caught
    up) is passed on at once: live changes never wait for more."""
    held: list[SyncBatch] = []
    size = 0
    for batch in batches:
        held.append(batch)
        size += _size(batch.changes) + LEAF_BYTES * len(batch.leaves)
        if batch.caught_up or size >= POOL_MIN_BYTES:
            yield held[0] if len(held) == 1 else _merge(held)
            held, size = [], 0
    if held:
        yield _merge(held)


def _merge(batches: list[SyncBatch]) -> SyncBatch:
    changes = tuple(c for b in batches for c in b.changes)
    last = batches[-1]
    leaves = tuple(leaf for b in batches for leaf in b.leaves)
    head = max(b.head for b in batches)
    return SyncBatch(
        changes, last.cursor, last.caught_up, head, leaves, last.checkpoint, last.consistency
    )


class Checker:
    """Checks small batches inline and large ones in worker processes (started on first
    need: a daemon that only follows a trickle never starts them)."""

    def __init__(self, workers: int) -> None:
        self._pool = WorkerPool(workers) if workers else None

    def submit(self, directory: Directory, changes: Sequence[Change]) -> Future[list[Checked]]:
        args = [change_args(c) for c in changes]
        if self._pool is not None and _size(changes) >= POOL_MIN_BYTES:
            try:
                return self._pool.submit(directory, args)
            except OSError as exc:  # no interpreter to start: slower, not broken
                log.warning("cannot start verification workers (%s): checking in-process", exc)
                self._pool = None
        done: Future[list[Checked]] = Future()
        done.set_result(check_changes(directory, args))
        return done

    def close(self) -> None:
        """Stop the workers (new ones start on the next large batch)."""
        if self._pool is not None:
            self._pool.close()


class Reader:
    """Reads batches off the stream in a thread, submitting each for checking at once;
    ``next`` returns them checked, in stream order.  At most ``depth`` batches wait."""

    def __init__(
        self,
        batches: Iterator[SyncBatch],
        checker: Checker,
        directory: Callable[[], Directory],
        depth: int,
    ) -> None:
        self._batches = batches
        self._checker = checker
        self._directory = directory
        self._queue: queue.Queue[object] = queue.Queue(depth)
        self._held: object = None  # taken off the queue by ``ready``, not yet returned
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._feed, name="sighub-sync-reader", daemon=True)

    def __enter__(self) -> Reader:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()  # the thread ends at its next put, or when the stream is closed

    def next(self) -> CheckedBatch | None:
        """The next batch, checked (waiting for it); None at the end of the stream."""
        item = self._queue.get() if self._held is None else self._held
        self._held = None
        if item is _END:
            return None
        if isinstance(item, BaseException):
            raise item
        return self._result(item)

    def ready(self, accept: Callable[[CheckedBatch], bool], wait: float = 0.0) -> bool:
        """Whether the next batch is here (waiting up to ``wait`` seconds for it), checked
        and ``accept``-ed: ``next`` will then return it at once."""
        deadline = time.monotonic() + wait
        if self._held is None:
            try:
                self._held = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
            except queue.Empty:
                return False
        item = self._held
        if not isinstance(item, tuple):
            return False  # the end of the stream or an error: ``next`` reports it
        future = item[1]
        futures.wait([future], timeout=max(0.0, deadline - time.monotonic()))
        if not future.done() or future.exception() is not None:
            return False  # a failed check is raised by ``next``, after this commit
        return accept(self._result(item))

    @staticmethod
    def _result(item: object) -> CheckedBatch:
        batch, future, directory = cast(tuple[SyncBatch, "Future[list[Checked]]", Directory], item)
        return batch, future.result(), directory

    def _feed(self) -> None:
        end: object = _END
        try:
            for batch in _joined(self._batches):
                directory = self._directory()
                future = self._checker.submit(directory, batch.changes)
                if not self._put((batch, future, directory)):
                    return
        except BaseException as exc:  # handed to the iterating thread, which raises it
            end = exc
        self._put(end)

    def _put(self, item: object) -> bool:
        while not self._done.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False
