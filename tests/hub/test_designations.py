"""Stewards in the log, on a real hub: the admin signs each designation, the hub logs it
and refuses one that does not verify, and members take key epochs only from a steward the
log shows designated, so a hub working with one member cannot hand out that member's key."""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sighub.client._blind import Blinder, CollabKey
from sighub.client._daemon import SyncDaemon
from sighub.client._grant import (
    ADMIN_SIGNING_KEY,
    KeyChainError,
    check_designation,
    designate_steward,
    load_admin_key,
)
from sighub.client._leaves import key_commitment
from sighub.client._local import LOCAL_DB, LocalStore
from sighub.client._matcher import Matcher
from sighub.client._model import Kind
from sighub.client._proto import admin_pb2, admin_pb2_grpc
from sighub.client._rpc import Credential, HubRejected, open_channel
from sighub.client._wraps import Recipient, WrapError, new_secret, wrap_epoch
from tests.hub.conftest import HubProcess, Member

COLLAB = "sg-design"


def _daemon(m: Member) -> SyncDaemon:
    return SyncDaemon(m.data, address=m.hub.address, workers=0)


def _sync(m: Member) -> tuple[dict[int, bytes], list[str]]:
    """Sync ``m``; the epochs of COLLAB it holds and the wraps it refused."""
    d = _daemon(m)
    try:
        d.sync_once()
        with d.connect() as hub:
            refused = d.unwrap(hub)
        return {e: s for c, e, s in d.store.collab_keys() if c == COLLAB}, refused
    finally:
        d.close()


def _rekey(m: Member, new: bool = False) -> Any:
    d = _daemon(m)
    try:
        return d.rekey(COLLAB, force_new=new)
    finally:
        d.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("designations")
    hub = HubProcess(tmp / "hub")
    hub.start()
    try:
        stew = hub.member("stew", tmp, collabs=())
        assert hub.admin_cli("collab", "add", COLLAB, "--steward", "stew") == 0
        pub = hub.member("pub", tmp, collabs=(COLLAB,))
        sub = hub.member("sub", tmp, roles="subscriber", collabs=(COLLAB,))
        assert _rekey(stew).epoch == 0
        yield {"hub": hub, "tmp": tmp, "stew": stew, "pub": pub, "sub": sub}
        for m in (stew, pub, sub):
            m.close()
    finally:
        if hub.proc is not None:
            hub.stop()


@pytest.fixture(scope="module")
def admin(world: dict[str, Any]) -> Iterator[admin_pb2_grpc.AdminServiceStub]:
    hub: HubProcess = world["hub"]
    cred = hub.admin
    with open_channel(
        Credential(cred.folder, hub.address, cred.member, cred.bearer_token, cred.hub_public_key)
    ) as channel:
        yield admin_pb2_grpc.AdminServiceStub(channel)


def _write(hub: HubProcess, sql: str, *args: Any) -> None:
    """A change behind the hub's back, as its operator (or an intruder) could make."""
    c = sqlite3.connect(hub.data / "hub.db")
    try:
        with c:
            c.execute(sql, args)
    finally:
        c.close()


def _state(hub: HubProcess) -> tuple[Any, ...]:
    with hub.db() as c:
        return tuple(
            c.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
            for t in ("collabs", "collab_stewards", "memberships", "leaves")
        )


def _admin_key(hub: HubProcess) -> Ed25519PrivateKey:
    return load_admin_key(Path(hub.admin.folder) / ADMIN_SIGNING_KEY)


def _origin(hub: HubProcess) -> str:
    with hub.db() as c:
        return str(c.execute("SELECT value FROM meta WHERE key='log_origin'").fetchone()[0])


def test_the_designation_is_logged_with_the_admins_signature(world: dict[str, Any]) -> None:
    hub: HubProcess = world["hub"]
    with hub.db() as c:
        (raw,) = c.execute(
            "SELECT leaf FROM leaves WHERE type='collab.steward' AND collab=?", (COLLAB,)
        ).fetchone()
        joins = [
            json.loads(r[0])
            for r in c.execute(
                "SELECT leaf FROM leaves WHERE type='collab.join' AND collab=? ORDER BY seq",
                (COLLAB,),
            )
        ]
    leaf = json.loads(raw)
    assert (leaf["collab"], leaf["member"]) == (COLLAB, "stew")
    admin_public = _admin_key(hub).public_key().public_bytes_raw()
    designation = base64.b64decode(leaf["signature"])
    check_designation(admin_public, _origin(hub), COLLAB, "stew", designation)
    with pytest.raises(KeyChainError):
        check_designation(admin_public, _origin(hub), COLLAB, "pub", designation)
    # every join lists the stewards with their designations, for members that join late
    assert [j["member"] for j in joins] == ["stew", "pub", "sub"]
    assert all(j["stewards"] == ["stew"] for j in joins)
    assert all(j["steward_signatures"] == [leaf["signature"]] for j in joins)


