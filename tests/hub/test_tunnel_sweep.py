"""A hub killed with -9 leaves its tunnels' socket folders behind: the next hub that opens a
tunnel removes those of processes that are gone, and only those."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from sighub.hub._tunnel import SOCKET_PREFIX, sweep_stale


def _folder(pid: int) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"{SOCKET_PREFIX}{pid}-"))


def test_the_folders_of_gone_hubs_are_removed_and_live_ones_kept() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale, live = _folder(gone.pid), _folder(os.getpid())
    (stale / "s").write_bytes(b"")
    odd = Path(tempfile.mkdtemp(prefix=f"{SOCKET_PREFIX}notapid-"))
    try:
        sweep_stale()
        assert not stale.exists()
        assert live.exists() and odd.exists()  # this process runs; a name not ours
    finally:
        for folder in (stale, live, odd):
            if folder.exists():
                for child in folder.iterdir():
                    child.unlink()
                folder.rmdir()
