"""``_farlog``: the copies of other hubs' logs a member's verified log holds.  A synthetic
origin log (real leaves, a real Merkle tree, a checkpoint signed with its log key) is copied
the way a relay copies it; each way a copy can be wrong is an alarm that applies nothing,
and a relayed envelope verifies against the copied directory, or says why not."""

from __future__ import annotations

import base64
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sighub.client._checkpoint import Checkpoint, sign_checkpoint
from sighub.client._envelope import key_id, public_key_bytes, seal
from sighub.client._farlog import FarLog, check_relayed
from sighub.client._hops import decode_hops, encode_hops, sign_hop
from sighub.client._keys import identity_for
from sighub.client._leaves import (
    collab_add,
    envelope_leaf,
    key_revoke,
    member_enroll,
    parse_leaf,
    peer_add,
    peer_checkpoint,
    peer_leaf,
)
from sighub.client._logcheck import AlarmKind, LogAlarm
from sighub.client._merkle import consistency_proof, inclusion_proof, leaf_hash, root
from sighub.client._model import Form, Indicator, Kind, Publisher, Tlp
from sighub.client._note import Ed25519Signer
from sighub.client._rpc import Change
from sighub.client._stix import build_bundle, new_indicator_id

HERE, FAR, BEHIND = "sighub/regional", "sighub/industry", "sighub/national"


@dataclass
class Pins:
    keys: dict[str, bytes] = field(default_factory=dict)
    maps: dict[tuple[str, str], str] = field(default_factory=dict)  # (local, origin) -> remote
    suspended: set[str] = field(default_factory=set)  # origins whose peering is suspended

    def log_keys(self) -> dict[str, bytes]:
        return self.keys

    def remote_for(self, local_collab: str, origin: str, at: int | None = None) -> str | None:
        return self.maps.get((local_collab, origin))

    def policy_for(self, origin: str, at: int | None = None) -> tuple[int, Tlp] | None:
        return None

    def local_for(self, remote: str, origin: str) -> str | None:
        found = [loc for (loc, o), r in self.maps.items() if o == origin and r == remote]
        return found[0] if found else None

    def mapped_locals(self) -> set[str]:
        return {loc for loc, _ in self.maps}

    def is_active(self, origin: str) -> bool:
        return origin in self.keys and origin not in self.suspended


