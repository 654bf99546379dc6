"""Worker processes that check synced envelopes while the daemon writes.

Each worker is ``python -m client._worker_main``: it reads length-prefixed pickled tasks on
stdin and writes the results, in order, on stdout.  Plain subprocesses rather than
``multiprocessing``: nothing re-imports the caller's ``__main__`` (an SDK must not require
an ``if __name__ == "__main__"`` guard), and a worker exits when its stdin closes, so it
never outlives its daemon, even one killed with -9.  Both ends are this package's own code;
the pickles never leave the pipe.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import struct
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import IO, Any, Final

from client._errors import SighubError
from client._verify import Checked, Directory

__all__ = ["WorkerError", "WorkerPool", "read_frame", "write_frame"]

_LENGTH: Final = struct.Struct("<Q")
_ROOT: Final = str(Path(__file__).resolve().parent.parent)  # where the client package lives


class WorkerError(SighubError):
    """A verification worker process failed or exited."""


def write_frame(out: IO[bytes], value: object) -> None:
    blob = pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
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
    def __init__(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [_ROOT, env.get("PYTHONPATH")]))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "client._worker_main"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        self.pending: deque[Future[list[Checked]]] = deque()
        self.lock = threading.Lock()
        self.write_lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, name="sighub-verify-results", daemon=True)
        self.reader.start()

    def submit(self, task: tuple[Directory, list[tuple[int, str, bytes]]]) -> Future[list[Checked]]:
        future: Future[list[Checked]] = Future()
        assert self.proc.stdin is not None
        # Tasks are written in the order their futures are queued; the reader thread only
        # needs ``lock`` (never held while writing) to resolve them.
        with self.write_lock:
            with self.lock:
                if self.proc.poll() is not None:
                    raise WorkerError(f"verification worker {self.proc.pid} has exited")
                self.pending.append(future)
            try:
                write_frame(self.proc.stdin, task)
            except OSError as exc:
                raise WorkerError(f"verification worker {self.proc.pid}: {exc}") from None
        return future

    def _read(self) -> None:
        """Resolve the pending futures in order; if the worker dies or its output cannot
        be read, fail every pending one (the daemon must never wait forever)."""
        assert self.proc.stdout is not None
        failure = "exited"
        try:
            while (result := read_frame(self.proc.stdout)) is not None:
                with self.lock:
                    future = self.pending.popleft()
                future.set_result(result)
        except Exception as exc:  # reported through every pending future
            failure = f"sent unreadable output ({type(exc).__name__}: {exc})"
            self.proc.kill()
        code = self.proc.wait()
        with self.lock:
            while self.pending:
                self.pending.popleft().set_exception(
                    WorkerError(f"verification worker {self.proc.pid} {failure} (exit code {code})")
                )

    def close(self) -> None:
        assert self.proc.stdin is not None
        with contextlib.suppress(OSError):
            self.proc.stdin.close()  # the worker ends at end of input
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(timeout=10)


class WorkerPool:
    """``count`` workers, started on first use; each task goes to the least busy one."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._workers: list[_Worker] = []

    def submit(
        self, directory: Directory, changes: Sequence[tuple[int, str, bytes]]
    ) -> Future[list[Checked]]:
        if not self._workers:
            try:
                for _ in range(self.count):
                    self._workers.append(_Worker())
            except OSError:
                self.close()  # none left half-started
                raise
        worker = min(self._workers, key=lambda w: len(w.pending))
        return worker.submit((directory, list(changes)))

    def close(self) -> None:
        for worker in self._workers:
            worker.close()
        self._workers = []
