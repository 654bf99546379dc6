"""Entry point of a worker process (see ``sighub.client._workers``):
``python -m sighub.client._worker_main [MODULE:FUNCTION]``, by default the daemon's envelope check.

Each task is a pickled argument tuple; each answer is ``(True, result)`` or, when the
function raised, ``(False, description)`` (the traceback goes to stderr, the parent's).  The
worker ends at end of input: when its parent closes the pipe or dies."""

from __future__ import annotations

import contextlib
import importlib
import os
import pickle
import signal
import sys
import traceback
from collections.abc import Callable
from typing import IO, Any

from sighub.client._workers import DEFAULT_TASK, read_frame, write_blob

USAGE_EXIT = 2


def load(spec: str) -> Callable[..., Any]:
    """The function ``spec`` (``MODULE:FUNCTION``) names; SystemExit if there is none."""
    module, sep, name = spec.partition(":")
    if not (sep and module and name):
        raise SystemExit(f"worker task {spec!r}: expected MODULE:FUNCTION")
    try:
        fn: object = getattr(importlib.import_module(module), name, None)
    except ImportError as exc:
        raise SystemExit(f"worker task {spec!r}: cannot import {module!r} ({exc})") from None
    if not callable(fn):
        raise SystemExit(f"worker task {spec!r}: {module!r} has no function {name!r}")
    return fn


def answer(fn: Callable[..., Any], args: tuple[Any, ...]) -> bytes:
    """The pickled answer to one task; a task that fails fails alone."""
    try:
        return pickle.dumps((True, fn(*args)), pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        traceback.print_exc()
        return pickle.dumps((False, f"{type(exc).__name__}: {exc}"), pickle.HIGHEST_PROTOCOL)


def serve(fn: Callable[..., Any], inp: IO[bytes], out: IO[bytes]) -> None:
    """Answer each task as it arrives, until the parent closes the pipe."""
    while (args := read_frame(inp)) is not None:
        write_blob(out, answer(fn, args))


def main(argv: list[str]) -> int:
    # Ctrl-C reaches the whole process group: the parent decides, and its exit ends us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if len(argv) > 1:
        print(f"worker: expected at most one MODULE:FUNCTION, got {argv}", file=sys.stderr)
        return USAGE_EXIT
    try:
        fn = load(argv[0] if argv else DEFAULT_TASK)
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        return USAGE_EXIT
    # Answers go out on a private copy of stdout; anything the task prints goes to stderr
    # and cannot corrupt a frame.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    with contextlib.suppress(BrokenPipeError):  # the parent is gone: nobody to answer
        serve(fn, sys.stdin.buffer, out)
    with contextlib.suppress(OSError):
        out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
