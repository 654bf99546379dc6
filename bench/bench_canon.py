"""canonicalize + extract candidates + blind, one core, on synthetic mixed-script posts.

Targets (issue 2): >= 2,000 texts/s for 1 KB texts, >= 6,000 texts/s for 280-byte posts.
Run: ``make bench`` or ``.venv/bin/python bench/bench_canon.py``.
"""

from __future__ import annotations

import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench._corpus
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))  # sighub

from bench._corpus import posts
from sighub.wire import Blinder, CollabKey

ROUNDS = 5


def run(size: int, count: int, target: float) -> None:
    texts = posts(count, size, seed=size)
    blinder = Blinder(CollabKey("sg-csam", 0, bytes(32)))
    for text in texts[: count // 10]:  # warm-up: caches as a long-running matcher has them
        blinder.text(text)
    rates = []
    candidates = 0
    for _ in range(ROUNDS):
        candidates = 0
        start = time.perf_counter()
        for text in texts:
            candidates += len(blinder.text(text).digests)
        rates.append(count / (time.perf_counter() - start))
    rate = statistics.median(rates)
    verdict = "meets" if rate >= target else "BELOW"
    print(
        f"{size:>5} B texts: {rate:8.0f} texts/s median of {ROUNDS} (min {min(rates):.0f}, "
        f"max {max(rates):.0f}); {candidates / count:.0f} candidates/text; "
        f"target {target:.0f}: {verdict}"
    )


def main() -> None:
    print(f"python {platform.python_version()} on {platform.machine()}, one core")
    run(1024, 4_000, 2_000)
    run(280, 12_000, 6_000)


if __name__ == "__main__":
    main()