@pytest.mark.parametrize(
    ("signature", "code", "words"),
    [
        (b"", grpc.StatusCode.FAILED_PRECONDITION, "has no admin designation"),
        (b"\x01" * 80, grpc.StatusCode.PERMISSION_DENIED, "signature does not verify"),
        (b"short", grpc.StatusCode.PERMISSION_DENIED, "expected 80"),
    ],
)
def test_the_hub_refuses_a_designation_that_does_not_verify(
    world: dict[str, Any],
    admin: admin_pb2_grpc.AdminServiceStub,
    signature: bytes,
    code: grpc.StatusCode,
    words: str,
) -> None:
    hub: HubProcess = world["hub"]
    before = _state(hub)
    with pytest.raises(grpc.RpcError) as add:
        admin.AddCollab(
            admin_pb2.AddCollabRequest(
                name="sg-forged", stewards=["pub"], steward_signatures=[signature]
            ),
            timeout=30,
        )
    assert add.value.code() == code and words in str(add.value.details())
    with pytest.raises(grpc.RpcError) as steward:
        admin.AddCollabSteward(
            admin_pb2.AddCollabStewardRequest(
                collaboration=COLLAB, member="pub", signature=signature
            ),
            timeout=30,
        )
    assert steward.value.code() == code
    assert _state(hub) == before


def test_a_designation_for_another_member_or_collaboration_is_refused(
    world: dict[str, Any], admin: admin_pb2_grpc.AdminServiceStub
) -> None:
    hub: HubProcess = world["hub"]
    before = _state(hub)
    key, origin = _admin_key(hub), _origin(hub)
    for signature in (
        designate_steward(key, origin, COLLAB, "sub"),
        designate_steward(key, origin, "other", "pub"),
        designate_steward(key, "another.example/log", COLLAB, "pub"),
    ):
        with pytest.raises(grpc.RpcError) as refused:
            admin.AddCollabSteward(
                admin_pb2.AddCollabStewardRequest(
                    collaboration=COLLAB, member="pub", signature=signature
                ),
                timeout=30,
            )
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as count:
        admin.AddCollab(
            admin_pb2.AddCollabRequest(
                name="sg-two", stewards=["pub", "sub"], steward_signatures=[b""]
            ),
            timeout=30,
        )
    assert count.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _state(hub) == before


def _recipients(hub: HubProcess) -> list[Recipient]:
    """The active members of COLLAB with their current encryption keys, as the hub holds
    them (what a colluding member's own code would wrap to)."""
    with hub.db() as c:
        return [
            Recipient(m, suite, bytes(key))
            for m, suite, key in c.execute(
                "SELECT e.member, e.suite, e.public_key FROM encryption_keys e JOIN memberships"
                " m ON m.member = e.member JOIN members s ON s.name = e.member WHERE m.collab=?"
                " AND e.replaced_seq IS NULL AND s.status='active' ORDER BY e.member",
                (COLLAB,),
            )
        ]


def test_members_refuse_an_epoch_from_a_steward_the_hub_made(world: dict[str, Any]) -> None:
    """A hub working with pub makes pub a steward without the admin (a row in its own
    database), and pub's own code wraps a new epoch to everyone: the hub takes it, but
    every member refuses its wraps and keeps the designated steward's epoch.  (pub's
    honest client would not even try: its log shows no designation.)"""
    hub: HubProcess = world["hub"]
    pub: Member = world["pub"]
    sub: Member = world["sub"]
    held, _ = _sync(sub)
    with pytest.raises(WrapError, match="not a steward the verified log shows"):
        _rekey(pub, new=True)
    _write(
        hub,
        "INSERT INTO collab_stewards (collab, member, signature, seq) VALUES (?, 'pub', '', 1)",
        COLLAB,
    )
    try:
        with hub.db() as c:
            current = c.execute(
                "SELECT MAX(epoch) FROM collab_epochs WHERE collab=?", (COLLAB,)
            ).fetchone()[0]
        secret = new_secret()
        wraps = wrap_epoch(pub.files.signing_key(), "pub", COLLAB, current + 1, secret,
                           _recipients(hub))  # fmt: skip
        assert pub.client().put_epoch(COLLAB, current + 1, key_commitment(secret), wraps) > 0
        got, refused = _sync(sub)
        assert current + 1 not in got and got == held
        assert any("no admin designation" in r and "'pub'" in r for r in refused)
    finally:
        _write(hub, "DELETE FROM collab_stewards WHERE member='pub'")
    # the designated steward's next run sees the current epoch refused: a new one
    stew: Member = world["stew"]
    done = _rekey(stew)
    assert done.new and done.epoch == current + 2
    got, _ = _sync(sub)
    assert done.epoch in got


