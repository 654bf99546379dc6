"""Keys a hub alone cannot mint (issue 10, item 6), on a real hub process: an enrollment
needs the admin-signed grant from its file, an old key is chained by the admin's
attestation, and a member that pins the admin key refuses what no chain vouches for."""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sighub.client._daemon import SyncDaemon
from sighub.client._enroll import EnrollmentFile, enroll
from sighub.client._errors import EXIT_BAD_INPUT, KeyFileError
from sighub.client._grant import ADMIN_SIGNING_KEY, attest_key, create_admin_key
from sighub.client._keyring import NO_CHAIN
from sighub.client._keys import write_secret
from sighub.client._proto import admin_pb2, admin_pb2_grpc
from sighub.client._rpc import Credential, HubRejected, open_channel
from tests.hub.conftest import HubProcess, Member


@pytest.fixture(scope="module")
def kw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("keychain")
    h = HubProcess(tmp / "hub", publishes_per_minute=6000, burst=1000)
    h.start()
    try:
        assert h.admin_cli("collab", "add", "sg-csam") == 0
        sub = h.member("sub", tmp, roles="subscriber")
        yield {"hub": h, "tmp": tmp, "sub": sub}
        sub.close()
    finally:
        if h.proc is not None:
            h.stop()


def _added(h: HubProcess, tmp: Path, name: str) -> Path:
    path = tmp / f"{name}.enroll.json"
    assert h.admin_cli("member", "add", name, "--roles", "publisher", "--out", str(path)) == 0
    return path


def _edit(path: Path, **fields: Any) -> None:
    doc = json.loads(path.read_bytes())
    doc.update(fields)
    path.unlink()
    write_secret(path, json.dumps(doc).encode())


def _hub_rows(h: HubProcess, name: str) -> tuple[Any, ...]:
    with h.db() as c:
        status = c.execute("SELECT status FROM members WHERE name=?", (name,)).fetchone()
        leaves = c.execute("SELECT COUNT(*) FROM leaves").fetchone()[0]
        keys = c.execute("SELECT COUNT(*) FROM member_keys WHERE member=?", (name,)).fetchone()
    return None if status is None else status[0], leaves, keys[0]


def test_init_pins_the_admin_key_and_chains_the_admin(kw: dict[str, Any]) -> None:
    h = kw["hub"]
    admin = Credential.load(h.data / "admin")
    assert (
        admin.admin_public_key and (h.data / "admin" / ADMIN_SIGNING_KEY).stat().st_mode & 0o77 == 0
    )
    with h.db() as c:
        pinned = c.execute("SELECT value FROM meta WHERE key='admin_public_key'").fetchone()[0]
        leaf = json.loads(c.execute("SELECT leaf FROM leaves WHERE seq=1").fetchone()[0])
    assert pinned == admin.admin_public_key
    assert leaf["type"] == "member.enroll" and {"grant", "binding"} <= leaf.keys()
    sub = Credential.load(kw["sub"].data)
    assert sub.admin_public_key == admin.admin_public_key  # pinned from the enrollment file
    # the enrollment file holds the grant, never the admin's private key
    ef = EnrollmentFile.load(kw["tmp"] / "sub.enroll.json")
    assert ef.grant and ef.admin_public_key == admin.admin_public_key
    key_pem = (h.data / "admin" / ADMIN_SIGNING_KEY).read_text()
    assert key_pem.splitlines()[1] not in (kw["tmp"] / "sub.enroll.json").read_text()


@pytest.mark.parametrize(
    "edit, status, words",
    [
        ({"grant": "", "grant_signature": "", "enrollment_key": ""}, "FAILED_PRECONDITION",
         "no admin-signed grant"),
        ({"grant_signature": base64.b64encode(b"\0" * 64).decode()}, "PERMISSION_DENIED",
         "signature does not verify"),
        ({"enrollment_key": base64.b64encode(b"\1" * 32).decode()}, "PERMISSION_DENIED",
         "binding"),
    ],
)  # fmt: skip
def test_an_enrollment_without_a_valid_grant_is_refused_and_changes_nothing(
    kw: dict[str, Any], tmp_path: Path, edit: dict[str, str], status: str, words: str
) -> None:
    h = kw["hub"]
    name = f"nogrant{len(edit)}{status[0].lower()}{len(words)}"
    path = _added(h, tmp_path, name)
    original = json.loads(path.read_bytes())
    _edit(path, **edit)
    before = _hub_rows(h, name)
    with pytest.raises(HubRejected, match=words) as err:
        enroll(path, tmp_path / name, address=h.address)
    assert err.value.code == status
    assert _hub_rows(h, name) == before == ("pending", before[1], 0)
    # the token is not spent: the file as the admin wrote it still enrolls
    _edit(path, **original)
    enroll(path, tmp_path / f"{name}-2", address=h.address)
    assert _hub_rows(h, name)[0] == "active"


def test_the_admin_cli_refuses_without_the_admin_key(kw: dict[str, Any], tmp_path: Path) -> None:
    h = kw["hub"]
    moved = tmp_path / "elsewhere.key"
    key = h.data / "admin" / ADMIN_SIGNING_KEY
    key.rename(moved)
    try:
        before = _hub_rows(h, "nokey")
        assert h.admin_cli("member", "add", "nokey", "--roles", "publisher",
                           "--out", str(tmp_path / "nokey.json")) == EXIT_BAD_INPUT  # fmt: skip
        assert _hub_rows(h, "nokey") == before  # asked nothing of the hub
        # the key kept off the host, named with --admin-key
        out, where = str(tmp_path / "nokey.json"), str(moved)
        assert h.admin_cli(
            "member", "add", "nokey", "--roles", "publisher", "--out", out, "--admin-key", where
        ) == 0  # fmt: skip
        enroll(tmp_path / "nokey.json", tmp_path / "nokey", address=h.address)
    finally:
        moved.rename(key)


