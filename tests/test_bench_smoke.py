"""The one-core benchmark scripts run end to end at tiny sizes and print their figures (the
figures themselves are machine-dependent and judged in bench/RESULTS.md, not here)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_bench_machine_prints_the_calibration() -> None:
    out = _run("bench_machine.py", "--quick")
    assert re.search(r"^machine: .+, \d+ cores, python 3\.\d+.*; load [\d.]+ ", out, re.M), out
    for what in ("digests/s", "rows/s", "commits/s", "ms median"):
        line = next(x for x in out.splitlines() if what in x)
        assert re.search(r"\d", line.split(":")[-1]), line


def test_bench_match_prints_the_ratio_and_the_cold_and_warm_figures() -> None:
    pytest.importorskip("ahocorasick")
    out = _run("bench_match.py", "--quick")
    ratio = re.search(r"1,000 keywords: sighub +[\d,]+ texts/s, .* ratio (\d+\.\d+)", out)
    assert ratio and float(ratio.group(1)) > 0, out
    for name in ("canonicalize + extract + blind", "matcher, 1,000 keywords"):
        assert re.search(re.escape(name) + r" +cold +[\d,]+ texts/s, warm +[\d,]+", out), out


def test_bench_reload_measures_each_canon_and_their_rss_ratio() -> None:
    out = _run("bench_reload.py", "--sizes", "500", "--canons", "1", "2")
    for canon in ("1", "2"):
        assert f"matcher with 500 indicators, canon {canon} (RSS above the" in out
    assert "reload after 1 pattern revoked" in out
    assert re.search(r"canon/2 / canon/1 steady RSS at 500: \d+\.\d\d", out), out
