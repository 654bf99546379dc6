"""The matcher's memory (process RSS, native pattern databases included) and its reload
time after a one-pattern change, each beside a same-run baseline.

Targets (issue 14): with 1,000,000 indicators (1 in 10 a pattern) the matcher holds
<= 300 MB of RSS steady and <= 600 MB at its peak during a build; a reload after one
pattern indicator is added or revoked takes <= 2 s at 100,000 and at 1,000,000.
Each size runs in a fresh process over a store written beforehand, so the RSS baseline
(read just before the build) holds only the interpreter, the imports and the open store.
Run: ``.venv/bin/python bench/bench_reload.py [--million] [--sizes N ...] [--shards K]``.
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

from bench.bench_client import PUB, _pattern, store_with
from sighub import Form, Indicator, Kind
from sighub.client._local import LocalStore
from sighub.client._matcher import HAVE_HYPERSCAN, PATTERN_SHARDS, Matcher
from sighub.wire import now_ms


def _status(field: str) -> float:
    """A /proc/self/status memory field (VmRSS: now; VmHWM: peak since reset), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS (Linux >= 4.0)


def _pattern_indicator(i: int) -> Indicator:
    now = now_ms()
    return Indicator(
        id=f"indicator--{uuid.UUID(int=i, version=4)}",
        kind=Kind.PAYMENT,
        form=Form.PATTERN,
        value=_pattern(i),
        collaboration="sg-csam",
        publisher=PUB,
        valid_from=now,
        valid_until=now + timedelta(days=30),
        created=now,
        modified=now,
        key_epoch=None,
        scheme=None,
        confidence=60,
        labels=("bench",),
        description="synthetic benchmark indicator",
    )


def _timed_reload(
    store: LocalStore, previous: Matcher, shards: int
) -> tuple[Matcher, dict[str, Any]]:
    gc.collect()
    _reset_peak()
    start = time.perf_counter()
    m = Matcher.from_store(store, previous=previous, shards=shards)
    took = time.perf_counter() - start
    return m, {"s": took, "compiled": m._patterns.compiled, "peak": _status("VmHWM")}


def measure(path: Path, shards: int, reference: bool) -> dict[str, Any]:
    """In a fresh process: build, then reload unchanged, after adding and after revoking one
    pattern indicator; RSS figures are relative to the RSS just before the build."""
    store = LocalStore(path)
    gc.collect()
    base = _status("VmRSS")
    out: dict[str, Any] = {"base": base}
    _reset_peak()
    start = time.perf_counter()
    m = Matcher.from_store(store, shards=shards)
    out["build_s"] = time.perf_counter() - start
    out["build_peak"] = _status("VmHWM") - base
    gc.collect()
    out["steady"] = _status("VmRSS") - base
    m, out["unchanged"] = _timed_reload(store, m, shards)
    added = _pattern_indicator(10**9 + 9)
    with store.tx() as c:
        store.upsert(c, [store.row(added, 2)])
    m, out["added"] = _timed_reload(store, m, shards)
    with store.tx() as c:  # revoke one of the original patterns (row 10 is the 10th)
        c.execute("UPDATE indicators SET revoked = 1 WHERE rowid = 10 AND form = 'pattern'")
    m, out["revoked"] = _timed_reload(store, m, shards)
    with store.tx() as c:  # and the one added: its shard is recompiled or masks it
        c.execute("UPDATE indicators SET revoked = 1 WHERE id = ?", (added.id,))
    m, out["revoked2"] = _timed_reload(store, m, shards)
    for key in ("unchanged", "added", "revoked", "revoked2"):
        out[key]["peak"] -= base
    gc.collect()
    out["steady_after"] = _status("VmRSS") - base
    if reference:  # today's single pattern set: every change recompiles all of it
        one = Matcher.from_store(store, shards=1)
        with store.tx() as c:
            store.upsert(c, [store.row(_pattern_indicator(10**9 + 19), 3)])
        _, out["one_set_added"] = _timed_reload(store, one, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--million", action="store_true", help="also measure 1,000,000 indicators")
    ap.add_argument("--sizes", type=int, nargs="*", help="indicator counts (default 100,000)")
    ap.add_argument("--shards", type=int, default=PATTERN_SHARDS)
    ap.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the child process
    ap.add_argument("--reference", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.shards, args.reference)))
        return
    sizes = args.sizes or ([100_000, 1_000_000] if args.million else [100_000])
    engine = "hyperscan" if HAVE_HYPERSCAN else "re2"
    print(f"python {platform.python_version()} on {platform.machine()}; pattern engine {engine}"
          f"; {args.shards} pattern shards", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            folder = Path(tmp) / f"m{n}"
            folder.mkdir()
            store_with(n, folder).close()
            cmd = [sys.executable, __file__, "--measure", str(folder / "local.db")]
            cmd += ["--shards", str(args.shards)] + (["--reference"] if n <= 100_000 else [])
            r = json.loads(subprocess.run(cmd, check=True, stdout=subprocess.PIPE).stdout)
            big = n >= 1_000_000

            def verdict(value: float, target: float, applies: bool = True) -> str:
                if not applies:
                    return ""
                return f"  target <= {target:g}: {'meets' if value <= target else 'ABOVE'}"

            base = f"RSS above the {r['base']:.0f} MB before the build"
            print(f"matcher with {n:,} indicators ({base}):")
            print(
                f"  cold build {r['build_s']:.2f} s; peak during the build {r['build_peak']:.0f} MB"
                f"{verdict(r['build_peak'], 600, big)}"
            )
            print(
                f"  steady {r['steady']:.0f} MB{verdict(r['steady'], 300, big)}; "
                f"after 4 reloads {r['steady_after']:.0f} MB"
            )
            for key, what in [
                ("unchanged", "reload, nothing changed (baseline)"),
                ("added", "reload after 1 pattern added"),
                ("revoked", "reload after 1 pattern revoked"),
                ("revoked2", "reload after the added pattern revoked"),
                ("one_set_added", "reference: 1 added, one pattern set (before)"),
            ]:
                if key in r:
                    x = r[key]
                    target = verdict(x["s"], 2, key not in ("unchanged", "one_set_added"))
                    print(f"  {what:<46} {x['s']:6.2f} s  {x['compiled']:>2} shards compiled; "
                          f"peak {x['peak']:.0f} MB{target}")  # fmt: skip


if __name__ == "__main__":
    main()