def test_a_steward_named_before_designations_must_be_designated_again(
    world: dict[str, Any],
) -> None:
    """Migration: a steward whose designation the log lacks (a hub from before) is refused
    by the hub with what to do; `admin collab steward` logs the designation, and members
    take the steward's next epoch."""
    hub: HubProcess = world["hub"]
    stew: Member = world["stew"]
    sub: Member = world["sub"]
    _write(hub, "UPDATE collab_stewards SET signature='', seq=NULL WHERE member='stew'")
    before = _state(hub)
    with pytest.raises(HubRejected) as refused:
        _rekey(stew, new=True)
    assert _state(hub) == before
    assert refused.value.code == "FAILED_PRECONDITION"
    assert f"sighub admin collab steward {COLLAB} stew" in refused.value.hub_message
    assert hub.admin_cli("collab", "steward", COLLAB, "stew") == 0
    assert hub.admin_cli("collab", "steward", COLLAB, "stew") != 0  # now it is one
    done = _rekey(stew, new=True)
    got, _ = _sync(sub)
    assert done.epoch in got


def test_a_late_joiner_learns_the_stewards_from_its_join_leaf(
    world: dict[str, Any], tmp_path: Path
) -> None:
    """A member that synced past the designation before it joined (it saw that leaf as a
    hash) takes the steward's wrap once it joins: its join leaf lists the stewards."""
    hub: HubProcess = world["hub"]
    stew: Member = world["stew"]
    late = hub.member("late", tmp_path, collabs=())
    try:
        held, _ = _sync(late)
        assert held == {}
        assert hub.admin_cli("collab", "join", COLLAB, "late") == 0
        done = _rekey(stew)
        assert done.recipients == ("late",)
        got, refused = _sync(late)
        assert set(got) == {done.epoch} and refused == []
    finally:
        late.close()


def test_the_policy_wraps_a_joiner_earlier_epochs(world: dict[str, Any], tmp_path: Path) -> None:
    """With earlier_epochs 1 a joiner gets the epoch before the current one too (to match
    indicators published under it until they expire); the hub refuses a wrap of an epoch
    outside the policy, and a policy out of range, changing nothing."""
    hub: HubProcess = world["hub"]
    stew: Member = world["stew"]
    before = _state(hub)
    assert hub.admin_cli("collab", "policy", COLLAB, "--earlier-epochs", "65") != 0
    assert hub.admin_cli("collab", "policy", COLLAB, "--earlier-epochs", "-1") != 0
    assert _state(hub) == before
    assert hub.admin_cli("collab", "policy", COLLAB, "--earlier-epochs", "1") == 0
    assert hub.admin_cli("collab", "policy", COLLAB, "--earlier-epochs", "1") != 0  # no change
    with hub.db() as c:
        (raw,) = c.execute(
            "SELECT leaf FROM leaves WHERE type='collab.policy' ORDER BY seq DESC"
        ).fetchone()
    assert json.loads(raw)["earlier_epochs"] == 1
    first = _rekey(stew, new=True)
    second = _rekey(stew, new=True)
    assert second.epoch == first.epoch + 1
    joiner = hub.member("joiner", tmp_path, collabs=(COLLAB,))
    try:
        done = _rekey(stew)
        assert done.recipients == ("joiner",) and done.earlier == ((first.epoch, ("joiner",)),)
        got, refused = _sync(joiner)
        assert set(got) == {first.epoch, second.epoch} and refused == []
        # an epoch before the policy's window: refused, nothing stored
        held = _sync(stew)[0]
        old = first.epoch - 1
        with hub.db() as c:
            stored = c.execute("SELECT COUNT(*) FROM epoch_wraps").fetchone()[0]
            (suite, public) = c.execute(
                "SELECT suite, public_key FROM encryption_keys WHERE member='joiner' AND"
                " replaced_seq IS NULL"
            ).fetchone()
        wraps = wrap_epoch(stew.files.signing_key(), "stew", COLLAB, old, held[old],
                           [Recipient("joiner", suite, bytes(public))])  # fmt: skip
        with pytest.raises(HubRejected) as refused_put:
            stew.client().put_epoch(COLLAB, old, key_commitment(held[old]), wraps)
        assert refused_put.value.code == "FAILED_PRECONDITION"
        assert "policy" in refused_put.value.hub_message
        with hub.db() as c:
            assert c.execute("SELECT COUNT(*) FROM epoch_wraps").fetchone()[0] == stored
    finally:
        joiner.close()


