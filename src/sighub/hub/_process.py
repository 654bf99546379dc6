"""Running a hub as a child process (the demo, tests and benchmarks do; so can a platform's
own integration tests): start ``sighub hub serve`` and learn the port it bound."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sighub.client._errors import SighubError

__all__ = ["start_hub"]

_ROOT = str(Path(__file__).resolve().parents[2])  # the folder holding the sighub package


def start_hub(
    data: Path, listen: str = "127.0.0.1:0", insecure: bool = False, stderr: int | None = None
) -> tuple[subprocess.Popen[str], str]:
    """Start a hub serving ``data``; return the process and the address it listens on."""
    args = [
        sys.executable,
        "-m",
        "sighub.hub._cli",
        "hub",
        "serve",
        "--data",
        str(data),
        "--listen",
        listen,
    ]
    if insecure:
        args.append("--insecure")
    # The child runs this same sighub package, installed or from a checkout's src/.
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_ROOT, env.get("PYTHONPATH")]))
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on " not in line:
        proc.kill()
        proc.wait()
        raise SighubError(f"hub in {data} did not start: {line.strip() or 'no output'}")
    return proc, line.split("listening on ")[1].split()[0]
