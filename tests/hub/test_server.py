"""The hub as an operator runs it: init, serve, admin commands, enrollment, health and
reflection, plaintext rules, expiry, shutdown and crash safety."""

from __future__ import annotations

import filecmp
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from sighub.client._enroll import enroll
from sighub.client._proto import admin_pb2, admin_pb2_grpc
from sighub.client._rpc import Credential, HubClient, HubRejected, open_channel
from sighub.wire import now_ms
from tests.conftest import SIGHUB
from tests.hub.conftest import ROOT, HubProcess


def test_data_directories_are_private(tmp_path: Path) -> None:
    h = HubProcess(tmp_path / "hub")
    assert oct(h.data.stat().st_mode & 0o777) == "0o700"
    assert oct((h.data / "pki").stat().st_mode & 0o777) == "0o700"
    assert oct((h.data / "pki" / "ca.key").stat().st_mode & 0o777) == "0o600"
    assert oct((h.data / "admin" / "hub.json").stat().st_mode & 0o777) == "0o600"


def test_generated_protobuf_code_is_fresh(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "proto/gen.py", str(tmp_path)], cwd=ROOT, check=True, capture_output=True
    )
    committed = ROOT / "src" / "sighub" / "client" / "_proto"
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(
        p.name
        for p in committed.iterdir()
        if p.name.endswith(("pb2.py", "pb2.pyi", "grpc.py", "grpc.pyi"))
    )
    _, mismatch, errors = filecmp.cmpfiles(tmp_path, committed, names, shallow=False)
    assert not mismatch and not errors, f"stale generated code: run 'make proto' ({mismatch})"


@pytest.fixture
def hub(tmp_path: Path) -> Any:
    h = HubProcess(tmp_path / "hub", sweep_seconds=1)
    h.start()
    yield h
    if h.proc is not None:
        h.stop()


def _channel(h: HubProcess) -> grpc.Channel:
    cred = h.admin
    return open_channel(
        Credential(cred.folder, h.address, cred.member, cred.bearer_token, cred.hub_public_key)
    )


def test_health_and_reflection(hub: HubProcess) -> None:
    with _channel(hub) as ch:
        health = health_pb2_grpc.HealthStub(ch)
        for service in ("", "sighub.v1.PublishService", "sighub.v1.SyncService"):
            resp = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert resp.status == health_pb2.HealthCheckResponse.SERVING
        refl = reflection_pb2_grpc.ServerReflectionStub(ch)
        answers = refl.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        names = {s.name for a in answers for s in a.list_services_response.service}
    assert {
        "sighub.v1.PublishService",
        "sighub.v1.SyncService",
        "sighub.v1.DirectoryService",
        "sighub.v1.AdminService",
        "grpc.health.v1.Health",
    } <= names


