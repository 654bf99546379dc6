"""Member encryption keys (issue 11, first slice) on a real hub process: registered at
enrollment and logged in the member.enroll leaf, rotated with a key.encryption leaf, a bad
proof or key refused with the state untouched, and every member's daemon learning each
member's current key from the verified log and keeping it across restarts."""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sighub.client import _enckey, _enroll
from sighub.client._daemon import LOCAL_DB, SyncDaemon
from sighub.client._enckey import rotate_encryption_key
from sighub.client._hpke import (
    DEFAULT_SUITE,
    ENCRYPTION_KEY,
    X25519_SUITE,
    EncryptionKey,
    HpkeError,
    ProvedKey,
    check_proof,
    load_key,
    prove,
    seal,
)
from sighub.client._leaves import parse_leaf
from sighub.client._logguard import KEYS_KEY, KEYS_VERSION
from sighub.client._rpc import HubClient, HubRejected
from sighub.hub._cli import main as sighub
from tests.hub.conftest import HubProcess, Member, running_world


@pytest.fixture(scope="module")
def ew(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with running_world(tmp_path_factory.mktemp("enckeys"), ("pub",)) as w:
        yield w


def _hub_state(h: HubProcess) -> tuple[Any, ...]:
    with h.db() as c:
        leaves = c.execute("SELECT COUNT(*) FROM leaves").fetchone()[0]
        keys = c.execute(
            "SELECT key_id, member, suite, seq, replaced_seq FROM encryption_keys ORDER BY seq"
        ).fetchall()
    return leaves, keys


def _current(h: HubProcess, member: str) -> tuple[str, str] | None:
    with h.db() as c:
        row = c.execute(
            "SELECT key_id, suite FROM encryption_keys WHERE member=? AND replaced_seq IS NULL",
            (member,),
        ).fetchone()
    return None if row is None else (row[0], row[1])


def _leaf(h: HubProcess, seq: int) -> dict[str, Any]:
    with h.db() as c:
        return parse_leaf(
            bytes(c.execute("SELECT leaf FROM leaves WHERE seq=?", (seq,)).fetchone()[0])
        )


def _enroll_seq(h: HubProcess, member: str) -> int:
    with h.db() as c:
        row = c.execute(
            "SELECT seq FROM leaves WHERE type='member.enroll' AND member=?", (member,)
        ).fetchone()
    return int(row[0])


def _signing_public(m: Member) -> bytes:
    return m.files.identity().public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def test_enrollment_registers_and_logs_the_encryption_key(ew: dict[str, Any]) -> None:
    h, pub = ew["hub"], ew["pub"]
    key = load_key(pub.data / ENCRYPTION_KEY)
    assert key.suite == DEFAULT_SUITE and (pub.data / ENCRYPTION_KEY).stat().st_mode & 0o77 == 0
    assert _current(h, "pub") == (key.key_id, DEFAULT_SUITE)
    # member.json names it, as it names the signing key (a copy without key files knows it)
    assert json.loads((pub.data / "member.json").read_text())["encryption_key_id"] == key.key_id
    leaf = _leaf(h, _enroll_seq(h, "pub"))
    assert leaf["encryption_suite"] == DEFAULT_SUITE
    assert base64.b64decode(leaf["encryption_key"]) == key.public
    check_proof(_signing_public(pub), key.suite, key.public,
                base64.b64decode(leaf["encryption_proof"]))  # fmt: skip
    # the private key never left the member
    with h.db() as c:
        dump = "\n".join(c.iterdump())
    assert json.loads(key.file_bytes())["seed"] not in dump


def test_rotation_logs_a_key_encryption_leaf_and_retires_the_old_key(
    ew: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    h = ew["hub"]
    m = h.member("rotator", ew["tmp"])
    capsys.readouterr()  # the admin commands' output
    old = load_key(m.data / ENCRYPTION_KEY)
    argv = ["member", "rotate-encryption-key", "--data", str(m.data), "--hub", h.address]
    assert sighub([*argv, "--suite", X25519_SUITE, "--json"]) == 0
    done = json.loads(capsys.readouterr().out)
    new = load_key(m.data / ENCRYPTION_KEY)
    assert (done["encryption_key_id"], done["previous_encryption_key_id"]) == (
        new.key_id,
        old.key_id,
    )
    assert new.suite == X25519_SUITE and done["signing_key_id"] == m.files.identity().key_id
    leaf = _leaf(h, done["sequence"])
    assert leaf["type"] == "key.encryption" and leaf["member"] == "rotator"
    assert (leaf["suite"], base64.b64decode(leaf["encryption_key"])) == (new.suite, new.public)
    assert leaf["key_id"] == done["signing_key_id"]
    retired = list(m.data.glob("encryption.*.retired.key"))
    assert [load_key(p).key_id for p in retired] == [old.key_id]
    assert not list(m.data.glob("encryption.*.pending.key"))
    with h.db() as c:  # the old key is replaced at the new leaf's sequence
        rows = c.execute(
            "SELECT key_id, replaced_seq FROM encryption_keys WHERE member='rotator' ORDER BY seq"
        ).fetchall()
    assert rows == [(old.key_id, done["sequence"]), (new.key_id, None)]
    assert sighub(argv) == 0  # and again, to the default suite
    assert capsys.readouterr().out.startswith(f"encryption key rotated: {new.key_id} -> ")
    assert load_key(m.data / ENCRYPTION_KEY).suite == DEFAULT_SUITE
    m.close()


def test_bad_proofs_and_keys_are_refused_and_change_nothing(
    ew: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    h, pub, sub = ew["hub"], ew["pub"], ew["sub"]
    signing = pub.files.signing_key()
    key = EncryptionKey.generate()
    good = prove(signing, key.suite, key.public)
    theirs = load_key(sub.data / ENCRYPTION_KEY)  # registered already, by sub
    cases = [
        (ProvedKey(key.suite, key.public, prove(Ed25519PrivateKey.generate(), key.suite,
                                                 key.public)),
         "UNAUTHENTICATED", "does not verify under"),
        (ProvedKey(X25519_SUITE, key.public, good), "INVALID_ARGUMENT", "expected a 32-byte"),
        (ProvedKey(key.suite, key.public, good[:-1] + bytes([good[-1] ^ 1])),
         "UNAUTHENTICATED", "does not verify under"),
        (ProvedKey("x448-sha512-aes256gcm", key.public, good), "INVALID_ARGUMENT",
         "is not one of"),
        (ProvedKey(key.suite, b"\xff" * 1184 + key.public[1184:], good), "INVALID_ARGUMENT",
         "not a valid"),
        (ProvedKey(theirs.suite, theirs.public, prove(signing, theirs.suite, theirs.public)),
         "ALREADY_EXISTS", "already registered"),
    ]  # fmt: skip
    before = _hub_state(h)
    files_before = sorted(p.name for p in pub.data.iterdir())
    client = pub.client()
    for proved, status, words in cases:
        with pytest.raises(HubRejected, match=words) as err:
            client.rotate_encryption_key(proved)
        assert err.value.code == status, (status, err.value)
        assert _hub_state(h) == before
    # through the member's command: the pending key is removed, the current one kept
    current = load_key(pub.data / ENCRYPTION_KEY).key_id
    with pytest.raises(HpkeError, match="is not one of"):  # refused before the hub is asked
        rotate_encryption_key(pub.data, address=h.address, suite="x448-sha512-aes256gcm")
    stranger = Ed25519PrivateKey.generate()
    monkeypatch.setattr(_enckey, "prove", lambda _, suite, public: prove(stranger, suite, public))
    with pytest.raises(HubRejected, match="does not verify under") as err:
        rotate_encryption_key(pub.data, address=h.address)
    assert err.value.code == "UNAUTHENTICATED"
    assert sorted(p.name for p in pub.data.iterdir()) == files_before
    assert load_key(pub.data / ENCRYPTION_KEY).key_id == current
    assert _current(h, "pub") == (current, DEFAULT_SUITE)
    assert _hub_state(h) == before


def test_an_enrollment_with_a_bad_proof_is_refused_and_spends_nothing(
    ew: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = ew["hub"]
    path = tmp_path / "badproof.enroll.json"
    assert h.admin_cli("member", "add", "badproof", "--roles", "publisher", "--out", str(path)) == 0
    real = _enroll.enrollment_key

    def forged(data: Path, signing: Ed25519PrivateKey, suite: str = DEFAULT_SUITE) -> ProvedKey:
        proved = real(data, signing, suite)
        stranger = Ed25519PrivateKey.generate()
        return ProvedKey(proved.suite, proved.public, prove(stranger, proved.suite, proved.public))

    monkeypatch.setattr(_enroll, "enrollment_key", forged)
    before = _hub_state(h)
    with pytest.raises(HubRejected, match="does not verify under ed25519:") as err:
        _enroll.enroll(path, tmp_path / "badproof", address=h.address)
    assert err.value.code == "UNAUTHENTICATED" and _hub_state(h) == before
    with h.db() as c:
        assert c.execute("SELECT status FROM members WHERE name='badproof'").fetchone()[0] == (
            "pending"
        )
    monkeypatch.setattr(_enroll, "enrollment_key", real)
    # the token is not spent; the retried enrollment keeps the key it made
    made = load_key(tmp_path / "badproof" / ENCRYPTION_KEY).key_id
    _enroll.enroll(path, tmp_path / "badproof", address=h.address)
    assert _current(h, "badproof") == (made, DEFAULT_SUITE)


def test_a_member_enrolled_before_encryption_keys_registers_its_first(
    ew: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = ew["hub"]
    path = tmp_path / "older.enroll.json"
    assert h.admin_cli("member", "add", "older", "--roles", "publisher", "--out", str(path)) == 0
    real = HubClient.enroll  # an older client: it sends no encryption key, keeps none
    monkeypatch.setattr(HubClient, "enroll", lambda self, *a: real(self, *a[:5]))
    data = tmp_path / "older"
    _enroll.enroll(path, data, address=h.address)
    (data / ENCRYPTION_KEY).unlink()
    doc = json.loads((data / "member.json").read_text())
    del doc["encryption_key_id"]
    (data / "member.json").write_text(json.dumps(doc))
    leaf = _leaf(h, _enroll_seq(h, "older"))
    assert "encryption_key" not in leaf and _current(h, "older") is None  # the old format
    done = rotate_encryption_key(data, address=h.address)
    assert done.previous_key_id == "" and _current(h, "older") == (done.key_id, DEFAULT_SUITE)
    assert _leaf(h, done.sequence)["type"] == "key.encryption"
    assert not list(data.glob("encryption.*.retired.key"))
    assert json.loads((data / "member.json").read_text())["encryption_key_id"] == done.key_id


def test_members_learn_encryption_keys_from_the_log_and_keep_them(
    ew: dict[str, Any], tmp_path: Path
) -> None:
    h, pub, sub = ew["hub"], ew["pub"], ew["sub"]
    d = SyncDaemon(sub.data, address=h.address, workers=0)
    try:
        d.sync_once()
        ring = d._guard.ring
        key = load_key(pub.data / ENCRYPTION_KEY)
        assert ring.encryption_key("pub") == (key.suite, key.public)
        assert ring.encryption_key("outsider") is not None  # directory leaves reach everyone
        # what a member learns is what a sender seals to: the member opens it
        sealed = seal(*ring.encryption_key("pub"), b"\x07" * 32, b"aad", b"info")
        assert key.open_(sealed, b"aad", b"info") == b"\x07" * 32
    finally:
        d.close()
    rotated = rotate_encryption_key(pub.data, address=h.address)
    d = SyncDaemon(sub.data, address=h.address, workers=0)  # a restart: the ring is stored
    try:
        assert d._guard.ring.encryption_key("pub") == (key.suite, key.public)
        d.sync_once()
        new = load_key(pub.data / ENCRYPTION_KEY)
        assert d._guard.ring.encryption_key("pub") == (new.suite, new.public)
        assert new.key_id == rotated.key_id
    finally:
        d.close()
    c = sqlite3.connect(sub.data / LOCAL_DB)
    try:
        stored = dict(c.execute("SELECT member, public_key FROM log_encryption_keys").fetchall())
    finally:
        c.close()
    assert bytes(stored["pub"]) == new.public


def test_a_store_from_before_encryption_keys_reads_the_log_again(ew: dict[str, Any]) -> None:
    h, pub, sub = ew["hub"], ew["pub"], ew["sub"]
    d = SyncDaemon(sub.data, address=h.address, workers=0)
    d.sync_once()
    with d.store.tx() as c:  # as a daemon from before encryption keys left it
        c.execute("DELETE FROM log_encryption_keys")
        c.execute("UPDATE meta SET value='1' WHERE key=?", (KEYS_KEY,))
    d.close()
    d = SyncDaemon(sub.data, address=h.address, workers=0)
    try:
        assert d._guard.ring.encryption_key("pub") is None
        d.sync_once()
        key = load_key(pub.data / ENCRYPTION_KEY)
        assert d._guard.ring.encryption_key("pub") == (key.suite, key.public)
        assert d.store.meta(KEYS_KEY) == KEYS_VERSION and d.store.alarms() == []
    finally:
        d.close()