class OriginLog:
    """A hub's log as leaves, signed by its log key."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.key = Ed25519PrivateKey.generate()
        self.signer = Ed25519Signer(origin, self.key.private_bytes_raw())
        self.leaves: list[bytes] = []

    @property
    def public(self) -> bytes:
        return public_key_bytes(self.key.public_key())

    def add(self, leaf: bytes) -> int:
        self.leaves.append(leaf)
        return len(self.leaves)

    def log_at(self, seq: int, leaf: bytes) -> list[bytes]:
        """Put ``leaf`` at ``seq`` (a synthetic log may be rewritten: each hop's checkpoint
        is signed afterwards) and return its inclusion path in the tree as it stands."""
        while len(self.leaves) < seq:
            self.add(collab_add("sg-pad"))
        self.leaves[seq - 1] = leaf
        return inclusion_proof(seq - 1, len(self.leaves), [leaf_hash(x) for x in self.leaves])

    def note(self) -> bytes:
        hashes = [leaf_hash(x) for x in self.leaves]
        body = Checkpoint(self.origin, len(hashes), root(hashes))
        return sign_checkpoint(body.with_time(int(datetime.now(UTC).timestamp())), self.signer)

    def copies(self, *seqs: int) -> list[bytes]:
        """What a relay logs for leaves ``seqs``: the checkpoint, then each leaf."""
        hashes = [leaf_hash(x) for x in self.leaves]
        size = len(hashes)
        out = [peer_checkpoint(self.origin, self.note())]
        for s in seqs:
            path = inclusion_proof(s - 1, size, hashes)
            out.append(peer_leaf(self.origin, s, self.leaves[s - 1], size, path))
        return out


def feed(far: FarLog, leaves: list[bytes], start: int = 1) -> None:
    for i, raw in enumerate(leaves, start):
        far.apply(i, parse_leaf(raw), raw)


def state(far: FarLog) -> tuple[Any, ...]:
    rings = {o: r.directory() for o, r in far.rings.items()}
    roots = {o: dict(r) for o, r in far.roots.items()}
    return dict(far.learnt), roots, rings, dict(far.last), dict(far.maps)


@pytest.fixture
def world() -> dict[str, Any]:
    origin = OriginLog(FAR)
    pub = Ed25519PrivateKey.generate()
    kid = key_id(pub.public_key())
    ident = Publisher(identity_for("pub-a"), "pub-a")
    origin.add(
        member_enroll("pub-a", ident.id, ["publisher"], kid, public_key_bytes(pub.public_key()))
    )
    here = OriginLog(HERE)
    pins = Pins({FAR: origin.public}, {("sg-local", FAR): "sg-csam"})
    return {"origin": origin, "pub": pub, "kid": kid, "ident": ident, "here": here, "pins": pins,
            "far": FarLog(HERE, here.public, pins)}  # fmt: skip


def relayed(w: dict[str, Any], seq_at_origin: int, collab: str = "sg-csam") -> Change:
    """An envelope of pub-a published at the origin (its sequence there), relayed here."""
    now = datetime.now(UTC).replace(microsecond=0)
    ind = Indicator(
        id=new_indicator_id(), kind=Kind.KEYWORD, form=Form.BLINDED, value="ab" * 16, key_epoch=0,
        collaboration=collab, publisher=w["ident"], valid_from=now,
        valid_until=now + timedelta(days=3), created=now, modified=now,
    )  # fmt: skip
    raw = seal(build_bundle(w["ident"], [ind]), w["pub"])
    origin: OriginLog = w["origin"]
    path = origin.log_at(seq_at_origin, envelope_leaf(collab, raw))
    hop = sign_hop(w["here"].signer.sign, HERE, raw, (), FAR, seq_at_origin, origin.note(),
                   "2026-11-28T00:00:00.000Z", 0, path)  # fmt: skip
    return Change(40, "sg-local", raw, (), 1, encode_hops([hop]))


def test_a_copied_directory_verifies_a_relayed_envelope(world: dict[str, Any]) -> None:
    origin: OriginLog = world["origin"]
    far: FarLog = world["far"]
    feed(far, origin.copies(1))
    rows = check_relayed(relayed(world, 2), far)
    assert isinstance(rows, list) and rows[0][2] == world["ident"].id
    assert rows[0][16] == 40  # this log's sequence, not the origin's


def test_a_revoked_key_and_a_key_not_yet_enrolled(world: dict[str, Any]) -> None:
    origin: OriginLog = world["origin"]
    far: FarLog = world["far"]
    origin.add(collab_add("sg-csam"))  # not a leaf relays copy: sequence 2 is an envelope's
    origin.add(key_revoke("pub-a", world["kid"]))
    feed(far, origin.copies(1, 3))
    assert isinstance(check_relayed(relayed(world, 2), far), list)  # signed before revocation
    late = check_relayed(relayed(world, 4), far)
    assert isinstance(late, str) and "revoked at sequence 3" in late
    early = check_relayed(relayed(world, 1), far)
    assert isinstance(early, str) and "only from sequence 1" in early


def test_refusals_name_what_is_missing(world: dict[str, Any]) -> None:
    far: FarLog = world["far"]
    assert "holds no copy" in str(check_relayed(relayed(world, 2), far))
    feed(far, world["origin"].copies(1))
    other = relayed(world, 2)
    unmapped = Change(other.sequence, "sg-other", other.envelope, (), 1, other.hop_records)
    assert "no peering maps 'sg-other'" in str(check_relayed(unmapped, far))
    forged = Change(
        other.sequence, other.collaboration, other.envelope + b" ", (), 1, other.hop_records
    )
    assert "signature does not verify" in str(check_relayed(forged, far))


def test_transitive_keys_and_names(world: dict[str, Any]) -> None:
    """A hub behind the origin: its key and its collaboration's name there are learnt from
    the origin's copied peer.add, and an envelope from it verifies over two hops."""
    origin: OriginLog = world["origin"]
    behind = OriginLog(BEHIND)
    pub = Ed25519PrivateKey.generate()
    ident = Publisher(identity_for("pub-n"), "pub-n")
    kid = key_id(pub.public_key())
    behind.add(
        member_enroll("pub-n", ident.id, ["publisher"], kid, public_key_bytes(pub.public_key()))
    )
    seq = origin.add(peer_add("national", BEHIND, behind.public, "127.0.0.1:1",
                              [("sg-n", "sg-csam")], "pull", 4, "amber", b"s" * 64))  # fmt: skip
    far: FarLog = world["far"]
    feed(far, origin.copies(seq) + behind.copies(1), 1)
    assert far.learnt == {BEHIND: behind.public}
    now = datetime.now(UTC).replace(microsecond=0)
    ind = Indicator(id=new_indicator_id(), kind=Kind.KEYWORD, form=Form.BLINDED,
                    value="cd" * 16, key_epoch=0, collaboration="sg-n", publisher=ident,
                    valid_from=now, valid_until=now + timedelta(days=1), created=now,
                    modified=now)  # fmt: skip
    raw = seal(build_bundle(ident, [ind]), pub)
    path1 = behind.log_at(2, envelope_leaf("sg-n", raw))  # after pub-n's key
    hop1 = sign_hop(origin.signer.sign, FAR, raw, (), BEHIND, 2, behind.note(),
                    "2026-11-28T00:00:00.000Z", 0, path1)  # fmt: skip
    path2 = origin.log_at(seq + 1, envelope_leaf("sg-csam", raw, 0, encode_hops([hop1])))
    hop2 = sign_hop(world["here"].signer.sign, HERE, raw, (hop1,), FAR, seq + 1, origin.note(),
                    "2026-11-28T00:00:01.000Z", 0, path2)  # fmt: skip
    rows = check_relayed(Change(50, "sg-local", raw, (), 2, encode_hops([hop1, hop2])), far)
    assert isinstance(rows, list) and rows[0][2] == ident.id


