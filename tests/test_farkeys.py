"""``_farkeys``: a member opens a wrap a steward of another hub made for it only from its
own verified log's copies, checked as a member of the origin hub would check it, and a
steward wraps only the far members a pinned peering's map lets the key cross to.  Copies
are built as a relay makes them (``tests/test_farlog.py``'s synthetic origin log)."""

from __future__ import annotations

import base64
import json
import sqlite3
from dataclasses import replace
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from sighub.client import _leaves
from sighub.client._envelope import key_id, public_key_bytes
from sighub.client._farkeys import far_recipients, far_unwrap
from sighub.client._farlog import FarLog
from sighub.client._hpke import X25519_SUITE, EncryptionKey, ProvedKey, prove
from sighub.client._keys import identity_for
from sighub.client._leaves import (
    collab_membership,
    collab_steward,
    collab_wrap,
    key_commitment,
    member_enroll,
    parse_leaf,
    peer_leaf,
    steward_epoch,
)
from sighub.client._logcheck import AlarmKind, LogAlarm
from sighub.client._wraps import Recipient, Wrap, WrapError, new_secret, wrap_epoch, wraps_digest
from tests.test_farlog import FAR, HERE, OriginLog, Pins, feed

X, LOCAL = "sg-x", "sg-local"  # the collaboration at the origin, and here
ME = "plat-b"


class Origin:
    """The steward's hub: its log, the steward and a second member's signing keys."""

    def __init__(self) -> None:
        self.log = OriginLog(FAR)
        self.keys: dict[str, Ed25519PrivateKey] = {}

    def enroll(self, member: str, roles: list[str], encryption: EncryptionKey | None = None) -> int:
        key = self.keys[member] = Ed25519PrivateKey.generate()
        proved = (
            None
            if encryption is None
            else ProvedKey(encryption.suite, encryption.public, prove(key, encryption.suite,
                                                                      encryption.public))
        )  # fmt: skip
        return self.log.add(
            member_enroll(member, identity_for(member), roles, key_id(key.public_key()),
                          public_key_bytes(key.public_key()), encryption=proved)
        )  # fmt: skip

    def epoch(self, secret: bytes, wraps: list[Wrap], steward: str = "stw-a", e: int = 0) -> int:
        commitment = wraps[0].commitment if wraps else key_commitment(secret)
        return self.log.add(steward_epoch(X, e, commitment, steward, wraps_digest(wraps)))

    def wrap(self, w: Wrap) -> int:
        return self.log.add(collab_wrap(w.leaf_fields()))


def _wrap(origin: Origin, secret: bytes, key: EncryptionKey, recipient: str = f"{ME}@{HERE}",
          signer: str = "stw-a", steward: str = "stw-a", e: int = 0) -> Wrap:  # fmt: skip
    (w,) = wrap_epoch(origin.keys[signer], steward, X, e, secret,
                      [Recipient(recipient, key.suite, key.public)])  # fmt: skip
    return w


def _pins_for(origin: OriginLog, remote: str = X) -> Pins:
    return Pins({FAR: origin.public}, {(LOCAL, FAR): remote})


@pytest.fixture
def key() -> EncryptionKey:
    return EncryptionKey.generate(X25519_SUITE)


@pytest.fixture
def origin() -> Origin:
    o = Origin()
    o.enroll("stw-a", ["publisher", "subscriber"])
    o.enroll("mallory", ["publisher"])
    return o


def _designated(o: Origin) -> None:
    o.log.add(collab_steward(X, "stw-a", ""))


def _far(log: OriginLog, *seqs: int, pins: Pins | None = None) -> FarLog:
    """A FarLog here fed the copies of ``seqs`` of the origin's log (all its leaves if none)."""
    far = FarLog(HERE, OriginLog(HERE).public, _pins_for(log) if pins is None else pins)
    feed(far, log.copies(*(seqs or range(1, len(log.leaves) + 1))))
    return far


def _open(
    o: Origin, key: EncryptionKey, *seqs: int, remote: str = X, have: tuple[Any, ...] = ()
) -> tuple[list[tuple[str, int, bytes]], list[str]]:
    far = _far(o.log, *seqs, pins=_pins_for(o.log, remote))
    return far_unwrap(far, ME, {key.key_id: key}, have)


def _published(o: Origin, key: EncryptionKey, designate: bool = True, **wrap: Any) -> bytes:
    """The steward (designated, unless not) wraps a new secret to ``key`` (``wrap``: as
    ``_wrap`` takes), and the origin logs the epoch and the wrap: the secret."""
    if designate:
        _designated(o)
    secret = new_secret()
    w = _wrap(o, secret, key, **wrap)
    o.epoch(secret, [w])
    o.wrap(w)
    return secret


