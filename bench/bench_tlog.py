"""The hub's Merkle tree (sighub.hub._tlog) at scale, and the client's verification.

Target (issue 10): an inclusion proof at 10,000,000 leaves served in <= 1 ms p99.  Builds
the tree (batched appends, synchronous=OFF), then times, on a reader connection as the
hub serves them, proofs and roots at the full size and at past sizes, the client's
verification, and a member's Frontier over a whole sync.  Each figure stands beside a
same-run baseline: one indexed point lookup in the same table, one SHA-256 node hash,
plain inserts of the same rows.

Run: ``.venv/bin/python bench/bench_tlog.py [--leaves 10000000]``.  Needs ~90 bytes of
temporary disk per leaf (0.9 GB at the default).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from sighub.client._local import transaction  # noqa: E402
from sighub.client._merkle import (  # noqa: E402
    Frontier,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from sighub.hub._tlog import Tlog  # noqa: E402

TLOG = Tlog()


def leaf(i: int) -> bytes:
    """The hash of synthetic leaf ``i`` (a stand-in for an envelope's bytes)."""
    return leaf_hash(b"envelope-" + i.to_bytes(8, "big"))


def quantiles(times: tuple[list[int], list[int]]) -> str:
    """p50 and p99 of wall time, and p99 of the thread's CPU time: on a shared machine a
    call the scheduler preempts counts its wait in wall time only."""
    wall, cpu = sorted(times[0]), sorted(times[1])
    p50, p99 = len(wall) // 2, min(len(wall) - 1, len(wall) * 99 // 100)
    return (
        f"p50 {wall[p50] / 1000:7.1f} us   p99 {wall[p99] / 1000:7.1f} us"
        f"   (CPU p99 {cpu[p99] / 1000:6.1f} us)"
    )


def timed(
    count: int, prepare: Callable[[random.Random], tuple[Any, ...]], call: Callable[..., object]
) -> tuple[list[int], list[int]]:
    """Wall and CPU nanoseconds of ``count`` calls of ``call``, each with arguments
    ``prepare`` draws (outside the timing)."""
    rng = random.Random(10)
    wall, cpu = [], []
    for _ in range(count):
        args = prepare(rng)
        start, start_cpu = time.perf_counter_ns(), time.thread_time_ns()
        call(*args)
        cpu.append(time.thread_time_ns() - start_cpu)
        wall.append(time.perf_counter_ns() - start)
    return wall, cpu


def build(conn: sqlite3.Connection, n: int, batch: int) -> float:
    """Append ``n`` leaves in transactions of ``batch``; returns seconds spent appending."""
    spent = 0.0
    for start in range(0, n, batch):
        hashes = [leaf(i) for i in range(start, min(n, start + batch))]
        t = time.perf_counter()
        with transaction(conn):
            TLOG.append(conn, hashes)
        spent += time.perf_counter() - t
        if start // batch % 20 == 19:
            print(f"  ... {start + len(hashes):,} leaves", flush=True)
    return spent


def plain_inserts(conn: sqlite3.Connection, n: int, batch: int) -> tuple[int, float]:
    """Baseline: the rows the first ``n`` leaves make, precomputed, inserted into a plain
    table of the same shape.  Returns (rows, seconds)."""
    conn.execute("CREATE TABLE plain (id INTEGER PRIMARY KEY, hash BLOB NOT NULL)")
    frontier = Frontier()
    rows: list[tuple[int, bytes]] = []
    for i in range(n):
        rows.extend((len(rows), h) for h in frontier.append(leaf(i)))
    t = time.perf_counter()
    for start in range(0, len(rows), 2 * batch):
        with transaction(conn):
            conn.executemany("INSERT INTO plain VALUES (?, ?)", rows[start : start + 2 * batch])
    spent = time.perf_counter() - t
    conn.execute("DROP TABLE plain")
    return len(rows), spent


def serving(reader: sqlite3.Connection, n: int, k: int) -> None:
    """Proofs and roots as the hub serves them, beside one indexed point lookup."""
    rows = 2 * n - n.bit_count()

    def past(r: random.Random) -> int:
        return r.randint(1, n)

    def leaf_in_past(r: random.Random) -> tuple[Any, ...]:
        size = past(r)
        return reader, r.randrange(size), size

    def two_past(r: random.Random) -> tuple[Any, ...]:
        a, b = sorted((past(r), past(r)))
        return reader, a, b

    lookup = "SELECT hash FROM tlog_nodes WHERE id = ?"
    print(f"\nserving (reader connection), {k:,} calls each:")
    figures = {
        "inclusion proof, full size": timed(
            k, lambda r: (reader, r.randrange(n), n), TLOG.inclusion_proof
        ),
        "inclusion proof, past size": timed(k, leaf_in_past, TLOG.inclusion_proof),
        "consistency proof, past -> full": timed(
            k, lambda r: (reader, past(r), n), TLOG.consistency_proof
        ),
        "consistency proof, past -> past": timed(k, two_past, TLOG.consistency_proof),
        "root, past size": timed(k, lambda r: (reader, past(r)), TLOG.root),
        "  baseline: one indexed lookup": timed(
            k, lambda r: ((r.randrange(rows),),), lambda a: reader.execute(lookup, a).fetchone()
        ),
    }
    for name, ns in figures.items():
        print(f"  {name:34} {quantiles(ns)}")


def verifying(reader: sqlite3.Connection, n: int, k: int) -> None:
    """The client's checks of served proofs, beside one SHA-256 node hash."""
    print(f"\nclient verification, {k:,} calls each:")
    rng = random.Random(11)
    full_root = TLOG.root(reader, n)
    inclusions, consistencies = [], []
    for _ in range(k):
        i = rng.randrange(n)
        inclusions.append((i, n, leaf(i), TLOG.inclusion_proof(reader, i, n), full_root))
        a, b = sorted((rng.randint(1, n), rng.randint(1, n)))
        proof = TLOG.consistency_proof(reader, a, b)
        consistencies.append((a, b, TLOG.root(reader, a), TLOG.root(reader, b), proof))
    node = b"\x01" + leaf(0) + leaf(1)
    figures = {
        "verify_inclusion": timed(k, lambda r: r.choice(inclusions), verify_inclusion),
        "verify_consistency": timed(k, lambda r: r.choice(consistencies), verify_consistency),
        "  baseline: one SHA-256 node hash": timed(
            k, lambda r: (node,), lambda b: hashlib.sha256(b).digest()
        ),
    }
    for name, ns in figures.items():
        print(f"  {name:34} {quantiles(ns)}")
    hashes = sum(len(c[3]) for c in inclusions) / k
    print(f"  (inclusion proofs hold {hashes:.1f} hashes on average)")


def syncing(reader: sqlite3.Connection, n: int) -> None:
    """A member's Frontier over all the leaf hashes of a sync, beside one SHA-256 each."""
    sync = min(n, 1_000_000)
    hashes = [leaf(i) for i in range(sync)]
    t = time.perf_counter()
    frontier = Frontier()
    frontier.extend(hashes)
    synced_root = frontier.root()
    spent = time.perf_counter() - t
    assert synced_root == TLOG.root(reader, sync)
    t = time.perf_counter()
    for h in hashes:
        hashlib.sha256(h).digest()
    base = time.perf_counter() - t
    print(
        f"\nmember's Frontier over a sync of {sync:,} leaf hashes: {spent:.2f} s"
        f" ({sync / spent:,.0f} leaves/s); baseline, one SHA-256 per leaf in the same"
        f" loop: {base:.2f} s"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--leaves", type=int, default=10_000_000)
    ap.add_argument("--samples", type=int, default=5_000, help="timed calls per figure")
    ap.add_argument("--batch", type=int, default=100_000, help="leaves per append")
    ap.add_argument("--dir", type=Path, default=None, help="where the database goes")
    ap.add_argument("--mmap", type=int, default=0, help="the reader's mmap_size, in bytes")
    args = ap.parse_args()
    n, k = args.leaves, args.samples
    print(f"python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, {n:,} leaves")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        db = Path(tmp) / "tlog.db"
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")  # build only; the hub commits with FULL
        TLOG.create_tables(conn)
        spent = build(conn, n, args.batch)
        rows = 2 * n - n.bit_count()
        print(
            f"append: {n / spent:,.0f} leaves/s ({rows / spent:,.0f} rows/s, batches of"
            f" {args.batch:,}, leaf hashing excluded); {db.stat().st_size / n:.0f} bytes/leaf"
        )
        base_rows, base_spent = plain_inserts(conn, min(n, 1_000_000), args.batch)
        print(f"  baseline, plain inserts of the same rows: {base_rows / base_spent:,.0f} rows/s")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()

        reader = sqlite3.connect(db, isolation_level=None)  # as the hub's readers open it
        reader.execute(f"PRAGMA mmap_size={args.mmap}")
        assert TLOG.size(reader) == n
        serving(reader, n, k)
        verifying(reader, n, k)
        syncing(reader, n)
        reader.close()


if __name__ == "__main__":
    main()
