"""The member's sync daemon against real hubs (and one lying hub): verification, local
store, resume, revocation, expiry, crash safety."""

from __future__ import annotations

import base64
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sighub import Kind, Tlp
from sighub.client._daemon import LOCAL_DB, SyncDaemon
from sighub.client._local import LocalStore
from sighub.client._stix import blinded_pattern, build_bundle, format_time
from sighub.wire import Blinder, revoke, seal
from tests.conftest import SIGHUB
from tests.hub.conftest import ROOT, HubProcess, Member
from tests.hub.lyinghub import FakeLog, LyingHub


def _daemon(m: Member, **kw: Any) -> SyncDaemon:
    return SyncDaemon(m.data, address=m.hub.address, **kw)


def test_sync_verifies_applies_resumes_and_revokes(world: dict[str, Any]) -> None:
    pub, sub = world["pub"], world["sub"]
    first = pub.indicators(3)
    pub.publish(first)
    d = _daemon(sub)
    report = d.sync_once()
    assert not report.refused and report.applied >= 3
    ids = {i.id for i in d.store.active(datetime.now(UTC))}
    assert {i.id for i in first} <= ids
    cursor = d.store.cursor
    pub.publish([revoke(first[0], first[0].modified + timedelta(seconds=1))])
    again = d.sync_once()
    assert again.envelopes >= 1 and d.store.cursor > cursor
    active = {i.id for i in d.store.active(datetime.now(UTC))}
    assert first[0].id not in active and first[1].id in active
    status = d.store.status(datetime.now(UTC))
    assert status["revoked"] >= 1 and status["by_collaboration"].get("sg-csam", 0) >= 2
    d.close()


def test_expiry_is_enforced_locally_with_a_controlled_clock(world: dict[str, Any]) -> None:
    pub, sub = world["pub"], world["sub"]
    short = pub.indicators(1, days=2)
    pub.publish(short)
    now = [datetime.now(UTC)]
    d = _daemon(sub, clock=lambda: now[0])
    d.sync_once()
    assert short[0].id in {i.id for i in d.store.active(now[0])}
    later = now[0] + timedelta(days=3)  # offline: no hub needed to expire it
    assert short[0].id not in {i.id for i in d.store.active(later)}
    assert d.store.sweep_expired(later) >= 1
    d.close()


def test_a_lying_hub_is_caught(world: dict[str, Any], tmp_path: Path) -> None:
    pub, pub2, sub = world["pub"], world["pub2"], world["sub"]
    mine = pub.indicators(2)
    genuine = pub.envelope(mine)
    # 1. altered: one indicator's pattern changed, signature kept
    doc = json.loads(genuine)
    altered = dict(doc)
    body = json.loads(base64.b64decode(doc["payload"]))
    body["objects"][-1]["pattern"] = blinded_pattern("0" * 32)  # well-formed, not signed
    altered["payload"] = base64.b64encode(rfc8785.dumps(body)).decode()
    # 2. re-attributed: pub's bundle content re-signed with pub2's key
    theirs = pub.indicators(1)
    reattributed = seal(build_bundle(theirs[0].publisher, theirs), pub2.files.signing_key())
    # 3. forged: signed by a key nobody registered
    forged = seal(build_bundle(theirs[0].publisher, theirs), Ed25519PrivateKey.generate())
    # A hub that holds its log key logs what it serves: the log verifies, the envelopes'
    # signatures do not.  (The real log first: its leaves hold the keys members verify with.)
    fake = FakeLog.of(world["hub"])
    base = fake.size
    for raw in (genuine, rfc8785.dumps(altered), reattributed, forged):
        fake.add_envelope("sg-csam", raw)
    with LyingHub(fake, sub.client()) as lying:
        data = tmp_path / "victim"
        data.mkdir()
        for name in ("hub.json", "member.json"):
            (data / name).write_bytes((sub.data / name).read_bytes())
        (data / "hub.json").chmod(0o600)
        d = SyncDaemon(data, insecure=True, address=lying.address)
        report = d.sync_once()
        refused = {seq - base: why for seq, why in report.refused if seq > base}
        assert set(refused) == {2, 3, 4}, refused
        assert "does not verify" in refused[2]
        assert "names publisher" in refused[3]
        assert "unknown key" in refused[4]
        stored = {i.id for i in d.store.active(datetime.now(UTC))}
        assert {i.id for i in mine} <= stored and not stored & {i.id for i in theirs}
        assert d.store.cursor == base + 4 and report.log_size == base + 4
        d.close()


