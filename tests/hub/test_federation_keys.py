"""A collaboration key that spans hubs (``docs/federation.md``, "Collaboration keys across
hubs"; ``client/_farkeys.py``), on real hub processes.

``industry`` and ``regional`` follow each other with ``sg-x`` mapped both ways.  Its steward
is a platform of industry; regional's ``sg-x`` takes its keys from the peer.  The steward
wraps each epoch to regional's members too (their memberships and encryption keys reach
industry's log as copies); industry logs those wraps as ``collab.wrap`` leaves, which
regional's relay copies with the epoch leaf; regional's platforms open them from their own
verified log and match what the industry platform blinded, one key on both hubs."""

from __future__ import annotations

import base64
import json
import sqlite3

import pytest

from sighub import Kind
from sighub import Member as Platform
from sighub.client._daemon import SyncDaemon
from sighub.hub._cli import main as sighub
from sighub.wire import Blinder
from tests.hub.conftest import HubProcess, Member
from tests.hub.test_federation import Net, envelopes, member_sync, wait_for

X = "sg-x"
TEXT = "menu for s3ller bundles"


def keys(member: Member) -> dict[int, bytes]:
    with sqlite3.connect(member.data / "local.db") as c:
        rows = c.execute("SELECT epoch, secret FROM collab_keys WHERE collab=?", (X,))
        return {int(e): bytes(s) for e, s in rows.fetchall()}


def far_wraps(hub: Net, name: str) -> list[str]:
    with hub.hubs[name].db() as c:
        rows = c.execute("SELECT recipient FROM epoch_wraps WHERE recipient LIKE '%@%'")
        return sorted(str(r[0]) for r in rows.fetchall())


def rekey(net: Net, steward: Member, *extra: str) -> None:
    args = ["collab", "rekey", X, "--data", str(steward.data), "--hub", steward.hub.address]
    assert sighub([*args, *extra]) == 0


def copied_join(net: Net, member: str, kind: str = "collab.join", at: str = "industry") -> bool:
    """Whether industry's (or ``at``'s) log holds a copy of regional's leaf of ``member``
    joining (or, with ``kind``, leaving) sg-x."""
    with net.hubs[at].db() as c:
        rows = c.execute("SELECT leaf FROM leaves WHERE type='peer.leaf'").fetchall()
    for (raw,) in rows:
        inner = json.loads(base64.b64decode(json.loads(bytes(raw))["leaf"]))
        if inner["type"] == kind and inner["member"] == member:
            return True
    return False


def recorded_epoch(hub: HubProcess, label: str) -> None:
    """Wait until ``hub`` records an epoch of sg-x."""
    with hub.db() as c:
        wait_for(
            label,
            lambda: bool(c.execute("SELECT 1 FROM collab_epochs WHERE collab=?", (X,)).fetchall()),
        )


def epoch_one_recipients(net: Net) -> list[str]:
    """The recipients of industry's wraps of epoch 1, sorted."""
    with net.hubs["industry"].db() as c:
        rows = c.execute("SELECT recipient FROM epoch_wraps WHERE epoch=1 ORDER BY recipient")
        return [r[0] for r in rows]


def joined_and_rekeyed(
    spanning: tuple[Net, Member], member: str = "plat-b", label: str = "copied"
) -> tuple[Net, Member, Member]:
    """regional's ``member`` joins sg-x; once industry holds the copy, the steward rekeys."""
    net, steward = spanning
    plat = net.member("regional", member, collabs=(X,))
    wait_for(label, lambda: copied_join(net, member))
    rekey(net, steward)
    return net, steward, plat


@pytest.fixture
def spanning(net: Net) -> tuple[Net, Member]:
    industry, regional = net.hub("industry"), net.hub("regional")
    steward = net.member("industry", "stw-a", collabs=())
    assert industry.admin_cli("collab", "add", X, "--steward", "stw-a") == 0
    assert regional.admin_cli("collab", "add", X, "--keys-from-peer") == 0
    net.follow("regional", "industry", collabs=((X, X),))
    net.follow("industry", "regional", collabs=((X, X),))
    return net, steward


