"""The issue 10 hub benchmarks run end to end at a tiny size, so that the private store and
daemon APIs they lean on cannot drift from them unnoticed.  Nothing here is timed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, *args], check=False, cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done.stdout


def test_bench_proof_fills_a_hub_and_serves_proofs_that_verify(tmp_path: Path) -> None:
    out = _run(
        "bench/bench_proof.py",
        *("--leaves", "3000", "--batch", "1000", "--samples", "30", "--warmup", "5"),
        *("--dir", str(tmp_path)),
    )
    assert "fill: " in out and "leaves/s, batches of 1,000" in out
    assert "GetInclusionProof, random leaf at the full size  p50" in out
    assert "target p99 <= 1,000 us: " in out
    assert "inside the hub's process (bench/hubprobe), the 30 timed calls:" in out
    assert "GetInclusionProof handler, start to response     p50" in out
    assert "TLOG.inclusion_proof, CPU of the writer thread   p50" in out
    assert "TLOG.inclusion_proof on the hub's database (Store), 30 calls" in out
    assert list(tmp_path.iterdir()) == []  # its temporary hub is gone


def test_bench_hub_daemon_ratio_alternates_syncs_with_and_without_the_checks() -> None:
    out = _run("bench/bench_hub.py", "--indicators", "2000", "--daemon-ratio", "1")
    lines = [line.strip() for line in out.splitlines() if "daemon sync 1/1" in line]
    assert [line.split(":")[0].rstrip() for line in lines] == [
        "daemon sync 1/1, log checks off",
        "daemon sync 1/1, log checks on",
    ]
    assert "2,000 per run, 0 refused" in out
    assert "(best of 1): " in out and "(median of 1): " in out
    assert "CPU of the daemon's process (verification workers excluded), median: " in out