def _legacy_member(h: HubProcess, tmp: Path, name: str) -> Member:
    """A member enrolled as before key chains: the hub pinned no admin key then."""
    path = _added(h, tmp, name)
    _edit(path, grant="", grant_signature="", enrollment_key="", admin_public_key="")
    c = sqlite3.connect(h.data / "hub.db")
    pinned = c.execute("SELECT value FROM meta WHERE key='admin_public_key'").fetchone()[0]
    with c:
        c.execute("DELETE FROM meta WHERE key='admin_public_key'")
    try:
        enroll(path, tmp / name, address=h.address)
    finally:
        with c:
            c.execute("INSERT INTO meta (key, value) VALUES ('admin_public_key', ?)", (pinned,))
        c.close()
    assert h.admin_cli("collab", "join", "sg-csam", name) == 0
    return Member(name, tmp / name, h)


def test_an_old_key_is_refused_until_the_admin_attests_it(kw: dict[str, Any]) -> None:
    h, sub = kw["hub"], kw["sub"]
    old = _legacy_member(h, kw["tmp"], "oldpub")
    kid = old.files.identity().key_id
    first = old.indicators(1)
    seq = old.publish(first).sequence
    d = SyncDaemon(sub.data, address=h.address, workers=0)
    try:
        reasons = dict(d.sync_once().refused)
        assert NO_CHAIN in reasons[seq] and kid in reasons[seq]
        # a wrong key id changes nothing
        with h.db() as c:
            leaves = c.execute("SELECT COUNT(*) FROM leaves").fetchone()[0]
        assert h.admin_cli("member", "attest", "oldpub", "ed25519:" + "0" * 32) == EXIT_BAD_INPUT
        with h.db() as c:
            assert c.execute("SELECT COUNT(*) FROM leaves").fetchone()[0] == leaves
        assert h.admin_cli("member", "attest", "oldpub", kid) == 0
        later = old.indicators(1)
        old.publish(later)
        report = d.sync_once()
        assert report.refused == [] and d.store.states([later[0].id])
        assert not d.store.states([first[0].id])  # what it signed before stays refused
    finally:
        d.close()
        old.close()


def test_attest_is_refused_by_the_hub_for_a_forged_signature(
    kw: dict[str, Any], tmp_path: Path
) -> None:
    h = kw["hub"]
    old = _legacy_member(h, kw["tmp"], "oldpub2")
    public = old.files.identity().public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    other = tmp_path / "other"
    other.mkdir()
    forger = create_admin_key(other)
    # an admin key other than the one the credential pins is caught before the hub
    before = _hub_rows(h, "oldpub2")
    assert h.admin_cli("member", "attest", "oldpub2", old.files.identity().key_id,
                       "--admin-key", str(other / ADMIN_SIGNING_KEY)) == EXIT_BAD_INPUT  # fmt: skip
    assert _hub_rows(h, "oldpub2") == before
    # sent to the hub anyway: refused, nothing logged
    cred = Credential.load(h.data / "admin")
    raw, signature = attest_key(forger, "sighub/test-hub", "oldpub2", public)
    with open_channel(cred, address=h.address) as channel:
        stub = admin_pb2_grpc.AdminServiceStub(channel)
        request = admin_pb2.AttestMemberKeyRequest(
            member="oldpub2", attestation=raw, signature=signature
        )
        with pytest.raises(grpc.RpcError) as err:
            stub.AttestMemberKey(request, timeout=30)
    assert err.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "signature does not verify" in str(err.value.details())
    assert _hub_rows(h, "oldpub2") == before
    old.close()


@pytest.mark.parametrize(
    "edit, words",
    [
        ({"admin_public_key": "None"}, "admin_public_key"),
        ({"grant": None}, "grant is NoneType, expected a string"),
        ({"grant_signature": "%%%"}, "grant_signature: not base64"),
        ({"enrollment_key": base64.b64encode(b"\1" * 5).decode()}, "enrollment file"),
    ],
)
def test_a_malformed_enrollment_file_is_refused_before_the_hub_is_asked(
    kw: dict[str, Any], tmp_path: Path, edit: dict[str, Any], words: str
) -> None:
    h = kw["hub"]
    name = f"badfile{abs(hash(words)) % 10_000}"
    path = _added(h, tmp_path, name)
    original = json.loads(path.read_bytes())
    _edit(path, **edit)
    before = _hub_rows(h, name)
    with pytest.raises(KeyFileError, match=words):
        enroll(path, tmp_path / name, address=h.address)
    assert not (tmp_path / name / "hub.json").exists()
    assert _hub_rows(h, name) == before  # the token is not spent: the file still enrolls
    _edit(path, **original)
    enroll(path, tmp_path / f"{name}-2", address=h.address)


def test_a_role_given_twice_still_makes_an_enrollable_grant(
    kw: dict[str, Any], tmp_path: Path
) -> None:
    h = kw["hub"]
    path = tmp_path / "twice.enroll.json"
    assert h.admin_cli("member", "add", "twice", "--roles", "publisher,publisher,subscriber",
                       "--out", str(path)) == 0  # fmt: skip
    enroll(path, tmp_path / "twice", address=h.address)
    assert _hub_rows(h, "twice")[0] == "active"