def test_one_key_on_both_hubs_matches_what_the_other_hub_blinded(
    spanning: tuple[Net, Member],
) -> None:
    net, steward, plat = joined_and_rekeyed(spanning, label="industry copied plat-b's join")
    assert far_wraps(net, "industry") == ["plat-b@sighub/regional"]
    secret = keys(steward)[0]
    # regional's relay copies the epoch and the wrap; regional records the epoch
    recorded_epoch(net.hubs["regional"], "regional recorded epoch 0")
    with net.hubs["regional"].db() as c:
        steward_there = c.execute("SELECT steward FROM collab_epochs WHERE collab=?", (X,))
        assert steward_there.fetchall() == [("stw-a@sighub/industry",)]
    report = member_sync(plat)
    assert report.refused == []
    assert keys(plat) == {0: secret}  # the steward's secret, opened from regional's log
    # the steward's platform publishes blinded under epoch 0; regional's platform matches
    blinder = Blinder(steward.key(X))
    value = blinder.value(Kind.KEYWORD, "s3ller")
    raw = steward.envelope(steward.indicators(1, collab=X, value=value))
    steward.client().publish(X, raw)
    wait_for("relayed to regional", lambda: len(envelopes(net.hubs["regional"], X)) == 1)
    member_sync(plat)
    hits = Platform(plat.data, address=plat.hub.address).matcher().scan(TEXT)
    assert [h.text for h in hits] == ["s3ller"]
    # and back: regional's platform publishes under the same epoch; the steward matches it
    value = Blinder(plat.key(X)).value(Kind.KEYWORD, "bundles")
    back = plat.envelope(plat.indicators(1, collab=X, value=value))
    plat.client().publish(X, back)
    wait_for("relayed to industry", lambda: len(envelopes(net.hubs["industry"], X)) == 2)
    member_sync(steward)
    hits = Platform(steward.data, address=steward.hub.address).matcher().scan(TEXT)
    assert sorted(h.text for h in hits) == ["bundles", "s3ller"]


def test_a_member_that_joins_later_on_the_far_hub_is_wrapped_the_current_epoch(
    spanning: tuple[Net, Member],
) -> None:
    net, steward, first = joined_and_rekeyed(spanning)
    # the second rekey: the current epoch to the member that lacks it, not a new one
    _, _, late = joined_and_rekeyed(spanning, "plat-c")
    assert far_wraps(net, "industry") == ["plat-b@sighub/regional", "plat-c@sighub/regional"]
    member_sync(first)
    member_sync(late)
    assert keys(late) == keys(first) == {0: keys(steward)[0]}


def test_a_far_member_that_leaves_gets_no_later_epoch(spanning: tuple[Net, Member]) -> None:
    """plat-c leaves regional's sg-x: the copy of its leave reaches industry, and the
    steward's next duties make a new epoch wrapped to plat-b alone."""
    net, steward = spanning
    stays = net.member("regional", "plat-b", collabs=(X,))
    _, _, leaves = joined_and_rekeyed(spanning, "plat-c")
    assert net.hubs["regional"].admin_cli("collab", "leave", X, "plat-c") == 0
    wait_for("copied", lambda: copied_join(net, "plat-c", "collab.leave"))
    member_sync(steward)  # its duties: a holder is no longer a member
    assert sorted(keys(steward)) == [0, 1]
    assert epoch_one_recipients(net) == ["plat-b@sighub/regional", "stw-a"]
    member_sync(stays)
    assert keys(stays) == keys(steward)
    member_sync(leaves)
    assert sorted(keys(leaves)) == [0]


def test_two_hops_from_the_steward_one_key_still(net: Net) -> None:
    """industry <-> regional <-> hotline, sg-x mapped on each peering: hotline's platform
    is two hops from the steward; its join reaches industry as a copy of a copy, the
    steward wraps it, the wrap reaches hotline the same way, and hotline's platform matches
    what industry's platform blinded."""
    industry, regional, hotline = net.hub("industry"), net.hub("regional"), net.hub("hotline")
    steward = net.member("industry", "stw-a", collabs=())
    assert industry.admin_cli("collab", "add", X, "--steward", "stw-a") == 0
    for hub in (regional, hotline):
        assert hub.admin_cli("collab", "add", X, "--keys-from-peer") == 0
    for a, b in (("regional", "industry"), ("industry", "regional"), ("hotline", "regional"),
                 ("regional", "hotline")):  # fmt: skip
        net.follow(a, b, collabs=((X, X),))
    far = net.member("hotline", "plat-c", collabs=(X,))
    wait_for("industry copied plat-c's join", lambda: copied_join(net, "plat-c"))
    rekey(net, steward)
    assert far_wraps(net, "industry") == ["plat-c@sighub/hotline"]
    recorded_epoch(hotline, "hotline recorded epoch 0")
    wait_for("the wrap reached plat-c", lambda: member_sync(far) is not None and 0 in keys(far))
    assert keys(far) == {0: keys(steward)[0]}
    value = Blinder(steward.key(X)).value(Kind.KEYWORD, "s3ller")
    steward.client().publish(X, steward.envelope(steward.indicators(1, collab=X, value=value)))
    wait_for("relayed to hotline", lambda: len(envelopes(hotline, X)) == 1)
    member_sync(far)
    hits = Platform(far.data, address=far.hub.address).matcher().scan(TEXT)
    assert [h.text for h in hits] == ["s3ller"]


