"""Review of ``_farlog`` (issue 12): what a member accepts of an envelope its own hub relayed
depends on the peering its admin signed being in force when the hub logged it."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sighub.client._envelope import key_id, public_key_bytes, seal
from sighub.client._farlog import FarLog, check_relayed
from sighub.client._hops import encode_hops, sign_hop
from sighub.client._keys import identity_for
from sighub.client._leaves import (
    collab_add,
    envelope_leaf,
    key_revoke,
    member_enroll,
    parse_leaf,
    peer_add,
    peer_status,
)
from sighub.client._model import Form, Indicator, Kind, Tlp
from sighub.client._peerlog import PeerLog
from sighub.client._rpc import Change
from sighub.client._stix import build_bundle, new_indicator_id
from tests.test_farlog import FAR, HERE, OriginLog, feed, relayed, world

__all__ = ["world"]  # the fixture, shared with tests/test_farlog.py


def _peerings(origin: OriginLog, *removed_at: int, ceiling: str = "amber") -> PeerLog:
    """This hub's peering with ``origin`` (mapping its sg-csam to sg-local), logged at
    sequence 5 and removed at each of ``removed_at``."""
    log = PeerLog(HERE, None)  # a member enrolled before key chains: the log's word
    log.apply(5, parse_leaf(peer_add("industry", FAR, origin.public, "127.0.0.1:7443",
                                     [("sg-csam", "sg-local")], "pull", 3, ceiling,
                                     b"s" * 64)))  # fmt: skip
    for seq in removed_at:
        log.apply(seq, parse_leaf(peer_status("industry", "removed")))
    return log


def test_an_envelope_relayed_after_its_peering_was_removed_is_refused(
    world: dict[str, Any],
) -> None:
    origin: OriginLog = world["origin"]
    change = relayed(world, 2)  # logged here at sequence 40
    live = FarLog(HERE, world["here"].public, _peerings(origin))
    feed(live, origin.copies(1))
    assert isinstance(check_relayed(change, live), list)
    # The admin removed the peering at sequence 30: the hub alone relayed this one after.
    gone = FarLog(HERE, world["here"].public, _peerings(origin, 30))
    feed(gone, origin.copies(1))
    refused = check_relayed(change, gone)
    assert isinstance(refused, str) and "no peering maps 'sg-local'" in refused
    # Removed after it was logged: it stays verifiable.
    later = FarLog(HERE, world["here"].public, _peerings(origin, 41))
    feed(later, origin.copies(1))
    assert isinstance(check_relayed(change, later), list)


def test_a_revocation_withheld_on_one_path_counts_once_another_path_brings_it(
    world: dict[str, Any],
) -> None:
    """A relay that copies the origin's leaf 4 but withholds its revocation at 3: the
    honest path's copy of 3, logged here later, is taken (not dropped as already passed),
    and the revoked key's later envelopes are refused from then on."""
    origin: OriginLog = world["origin"]
    far: FarLog = world["far"]
    origin.add(collab_add("sg-csam"))  # sequence 2, an envelope's in relayed()
    origin.add(key_revoke("pub-a", world["kid"]))  # 3
    other = Ed25519PrivateKey.generate().public_key()
    origin.add(member_enroll("pub-b", identity_for("pub-b"), ["publisher"], key_id(other),
                             public_key_bytes(other)))  # fmt: skip
    hostile = origin.copies(1, 4)  # leaf 3 withheld
    honest = origin.copies(3)
    feed(far, hostile, 1)
    assert isinstance(check_relayed(relayed(world, 5), far), list)  # the known limitation
    feed(far, honest, 10)
    late = check_relayed(relayed(world, 5), far)
    assert isinstance(late, str) and "revoked at sequence 3" in late
    # The same copy again (a diamond) is still taken once; the state survives a reload.
    feed(far, honest, 20)
    conn = sqlite3.connect(":memory:")
    far.save(conn)
    again = FarLog.load(conn, HERE, world["here"].public, world["pins"])
    assert isinstance(check_relayed(relayed(world, 5), again), str)


def _relayed_tlp(w: dict[str, Any], tlp: Tlp) -> Change:
    """``relayed`` (the origin's sequence 2, here 40) with one indicator of ``tlp``."""
    now = datetime.now(UTC).replace(microsecond=0)
    ind = Indicator(
        id=new_indicator_id(), kind=Kind.KEYWORD, form=Form.BLINDED, value="ef" * 16,
        key_epoch=0, collaboration="sg-csam", publisher=w["ident"], valid_from=now,
        valid_until=now + timedelta(days=3), created=now, modified=now, tlp=tlp,
    )  # fmt: skip
    raw = seal(build_bundle(w["ident"], [ind]), w["pub"])
    origin: OriginLog = w["origin"]
    path = origin.log_at(2, envelope_leaf("sg-csam", raw))
    hop = sign_hop(w["here"].signer.sign, HERE, raw, (), FAR, 2, origin.note(),
                   "2026-11-28T00:00:00.000Z", 0, path)  # fmt: skip
    return Change(40, "sg-local", raw, (), 1, encode_hops([hop]))


def test_what_the_admin_signed_peering_does_not_let_cross_is_refused_by_members(
    world: dict[str, Any],
) -> None:
    """The hub's relay keeps to its peering's TLP ceiling; a member checks it too (the
    admin signed it), so a hub alone cannot let amber in under a green ceiling, nor red."""
    origin: OriginLog = world["origin"]
    far = FarLog(HERE, world["here"].public, _peerings(origin, ceiling="green"))
    feed(far, origin.copies(1))
    assert isinstance(check_relayed(_relayed_tlp(world, Tlp.GREEN), far), list)
    amber = check_relayed(_relayed_tlp(world, Tlp.AMBER), far)
    assert isinstance(amber, str) and "above the peering's ceiling green" in amber
    strict = check_relayed(_relayed_tlp(world, Tlp.AMBER_STRICT), far)
    assert isinstance(strict, str) and "amber+strict" in strict
    # Red never crosses, whatever the peering (here the test pins say nothing of it).
    pinned: FarLog = world["far"]
    feed(pinned, origin.copies(1))
    red = check_relayed(_relayed_tlp(world, Tlp.RED), pinned)
    assert isinstance(red, str) and "red never crosses" in red
    assert isinstance(check_relayed(_relayed_tlp(world, Tlp.AMBER), pinned), list)
