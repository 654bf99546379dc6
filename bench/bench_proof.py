"""Inclusion proofs served by a real hub process whose log holds 10,000,000 leaves.

Target (issue 10): an inclusion proof at 10M leaves served in <= 1 ms p99 from the hub's
process.

Setup (not timed as publishes): a hub is initialised and a reader member enrolled through
the real flow; the hub is stopped and its log filled up to ``--leaves`` with synthetic
envelope leaves of a collaboration no member is in, through the store's own
``_append_leaves`` (leaf rows and the Merkle tree, ``--batch`` leaves per transaction,
``synchronous=OFF``).  The hub is started again (``sighub hub serve``, mTLS on
127.0.0.1, port 0) and signs its checkpoint at the full size.

Timed from this process over one channel, interleaved call by call after a warm-up:
``GetInclusionProof`` of a random leaf at the full size; ``GetCheckpoint``, the same path
through the hub without the proof (identify the caller, one hop to the writer thread, one
query); the gRPC health check, the bare round trip.  Every proof served is checked against
the signed checkpoint's root.  Then the same calls timed inside the hub's process
(``bench/hubprobe``: each handler from its start to its response, and the proof function
``TLOG.inclusion_proof`` on the writer thread), and last the proof function on the hub's
database opened as the hub opens it (``Store``), in this process, the hub stopped.

Run: ``.venv/bin/python bench/bench_proof.py [--leaves 10000000]``.  Needs ~240 bytes of
temporary disk per leaf (2.4 GB at the default), and about 3 minutes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402

from bench.bench_hub import Hub, client  # noqa: E402
from sighub.client import _leaves  # noqa: E402
from sighub.client._checkpoint import parse_checkpoint  # noqa: E402
from sighub.client._local import transaction  # noqa: E402
from sighub.client._merkle import leaf_hash, verify_inclusion  # noqa: E402
from sighub.hub._process import start_hub  # noqa: E402
from sighub.hub._store import TLOG, Store, _append_leaves  # noqa: E402

COLLAB = "sg-bulk"  # no member is in it: a reader sees these leaves as hashes only
READER = "bench-reader"
PROOF = "GetInclusionProof, random leaf at the full size"
CHECKPOINT = "baseline: GetCheckpoint (same hub path)"
HEALTH = "baseline: health check (round trip)"


def _template() -> tuple[bytes, bytes]:
    """The bytes around the SHA-256 hex of an envelope leaf of COLLAB: a leaf is then one
    hash and two concatenations (``_leaves.envelope_leaf`` takes 10 us, this 1.5)."""
    digest = hashlib.sha256(b"s3ller").hexdigest().encode()
    before, after = _leaves.envelope_leaf(COLLAB, b"s3ller").split(digest)
    return before, after


BEFORE, AFTER = _template()


def envelope(i: int) -> bytes:
    """The stand-in bytes of bulk envelope ``i``."""
    return b"bench-envelope-" + i.to_bytes(8, "big")


def bulk_leaf(i: int) -> bytes:
    return BEFORE + hashlib.sha256(envelope(i)).hexdigest().encode() + AFTER


def fill(db: Path, leaves: int, batch: int) -> tuple[int, float]:
    """Append bulk leaves until the log holds ``leaves``; returns (the log's size before,
    seconds spent)."""
    store = Store(db)
    conn = store.conn
    conn.execute("PRAGMA synchronous=OFF")  # setup only; the hub commits with FULL
    first = store.head()
    assert TLOG.size(conn) == first, "leaves and tree disagree before the fill"
    start = time.perf_counter()
    for low in range(0, leaves - first, batch):
        high = min(leaves - first, low + batch)
        rows = [("envelope", COLLAB, None, bulk_leaf(i)) for i in range(low, high)]
        assert rows[0][3] == _leaves.envelope_leaf(COLLAB, envelope(low)), "leaf template"
        with transaction(conn):
            _append_leaves(conn, rows)
        done = first + high
        spent = time.perf_counter() - start
        print(f"\r  {done:,} leaves, {spent:.0f} s", end="", flush=True)
    print()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert store.head() == TLOG.size(conn) == leaves
    store.close()
    return first, time.perf_counter() - start


def percentiles(ns: list[int]) -> str:
    s = sorted(ns)
    at = [s[min(len(s) - 1, len(s) * q // 100)] / 1000 for q in (50, 90, 99)]
    return f"p50 {at[0]:7.1f} us   p90 {at[1]:7.1f} us   p99 {at[2]:7.1f} us"


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def over_grpc(address: str, data: Path, n: int, first: int, warmup: int, k: int) -> None:
    """Client-observed wall time of proofs beside the two baselines, interleaved."""
    hub = client(data, address)
    health = health_pb2_grpc.HealthStub(hub.channel)
    note = hub.checkpoint()
    checkpoint = parse_checkpoint(note.decode().split("\n\n", 1)[0] + "\n")
    assert checkpoint.size == n, f"the hub's checkpoint is at {checkpoint.size}, not {n}"
    rng = random.Random(10)

    def proof() -> None:
        i = rng.randrange(first, n)
        start = time.perf_counter_ns()
        hashes = hub.inclusion_proof(i, n)
        times[PROOF].append(time.perf_counter_ns() - start)
        verify_inclusion(i, n, leaf_hash(bulk_leaf(i - first)), hashes, checkpoint.root)

    def timed(name: str, call: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            start = time.perf_counter_ns()
            call()
            times[name].append(time.perf_counter_ns() - start)

        return run

    calls = [
        proof,
        timed(CHECKPOINT, hub.checkpoint),
        timed(HEALTH, lambda: health.Check(health_pb2.HealthCheckRequest(), timeout=30)),
    ]
    times: dict[str, list[int]] = {}
    for rounds, what in ((warmup, "warm-up"), (k, "timed")):
        times = {PROOF: [], CHECKPOINT: [], HEALTH: []}
        print(f"  {what}: {rounds:,} rounds, load before {load()}", flush=True)
        for _ in range(rounds):
            for call in calls:
                call()
    print(f"  load after: {load()}")
    print(f"\nover gRPC (mTLS, loopback), client wall time, {k:,} calls each, interleaved:")
    for name, ns in times.items():
        print(f"  {name:48} {percentiles(ns)}")
    p50 = {name: sorted(ns)[len(ns) // 2] / 1e3 for name, ns in times.items()}
    p99 = sorted(times[PROOF])[k * 99 // 100] / 1e3
    print(
        f"  the proof's own cost, p50 of GetInclusionProof less p50 of GetCheckpoint:"
        f" {p50[PROOF] - p50[CHECKPOINT]:.1f} us; ratio of p50s"
        f" {p50[PROOF] / p50[CHECKPOINT]:.2f} (against the health check"
        f" {p50[PROOF] / p50[HEALTH]:.2f})"
    )
    print(f"  target p99 <= 1,000 us: {'meets' if p99 <= 1000 else 'ABOVE'} ({p99:.0f} us)")
    hub.close()


def start_probed_hub(data: Path, probe: Path) -> tuple[subprocess.Popen[str], str]:
    """``sighub hub serve`` with ``bench/hubprobe`` loaded: it times its handlers and
    writes the times to ``<probe>.<pid>`` when it exits."""
    saved = {key: os.environ.get(key) for key in ("PYTHONPATH", "SIGHUB_BENCH_PROBE")}
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT / "bench" / "hubprobe"), saved["PYTHONPATH"]])
    )
    os.environ["SIGHUB_BENCH_PROBE"] = str(probe)
    try:
        return start_hub(data, stderr=subprocess.DEVNULL)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def in_hub(probe: Path, k: int) -> None:
    """The hub process's own times of the last ``k`` calls (the timed ones)."""
    times = json.loads(probe.read_text())
    print(f"\ninside the hub's process (bench/hubprobe), the {k:,} timed calls:")
    for key, name in (
        ("handler GetInclusionProof", "GetInclusionProof handler, start to response"),
        ("handler GetCheckpoint", "  baseline: GetCheckpoint handler"),
        ("inclusion_proof wall", "TLOG.inclusion_proof, wall"),
        ("inclusion_proof cpu", "TLOG.inclusion_proof, CPU of the writer thread"),
    ):
        print(f"  {name:48} {percentiles(times[key][-k:])}")