def test_a_removed_members_old_epochs_stop_at_expiry(world: dict[str, Any], tmp_path: Path) -> None:
    """A removed member keeps what it held: indicators under its last epoch keep matching
    on its side until they expire, and not after; it gets no later epoch and syncs no
    more."""
    hub: HubProcess = world["hub"]
    stew: Member = world["stew"]
    pub: Member = world["pub"]
    leaver = hub.member("leaver", tmp_path, collabs=(COLLAB,))
    try:
        _rekey(stew)
        held, _ = _sync(pub)
        epoch = max(held)
        blinder = Blinder(CollabKey(COLLAB, epoch, held[epoch]))
        value = blinder.value(Kind.KEYWORD, "on chapter 14")
        (ind,) = pub.indicators(1, collab=COLLAB, days=30, value=value, key_epoch=epoch)
        assert pub.publish([ind], collab=COLLAB).sequence > 0
        got, _ = _sync(leaver)
        assert epoch in got
        assert hub.admin_cli("member", "remove", "leaver") == 0
        after = _rekey(stew)
        assert after.new and "leaver" not in after.recipients
        with hub.db() as c:
            assert (
                c.execute(
                    "SELECT COUNT(*) FROM epoch_wraps WHERE recipient='leaver' AND epoch=?",
                    (after.epoch,),
                ).fetchone()[0]
                == 0
            )
        store = LocalStore(leaver.data / LOCAL_DB)
        try:
            now = datetime.now(UTC)
            text = "carry on, on chapter 14 now"
            fired = Matcher.from_store(store, now=now).scan(text)
            assert [m.indicator for m in fired] == [ind.id]
            later = now + timedelta(days=31)
            assert Matcher.from_store(store, now=later).scan(text) == []
        finally:
            store.close()
        d = _daemon(leaver)
        try:
            with pytest.raises(HubRejected) as refused:
                d.sync_once()
        finally:
            d.close()
        assert refused.value.code in ("PERMISSION_DENIED", "UNAUTHENTICATED")
    finally:
        leaver.close()


def test_policy_and_steward_count_refusals_change_nothing(
    world: dict[str, Any], admin: admin_pb2_grpc.AdminServiceStub
) -> None:
    hub: HubProcess = world["hub"]

    def policy() -> tuple[Any, ...]:
        with hub.db() as c:
            rows = c.execute("SELECT name, earlier_epochs FROM collabs ORDER BY name").fetchall()
        return (_state(hub), tuple(rows))

    before = policy()
    for collab, n, code in (
        ("no-such", 1, grpc.StatusCode.NOT_FOUND),
        (COLLAB, 65, grpc.StatusCode.INVALID_ARGUMENT),
        (COLLAB, 1, grpc.StatusCode.ALREADY_EXISTS),  # set so by the test above
    ):
        with pytest.raises(grpc.RpcError) as refused:
            admin.SetCollabPolicy(
                admin_pb2.SetCollabPolicyRequest(collaboration=collab, earlier_epochs=n),
                timeout=30,
            )
        assert refused.value.code() == code, (collab, n)
    assert hub.admin_cli("collab", "add", "plain") == 0  # no stewards: the hub's keys
    before = policy()
    with pytest.raises(grpc.RpcError) as refused:
        admin.SetCollabPolicy(
            admin_pb2.SetCollabPolicyRequest(collaboration="plain", earlier_epochs=2), timeout=30
        )
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "has no stewards" in str(refused.value.details())
    names = [f"m{i}" for i in range(9)]
    with pytest.raises(grpc.RpcError) as many:
        admin.AddCollab(
            admin_pb2.AddCollabRequest(name="sg-many", stewards=names,
                                       steward_signatures=[b""] * 9),
            timeout=30,
        )  # fmt: skip
    assert many.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "at most 8" in str(many.value.details())
    assert policy() == before
