"""Benchmark-only timing probe for a hub process (``bench/bench_proof.py``).

A hub started with this folder on ``PYTHONPATH`` and ``SIGHUB_BENCH_PROBE=<prefix>`` set
times, in its own process, every ``GetInclusionProof`` and ``GetCheckpoint`` handler (from
the handler's start to its response, the writer-thread hop included; gRPC's transport and
(de)serialization excluded) and every ``Tlog.inclusion_proof`` call (wall and the
calling thread's CPU), and writes them as JSON to ``<prefix>.<pid>`` when it exits.  The
hub's code is not changed: the methods are wrapped here, before the server registers
them.  Other processes that inherit the environment (validation workers) are left alone.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import sys
import time
from typing import Any

_PREFIX = os.environ.get("SIGHUB_BENCH_PROBE")
_TIMES: dict[str, list[int]] = {}


def _dump() -> None:
    if _PREFIX and any(_TIMES.values()):
        with open(f"{_PREFIX}.{os.getpid()}", "w", encoding="utf-8") as out:
            json.dump(_TIMES, out)


def _handler(cls: Any, name: str) -> None:
    inner = getattr(cls, name)
    times = _TIMES.setdefault(f"handler {name}", [])

    @functools.wraps(inner)
    async def timed(self: Any, request: Any, context: Any) -> Any:
        start = time.perf_counter_ns()
        try:
            return await inner(self, request, context)
        finally:
            times.append(time.perf_counter_ns() - start)

    setattr(cls, name, timed)


def _function(cls: Any, name: str) -> None:
    inner = getattr(cls, name)
    wall = _TIMES.setdefault(f"{name} wall", [])
    cpu = _TIMES.setdefault(f"{name} cpu", [])

    @functools.wraps(inner)
    def timed(*args: Any) -> Any:
        start, start_cpu = time.perf_counter_ns(), time.thread_time_ns()
        try:
            return inner(*args)
        finally:
            cpu.append(time.thread_time_ns() - start_cpu)
            wall.append(time.perf_counter_ns() - start)

    setattr(cls, name, timed)


def _install() -> None:
    from sighub.hub._logservice import LogService
    from sighub.hub._tlog import Tlog

    _handler(LogService, "GetInclusionProof")
    _handler(LogService, "GetCheckpoint")
    _function(Tlog, "inclusion_proof")
    atexit.register(_dump)


# sys.argv here is ["-m", *arguments]: only `sighub hub serve` is probed.
if _PREFIX and sys.argv[1:3] == ["hub", "serve"]:
    _install()