def in_process(db: Path, n: int, k: int) -> None:
    """The proof function alone on the hub's database, as the hub's store opens it."""
    store = Store(db)
    rng = random.Random(11)
    wall, cpu = [], []
    for _ in range(k):
        i = rng.randrange(n)
        start, start_cpu = time.perf_counter_ns(), time.thread_time_ns()
        TLOG.inclusion_proof(store.conn, i, n)
        cpu.append(time.thread_time_ns() - start_cpu)
        wall.append(time.perf_counter_ns() - start)
    store.close()
    print(f"\nTLOG.inclusion_proof on the hub's database (Store), {k:,} calls, load {load()}:")
    print(f"  {'wall':48} {percentiles(wall)}")
    print(f"  {'CPU of the thread':48} {percentiles(cpu)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--leaves", type=int, default=10_000_000)
    ap.add_argument("--samples", type=int, default=5_000, help="timed calls per figure")
    ap.add_argument("--warmup", type=int, default=1_000, help="untimed rounds first")
    ap.add_argument("--batch", type=int, default=1_000_000, help="leaves per transaction")
    ap.add_argument("--dir", type=Path, default=None, help="where the hub's data goes")
    args = ap.parse_args()
    n = args.leaves
    print(
        f"python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, {n:,} leaves,"
        f" {os.cpu_count()} CPUs; load {load()}"
    )
    with tempfile.TemporaryDirectory(prefix="sighub-bench-", dir=args.dir) as tmp:
        root = Path(tmp)
        setup = Hub(root)
        try:
            data = setup.member(READER, "subscriber")
        finally:
            setup.stop()
        db = root / "hub" / "hub.db"
        first, spent = fill(db, n, args.batch)
        size = sum(p.stat().st_size for p in (root / "hub").iterdir() if p.is_file())
        print(
            f"fill: {n - first:,} leaves in {spent:.0f} s ({(n - first) / spent:,.0f} leaves/s,"
            f" batches of {args.batch:,}); hub data {size / 1e9:.2f} GB"
            f" ({shutil.disk_usage(root).free / 1e9:.0f} GB free)"
        )
        probe = root / "probe"
        proc, address = start_probed_hub(root / "hub", probe)
        try:
            print(f"hub pid {proc.pid} on {address}")
            over_grpc(address, data, n, first, args.warmup, args.samples)
        finally:
            proc.terminate()  # this hub, by its PID
            code = proc.wait(timeout=60)
        assert code == 0, f"the hub exited with {code}"
        in_hub(Path(f"{probe}.{proc.pid}"), args.samples)
        in_process(db, n, args.samples)


if __name__ == "__main__":
    main()
