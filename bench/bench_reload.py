"""The matcher's memory (process RSS, native pattern databases included) and its reload
time after a one-pattern change, each beside a same-run baseline.

Targets (issue 14): with 1,000,000 indicators (1 in 10 a pattern) the matcher holds
<= 300 MB of RSS steady and <= 600 MB at its peak during a build; a reload after one
pattern indicator is added or revoked takes <= 2 s at 100,000 and at 1,000,000.  A reload
reads only the rows changed since the previous build and compiles only the small delta
pattern set; the full compile (past DELTA_MAX added patterns) is the rare slow path.
Each size runs in a fresh process over a store written beforehand, so the RSS baseline
(read just before the build) holds only the interpreter, the imports and the open store.
Run: ``.venv/bin/python bench/bench_reload.py [--million] [--sizes N ...]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench._corpus
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))  # sighub

from bench.bench_client import KEY, PUB, _pattern, store_with
from sighub.client._local import LocalStore
from sighub.client._matcher import DELTA_MAX, HAVE_HYPERSCAN, Matcher
from sighub.client._model import Form, Indicator, Kind
from sighub.wire import Blinder, now_ms


def _status(field: str) -> float:
    """A /proc/self/status memory field (VmRSS: now; VmHWM: peak since reset), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS (Linux >= 4.0)


def _new_indicator(i: int, blinded: bool, canon: str) -> Indicator:
    now = now_ms()
    return Indicator(
        id=f"indicator--{uuid.UUID(int=i, version=4)}",
        kind=Kind.KEYWORD if blinded else Kind.PAYMENT,
        form=Form.BLINDED if blinded else Form.PATTERN,
        value=Blinder(KEY, canon).value(Kind.KEYWORD, f"fresh{i}") if blinded else _pattern(i),
        collaboration="sg-csam",
        publisher=PUB,
        valid_from=now,
        valid_until=now + timedelta(days=30),
        created=now,
        modified=now,
        key_epoch=0 if blinded else None,
        canon_version=canon,
        scheme="blake2b-128" if blinded else None,
        confidence=60,
        labels=("bench",),
        description="synthetic benchmark indicator",
    )


def _timed_reload(store: LocalStore, previous: Matcher) -> tuple[Matcher, dict[str, Any]]:
    gc.collect()
    _reset_peak()
    start = time.perf_counter()
    m = Matcher.from_store(store, previous=previous)
    took = time.perf_counter() - start
    how = "; ".join(
        f"{v}: " + ("full compile" if p.full else f"delta {len(p.delta.sources) if p.delta else 0}")
        for v, p in m._patterns.items()
        if p.refs
    )
    return m, {"s": took, "how": how, "peak": _status("VmHWM")}


def _revoke(store: LocalStore, rowid: int) -> None:
    """Store the revoked next version of the indicator at ``rowid``, as a sync does."""
    (row,) = store.conn.execute("SELECT * FROM indicators WHERE rowid = ?", (rowid,))
    with store.tx() as c:  # columns 14, 15, 16: modified, revoked, seq
        store.upsert(c, [(*row[:14], row[14][:-1] + "9Z", 1, row[16] + 1, *row[17:])])


