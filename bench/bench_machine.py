"""Calibration: what this machine does with the primitives sighub's figures rest on, so a
reader can place its other figures (``make bench`` prints this first).

- keyed BLAKE2b-128 digests/s of short words, one core: the matcher's and the blinder's
  unit of work;
- SQLite inserts/s with ``synchronous=FULL`` in WAL mode: rows committed 1,000 per
  transaction (the stores' bulk path) and one row per transaction (a commit's floor);
- the disk's fsync time: 4 KiB appended then ``os.fsync``, in the temporary folder (set
  TMPDIR to measure another disk).

Run: ``.venv/bin/python bench/bench_machine.py [--quick]``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load() -> str:
    """The 1/5/15-minute load averages, for the record beside each figure."""
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f}"


def machine_line() -> str:
    return (
        f"{cpu_model()}, {os.cpu_count()} cores, python {platform.python_version()} "
        f"on {platform.machine()}; {load()}"
    )


def blake2b_rate(seconds: float) -> float:
    """Keyed BLAKE2b-128 digests/s of 1-2 syllable words, from a copied keyed state (the
    blinder's way: the key is absorbed once)."""
    base = hashlib.blake2b(key=bytes(range(32)), digest_size=16, person=b"bench")
    words = [f"w{i % 977}ka".encode() for i in range(1000)]
    done = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for w in words:
            h = base.copy()
            h.update(w)
            h.digest()
        done += len(words)
    return done / (time.perf_counter() - start)


def _db(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (id TEXT PRIMARY KEY, body BLOB NOT NULL)")
    return conn


def sqlite_rates(folder: Path, rows: int, commits: int) -> tuple[float, float]:
    """(rows/s committed 1,000 per transaction, transactions/s of one row each)."""
    conn = _db(folder / "bulk.db")
    body = bytes(200)
    keys = [  # made before the clock starts: the figure is SQLite's
        [(hashlib.md5(f"{b}.{i}".encode()).hexdigest(), body) for i in range(1000)]
        for b in range(rows // 1000)
    ]
    start = time.perf_counter()
    for chunk in keys:
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO t VALUES (?, ?)", chunk)
        conn.execute("COMMIT")
    bulk = rows / (time.perf_counter() - start)
    conn.close()
    conn = _db(folder / "single.db")
    start = time.perf_counter()
    for i in range(commits):
        conn.execute("INSERT INTO t VALUES (?, ?)", (str(i), body))  # autocommit: one each
    single = commits / (time.perf_counter() - start)
    conn.close()
    return bulk, single


def filesystem(path: Path) -> str:
    """The device and type of the mount holding ``path`` (from /proc/mounts)."""
    best = ("", "?", "?")
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            dev, mount, kind = line.split()[:3]
            inside = str(path.resolve()).startswith(mount.rstrip("/") + "/")
            if inside and len(mount) >= len(best[0]):
                best = (mount, dev, kind)
    except OSError:
        pass
    return f"{best[2]} on {best[1]}"


def fsync_ms(folder: Path, count: int) -> tuple[float, float]:
    """(median, max) milliseconds of 4 KiB appended then fsync'ed."""
    times = []
    fd = os.open(folder / "fsync.bin", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        block = os.urandom(4096)
        for _ in range(count):
            os.write(fd, block)
            start = time.perf_counter()
            os.fsync(fd)
            times.append((time.perf_counter() - start) * 1000)
    finally:
        os.close(fd)
    return statistics.median(times), max(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="short runs (a smoke test)")
    args = ap.parse_args()
    quick = args.quick
    print(f"machine: {machine_line()}")
    rate = blake2b_rate(0.05 if quick else 2.0)
    print(f"  keyed BLAKE2b-128, one core:            {rate:>12,.0f} digests/s")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        bulk, single = sqlite_rates(folder, 2_000 if quick else 200_000, 5 if quick else 200)
        med, worst = fsync_ms(folder, 5 if quick else 100)
        print(f"  SQLite WAL synchronous=FULL, 1,000/tx:  {bulk:>12,.0f} rows/s")
        print(f"  SQLite WAL synchronous=FULL, 1/tx:      {single:>12,.0f} commits/s")
        where = f"{tempfile.gettempdir()}, {filesystem(folder)}"
        print(f"  disk fsync of 4 KiB ({where}): {med:.3f} ms median, {worst:.3f} ms max")


if __name__ == "__main__":
    main()