def _refused(o: Origin, key: EncryptionKey) -> str:
    """The one refusal of opening the origin's wraps with ``key``; nothing opened."""
    got, refused = _open(o, key)
    assert got == [] and len(refused) == 1, (got, refused)
    return refused[0]


def test_a_wrap_from_the_designated_steward_opens(origin: Origin, key: EncryptionKey) -> None:
    secret = _published(origin, key)
    assert _open(origin, key) == ([(LOCAL, 0, secret)], [])  # under this hub's name
    assert _open(origin, key, have=((LOCAL, 0),)) == ([], [])  # held already


def test_a_wrap_signed_by_another_members_key_is_refused(
    origin: Origin, key: EncryptionKey
) -> None:
    """mallory (a member of the origin, so its key is in the copied ring) signs a wrap in
    the steward's name: refused, with the reason, and no secret."""
    _published(origin, key, signer="mallory")
    refused = _refused(origin, key)
    assert refused.startswith(f"{FAR}: ")
    assert "is not a valid key of steward 'stw-a'" in refused


def test_a_wrap_whose_steward_the_origin_never_designated_is_refused(
    origin: Origin, key: EncryptionKey
) -> None:
    _published(origin, key, designate=False)  # no collab.steward leaf: stw-a is no steward there
    assert "has no admin designation for 'sg-x'" in _refused(origin, key)


@pytest.mark.parametrize("recipient", [f"plat-c@{HERE}", f"{ME}@sighub/hotline", ME])
def test_a_wrap_for_another_member_or_hub_is_ignored(
    origin: Origin, key: EncryptionKey, recipient: str
) -> None:
    _published(origin, key, recipient=recipient)
    far = _far(origin.log)
    assert far_unwrap(far, ME, {key.key_id: key}, ()) == ([], [])
    # a wrap to a member of another hub (or of the origin itself) is not even kept
    assert list(far.wraps) == ([(FAR, X, 0, recipient)] if recipient.endswith(HERE) else [])


def test_a_wrap_of_a_collaboration_no_pinned_peering_maps_waits(
    origin: Origin, key: EncryptionKey
) -> None:
    _published(origin, key)
    assert _open(origin, key, remote="sg-other") == ([], [])  # nothing opened, nothing refused


def test_a_wrap_whose_epoch_leaf_is_not_copied_yet_waits(
    origin: Origin, key: EncryptionKey
) -> None:
    _designated(origin)
    secret = new_secret()
    w = _wrap(origin, secret, key)
    epoch = origin.epoch(secret, [w])
    wrap = origin.wrap(w)
    far = FarLog(HERE, OriginLog(HERE).public, _pins_for(origin.log))
    copies = origin.log.copies(1, 2, 3, wrap)
    feed(far, copies)
    assert far_unwrap(far, ME, {key.key_id: key}, ()) == ([], [])
    feed(far, origin.log.copies(epoch), len(copies) + 1)  # the epoch leaf comes late
    assert far_unwrap(far, ME, {key.key_id: key}, ()) == ([(LOCAL, 0, secret)], [])


def test_a_wrap_whose_signing_key_is_not_copied_yet_waits(
    origin: Origin, key: EncryptionKey
) -> None:
    _published(origin, key)
    assert _open(origin, key, 2, 3, 4, 5) == ([], [])  # stw-a's enrollment (1) not copied


def test_a_wrap_with_another_commitment_is_refused(origin: Origin, key: EncryptionKey) -> None:
    """The epoch leaf logs one commitment, the wrap (signed by the steward) another."""
    _designated(origin)
    secret = new_secret()
    w = _wrap(origin, secret, key)
    origin.epoch(new_secret(), [])  # the leaf commits to another secret
    origin.wrap(w)
    assert "the verified log's collab.epoch leaf has" in _refused(origin, key)


def test_a_wrap_whose_secret_is_not_the_committed_one_is_refused(
    origin: Origin, key: EncryptionKey
) -> None:
    """The steward seals one secret under the commitment of another, in the wrap and the
    epoch leaf alike: the secret opened does not match."""
    _designated(origin)
    claimed = new_secret()
    w = _wrap(origin, new_secret(), key)
    w = replace(w, commitment=key_commitment(claimed))
    w = replace(w, signature=origin.keys["stw-a"].sign(w.statement()))
    origin.epoch(claimed, [w])
    origin.wrap(w)
    assert "does not match the commitment" in _refused(origin, key)


