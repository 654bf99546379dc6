"""Running a hub over time: one hub per data directory and per port, SIGHUP reloads,
backup and restore, certificate renewal and expiry warnings.  Real hub processes on
127.0.0.1, real files."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import signal
import socket
import sqlite3
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from sighub.client._enroll import check_client_certificate
from sighub.client._keys import read_secret, write_secret
from sighub.client._rpc import Credential, HubClient, HubRejected, open_channel
from sighub.client._tls import key_pem, make_csr, new_tls_key, write_credential
from sighub.hub._backup import DataLock
from sighub.hub._cli import main as sighub
from sighub.hub._pki import issue_client, load_server_pair, server_cert
from tests.conftest import SIGHUB
from tests.hub.conftest import HubProcess, Member


class LogTail:
    """A hub's stderr, read by a thread (so the pipe never fills) into lines a test can
    wait for."""

    def __init__(self, stream: IO[str] | None) -> None:
        assert stream is not None
        self.lines: list[str] = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()

    def mark(self) -> int:
        with self.cond:
            return len(self.lines)

    def wait_for(self, text: str, after: int = 0, timeout: float = 15) -> str:
        def found() -> str | None:
            return next((ln for ln in self.lines[after:] if text in ln), None)

        with self.cond:
            assert self.cond.wait_for(found, timeout), f"no {text!r} in {self.lines[after:]}"
            return found() or ""


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubProcess]:
    h = HubProcess(tmp_path / "hub", publishes_per_minute=60000, burst=1000)
    h.start()
    yield h
    if h.proc is not None:
        h.stop()


def _serve(data: Path, listen: str = "127.0.0.1:0") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SIGHUB, "hub", "serve", "--data", str(data), "--listen", listen],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _head(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
        return int(c.execute("SELECT COALESCE(MAX(seq), 0) FROM leaves").fetchone()[0])


def _serving(h: HubProcess) -> None:
    assert h.proc is not None and h.proc.poll() is None
    assert h.admin_cli("member", "list") == 0


# -- one hub per data directory, one per port (failure 6) ---------------------------------
def test_second_hub_on_the_same_data_directory_is_refused(hub: HubProcess) -> None:
    assert hub.proc is not None
    before = hub.state()
    second = _serve(hub.data)
    assert second.returncode == 1 and second.stdout == ""
    assert "Traceback" not in second.stderr
    assert str(hub.data) in second.stderr and f"pid {hub.proc.pid} (hub serve)" in second.stderr
    assert "one hub per data directory" in second.stderr
    _serving(hub)
    assert hub.state()[:2] == before[:2]  # the refused process wrote nothing


def test_second_hub_on_the_same_port_is_refused(hub: HubProcess, tmp_path: Path) -> None:
    other = HubProcess(tmp_path / "other")
    second = _serve(other.data, hub.address)
    assert second.returncode == 1 and "Traceback" not in second.stderr
    assert f"--listen {hub.address}: cannot listen there: the port is in use" in second.stderr
    _serving(hub)
    DataLock.acquire(other.data, "test").release()  # the refused hub let go of its directory


# -- SIGHUP ----------------------------------------------------------------------------------
TOO_MANY = "RESOURCE_EXHAUSTED: bundle: indicators"
RATE = "RESOURCE_EXHAUSTED: member 'pub': publish rate limit"


def _rejected(m: Member, n: int) -> str:
    """How the hub answers a publish of ``n`` indicators: OK or status and message."""
    try:
        m.publish(m.indicators(n))
    except HubRejected as exc:
        return f"{exc.code}: {exc.hub_message}"
    return "OK"


def test_sighup_reloads_live_keys_and_keeps_them_when_the_file_is_bad(
    hub: HubProcess, tmp_path: Path
) -> None:
    assert hub.proc is not None
    log = LogTail(hub.proc.stderr)
    assert hub.admin_cli("collab", "add", "sg-csam") == 0
    m = hub.member("pub", tmp_path)
    assert _rejected(m, 4) == "OK"
    config = hub.data / "hub.toml"
    good = config.read_text()
    text = re.sub(r"^max_indicators = \S+", "max_indicators = 3", good, flags=re.M)
    text = re.sub(r"^burst = \S+", "burst = 3", text, flags=re.M)
    text = re.sub(r"^publishes_per_minute = \S+", "publishes_per_minute = 0.001", text, flags=re.M)
    text = text.replace('name = "test-hub"', 'name = "renamed"')
    config.write_text(text)
    mark = log.mark()
    hub.proc.send_signal(signal.SIGHUP)
    log.wait_for("configuration reloaded", mark)
    assert "name 'test-hub' -> 'renamed' needs a restart" in log.wait_for("needs a restart", mark)
    assert _rejected(m, 4).startswith(TOO_MANY)  # max_indicators 3 (first of 3 tokens)
    assert _rejected(m, 3) == "OK"  # second token
    config.write_text(text + "max_ttl_days = 30\n")  # under [expiry], the last section
    mark = log.mark()
    hub.proc.send_signal(signal.SIGHUP)
    error = log.wait_for("configuration not reloaded", mark)
    assert "ERROR" in error and "[expiry] max_ttl_days" in error
    assert _rejected(m, 4).startswith(TOO_MANY)  # still 3 indicators at most (third token)
    assert _rejected(m, 3).startswith(RATE)  # the same bucket: not reset by the bad file
    _serving(hub)
    m.close()


# -- backup and restore --------------------------------------------------------------------
def _publish_until(m: Member, stop: threading.Event, errors: list[BaseException]) -> None:
    while not stop.is_set():
        try:
            m.publish(m.indicators(1))
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)
            return


def _wait_head(db: Path, at_least: int, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while (head := _head(db)) < at_least:
        assert time.monotonic() < deadline, f"log head {head} never reached {at_least}"
        time.sleep(0.05)
    return head


def test_backup_while_publishing_then_restore_refuses_to_go_backwards(
    hub: HubProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert hub.admin_cli("collab", "add", "sg-csam") == 0
    m = hub.member("pub", tmp_path)
    db, backup = hub.data / "hub.db", tmp_path / "backups" / "hub.backup"
    backup.parent.mkdir()
    stop, errors = threading.Event(), list[BaseException]()
    start = _head(db)  # the log's size: enrollments and collaborations are leaves too
    writer = threading.Thread(target=_publish_until, args=(m, stop, errors))
    writer.start()
    try:
        _wait_head(db, start + 3)
        capsys.readouterr()
        assert (
            sighub(["hub", "backup", "--data", str(hub.data), "--to", str(backup), "--json"]) == 0
        )
        report = json.loads(capsys.readouterr().out)
        _wait_head(db, report["head"] + 2)  # the hub kept publishing past the snapshot
    finally:
        stop.set()
        writer.join(30)
    assert not errors, errors
    assert oct(backup.stat().st_mode & 0o777) == "0o600"
    assert report["backup"] == str(backup) and report["bytes"] == backup.stat().st_size
    assert not list(backup.parent.glob(".*tmp"))
    with sqlite3.connect(f"file:{backup}?mode=ro", uri=True) as b, hub.db() as live:
        assert b.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert b.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # one self-contained file
        ids = b.execute("SELECT seq, id FROM envelopes ORDER BY seq").fetchall()
        assert len(ids) == report["envelopes"] >= 3
        # the head is the transparency log's: envelopes and the events between them
        logged = b.execute("SELECT COUNT(*), MAX(seq) FROM leaves").fetchone()
        assert logged == (report["head"], report["head"]) and report["head"] >= ids[-1][0]
        assert (
            ids
            == live.execute(
                "SELECT seq, id FROM envelopes WHERE seq <= ?", (ids[-1][0],)
            ).fetchall()
        )
        # one snapshot: the current state holds exactly the backed-up envelopes' indicators
        assert b.execute("SELECT COUNT(*), MAX(seq) FROM indicators").fetchone() == (
            len(ids),
            ids[-1][0],
        )
    current = _head(db)
    assert current > report["head"]

    assert hub.proc is not None
    args = ["hub", "restore", "--data", str(hub.data), "--from", str(backup)]
    assert sighub(args) == 1  # refused while the hub serves
    assert f"pid {hub.proc.pid} (hub serve)" in capsys.readouterr().err
    m.close()
    hub.stop()
    inode = db.stat().st_ino
    assert sighub(args) == 2  # backwards
    err = capsys.readouterr().err
    assert f"ends at sequence {current}" in err and f"at {report['head']}" in err
    assert "--allow-rollback" in err
    assert db.stat().st_ino == inode and _head(db) == current
    assert sighub([*args, "--allow-rollback", "--json"]) == 0
    out, err = capsys.readouterr()
    done = json.loads(out)
    assert "ROLLBACK" in err and "cursor ahead of log" in err
    assert (done["head"], done["previous_head"], done["rollback"]) == (
        report["head"],
        current,
        True,
    )
    assert _head(db) == report["head"] and oct(db.stat().st_mode & 0o777) == "0o600"
    kept = [Path(p) for p in done["kept"]]
    assert kept and all(p.exists() for p in kept) and _head(kept[0]) == current
    hub.start()
    again = Member("pub", m.data, hub)
    assert again.publish(again.indicators(1)).sequence == report["head"] + 1
    again.close()


def _names(folder: Path) -> list[str]:
    """The files of a hub directory, but its lock file (made by the first locker, kept)."""
    return sorted(p.name for p in folder.iterdir() if p.name != "hub.lock")


def test_restore_refusals_leave_the_database_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    h = HubProcess(tmp_path / "hub")
    other = HubProcess(tmp_path / "other")
    db = h.data / "hub.db"
    good, foreign = tmp_path / "good.backup", tmp_path / "foreign.backup"
    assert sighub(["hub", "backup", "--data", str(h.data), "--to", str(good)]) == 0
    assert sighub(["hub", "backup", "--data", str(other.data), "--to", str(foreign)]) == 0
    garbage = tmp_path / "garbage.backup"
    garbage.write_bytes(b"SQLite format 3\x00" + os.urandom(8192))
    empty = tmp_path / "empty.backup"
    sqlite3.connect(empty).execute("CREATE TABLE t (x)").connection.close()
    corrupt = tmp_path / "corrupt.backup"
    raw = bytearray(good.read_bytes())
    raw[4096 : 4096 + 16] = b"\xff" * 16  # the second page's b-tree header
    corrupt.write_bytes(bytes(raw))
    cases = {
        garbage: "not a readable SQLite database",
        empty: "not a sighub hub database: schema version 0",
        foreign: "this directory's hub key is",
        corrupt: "--from",
        tmp_path / "missing.backup": "no such file",
    }
    before = (db.read_bytes(), _names(h.data))
    capsys.readouterr()
    for source, words in cases.items():
        assert sighub(["hub", "restore", "--data", str(h.data), "--from", str(source)]) == 2
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err, (source, err)
        assert (db.read_bytes(), _names(h.data)) == before
    db.unlink()  # the database lost, the keys kept: a restore brings it back
    assert sighub(["hub", "restore", "--data", str(h.data), "--from", str(good), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["previous_head"] is None
    assert db.read_bytes() == good.read_bytes()
    bare = tmp_path / "bare"
    bare.mkdir()
    assert sighub(["hub", "restore", "--data", str(bare), "--from", str(good)]) == 2
    assert "not a hub data directory" in capsys.readouterr().err
    assert list(bare.iterdir()) == []


def test_backup_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    h = HubProcess(tmp_path / "hub")
    for to, words in ((tmp_path, "is a directory"), (h.data / "hub.db", "is the live database")):
        assert sighub(["hub", "backup", "--data", str(h.data), "--to", str(to)]) == 2
        assert words in capsys.readouterr().err
    assert sighub(["hub", "backup", "--data", str(tmp_path / "none"), "--to", "x"]) == 2
    assert "no such directory" in capsys.readouterr().err
    assert not list(tmp_path.glob(".*tmp")) and not list(h.data.glob(".*tmp"))


# -- certificates ----------------------------------------------------------------------------
def _ca_key(pki: Path) -> ec.EllipticCurvePrivateKey:
    key = load_pem_private_key(read_secret(pki / "ca.key"), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def _at(cred: Credential, address: str) -> Credential:
    return Credential(cred.folder, address, cred.member, cred.bearer_token, cred.hub_public_key)


def _tls_client(h: HubProcess, folder: Path, cert: bytes, key: bytes) -> HubClient:
    creds = grpc.ssl_channel_credentials((folder / "tls" / "ca.pem").read_bytes(), key, cert)
    return HubClient(grpc.secure_channel(h.address, creds))


def _serial(h: HubProcess, member: str) -> str:
    with h.db() as c:
        return str(
            c.execute("SELECT cert_serial FROM members WHERE name=?", (member,)).fetchone()[0]
        )


def test_member_renews_its_certificate_and_the_old_one_is_refused(
    hub: HubProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    m = hub.member("pub", tmp_path, collabs=())
    tls = m.data / "tls"
    old_cert, old_key = (tls / "client.crt").read_bytes(), read_secret(tls / "client.key")
    old_serial = _serial(hub, "pub")
    capsys.readouterr()
    renew = ["member", "renew-cert", "--data", str(m.data), "--hub", hub.address, "--json"]
    assert sighub(renew) == 0
    done = json.loads(capsys.readouterr().out)
    assert done["member"] == "pub" and done["serial"] == _serial(hub, "pub") != old_serial
    assert (tls / "client.crt").read_bytes() != old_cert
    assert oct((tls / "client.key").stat().st_mode & 0o777) == "0o600"
    assert sorted(p.name for p in tls.iterdir()) == ["ca.pem", "client.crt", "client.key"]
    with _tls_client(hub, m.data, old_cert, old_key) as old, pytest.raises(HubRejected) as info:
        old.key_directory()
    assert info.value.code == "UNAUTHENTICATED" and "is not current" in info.value.hub_message
    with HubClient.connect(_at(Credential.load(m.data), hub.address)) as new:
        assert new.key_directory()
    with hub.db() as c:
        (detail,) = c.execute(
            "SELECT detail FROM audit WHERE action='member.renew-cert'"
        ).fetchone()
    assert json.loads(detail)["previous_cert_serial"] == old_serial


def test_renewal_for_another_name_or_without_mtls_is_refused(
    hub: HubProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    m = hub.member("pub", tmp_path, collabs=())
    hub.member("other", tmp_path, collabs=())
    before = (_serial(hub, "pub"), _serial(hub, "other"), hub.state())
    client = m.client()
    for csr, code in (
        (make_csr(new_tls_key(), "other"), "PERMISSION_DENIED"),
        (make_csr(new_tls_key(), "enroll:pub"), "PERMISSION_DENIED"),
        (b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n", "INVALID_ARGUMENT"),
    ):
        with pytest.raises(HubRejected) as info:
            client.renew_certificate(csr)
        assert info.value.code == code, info.value
    assert (_serial(hub, "pub"), _serial(hub, "other"), hub.state()) == before
    assert client.key_directory()  # the current certificate still works
    files = sorted((p.name, p.read_bytes()) for p in (m.data / "tls").iterdir())
    capsys.readouterr()
    assert sighub(["member", "renew-cert", "--data", str(m.data), "--insecure"]) == 1
    assert "--insecure (plaintext) cannot prove it" in capsys.readouterr().err
    assert sorted((p.name, p.read_bytes()) for p in (m.data / "tls").iterdir()) == files
    # a plaintext hub: the caller has a bearer token but no certificate to renew
    hub.stop()
    hub.start(insecure=True, port=0)
    admin = HubClient(open_channel(hub.admin, insecure=True, address=hub.address))
    with admin, pytest.raises(HubRejected) as info:
        admin.renew_certificate(make_csr(new_tls_key(), "admin"))
    assert info.value.code == "UNAUTHENTICATED" and "over mTLS" in info.value.hub_message
    assert (_serial(hub, "pub"), _serial(hub, "other"), hub.state()) == before


def _served_serial(h: HubProcess) -> str:
    """The serial of the certificate the hub presents to a new TLS connection."""
    tls = h.data / "admin" / "tls"
    ctx = ssl.create_default_context(cafile=str(tls / "ca.pem"))
    ctx.load_cert_chain(str(tls / "client.crt"), str(tls / "client.key"))
    ctx.set_alpn_protocols(["h2"])
    with (
        socket.create_connection(("127.0.0.1", h.port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as conn,
    ):
        der = conn.getpeercert(binary_form=True)
    assert der is not None
    return format(x509.load_der_x509_certificate(der).serial_number, "x")


def test_server_certificate_expiry_warning_and_renewal_on_sighup(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    h = HubProcess(tmp_path / "hub")
    pki = h.data / "pki"
    ten_days = dt.timedelta(days=10)
    key, pem = server_cert(_ca_key(pki), (pki / "ca.pem").read_bytes(), ("127.0.0.1",), ten_days)
    (pki / "server.key").unlink()
    write_secret(pki / "server.key", key_pem(key))
    (pki / "server.pem").write_bytes(pem)
    h.start()
    try:
        assert h.proc is not None
        log = LogTail(h.proc.stderr)
        warning = log.wait_for("certificate expires at")
        assert "WARNING" in warning and "(in 9 days)" in warning and "hub renew-cert" in warning
        short = _served_serial(h)
        capsys.readouterr()
        assert sighub(["hub", "renew-cert", "--data", str(h.data), "--json"]) == 0
        renewed = json.loads(capsys.readouterr().out)
        assert renewed["names"] == ["localhost", "127.0.0.1"]
        assert load_server_pair(pki)[2] > dt.datetime.now(dt.UTC) + dt.timedelta(days=390)
        assert _served_serial(h) == short  # until told
        mark = log.mark()
        h.proc.send_signal(signal.SIGHUP)
        log.wait_for("server certificate re-read", mark)
        assert _served_serial(h) == renewed["serial"]
        _serving(h)
    finally:
        h.stop()


def test_hub_renew_cert_refusals_leave_the_certificate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    h = HubProcess(tmp_path / "hub")
    pki = h.data / "pki"
    before = ((pki / "server.pem").read_bytes(), (pki / "server.key").read_bytes())
    (h.data / "hub.toml").write_text('tls_names = "localhost"\n')
    assert sighub(["hub", "renew-cert", "--data", str(h.data)]) == 2
    assert "tls_names = 'localhost': expected `array`" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        sighub(["hub", "renew-cert", "--data", str(h.data), "--days", "400"])
    assert info.value.code == 2
    assert ((pki / "server.pem").read_bytes(), (pki / "server.key").read_bytes()) == before


def test_member_certificate_expiry_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    h = HubProcess(tmp_path / "hub")
    pki = h.data / "pki"
    ca_key, ca_pem = _ca_key(pki), (pki / "ca.pem").read_bytes()
    data = tmp_path / "member"

    def credential(days: int) -> None:
        key = new_tls_key()
        issued = issue_client(ca_key, ca_pem, make_csr(key, "pub"), "pub", dt.timedelta(days=days))
        if data.exists():
            for p in (data / "tls" / "client.key", data / "hub.json"):
                p.unlink()
        write_credential(data, "127.0.0.1:1", "pub", "t0ken", ca_pem, issued.cert_pem, key, "k")

    credential(60)
    with caplog.at_level(logging.WARNING, "sighub.member"):
        assert check_client_certificate(data) is None
        credential(10)
        message = check_client_certificate(data)
    assert message is not None and "(in 9 days)" in message
    assert f"sighub member renew-cert --data {data}" in message
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    capsys.readouterr()
    assert sighub(["status", "--data", str(data)]) == 0
    assert "certificate expires at" in capsys.readouterr().err


def test_an_interrupted_renewal_is_completed(tmp_path: Path) -> None:
    h = HubProcess(tmp_path / "hub")
    tls = h.data / "admin" / "tls"
    key = new_tls_key()
    ca_key, ca_pem = _ca_key(h.data / "pki"), (tls / "ca.pem").read_bytes()
    issued = issue_client(ca_key, ca_pem, make_csr(key, "admin"), "admin")
    # the crash came after both .next files were written, before the renames
    write_secret(tls / "client.key.next", key_pem(key))
    (tls / "client.crt.next").write_bytes(issued.cert_pem)
    assert check_client_certificate(h.data / "admin") is None
    assert (tls / "client.crt").read_bytes() == issued.cert_pem
    assert read_secret(tls / "client.key") == key_pem(key)
    assert sorted(p.name for p in tls.iterdir()) == ["ca.pem", "client.crt", "client.key"]
