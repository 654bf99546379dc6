"""Member-held collaboration keys on a real hub: a steward makes each epoch and wraps it to
the members; the hub stores and relays only the wraps and never holds a secret."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sighub.client._daemon import SyncDaemon
from sighub.client._envelope import key_id
from sighub.client._errors import EXIT_REFUSED
from sighub.client._hpke import ENCRYPTION_KEY, load_key
from sighub.client._leaves import key_commitment
from sighub.client._rpc import HubRejected
from sighub.client._wraps import Recipient, Wrap, WrapError, new_secret, unwrap, wrap_epoch
from sighub.hub._cli import main as sighub
from tests.hub.conftest import HubProcess, Member

COLLAB = "sg-keys"


def _daemon(m: Member) -> SyncDaemon:
    return SyncDaemon(m.data, address=m.hub.address, workers=0)


def _held(m: Member) -> dict[int, bytes]:
    d = _daemon(m)
    try:
        d.sync_once()
        return {e: s for c, e, s in d.store.collab_keys() if c == COLLAB}
    finally:
        d.close()


def _rekey(m: Member, new: bool = False) -> Any:
    d = _daemon(m)
    try:
        return d.rekey(COLLAB, force_new=new)
    finally:
        d.close()


def _hub_wraps(hub: HubProcess, epoch: int) -> list[Wrap]:
    with hub.db() as c:
        rows = c.execute(
            "SELECT w.collab, w.epoch, e.commitment, w.recipient, w.recipient_key_id, w.suite,"
            " w.sealed, w.steward, w.signing_key_id, w.signature FROM epoch_wraps w JOIN"
            " collab_epochs e USING (collab, epoch) WHERE w.collab=? AND w.epoch=?",
            (COLLAB, epoch),
        ).fetchall()
    return [Wrap(*r) for r in rows]


def _files_holding(root: Path, secret: bytes) -> list[Path]:
    """Files under ``root`` holding ``secret`` raw, hex or base64."""
    import base64

    needles = (secret, secret.hex().encode(), base64.b64encode(secret))
    return [p for p in root.rglob("*") if p.is_file() and any(n in p.read_bytes() for n in needles)]


@pytest.fixture(scope="module")
def steward_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("stewards")
    hub = HubProcess(tmp / "hub")
    hub.start()
    try:
        stew = hub.member("stew", tmp, collabs=())
        assert hub.admin_cli("collab", "add", COLLAB, "--steward", "stew") == 0
        pub = hub.member("pub", tmp, collabs=(COLLAB,))
        sub = hub.member("sub", tmp, roles="subscriber", collabs=(COLLAB,))
        yield {"hub": hub, "tmp": tmp, "stew": stew, "pub": pub, "sub": sub}
        for m in (stew, pub, sub):
            m.close()
    finally:
        if hub.proc is not None:
            hub.stop()


def test_member_held_keys_full_flow(steward_world: dict[str, Any]) -> None:
    hub: HubProcess = steward_world["hub"]
    stew: Member = steward_world["stew"]
    pub: Member = steward_world["pub"]
    sub: Member = steward_world["sub"]
    tmp: Path = steward_world["tmp"]

    # no epoch yet: the hub refuses, naming the collaboration and the steward
    with pytest.raises(HubRejected) as refused:
        pub.client().wraps(COLLAB)
    assert refused.value.code == "FAILED_PRECONDITION"
    assert COLLAB in refused.value.hub_message and "stew" in refused.value.hub_message
    with hub.db() as c:
        assert (
            c.execute("SELECT COUNT(*) FROM collab_keys WHERE collab=?", (COLLAB,)).fetchone()[0]
            == 0
        )

    first = _rekey(stew)
    assert (first.epoch, first.new, first.recipients) == (0, True, ("pub", "stew", "sub"))
    secret0 = _held(stew)[0]
    assert _held(pub) == {0: secret0} and _held(sub) == {0: secret0}

    # the epoch works: pub blinds and publishes with it, sub syncs it
    inds = pub.indicators(2, collab=COLLAB)
    assert {i.key_epoch for i in inds} == {0}
    assert pub.publish(inds, collab=COLLAB).sequence > 0
    assert _daemon(sub).sync_once().applied == 2

    # a removed member gets no later epoch and cannot open any of its wraps
    sub_key = load_key(sub.data / ENCRYPTION_KEY)
    assert hub.admin_cli("member", "remove", "sub") == 0
    second = _rekey(stew)
    assert (second.epoch, second.new, second.recipients) == (1, True, ("pub", "stew"))
    secret1 = _held(pub)[1]
    assert secret1 != secret0 and _held(stew)[1] == secret1
    wraps1 = _hub_wraps(hub, 1)
    assert sorted(w.recipient for w in wraps1) == ["pub", "stew"]
    for w in wraps1:
        with pytest.raises(WrapError):
            unwrap(w, "sub", sub_key, lambda s, k: None)
        with pytest.raises(WrapError):  # even claiming to be the recipient: the AAD differs
            unwrap(w, w.recipient, sub_key, lambda s, k: None)

    # a joiner is wrapped the current epoch only, and the hub refuses it until then
    late = hub.member("late", tmp, collabs=(COLLAB,))
    with pytest.raises(HubRejected) as refused:
        late.client().wraps(COLLAB)
    assert "epoch 1 has no wrap for 'late'" in refused.value.hub_message
    with pytest.raises(HubRejected) as refused:  # nor does it stream it, asked by name
        list(late.client().sync(0, [COLLAB]))
    assert refused.value.code == "FAILED_PRECONDITION"
    assert "epoch 1 has no wrap for 'late'" in refused.value.hub_message
    assert "sighub collab rekey" in refused.value.hub_message
    # a stream of all its collaborations goes on (one gap must not stop the others, nor a
    # steward's duties), and the daemon says what is missing
    d = _daemon(late)
    try:
        assert d.sync_once().cursor > 0
        assert not [k for k in d.store.collab_keys() if k[0] == COLLAB]
    finally:
        d.close()
    joined = _rekey(stew)
    assert (joined.epoch, joined.new, joined.recipients) == (1, False, ("late",))
    assert _held(late) == {1: secret1}
    late.close()

    # the hub's data directory holds no epoch secret: not in hub.db, config or backups
    assert sighub(["hub", "backup", "--data", str(hub.data), "--to", str(hub.data / "b.db")]) == 0
    for secret in (secret0, secret1):
        assert _files_holding(hub.data, secret) == []
    for m in (stew, pub):
        db = sqlite3.connect(m.data / "local.db")
        assert db.execute("SELECT COUNT(*) FROM collab_keys").fetchone()[0] >= 2
        db.close()
        assert (m.data / "local.db").stat().st_mode & 0o077 == 0


def test_only_a_steward_puts_epochs(steward_world: dict[str, Any]) -> None:
    pub: Member = steward_world["pub"]
    with pytest.raises(HubRejected) as refused:
        pub.client().put_epoch(COLLAB, 9, "00" * 32, [])
    assert refused.value.code == "PERMISSION_DENIED"
    assert "not a steward" in refused.value.hub_message


def test_admin_cannot_rotate_a_stewarded_key(steward_world: dict[str, Any]) -> None:
    hub: HubProcess = steward_world["hub"]
    assert hub.admin_cli("collab", "rotate-key", COLLAB) != 0
    with hub.db() as c:
        assert (
            c.execute("SELECT COUNT(*) FROM collab_keys WHERE collab=?", (COLLAB,)).fetchone()[0]
            == 0
        )


def test_hub_made_keys_move_to_the_steward_at_the_first_rekey(
    steward_world: dict[str, Any],
) -> None:
    """Migration: a collaboration from before stewards keeps its hub-made epoch served
    until its new steward's first rekey, which deletes the hub's copy; members keep
    theirs."""
    hub: HubProcess = steward_world["hub"]
    stew: Member = steward_world["stew"]
    pub: Member = steward_world["pub"]
    assert hub.admin_cli("collab", "add", "legacy") == 0
    assert hub.admin_cli("collab", "join", "legacy", "pub") == 0
    old = {k.epoch: k.secret for k in pub.client().collab_keys() if k.collaboration == "legacy"}
    assert list(old) == [0]
    _held(pub)  # pub syncs, as a member from before stewards did: it holds epoch 0
    assert hub.admin_cli("collab", "steward", "legacy", "stew") == 0
    # still served, still no wrap: the steward has not run yet
    assert [k.epoch for k in pub.client().collab_keys() if k.collaboration == "legacy"] == [0]
    with pytest.raises(HubRejected, match="epoch 0 has no wrap"):
        pub.client().wraps("legacy")
    d = _daemon(stew)
    try:
        done = d.rekey("legacy")
    finally:
        d.close()
    assert (done.epoch, done.new, done.recipients) == (1, True, ("pub", "stew"))
    with hub.db() as c:
        assert (
            c.execute("SELECT COUNT(*) FROM collab_keys WHERE collab='legacy'").fetchone()[0] == 0
        )
    assert [k for k in pub.client().collab_keys() if k.collaboration == "legacy"] == []
    d = _daemon(pub)
    try:
        d.sync_once()
        held = {e: s for c, e, s in d.store.collab_keys() if c == "legacy"}
    finally:
        d.close()
    assert set(held) == {0, 1} and held[0] == old[0]  # the hub-made epoch stays until expiry
    assert _files_holding(hub.data, held[1]) == []


def test_the_steward_daemon_rekeys_on_membership_events(steward_world: dict[str, Any]) -> None:
    """A suspension makes the steward's next sync draw a new epoch without the suspended
    member; its resumption makes the next one wrap the current epoch to it."""
    hub: HubProcess = steward_world["hub"]
    stew: Member = steward_world["stew"]
    pub: Member = steward_world["pub"]
    before = max(_held(stew))
    assert hub.admin_cli("member", "suspend", "pub") == 0
    held = _held(stew)  # the sync does the steward's duties
    epoch = max(held)
    assert epoch == before + 1
    assert sorted(w.recipient for w in _hub_wraps(hub, epoch)) == ["late", "stew"]
    assert hub.admin_cli("member", "resume", "pub") == 0
    assert max(_held(stew)) == epoch  # no new epoch: the current one wrapped to pub
    assert sorted(w.recipient for w in _hub_wraps(hub, epoch)) == ["late", "pub", "stew"]
    assert _held(pub)[epoch] == held[epoch]


def test_the_hub_refuses_wraps_it_should_not_relay(steward_world: dict[str, Any]) -> None:
    """A forged signature, a member left out of a new epoch, an epoch out of turn: refused,
    and nothing stored."""
    hub: HubProcess = steward_world["hub"]
    stew: Member = steward_world["stew"]
    with hub.db() as c:
        current = c.execute(
            "SELECT MAX(epoch) FROM collab_epochs WHERE collab=?", (COLLAB,)
        ).fetchone()[0]
        recipients = [
            Recipient(m, s, bytes(k))
            for m, s, k in c.execute(
                "SELECT e.member, e.suite, e.public_key FROM encryption_keys e JOIN memberships"
                " m ON m.member = e.member JOIN members s ON s.name = e.member WHERE m.collab=?"
                " AND e.replaced_seq IS NULL AND s.status='active' ORDER BY e.member",
                (COLLAB,),
            )
        ]
        stored = c.execute("SELECT COUNT(*) FROM epoch_wraps").fetchone()[0]
    secret = new_secret()
    signing = stew.files.signing_key()

    def put(wraps: list[Wrap], epoch: int) -> HubRejected:
        with pytest.raises(HubRejected) as refused:
            stew.client().put_epoch(COLLAB, epoch, key_commitment(secret), wraps)
        return refused.value

    forged = wrap_epoch(Ed25519PrivateKey.generate(), "stew", COLLAB, current + 1, secret,
                        recipients)  # fmt: skip
    assert put(forged, current + 1).code == "UNAUTHENTICATED"
    relabelled = [replace(w, signing_key_id=key_id(signing.public_key())) for w in forged]
    assert "signature does not verify" in put(relabelled, current + 1).hub_message
    partial = wrap_epoch(signing, "stew", COLLAB, current + 1, secret, recipients[1:])
    refused = put(partial, current + 1)
    assert refused.code == "FAILED_PRECONDITION" and recipients[0].member in refused.hub_message
    later = wrap_epoch(signing, "stew", COLLAB, current + 3, secret, recipients)
    assert f"expected the next epoch {current + 1}" in put(later, current + 3).hub_message
    # a sealed field of another size than the suite's (a 4 MB "wrap" would stall
    # GetWraps for its recipient)
    good = wrap_epoch(signing, "stew", COLLAB, current + 1, secret, recipients)
    padded = [replace(good[0], sealed=good[0].sealed + b"\0" * 4096), *good[1:]]
    refused = put(padded, current + 1)
    assert refused.code == "INVALID_ARGUMENT" and "sealed is" in refused.hub_message
    # a commitment that is not a SHA-256 (a 4 KB one made a leaf no member could read)
    with pytest.raises(HubRejected) as bad:
        stew.client().put_epoch(COLLAB, current + 1, "ab" * 2500, good)
    assert bad.value.code == "INVALID_ARGUMENT" and "64 lowercase hex" in bad.value.hub_message
    with hub.db() as c:
        assert c.execute("SELECT COUNT(*) FROM epoch_wraps").fetchone()[0] == stored
        assert c.execute("SELECT MAX(epoch) FROM collab_epochs WHERE collab=?",
                         (COLLAB,)).fetchone()[0] == current  # fmt: skip


def test_who_may_steward_and_join_a_stewarded_collaboration(
    steward_world: dict[str, Any], tmp_path: Path
) -> None:
    """A steward must sync (subscriber or peer) and have an encryption key; so must every
    member of a stewarded collaboration, or no epoch could ever be wrapped to it; a
    steward that left makes no more epochs.  Each refusal changes nothing."""
    hub: HubProcess = steward_world["hub"]

    def state() -> tuple[Any, ...]:
        with hub.db() as c:
            return tuple(
                c.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                for t in ("collab_stewards", "memberships", "leaves")
            )

    pubonly = hub.member("pubonly", tmp_path, roles="publisher", collabs=())
    before = state()
    assert hub.admin_cli("collab", "steward", COLLAB, "pubonly") == EXIT_REFUSED
    assert state() == before
    nokey = hub.member("nokey", tmp_path, collabs=())
    with sqlite3.connect(hub.data / "hub.db") as c:  # as if enrolled before encryption keys
        c.execute("DELETE FROM encryption_keys WHERE member='nokey'")
    before = state()
    assert hub.admin_cli("collab", "join", COLLAB, "nokey") == EXIT_REFUSED
    assert state() == before
    assert hub.admin_cli("collab", "add", "other-stewarded", "--steward", "nokey") == EXIT_REFUSED
    assert state() == before
    # a second steward, which then leaves: it may put no epoch
    second = hub.member("second", tmp_path, collabs=())
    assert hub.admin_cli("collab", "steward", COLLAB, "second") == 0
    with hub.db() as c:
        current, commitment = c.execute(
            "SELECT epoch, commitment FROM collab_epochs WHERE collab=? ORDER BY epoch DESC",
            (COLLAB,),
        ).fetchone()
    before = state()
    with pytest.raises(HubRejected) as refused:  # members hold wraps to stew's leaf
        second.client().put_epoch(COLLAB, current, commitment, [])
    assert refused.value.code == "PERMISSION_DENIED" and "made by 'stew'" in str(refused.value)
    assert state() == before
    assert hub.admin_cli("collab", "leave", COLLAB, "second") == 0
    before = state()
    with pytest.raises(HubRejected) as refused:
        second.client().put_epoch(COLLAB, current + 1, "00" * 32, [])
    assert (
        refused.value.code == "PERMISSION_DENIED" and "not a steward" in refused.value.hub_message
    )
    assert state() == before
    for m in (pubonly, nokey, second):
        m.close()


def test_collab_status_lists_epochs_and_holders(
    steward_world: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    hub: HubProcess = steward_world["hub"]
    pub: Member = steward_world["pub"]
    args = ["collab", "status", COLLAB, "--data", str(pub.data), "--hub", hub.address]
    assert sighub([*args, "--json"]) == 0
    (doc,) = json.loads(capsys.readouterr().out)["collabs"]
    assert doc["stewards"] == ["stew"] and doc["rekey_due"] is False
    assert [e["epoch"] for e in doc["epochs"]] == list(range(len(doc["epochs"])))
    assert doc["epochs"][0]["holders"] == ["pub", "stew", "sub"]
    assert doc["epochs"][-1]["holders"] == ["late", "pub", "stew"]
    assert all(e["held_here"] for e in doc["epochs"])
    assert sighub(args) == 0
    assert "keys made by stew" in capsys.readouterr().out
