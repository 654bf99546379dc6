"""Per-call timings for the micro-benchmarks (one definition, so that every script warms
up and measures the same way)."""

from __future__ import annotations

import time
from collections.abc import Callable


def timings(count: int, work: Callable[[], object]) -> list[float]:
    """Milliseconds per call, sorted, after a warm-up of a tenth of ``count``."""
    for _ in range(max(1, count // 10)):
        work()
    out = []
    clock = time.perf_counter_ns
    for _ in range(count):
        start = clock()
        work()
        out.append((clock() - start) / 1e6)
    return sorted(out)