def test_tls_is_required_and_plaintext_is_loopback_only(hub: HubProcess, tmp_path: Path) -> None:
    # a plaintext client cannot talk to an mTLS hub
    with grpc.insecure_channel(hub.address) as ch, pytest.raises(grpc.RpcError):
        health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
    # --insecure on a non-loopback address is refused before anything listens
    bad = subprocess.run(
        [
            *SIGHUB,
            "hub",
            "serve",
            "--data",
            str(hub.data),
            "--listen",
            "0.0.0.0:0",
            "--insecure",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 1 and "only allowed on loopback" in bad.stderr
    with pytest.raises(Exception, match="loopback-only"):
        open_channel(hub.admin, insecure=True, address="10.1.2.3:7443")


def test_plaintext_loopback_with_bearer_token(tmp_path: Path) -> None:
    h = HubProcess(tmp_path / "hub")
    h.start(insecure=True)
    try:
        cred = Credential.load(h.data / "admin")
        assert (
            subprocess.run(
                [
                    *SIGHUB,
                    "admin",
                    "--cred",
                    str(h.data / "admin"),
                    "--hub",
                    h.address,
                    "--insecure",
                    "collab",
                    "add",
                    "sg-csam",
                ],
                cwd=ROOT,
                capture_output=True,
                timeout=60,
                check=False,
            ).returncode
            == 0
        )
        with pytest.raises(HubRejected) as info:  # a wrong token is refused
            bad = Credential(cred.folder, h.address, "admin", "not-the-token", cred.hub_public_key)
            HubClient(open_channel(bad, insecure=True)).key_directory()
        assert info.value.code == "UNAUTHENTICATED"
    finally:
        h.stop()


def test_enrollment_is_single_use_and_its_certificate_only_enrolls(
    hub: HubProcess, tmp_path: Path
) -> None:
    assert hub.admin_cli("collab", "add", "sg-csam") == 0
    ef = tmp_path / "m.enroll.json"
    assert (
        hub.admin_cli("member", "add", "member-x", "--roles", "subscriber", "--out", str(ef)) == 0
    )
    assert oct(ef.stat().st_mode & 0o777) == "0o600"
    doc = json.loads(ef.read_text())
    # the enrollment certificate cannot be used for anything but Enroll
    creds = grpc.ssl_channel_credentials(
        doc["ca_pem"].encode(), doc["key_pem"].encode(), doc["cert_pem"].encode()
    )
    with grpc.secure_channel(hub.address, creds) as ch, pytest.raises(HubRejected) as info:
        HubClient(ch).key_directory()
    assert info.value.code == "UNAUTHENTICATED" and "only good for Enroll" in info.value.hub_message
    enroll(ef, tmp_path / "x", address=hub.address)
    with pytest.raises(HubRejected) as again:
        enroll(ef, tmp_path / "x2", address=hub.address)
    assert again.value.code == "UNAUTHENTICATED"


def test_admin_commands_and_audit(
    hub: HubProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert hub.admin_cli("collab", "add", "sg-csam") == 0
    assert hub.admin_cli("collab", "add", "sg-csam") == 3  # exists: refused (EXIT_REFUSED)
    m = hub.member("platform-a", tmp_path)
    assert hub.admin_cli("collab", "rotate-key", "sg-csam") == 0
    assert sorted(k.epoch for k in m.client().collab_keys()) == [0, 1]
    assert hub.admin_cli("collab", "leave", "sg-csam", "platform-a") == 0
    assert m.client().collab_keys() == []
    capsys.readouterr()
    assert hub.admin_cli("member", "show", "platform-a") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["status"] == "active" and shown["collaborations"] == []
    assert shown["roles"] == ["publisher", "subscriber"] and len(shown["key_ids"]) == 1
    assert shown["created_at"].endswith("Z")  # RFC 3339, as before the wire had Timestamps
    before = hub.state()
    with hub.db() as c:
        members_before = c.execute("SELECT COUNT(*) FROM members").fetchone()[0]
    assert hub.admin_cli("member", "add", "Bad Name", "--roles", "publisher") == 3
    assert hub.admin_cli("member", "add", "y", "--roles", "superuser") == 2  # not sent
    assert hub.admin_cli("member", "show", "nobody") == 3
    assert hub.admin_cli("collab", "join", "no-such-collab", "platform-a") == 3
    assert hub.state() == before  # refused admin calls store and audit nothing
    with hub.db() as c:
        assert c.execute("SELECT COUNT(*) FROM members").fetchone()[0] == members_before
    err = capsys.readouterr().err
    assert "expected [a-z0-9-]" in err and "superuser" in err and "'nobody' does not exist" in err
    capsys.readouterr()
    assert hub.admin_cli("audit", "--member", "platform-a") == 0
    entries = json.loads(capsys.readouterr().out)["entries"]
    by_action = {e["action"]: e for e in entries}
    assert {"member.add", "member.enroll", "collab.join", "collab.leave"} <= set(by_action)
    assert by_action["member.add"]["detail"] == {"roles": ["publisher", "subscriber"]}
    assert by_action["collab.leave"]["detail"] == {"collaboration": "sg-csam"}
    assert set(by_action["member.enroll"]["detail"]) == {"key_id", "cert_serial"}
    assert [e["sequence"] for e in entries] == sorted(
        (e["sequence"] for e in entries), reverse=True
    )
    # a member without the admin role cannot administer
    stub = admin_pb2_grpc.AdminServiceStub(m.client().channel)
    with pytest.raises(grpc.RpcError) as info:
        stub.ListMembers(admin_pb2.ListMembersRequest(), timeout=10)
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    m.close()


def test_expiry_sweep_keeps_the_log(hub: HubProcess, tmp_path: Path) -> None:
    assert hub.admin_cli("collab", "add", "sg-csam") == 0
    m = hub.member("short", tmp_path)
    m.publish(m.indicators(2, valid_until=now_ms() + timedelta(seconds=2)))
    with hub.db() as c:
        assert c.execute("SELECT COUNT(*) FROM indicators").fetchone()[0] == 2
    deadline = time.time() + 15
    while time.time() < deadline:
        with hub.db() as c:
            if c.execute("SELECT COUNT(*) FROM indicators").fetchone()[0] == 0:
                break
        time.sleep(0.3)
    with hub.db() as c:
        assert c.execute("SELECT COUNT(*) FROM indicators").fetchone()[0] == 0
        assert c.execute("SELECT COUNT(*) FROM envelopes").fetchone()[0] == 1
    m.close()


def test_sigterm_closes_follow_streams_and_exits_cleanly(hub: HubProcess, tmp_path: Path) -> None:
    assert hub.admin_cli("collab", "add", "sg-csam") == 0
    m = hub.member("watcher", tmp_path, roles="subscriber")
    ended = threading.Event()

    def follow() -> None:
        try:
            for _ in m.client().sync(0, follow=True):
                pass
        except HubRejected:
            pass
        ended.set()

    threading.Thread(target=follow, daemon=True).start()
    time.sleep(0.5)
    assert hub.stop(signal.SIGTERM) == 0
    assert ended.wait(10)
    m.close()


def test_crash_during_publishes_loses_nothing_acknowledged(tmp_path: Path) -> None:
    h = HubProcess(tmp_path / "hub", publishes_per_minute=60000, burst=5000)
    h.start()
    assert h.admin_cli("collab", "add", "sg-csam") == 0
    m = h.member("crashy", tmp_path)
    envelopes = [m.envelope(m.indicators(20)) for _ in range(60)]
    acked: list[str] = []
    failed = threading.Event()

    def publisher() -> None:
        client = m.client()
        for raw in envelopes:
            try:
                acked.append(client.publish("sg-csam", raw, timeout=10).envelope_id)
            except HubRejected:
                failed.set()
                return

    t = threading.Thread(target=publisher, daemon=True)
    t.start()
    while len(acked) < 15 and t.is_alive():
        time.sleep(0.01)
    assert h.proc is not None
    os.kill(h.proc.pid, signal.SIGKILL)
    h.proc.wait(timeout=10)
    h.proc = None
    t.join(timeout=30)
    assert failed.is_set() or len(acked) == len(envelopes)
    m.close()
    h.start()
    try:
        with h.db() as c:
            stored = {r[0] for r in c.execute("SELECT id FROM envelopes")}
            n_ind = c.execute("SELECT COUNT(*) FROM indicators").fetchone()[0]
            counts = c.execute("SELECT n_indicators FROM envelopes").fetchall()
        assert set(acked) <= stored  # every acknowledged envelope survived
        assert n_ind == 20 * len(stored) and all(n == (20,) for n in counts)  # no partial one
        assert (
            len(stored) - len(acked) <= 1
        )  # at most the one in flight was committed unacknowledged
    finally:
        h.stop()


def test_publish_rate_limit_per_member(tmp_path: Path) -> None:
    h = HubProcess(tmp_path / "hub", publishes_per_minute=1, burst=2, validation_workers=0)
    h.start()
    try:
        assert h.admin_cli("collab", "add", "sg-csam") == 0
        m = h.member("eager", tmp_path)
        other = h.member("patient", tmp_path)
        m.publish(m.indicators(1))
        m.publish(m.indicators(1))
        before = h.state()
        with pytest.raises(HubRejected) as info:
            m.publish(m.indicators(1))
        assert info.value.code == "RESOURCE_EXHAUSTED" and "rate limit" in info.value.hub_message
        assert h.state() == before
        other.publish(other.indicators(1))  # limits are per member
        m.close()
        other.close()
    finally:
        h.stop()


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_a_slow_reader_does_not_make_the_hub_buffer(tmp_path: Path) -> None:
    h = HubProcess(tmp_path / "hub", publishes_per_minute=60000, burst=1000)
    h.start()
    try:
        assert h.admin_cli("collab", "add", "sg-csam") == 0
        pub = h.member("bulk", tmp_path)
        reader = h.member("sloth", tmp_path, roles="subscriber")
        for _ in range(40):  # ~45 MB of envelopes
            pub.publish(pub.indicators(1000))
        assert h.proc is not None
        before = _rss_mb(h.proc.pid)
        stream = reader.client().sync(0, batch_size=1)
        # read up to the first envelope (the log's events before it come in their own
        # batch: an envelope this size does not fit beside them), then stop reading
        first = next(b for b in stream if b.changes)
        assert first.changes
        time.sleep(3)
        grown = _rss_mb(h.proc.pid) - before
        assert grown < 25, f"hub grew by {grown:.0f} MB behind a reader that stopped reading"
        stream.close()
        pub.close()
        reader.close()
    finally:
        h.stop()