def test_a_collaboration_takes_its_keys_from_one_hub_only(net: Net) -> None:
    """Two hubs steward a collaboration each that regional maps to its one sg-x: their
    epochs would number the same epochs twice.  Regional and its platform take the keys of
    the hub whose epoch came first; the other's wraps are refused, and said so."""
    industry, national = net.hub("industry"), net.hub("national")
    regional = net.hub("regional")
    first = net.member("industry", "stw-a", collabs=())
    second = net.member("national", "stw-n", collabs=())
    assert industry.admin_cli("collab", "add", X, "--steward", "stw-a") == 0
    assert national.admin_cli("collab", "add", X, "--steward", "stw-n") == 0
    assert regional.admin_cli("collab", "add", X, "--keys-from-peer") == 0
    for a, b in (("regional", "industry"), ("industry", "regional"), ("regional", "national"),
                 ("national", "regional")):  # fmt: skip
        net.follow(a, b, collabs=((X, X),))
    plat = net.member("regional", "plat-b", collabs=(X,))
    wait_for("copied at industry", lambda: copied_join(net, "plat-b"))
    rekey(net, first)
    recorded_epoch(regional, "regional recorded industry's epoch")
    wait_for("copied at national", lambda: copied_join(net, "plat-b", at="national"))
    rekey(net, second)
    rekey(net, second, "--new")  # national's epoch 1: an epoch industry never made

    def copied_wraps(origin: str) -> int:
        with regional.db() as c:
            found = 0
            for (raw,) in c.execute("SELECT leaf FROM leaves WHERE type='peer.leaf'"):
                doc = json.loads(bytes(raw))
                inner = json.loads(base64.b64decode(doc["leaf"]))
                found += doc["origin"] == origin and inner["type"] == "collab.wrap"
            return found

    wait_for("regional copied national's two wraps", lambda: copied_wraps("sighub/national") == 2)
    daemon = SyncDaemon(plat.data, address=regional.address, workers=0)
    try:
        daemon.sync_once()
        with daemon.connect() as hub:
            refused = daemon.unwrap(hub)
    finally:
        daemon.close()
    assert keys(plat) == {0: keys(first)[0]}  # industry's epoch; national's never taken
    assert any("takes its keys from 'sighub/industry'" in r for r in refused), refused
    with regional.db() as c:
        rows = c.execute("SELECT steward FROM collab_epochs WHERE collab=?", (X,)).fetchall()
    assert [r[0] for r in rows] == ["stw-a@sighub/industry"]


def test_a_suspended_peering_leaves_its_members_out_until_resumed(
    spanning: tuple[Net, Member],
) -> None:
    """industry suspends its peering with regional: its hub refuses wraps to regional's
    members, so the steward's next epoch leaves them out (the wraps of industry's own
    members go through); once resumed, they are wrapped the current epoch."""
    net, steward, plat = joined_and_rekeyed(spanning)
    assert net.hubs["industry"].admin_cli("peer", "suspend", "regional") == 0
    member_sync(steward)  # its duties: a holder is no longer a recipient
    assert sorted(keys(steward)) == [0, 1]
    assert epoch_one_recipients(net) == ["stw-a"]
    assert net.hubs["industry"].admin_cli("peer", "resume", "regional") == 0
    member_sync(steward)
    with net.hubs["industry"].db() as c:
        rows = c.execute("SELECT epoch, recipient FROM epoch_wraps ORDER BY epoch, recipient")
        assert rows.fetchall() == [
            (0, "plat-b@sighub/regional"), (0, "stw-a"), (1, "plat-b@sighub/regional"),
            (1, "stw-a"),
        ]  # fmt: skip
    # its copy reaches regional's log when regional's relay next follows industry
    wait_for("plat-b opened epoch 1", lambda: member_sync(plat) is not None and 1 in keys(plat))
    assert keys(plat) == keys(steward)


def test_keys_from_a_peer_and_stewards_are_refused_together_and_the_hub_makes_no_key(
    net: Net,
) -> None:
    """``--keys-from-peer`` with ``--steward`` is refused and stores nothing; alone, the
    collaboration exists without a key of this hub (no epoch row, no epoch leaf)."""
    hub = net.hub("regional", "sg-other")
    net.member("regional", "stw-r", collabs=())

    def state() -> tuple[object, ...]:
        with hub.db() as c:
            return tuple(
                c.execute(q).fetchall()
                for q in (
                    "SELECT name FROM collabs ORDER BY name",
                    "SELECT collab, epoch FROM collab_keys ORDER BY 1, 2",
                    "SELECT COUNT(*) FROM leaves",
                    "SELECT COUNT(*) FROM audit",
                )
            )

    before = state()
    assert hub.admin_cli("collab", "add", X, "--keys-from-peer", "--steward", "stw-r") != 0
    assert state() == before
    assert hub.admin_cli("collab", "add", X, "--keys-from-peer") == 0
    with hub.db() as c:
        assert c.execute("SELECT 1 FROM collabs WHERE name=?", (X,)).fetchall() == [(1,)]
        assert c.execute("SELECT COUNT(*) FROM collab_keys WHERE collab=?", (X,)).fetchone() == (0,)
        kinds = [r[0] for r in c.execute("SELECT type FROM leaves WHERE collab=?", (X,))]
    assert kinds == ["collab.add"]