def test_a_wrap_to_a_key_this_member_does_not_hold_is_refused(
    origin: Origin, key: EncryptionKey
) -> None:
    _published(origin, key)
    other = EncryptionKey.generate(X25519_SUITE)
    assert "which this member does not hold" in _refused(origin, other)


# -- far_recipients -------------------------------------------------------------------


def test_far_recipients_are_the_mapped_collaborations_members_with_keys() -> None:
    """A steward here wraps the members of the peer's mapped collaboration: not its relay
    (role peer alone, even with a key), not a member without an encryption key, not a
    member of a collaboration the peering does not map."""
    o = Origin()
    keys = {m: EncryptionKey.generate(X25519_SUITE) for m in ("plat-p", "relay-r", "plat-o")}
    o.enroll("plat-p", ["publisher"], keys["plat-p"])
    o.enroll("relay-r", ["peer"], keys["relay-r"])
    o.enroll("plat-n", ["subscriber"])  # no encryption key
    o.enroll("plat-o", ["publisher"], keys["plat-o"])
    for member in ("plat-p", "relay-r", "plat-n"):
        o.log.add(collab_membership(X, member, True))
    o.log.add(collab_membership("sg-other", "plat-o", True))
    far = _far(o.log)
    got = far_recipients(far, LOCAL)
    name = f"plat-p@{FAR}"
    assert got == {name: Recipient(name, X25519_SUITE, keys["plat-p"].public)}
    assert far_recipients(far, "sg-unmapped") == {}
    # the relay is a recipient by roles alone once it holds another role
    o.log.add(_leaves.member_roles("relay-r", ["peer", "subscriber"]))
    feed(far, o.log.copies(len(o.log.leaves)), 100)
    assert set(far_recipients(far, LOCAL)) == {name, f"relay-r@{FAR}"}


def test_no_far_recipients_across_a_suspended_peering() -> None:
    """The steward's hub refuses wraps to the members of a hub whose peering is suspended:
    wrapping them would fail the whole epoch, this hub's own members' wraps with it."""
    o = Origin()
    o.enroll("plat-p", ["publisher"], EncryptionKey.generate(X25519_SUITE))
    o.log.add(collab_membership(X, "plat-p", True))
    pins = _pins_for(o.log)
    far = _far(o.log, 1, 2, pins=pins)
    assert set(far_recipients(far, LOCAL)) == {f"plat-p@{FAR}"}
    pins.suspended.add(FAR)
    assert far_recipients(far, LOCAL) == {}


def test_a_far_member_suspended_there_is_not_a_recipient_until_resumed() -> None:
    """As a steward's own hub wraps no new epoch to a suspended member (it is wrapped the
    current one once resumed), it wraps none to one suspended on the peer hub."""
    o = Origin()
    k = EncryptionKey.generate(X25519_SUITE)
    o.enroll("plat-p", ["publisher"], k)
    o.log.add(collab_membership(X, "plat-p", True))
    o.log.add(_leaves.member_status("plat-p", "suspended"))
    far = _far(o.log, 1, 2, 3)
    assert far_recipients(far, LOCAL) == {}
    o.log.add(_leaves.member_status("plat-p", "active"))
    feed(far, o.log.copies(4), 10)
    assert set(far_recipients(far, LOCAL)) == {f"plat-p@{FAR}"}


def test_far_recipients_of_a_peering_whose_map_does_not_round_trip() -> None:
    """A local collaboration whose peer-side name maps back to another local one (a stale
    pin): no recipients, rather than the other collaboration's members."""
    o = Origin()
    k = EncryptionKey.generate(X25519_SUITE)
    o.enroll("plat-p", ["publisher"], k)
    o.log.add(collab_membership(X, "plat-p", True))
    pins = Pins({FAR: o.log.public}, {("sg-a", FAR): X, ("sg-b", FAR): X})
    far = _far(o.log, 1, 2, pins=pins)
    assert set(far_recipients(far, "sg-a")) == {f"plat-p@{FAR}"}  # local_for finds sg-a
    assert far_recipients(far, "sg-b") == {}


# -- Wrap leaves ------------------------------------------------------------------------

_NAMES = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)


@settings(max_examples=150, deadline=None)
@given(
    collab=_NAMES, epoch=st.integers(0, 2**53 - 1), commitment=_NAMES, recipient=_NAMES,
    recipient_key_id=_NAMES, suite=_NAMES, sealed=st.binary(max_size=1200), steward=_NAMES,
    signing_key_id=_NAMES, signature=st.binary(max_size=64),
)  # fmt: skip
def test_a_wrap_round_trips_through_its_leaf(**fields: Any) -> None:
    w = Wrap(**fields)
    raw = collab_wrap(w.leaf_fields())
    doc = parse_leaf(raw)
    assert doc["type"] == "collab.wrap"
    assert Wrap.from_leaf(doc) == w
    assert collab_wrap(Wrap.from_leaf(doc).leaf_fields()) == raw  # one leaf per wrap


