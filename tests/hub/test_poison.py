"""Poison envelopes: payloads signed with a member's real key that no parser should choke
on (JSON nested 2,000 deep, a 5,000-digit integer, NaN).  The hub refuses them with
INVALID_ARGUMENT; a daemon that finds one in the log (a hub that stored it, an older
version, a lying hub) refuses it, records it and moves on, with or without workers."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sighub import HubRejected
from sighub.client._daemon import LOCAL_DB, SyncDaemon
from sighub.client._envelope import PAYLOAD_TYPE, _envelope_bytes, key_id, pae
from sighub.client._errors import EXIT_ALARM
from sighub.client._local import LocalStore
from sighub.hub._store import Store
from tests.conftest import SIGHUB
from tests.hub.conftest import ROOT, HubProcess, Member

POISON = {
    "deep": b"[" * 2000 + b"]" * 2000,
    "digits": b'{"type":"bundle","id":' + b"7" * 5000 + b',"objects":[]}',
    "nan": b'{"type":"bundle","id":NaN,"objects":[]}',
    "deep-strings": b'{"a":' + b'["[",' * 3000 + b"1" + b"]" * 3000 + b"}",
}


def sign_raw(member: Member, body: bytes) -> bytes:
    """An envelope around arbitrary payload bytes, signed with the member's real key."""
    key = member.files.signing_key()
    return _envelope_bytes(body, key_id(key.public_key()), key.sign(pae(PAYLOAD_TYPE, body)))


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("poison")
    h = HubProcess(tmp / "hub", publishes_per_minute=6000, burst=1000)
    h.start()
    try:
        assert h.admin_cli("collab", "add", "sg-csam") == 0
        pub, sub = h.member("pub", tmp), h.member("sub", tmp, roles="subscriber")
        yield {"hub": h, "pub": pub, "sub": sub, "tmp": tmp}
        pub.close()
        sub.close()
    finally:
        h.stop()


@pytest.mark.parametrize("name", sorted(POISON))
def test_publish_of_a_poison_payload_is_invalid_argument(hub: dict[str, Any], name: str) -> None:
    h, pub = hub["hub"], hub["pub"]
    before = h.state()
    with pytest.raises(HubRejected) as err:
        pub.client().publish("sg-csam", sign_raw(pub, POISON[name]))
    assert err.value.code == "INVALID_ARGUMENT", err.value
    assert "envelope.payload" in err.value.hub_message
    assert h.state() == before


def _inject(h: HubProcess, pub: Member, raws: list[bytes]) -> list[int]:
    """Append envelopes to the hub's log (with their log leaves) as a hub that did not
    validate them would."""
    kid = key_id(pub.files.signing_key().public_key())
    store = Store(h.data / "hub.db")
    try:
        with store.tx():
            return [
                store.append_envelope(hashlib.sha256(raw).hexdigest(), "sg-csam", pub.name, kid,
                                      "2026-11-01T00:00:00.000Z", "[]", raw, [])
                for raw in raws
            ]  # fmt: skip
    finally:
        store.close()


def _fresh(sub: Member, tmp: Path, name: str) -> Path:
    """A copy of the subscriber's credential with an empty local store."""
    data = tmp / name
    data.mkdir()
    for item in sub.data.iterdir():
        if item.name != LOCAL_DB and not item.name.startswith(LOCAL_DB):
            target = data / item.name
            if item.is_dir():
                target.mkdir(mode=0o700)
                for f in item.iterdir():
                    (target / f.name).write_bytes(f.read_bytes())
                    (target / f.name).chmod(0o600)
            else:
                target.write_bytes(item.read_bytes())
                target.chmod(0o600)
    return data


@pytest.mark.parametrize("workers", [0, 1])
def test_daemon_refuses_poison_in_the_log_and_moves_on(
    hub: dict[str, Any], workers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    h, pub, sub = hub["hub"], hub["pub"], hub["sub"]
    if workers:  # every batch goes to the worker processes
        monkeypatch.setattr("sighub.client._intake.POOL_MIN_BYTES", 0)
    pad = b" " * (workers + 1)  # trailing white space: other bytes, the same poison
    poison = _inject(h, pub, [sign_raw(pub, POISON[n] + pad) for n in sorted(POISON)])
    good = pub.indicators(2)
    pub.publish(good)
    data = _fresh(sub, hub["tmp"], f"fresh-{workers}")
    d = SyncDaemon(data, address=h.address, workers=workers)
    try:
        report = d.sync_once()
        refused = dict(report.refused)
        assert set(poison) <= set(refused), refused
        assert all("envelope.payload" in refused[s] for s in poison), refused
        assert d.store.cursor >= max(poison)
        active = {i.id for i in d.store.active(good[0].valid_from)}
        assert {i.id for i in good} <= active
        rows = d.store.conn.execute("SELECT seq FROM refused").fetchall()
        assert set(poison) <= {r[0] for r in rows}
    finally:
        d.close()


def test_sync_command_survives_poison_without_a_traceback(hub: dict[str, Any]) -> None:
    h, pub, sub = hub["hub"], hub["pub"], hub["sub"]
    big = pub.envelope(pub.indicators(1500))  # over 1 MiB: its batch goes to a worker
    assert len(big) > 1 << 20
    deep, digits = (sign_raw(pub, POISON[n] + b"   ") for n in ("deep", "digits"))
    poison = _inject(h, pub, [big, deep, digits])
    data = _fresh(sub, hub["tmp"], "fresh-cli")
    args = [*SIGHUB, "sync", "--data", str(data), "--hub", h.address, "--workers", "1"]
    done = subprocess.run(args, check=False, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == EXIT_ALARM, done.stderr
    assert "Traceback" not in done.stderr
    assert "REFUSED" in done.stderr
    local = LocalStore(data / LOCAL_DB)
    try:
        assert local.cursor >= max(poison)
        refused = {r[0] for r in local.conn.execute("SELECT seq FROM refused")}
        assert set(poison[1:]) <= refused and poison[0] not in refused
    finally:
        local.close()


def test_verify_command_refuses_a_poison_envelope(hub: dict[str, Any], tmp_path: Path) -> None:
    pub = hub["pub"]
    path = tmp_path / "poison.envelope.json"
    path.write_bytes(sign_raw(pub, POISON["deep"]))
    args = [*SIGHUB, "verify", str(path), "--data", str(pub.data)]
    done = subprocess.run(args, check=False, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "depth" in done.stderr