def test_kill_9_at_random_points_never_loses_or_doubles(tmp_path: Path) -> None:
    h = HubProcess(tmp_path / "hub", publishes_per_minute=60000, burst=5000)
    h.start()
    try:
        assert h.admin_cli("collab", "add", "sg-csam") == 0
        pub = h.member("bulk", tmp_path)
        sub = h.member("reader", tmp_path, roles="subscriber")
        # Small envelopes are checked in the daemon's process; batches of 1 MiB and more
        # (the 1,000-indicator envelopes) in its worker processes: kills land in both.
        for n in range(46):
            pub.publish(pub.indicators(1000 if n % 3 == 1 else 150))
        rng = random.Random(7)
        args = [
            *SIGHUB,
            "sync",
            "--data",
            str(sub.data),
            "--hub",
            h.address,
            "--batch-size",
            "3",
        ]
        kills = with_workers = 0
        # 20 kills, and more (up to 60) on a loaded machine until one lands with workers
        while kills < 20 or (not with_workers and kills < 60):
            proc = subprocess.Popen(
                args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            time.sleep(rng.uniform(0.3, 1.5))
            if kills >= 20 and not with_workers:  # a loaded machine: wait for the workers
                deadline = time.monotonic() + 20
                while proc.poll() is None and not _children(proc.pid):
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.05)
            if proc.poll() is not None:  # finished before the kill: start over from scratch
                (sub.data / LOCAL_DB).unlink()
                for extra in ("-wal", "-shm"):
                    Path(str(sub.data / LOCAL_DB) + extra).unlink(missing_ok=True)
                continue
            workers = _children(proc.pid)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            with_workers += bool(workers)
            _wait_gone(workers)  # a worker never outlives its daemon
        _assert_alive(h)  # the daemons were killed, never the hub
        done = subprocess.run(
            args, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0, done.stderr
        local = LocalStore(sub.data / LOCAL_DB)
        mine = {
            r[0]: (r[1], r[2])
            for r in local.conn.execute("SELECT id, modified, seq FROM indicators")
        }
        with h.db() as c:
            theirs = {
                r[0]: (r[1], r[2]) for r in c.execute("SELECT id, modified, seq FROM indicators")
            }
            head = c.execute("SELECT MAX(seq) FROM envelopes").fetchone()[0]
        differ = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))
        assert not differ, f"{len(differ)} ids differ (local {len(mine)}, hub {len(theirs)})"
        assert len(mine) == 15 * 1000 + 31 * 150
        assert with_workers > 0, "no kill hit a daemon with worker processes running"
        assert local.cursor == head
        local.close()
        pub.close()
        sub.close()
    finally:
        h.stop()