def _alarm(far: FarLog, leaves: list[bytes], kind: AlarmKind) -> None:
    before = state(far)
    with pytest.raises(LogAlarm) as caught:
        feed(far, leaves)
    assert caught.value.kind is kind
    assert state(far) == before


def test_a_checkpoint_not_signed_by_the_origin_is_an_alarm(world: dict[str, Any]) -> None:
    origin: OriginLog = world["origin"]
    impostor = OriginLog(FAR)
    impostor.leaves = list(origin.leaves)
    _alarm(world["far"], impostor.copies(1)[:1], AlarmKind.BAD_SIGNATURE)
    assert world["far"].roots == {}


def test_a_leaf_that_is_not_in_the_tree_is_an_alarm(world: dict[str, Any]) -> None:
    origin: OriginLog = world["origin"]
    far: FarLog = world["far"]
    cp, leaf = origin.copies(1)
    feed(far, [cp])
    doc = parse_leaf(leaf)
    other = member_enroll("pub-x", world["ident"].id, ["publisher"], "k", b"\x01" * 32)
    forged = peer_leaf(FAR, 1, other, doc["size"], [base64.b64decode(h) for h in doc["path"]])
    before = state(far)
    with pytest.raises(LogAlarm) as caught:
        far.apply(2, parse_leaf(forged), forged)
    assert caught.value.kind is AlarmKind.BAD_PROOF and state(far) == before


def test_a_leaf_without_its_checkpoint_or_of_a_type_not_copied(world: dict[str, Any]) -> None:
    origin: OriginLog = world["origin"]
    far: FarLog = world["far"]
    leaf = origin.copies(1)[1]
    with pytest.raises(LogAlarm) as caught:
        far.apply(1, parse_leaf(leaf), leaf)
    assert caught.value.kind is AlarmKind.MALFORMED and far.rings == {}
    origin.leaves.append(collab_add("sg-csam"))
    cp, bad = origin.copies(2)
    feed(far, [cp])
    with pytest.raises(LogAlarm) as caught:
        far.apply(2, parse_leaf(bad), bad)
    assert caught.value.kind is AlarmKind.MALFORMED and far.rings == {}