@pytest.mark.parametrize("field", ["sealed", "signature"])
def test_a_wrap_leaf_with_bad_base64_is_a_wrap_error(field: str) -> None:
    doc = parse_leaf(collab_wrap(_any_wrap().leaf_fields()))
    with pytest.raises(WrapError, match="not base64"):
        Wrap.from_leaf({**doc, field: "*not base64*"})


def _any_wrap() -> Wrap:
    return Wrap(X, 0, "ab" * 32, f"{ME}@{HERE}", "kid", X25519_SUITE, b"s" * 80, "stw-a", "k",
                b"g" * 64)  # fmt: skip


# -- FarLog's state of collaborations --------------------------------------------------


def _far_state(far: FarLog) -> tuple[Any, ...]:
    stewards = {
        o: ({c: s.to_json() for c, s in v.collabs.items()}, dict(v.epochs))
        for o, v in far.stewards.items()
    }
    taken = {o: set(s) for o, s in far.taken_seqs.items()}
    statuses = dict(far.statuses)
    return stewards, dict(far.wraps), dict(far.roles), statuses, dict(far.last), taken


def test_a_copied_wrap_leaf_with_bad_base64_is_an_alarm_that_applies_nothing(
    origin: Origin, key: EncryptionKey
) -> None:
    _designated(origin)
    fields = _any_wrap().leaf_fields()
    seq = origin.log.add(collab_wrap({**fields, "sealed": "@@@@"}))
    far = FarLog(HERE, OriginLog(HERE).public, _pins_for(origin.log))
    cp, *leaves = origin.log.copies(*range(1, seq + 1))
    feed(far, [cp, *leaves[:-1]])
    before, far.collabs_changed = _far_state(far), False
    with pytest.raises(LogAlarm) as caught:
        feed(far, [leaves[-1]], 50)
    assert caught.value.kind is AlarmKind.MALFORMED
    assert "sequence 50" in str(caught.value) and "not base64" in str(caught.value)
    assert _far_state(far) == before and not far.collabs_changed
    assert 50 not in far.taken()
    # the same copy again alarms again: a refused copy is not taken as seen
    with pytest.raises(LogAlarm):
        feed(far, [leaves[-1]], 51)


def test_load_rebuilds_the_collaborations_the_copies_applied(
    origin: Origin, key: EncryptionKey
) -> None:
    _designated(origin)
    origin.log.add(collab_membership(X, "mallory", True))
    secret = _published(origin, key, designate=False)  # designated above
    origin.log.add(collab_membership(X, "mallory", False))
    origin.log.add(_leaves.member_roles("mallory", ["peer"]))
    origin.log.add(_leaves.member_status("mallory", "suspended"))
    pins = _pins_for(origin.log)
    far = _far(origin.log, pins=pins)
    assert far.stewards[FAR].collabs[X].members == set() and far.wraps
    assert far.roles[(FAR, "mallory")] == ("peer",)
    assert far.statuses[(FAR, "mallory")] == "suspended"
    conn = sqlite3.connect(":memory:")
    far.save(conn)
    again = FarLog.load(conn, HERE, far.here_key, pins)
    assert _far_state(again) == _far_state(far)
    assert far_unwrap(again, ME, {key.key_id: key}, ()) == ([(LOCAL, 0, secret)], [])


def test_a_forged_wrap_leaf_inside_a_copy_is_a_proof_alarm(origin: Origin) -> None:
    """A relay (or this member's hub) that swaps the wrap inside a copy: the origin's tree
    does not hold it."""
    seq = origin.log.add(collab_wrap(_any_wrap().leaf_fields()))
    far = FarLog(HERE, OriginLog(HERE).public, _pins_for(origin.log))
    cp, *leaves = origin.log.copies(*range(1, seq + 1))
    feed(far, [cp, *leaves[:-1]])
    doc = parse_leaf(leaves[-1])
    other = replace(_any_wrap(), sealed=b"t" * 80)
    swapped = peer_leaf(FAR, seq, collab_wrap(other.leaf_fields()), doc["size"],
                        [base64.b64decode(h) for h in doc["path"]])  # fmt: skip
    before = _far_state(far)
    with pytest.raises(LogAlarm) as caught:
        far.apply(60, parse_leaf(swapped), swapped)
    assert caught.value.kind is AlarmKind.BAD_PROOF and _far_state(far) == before
    assert json.loads(base64.b64decode(doc["leaf"]))["type"] == "collab.wrap"
