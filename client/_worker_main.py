"""Entry point of a verification worker process (see ``client._workers``)."""

from __future__ import annotations

import sys

from client._verify import check_changes
from client._workers import read_frame, write_frame


def _serve() -> None:
    """A worker's loop: check each task as it arrives, until the daemon closes the pipe."""
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    while (task := read_frame(inp)) is not None:
        directory, changes = task
        write_frame(out, check_changes(directory, changes))


if __name__ == "__main__":
    _serve()