def test_unknown_origins_are_skipped_and_copies_saved_and_loaded(world: dict[str, Any]) -> None:
    stranger = OriginLog("sighub/stranger")
    far: FarLog = world["far"]
    feed(far, stranger.copies())  # no key known for it: nothing taken, no alarm
    assert far.roots == {}
    leaves = world["origin"].copies(1)
    feed(far, leaves, 10)
    feed(far, leaves, 20)  # a second copy (a diamond): already taken
    conn = sqlite3.connect(":memory:")
    far.save(conn)
    again = FarLog.load(conn, HERE, world["here"].public, world["pins"])
    assert state(again) == state(far)
    assert isinstance(check_relayed(relayed(world, 2), again), list)


def test_a_hop_whose_source_did_not_log_the_envelope_is_refused(world: dict[str, Any]) -> None:
    """The origin's signed tree does not hold the envelope where the hop says (a relay that
    made one up, or a path for another leaf)."""
    origin: OriginLog = world["origin"]
    far: FarLog = world["far"]
    feed(far, origin.copies(1))
    good = relayed(world, 2)
    (hop,) = decode_hops(good.hop_records)
    for path in ((), origin.log_at(3, collab_add("sg-other"))):
        fake = sign_hop(world["here"].signer.sign, HERE, good.envelope, (), FAR, 3,
                        origin.note(), hop.received, 0, path)  # fmt: skip
        change = Change(40, "sg-local", good.envelope, (), 1, encode_hops([fake]))
        assert "not in 'sighub/industry''s log as 'sg-csam'" in str(check_relayed(change, far))


def test_two_trees_of_one_size_from_the_origin_are_a_fork(world: dict[str, Any]) -> None:
    """A hub that shows one tree to a relay and another to a second relay: the copies meet
    in a member's log, and the second is a fork alarm that changes nothing."""
    origin: OriginLog = world["origin"]
    far: FarLog = world["far"]
    feed(far, origin.copies(1)[:1])
    split = OriginLog(FAR)
    split.key, split.signer = origin.key, origin.signer  # the origin's own key, another tree
    split.leaves = [collab_add("sg-other")]
    cp = split.copies()[0]
    before = state(far)
    with pytest.raises(LogAlarm) as caught:
        far.apply(9, parse_leaf(cp), cp)
    assert caught.value.kind is AlarmKind.FORK and state(far) == before


def _extending(log: OriginLog, since: int) -> bytes:
    """``log``'s checkpoint as a relay copies it after its copy of the tree of ``since``
    leaves: with the consistency proof from that tree, from ``log``'s own leaves."""
    hashes = [leaf_hash(x) for x in log.leaves]
    proof = consistency_proof(since, len(hashes), hashes)
    return peer_checkpoint(log.origin, log.note(), since, proof)


def test_a_tree_that_does_not_extend_the_one_copied_before_is_a_fork(
    world: dict[str, Any],
) -> None:
    """Trees of different sizes: the relay names the checkpoint it copied before, and the
    proof that the new one extends it.  An honest origin's passes; a history rewritten
    below the earlier size (signed by the origin's own key) is a fork alarm that changes
    nothing; one that names a size this log never saw is taken (nothing to hold it to)."""
    origin: OriginLog = world["origin"]
    far: FarLog = world["far"]
    feed(far, origin.copies(1)[:1])  # the tree of 1 leaf
    origin.add(collab_add("sg-pad"))
    origin.add(collab_add("sg-pad-2"))
    honest = _extending(origin, 1)
    far.apply(20, parse_leaf(honest), honest)
    assert far.roots[FAR][3] == root([leaf_hash(x) for x in origin.leaves])
    split = OriginLog(FAR)
    split.key, split.signer = origin.key, origin.signer
    split.leaves = [collab_add("sg-other"), *origin.leaves[1:], collab_add("sg-more")]
    forged = _extending(split, 3)  # its own proof, from its own tree of 3: not the one held
    before = state(far)
    with pytest.raises(LogAlarm) as caught:
        far.apply(21, parse_leaf(forged), forged)
    assert caught.value.kind is AlarmKind.FORK and "does not extend" in str(caught.value)
    assert state(far) == before
    origin.add(collab_add("sg-pad-3"))
    unseen = _extending(origin, 2)  # a size no copy here had: nothing to check it against
    far.apply(22, parse_leaf(unseen), unseen)
    assert 4 in far.roots[FAR]