def measure(path: Path, canon: str) -> dict[str, Any]:
    """In a fresh process: build, then reload unchanged, after adding and after revoking one
    pattern indicator, after adding one blinded one (under ``canon``); RSS figures are
    relative to the RSS just before the build."""
    store = LocalStore(path)
    gc.collect()
    base = _status("VmRSS")
    out: dict[str, Any] = {"base": base}
    _reset_peak()
    start = time.perf_counter()
    m = Matcher.from_store(store)
    out["build_s"] = time.perf_counter() - start
    out["build_peak"] = _status("VmHWM") - base
    gc.collect()
    out["steady"] = _status("VmRSS") - base
    m, out["unchanged"] = _timed_reload(store, m)
    with store.tx() as c:
        store.upsert(c, [store.row(_new_indicator(10**9 + 9, False, canon), 2)])
    m, out["added"] = _timed_reload(store, m)
    _revoke(store, 10)  # row 10 is a pattern (1 in 10, the tenth)
    m, out["revoked"] = _timed_reload(store, m)
    with store.tx() as c:
        store.upsert(c, [store.row(_new_indicator(10**9 + 10, True, canon), 3)])
    m, out["blinded"] = _timed_reload(store, m)
    _revoke(store, 20)
    m, out["revoked2"] = _timed_reload(store, m)
    for key in ("unchanged", "added", "revoked", "blinded", "revoked2"):
        out[key]["peak"] -= base
    gc.collect()
    out["steady_after"] = _status("VmRSS") - base
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--million", action="store_true", help="also measure 1,000,000 indicators")
    ap.add_argument("--sizes", type=int, nargs="*", help="indicator counts (default 100,000)")
    ap.add_argument(
        "--canons",
        nargs="*",
        choices=["1", "2", "both"],
        default=["1"],
        help="the indicators' canon (issue 13: with '1 2', canon/2's RSS is also"
        " given as a ratio of canon/1's at each size, same run)",
    )
    ap.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the child process
    ap.add_argument("--added-canon", default="canon/1", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.added_canon)))
        return
    sizes = args.sizes or ([100_000, 1_000_000] if args.million else [100_000])
    engine = "hyperscan" if HAVE_HYPERSCAN else "re2"
    print(f"python {platform.python_version()} on {platform.machine()}; pattern engine {engine}"
          f"; full compile past {DELTA_MAX} added patterns", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            steady: dict[str, float] = {}
            for canon in args.canons:
                r = _run(Path(tmp) / f"m{n}-{canon}", n, canon)
                steady[canon] = r["steady"]
                _report(n, canon, r)
            if "1" in steady and "2" in steady:
                print(f"  canon/2 / canon/1 steady RSS at {n:,}: {steady['2'] / steady['1']:.2f}"
                      f" ({steady['2']:.0f} / {steady['1']:.0f} MB)  target <= 1.10: "
                      f"{'meets' if steady['2'] <= 1.10 * steady['1'] else 'ABOVE'}")  # fmt: skip


def _run(folder: Path, n: int, canon: str) -> dict[str, Any]:
    folder.mkdir()
    store_with(n, folder, canon).close()
    added = "canon/1" if canon == "1" else "canon/2"  # what the reloads add
    cmd = [sys.executable, __file__, "--measure", str(folder / "local.db"), "--added-canon", added]
    r: dict[str, Any] = json.loads(subprocess.run(cmd, check=True, stdout=subprocess.PIPE).stdout)
    for extra in ("", "-wal", "-shm"):
        Path(str(folder / "local.db") + extra).unlink(missing_ok=True)
    return r


def _verdict(value: float, target: float, applies: bool = True) -> str:
    if not applies:
        return ""
    return f"  target <= {target:g}: {'meets' if value <= target else 'ABOVE'}"


def _report(n: int, canon: str, r: dict[str, Any]) -> None:
    big = n >= 1_000_000
    base = f"RSS above the {r['base']:.0f} MB before the build"
    print(f"matcher with {n:,} indicators, canon {canon} ({base}):")
    print(
        f"  cold build {r['build_s']:.2f} s; peak during the build {r['build_peak']:.0f} MB"
        f"{_verdict(r['build_peak'], 600, big)}"
    )
    print(
        f"  steady {r['steady']:.0f} MB{_verdict(r['steady'], 300, big)}; "
        f"after 5 reloads {r['steady_after']:.0f} MB{_verdict(r['steady_after'], 300, big)}"
    )
    for key, what in [
        ("unchanged", "reload, nothing changed (baseline)"),
        ("added", "reload after 1 pattern added"),
        ("revoked", "reload after 1 pattern revoked"),
        ("blinded", "reload after 1 blinded indicator added"),
        ("revoked2", "reload after another pattern revoked"),
    ]:
        x = r[key]
        target = _verdict(x["s"], 2, key != "unchanged")
        print(f"  {what:<40} {x['s']:6.3f} s  ({x['how']}; peak {x['peak']:.0f} MB){target}")


if __name__ == "__main__":
    main()
