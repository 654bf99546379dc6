"""The hub benchmark scripts run end to end at tiny sizes, so that the private store and
daemon APIs they lean on cannot drift from them unnoticed (nothing here is timed): issue
10's proofs and verified-sync ratio, the push under load, the uniform and mixed bundles,
and (where `make bench-peer` installed it) OpenTAXII beside sighub."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PEER = ROOT / "bench" / ".peer"


def _run(script: str, *args: str, code: int = 0) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == code, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


def test_bench_proof_fills_a_hub_and_serves_proofs_that_verify(tmp_path: Path) -> None:
    out = _run(
        "bench_proof.py",
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
    out = _run("bench_hub.py", "--indicators", "2000", "--daemon-ratio", "1")
    lines = [line.strip() for line in out.splitlines() if "daemon sync 1/1" in line]
    assert [line.split(":")[0].rstrip() for line in lines] == [
        "daemon sync 1/1, log checks off",
        "daemon sync 1/1, log checks on",
    ]
    assert "2,000 per run, 0 refused" in out
    assert "(best of 1): " in out and "(median of 1): " in out
    assert "CPU of the daemon's process (verification workers excluded), median: " in out


def test_bench_hub_names_its_syncs_and_measures_the_push_under_load() -> None:
    out = _run("bench_hub.py", "--indicators", "2000", "--push-rounds", "6")
    wire = r"^wire sync \(received, not verified or stored\): [\d,]+ indicators/s"
    assert re.search(wire, out, re.M), out
    assert re.search(r"^verified sync into the local store \(daemon, initial\): [\d,]+ ", out, re.M)
    idle = re.search(r"live push to 10 followers, idle, 6 publishes: p99 \d+ ms", out)
    assert idle, out
    for where in ("another", "the followers'"):
        loaded = re.search(
            r"live push to 10 followers, while 4 publishers publish ([\d,]+) indicators/s "
            rf"\(asked [\d,]+\) to {where} collaboration, (\d+) publishes: p99 \d+ ms",
            out,
        )
        assert loaded, out
        assert int(loaded.group(1).replace(",", "")) > 0 and int(loaded.group(2)) > 0
    assert out.count("0 deliveries missing") == 3, out


def test_bench_hub_sets_mixed_bundles_beside_uniform_ones() -> None:
    out = _run("bench_hub.py", "--indicators", "2000", "--shapes", "1")
    for figure in ("publish", "wire sync", "verified sync"):
        assert re.search(
            rf"^  {figure} +uniform +[\d,]+ +mixed +[\d,]+ indicators/s +ratio \d+\.\d\d$",
            out,
            re.M,
        ), out


def test_bench_peer_says_why_when_opentaxii_is_not_installed(tmp_path: Path) -> None:
    out = _run("bench_peer.py", "--peer", str(tmp_path / "none"), code=2)
    assert "OpenTAXII cannot run: " in out and "make bench-peer" in out, out


@pytest.mark.skipif(not (PEER / "bin" / "gunicorn").exists(), reason="make bench-peer not run")
def test_bench_peer_sets_sighub_beside_opentaxii() -> None:
    out = _run("bench_peer.py", "--indicators", "2000", "--post", "1000", "--rounds", "1")
    assert "OpenTAXII seeded with the other 1,000 indicators" in out, out
    assert "OpenTAXII POST: " in out and "OpenTAXII pull and parse, one client" in out, out
    for target in (r"2\.5x", "40x"):
        assert re.search(rf"indicators/s: +\d+\.\dx  target >= {target}: (meets|BELOW)", out), out


def test_bench_keysync_compares_member_held_with_hub_made_keys() -> None:
    out = _run("bench_keysync.py", "--indicators", "2000", "--rounds", "1", "--unwraps", "200")
    assert "published 2,000 indicators into hub-keys" in out
    assert "published 2,000 indicators into member-keys" in out
    assert re.search(r"round 1/1 member-keys: [\d,]+ indicators/s \(2,000\)", out)
    assert re.search(r"verified sync, median of 1: member-held keys [\d,]+/s, hub-made", out)
    assert re.search(r"match, 1 KB texts, median of 1: .* ratio \d\.\d\d", out)
    assert "same-run baseline Ed25519 verify p50" in out


def test_bench_relay_times_a_catch_up_and_the_push_over_two_hops() -> None:
    out = _run("bench_relay.py", "--size", "3000", "--push-samples", "8", "--followers", "2")
    assert "member daemon's verified sync from A into a fresh local store: " in out
    caught = re.search(
        r"^catch-up: relay of a new peering took 3,000 indicators \(3 envelopes; outcomes "
        r"\{[^}]*'relayed': 3[,}].*; 3,000 indicators stored at B\) .*: [\d,]+ indicators/s",
        out,
        re.M,
    )
    assert caught, out
    assert re.search(r"^catch-up relay / member daemon's verified sync: .* ratio \d+\.\d\d$", out,
                     re.M), out  # fmt: skip
    assert re.search(
        r"^relay memory: hub B's process after relaying 3,000: VmHWM \d+ MB", out, re.M
    )
    for hub, hops in (("industry", "own followers"), ("regional", "one relay"),
                      ("hotline", "two relays")):  # fmt: skip
        assert re.search(
            rf"^live push A -> {hub} \({hops}\), 2 followers, 8 publishes: p50 \d+ ms, p99 \d+ ms"
            r" from the publish call; 0 deliveries missing",
            out,
            re.M,
        ), out
    daemon = (
        r"^live push A -> hotline's member daemon \(two relays; verified, stored, told its sink\)"
    )
    daemon += r", 8 publishes: p50 \d+ ms, p99 \d+ ms .*; 0 deliveries missing"
    assert re.search(daemon, out, re.M), out
    for what in ("followers", "daemon"):
        assert re.search(
            rf"^live push over two hops \(hotline's {what}\) / no relay \(A's own followers\): "
            r"p99 \d+ / \d+ ms, ratio \d+\.\d; ",
            out,
            re.M,
        ), out