def test_follow_survives_a_hub_restart_and_follows_key_epochs(tmp_path: Path) -> None:
    h = HubProcess(tmp_path / "hub")
    h.start()
    follow: subprocess.Popen[str] | None = None
    try:
        assert h.admin_cli("collab", "add", "sg-csam") == 0
        pub = h.member("pub", tmp_path)
        sub = h.member("sub", tmp_path, roles="subscriber")
        before = pub.indicators(2)
        pub.publish(before)
        follow = subprocess.Popen(
            [*SIGHUB, "sync", "--data", str(sub.data), "--hub", h.address, "--follow"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        _wait_applied(sub.data, before)
        port = h.port
        h.stop()  # the daemon's stream ends; it retries with backoff
        time.sleep(1.0)
        h.start(port=port)
        after = pub.indicators(2)
        pub.publish(after)
        _wait_applied(sub.data, after)
        # A key rotation while the daemon follows: the first indicator under the new
        # epoch makes it fetch the new key, without which the indicator could never match.
        assert h.admin_cli("collab", "rotate-key", "sg-csam") == 0
        rotated = pub.indicators(1)
        pub.publish(rotated)
        _wait_applied(sub.data, rotated)
        local = LocalStore(sub.data / LOCAL_DB)
        assert (rotated[0].collaboration, rotated[0].key_epoch) in {
            (c, e) for c, e, _ in local.collab_keys()
        }
        local.close()
        follow.send_signal(signal.SIGTERM)
        _, err = follow.communicate(timeout=30)
        assert follow.returncode == 0, err
        assert "sync interrupted code=UNAVAILABLE" in err  # the restart, logged, retried
        pub.close()
    finally:
        if follow is not None and follow.poll() is None:
            follow.kill()
            follow.wait()
        h.stop()


def test_follow_recovers_when_a_verification_worker_dies(tmp_path: Path) -> None:
    h = HubProcess(tmp_path / "hub")
    h.start()
    stop = threading.Event()
    d: SyncDaemon | None = None
    try:
        assert h.admin_cli("collab", "add", "sg-csam") == 0
        pub = h.member("pub", tmp_path)
        sub = h.member("sub", tmp_path, roles="subscriber")
        d = _daemon(sub, workers=1)
        follower = threading.Thread(target=d.follow, args=(stop,), daemon=True)
        follower.start()
        big = pub.indicators(1500)  # over 1 MiB: checked in the worker process
        pub.publish(big)
        _wait_applied(sub.data, big)
        pool = d._checker._pool
        assert pool is not None and pool._workers
        os.kill(pool._workers[0].proc.pid, signal.SIGKILL)  # e.g. the kernel's OOM killer
        again = pub.indicators(1500)
        pub.publish(again)
        _wait_applied(sub.data, again)  # logged, a new worker started, nothing lost
        pub.close()
    finally:
        stop.set()
        if d is not None:
            d.interrupt()
            follower.join(timeout=30)
            d.close()
        h.stop()


def _wait_applied(data: Path, indicators: list[Any], timeout: float = 30.0) -> None:
    want = {i.id for i in indicators}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        local = LocalStore(data / LOCAL_DB)
        have = {r[0] for r in local.conn.execute("SELECT id FROM indicators")}
        local.close()
        if want <= have:
            return
        time.sleep(0.1)
    raise AssertionError(f"{sorted(want - have)} not applied within {timeout} s")


def _assert_alive(h: HubProcess) -> None:
    """Fail with the hub's exit status and the end of its log if it has stopped."""
    assert h.proc is not None
    code = h.proc.poll()
    if code is not None:
        log = h.proc.stderr.read() if h.proc.stderr is not None else ""
        raise AssertionError(f"the hub exited with {code}; its log ends: {log[-4000:]}")


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            mine = int(fields[1]) == pid
            cmdline = (stat.parent / "cmdline").read_bytes() if mine else b""
        except OSError:
            continue  # the process ended while we looked
        if b"sighub.client._worker_main" in cmdline:
            found.append(int(stat.parent.name))
    return found


def _wait_gone(pids: list[int], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in alive if Path(f"/proc/{p}").exists() and not _zombie(p)]
    assert not alive, f"processes {alive} outlived the killed daemon"


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.fixture(autouse=True)
def _quiet_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("CRITICAL", logger="sighub.sync")


def test_match_command_scans_stdin_and_survives_bad_lines(world: dict[str, Any]) -> None:
    pub, sub = world["pub"], world["sub"]
    key = pub.key()
    tell = pub.indicators(
        1,
        value=Blinder(key).value(Kind.KEYWORD, "menu in bio"),
        tlp=Tlp.RED,
        labels=("menu-pointer",),
    )
    pub.publish(tell)
    d = _daemon(sub)
    d.sync_once()
    d.close()
    lines = "\n".join(
        [
            json.dumps({"id": "a", "text": "ＭＥＮＵ ｉｎ ｂｉｏ 🧀"}),
            "this is not json",
            json.dumps({"id": "b", "text": "menus in bios"}),
            json.dumps({"text": "no id"}),
        ]
    )
    res = subprocess.run(
        [*SIGHUB, "match", "--data", str(sub.data)],
        input=lines,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    out = [json.loads(x) for x in res.stdout.splitlines()]
    assert res.returncode == 2  # some lines were bad: EXIT_BAD_INPUT
    assert out[0]["id"] == "a"
    hit = next(m for m in out[0]["matches"] if m["indicator"] == tell[0].id)
    assert (
        hit["text"] == "ＭＥＮＵ ｉｎ ｂｉｏ"
        and hit["span"] == [0, 11]
        and hit["publisher"] == "pub"
    )
    # What detection code needs to honour the sharing terms: TLP, expiry, labels.
    assert hit["tlp"] == "red" and hit["labels"] == ["menu-pointer"]
    assert hit["valid_until"] == format_time(tell[0].valid_until)
    assert [h["indicator"] for h in hit["hits"]] == [tell[0].id]
    assert hit["hits"][0]["tlp"] == "red" and hit["hits"][0]["publisher"] == "pub"
    assert out[1]["line"] == 2 and "error" in out[1]
    assert out[2] == {"id": "b", "matches": []}
    assert out[3]["line"] == 4


def test_the_demo_runs_end_to_end() -> None:
    res = subprocess.run(
        [sys.executable, "examples/demo.py"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    assert "the revoked keyword no longer fires" in res.stdout
    assert "hub log verified: signed checkpoint of size" in res.stdout
    assert "platform A's daemon refused the sync: hub log alarm (foreign key)" in res.stdout
    assert "`sighub status` for platform A exits 5" in res.stdout
    assert "hub exited with 0" in res.stdout


def test_publish_command(world: dict[str, Any]) -> None:
    pub, sub = world["pub"], world["sub"]
    args = [
        *SIGHUB,
        "publish",
        "examples/indicators.csv",
        "--collab",
        "sg-csam",
        "--hub",
        pub.hub.address,
    ]
    ok = subprocess.run(
        [*args, "--data", str(pub.data)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert "accepted: 12 indicators" in ok.stdout
    before = pub.hub.state()
    refused = subprocess.run(
        [*args, "--data", str(sub.data)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 3 and "PERMISSION_DENIED" in refused.stderr  # EXIT_REFUSED
    assert pub.hub.state() == before
