"""Worker processes that run one named function on tasks while their parent carries on.

Each worker is ``python -m sighub.client._worker_main MODULE:FUNCTION``: it reads length-prefixed
pickled argument tuples on stdin and writes each result, in order, on stdout.  The sync
daemon checks envelopes this way (``sighub.client._verify:check_changes``, the default) and the
hub validates publishes (``sighub.hub._validate:check``, a name given at run time: this package
never imports ``hub``).  Plain subprocesses rather than ``multiprocessing``: nothing
re-imports the caller's ``__main__`` (an SDK must not require an ``if __name__ ==
"__main__"`` guard), no resource tracker is started, and a worker exits when its stdin
closes, so it never outlives its parent, even one killed with -9.  Both ends are this
package's own code; the pickles never leave the private pipe.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
from collections import deque
from concurrent.futures import Future
from pathlib import Path
from typing import IO, Any, Final

from sighub.client._errors import SighubError

__all__ = [
    "DEFAULT_TASK",
    "WorkerError",
    "WorkerExited",
    "WorkerPool",
    "read_frame",
    "write_frame",
]

DEFAULT_TASK: Final = "sighub.client._verify:check_changes"
_LENGTH: Final = struct.Struct("<Q")
# The folder that holds the sighub package: site-packages, or src/ in a checkout.
_ROOT: Final = str(Path(__file__).resolve().parents[2])


class WorkerError(SighubError):
    """A worker process failed a task (the task raised), or exited."""


class WorkerExited(WorkerError):
    """The worker process exited (killed, crashed) before answering: the task was not done,
    and may be submitted again (a new worker is started for it)."""


def write_frame(out: IO[bytes], value: object) -> None:
    write_blob(out, pickle.dumps(value, pickle.HIGHEST_PROTOCOL))


def write_blob(out: IO[bytes], blob: bytes) -> None:
    out.write(_LENGTH.pack(len(blob)))
    out.write(blob)
    out.flush()


def read_frame(inp: IO[bytes]) -> Any:
    """The next value, or None at end of input."""
    head = inp.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None
    (size,) = _LENGTH.unpack(head)
    blob = inp.read(size)
    if len(blob) < size:
        return None
    return pickle.loads(blob)  # our own worker's output, over a private pipe


class _Worker:
    """One worker process, a thread that feeds it and a thread that reads its answers, so
    that submitting never blocks (the hub submits from its event loop)."""

    def __init__(self, task: str, label: str) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [_ROOT, env.get("PYTHONPATH")]))
        # close_fds (the default): only the two pipes and the parent's stderr are inherited.
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sighub.client._worker_main", task],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        self.label = label
        self.pending: deque[Future[Any]] = deque()
        self.lock = threading.Lock()
        self.failure: str | None = None  # why the worker is gone; set once, under lock
        self.outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self.writer = threading.Thread(target=self._write, name=f"sighub-{label}-tasks")
        self.reader = threading.Thread(target=self._read, name=f"sighub-{label}-results")
        self.writer.daemon = self.reader.daemon = True
        self.writer.start()
        self.reader.start()

    @property
    def alive(self) -> bool:
        return self.failure is None and self.proc.poll() is None

    def submit(self, blob: bytes) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_running_or_notify_cancel()  # queued work cannot be withdrawn
        with self.lock:  # futures are queued in the order their tasks are written
            if self.failure is not None:
                raise WorkerExited(self.failure)
            self.pending.append(future)
            self.outbox.put(blob)
        return future

    def _write(self) -> None:
        """Write queued tasks until ``close`` (or the reader) queues None, then close stdin:
        the worker finishes what it has and exits at end of input."""
        assert self.proc.stdin is not None
        try:
            while (blob := self.outbox.get()) is not None:
                write_blob(self.proc.stdin, blob)
        except (OSError, ValueError):  # it exited: the reader fails whatever is pending
            self.proc.kill()
        finally:
            with contextlib.suppress(OSError, ValueError):
                self.proc.stdin.close()

    def _read(self) -> None:
        """Resolve the pending futures in order; if the worker dies or its output cannot
        be read, fail every pending one (the caller must never wait forever)."""
        assert self.proc.stdout is not None
        failure = "exited"
        try:
            while (frame := read_frame(self.proc.stdout)) is not None:
                ok, value = frame
                with self.lock:
                    future = self.pending.popleft()
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(
                        WorkerError(f"{self.label} worker {self.proc.pid}: task failed: {value}")
                    )
        except Exception as exc:  # reported through every pending future
            failure = f"sent unreadable output ({type(exc).__name__}: {exc})"
            self.proc.kill()
        code = self.proc.wait()
        with self.lock:
            self.failure = f"{self.label} worker {self.proc.pid} {failure} (exit code {code})"
            while self.pending:
                self.pending.popleft().set_exception(WorkerExited(self.failure))
        self.outbox.put(None)  # nothing more will be read: let the writer end

    def close(self) -> None:
        self.outbox.put(None)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(timeout=10)
        self.writer.join(timeout=10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


class WorkerPool:
    """``count`` workers running ``task`` (``MODULE:FUNCTION``), started on first use; each
    call goes to the least busy one.  A worker that exited is replaced on the next call."""

    def __init__(self, count: int, task: str = DEFAULT_TASK, label: str = "verification") -> None:
        self.count = count
        self.task = task
        self.label = label
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()

    def submit(self, *args: object) -> Future[Any]:
        """``task(*args)`` in a worker.  The future fails with ``WorkerError`` if the task
        raised, ``WorkerExited`` if the worker died first.  Raises OSError when no worker
        can be started (no interpreter, no processes left)."""
        blob = pickle.dumps(args, pickle.HIGHEST_PROTOCOL)
        with self._lock:
            self._replace_exited()
            worker = min(self._workers, key=lambda w: len(w.pending))
        return worker.submit(blob)

    def _replace_exited(self) -> None:
        exited = [w for w in self._workers if not w.alive]
        for worker in exited:
            self._workers.remove(worker)
            worker.close()  # reaped, its threads ended: it failed its pending work already
        try:
            while len(self._workers) < self.count:
                self._workers.append(_Worker(self.task, self.label))
        except OSError:
            self._close_all()  # none left half-started
            raise

    def pids(self) -> list[int]:
        with self._lock:
            return [w.proc.pid for w in self._workers]

    def close(self) -> None:
        with self._lock:
            self._close_all()

    def _close_all(self) -> None:
        for worker in self._workers:
            worker.close()
        self._workers = []
