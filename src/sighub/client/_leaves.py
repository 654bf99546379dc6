"""The leaves of a hub's transparency log: what each one commits to, byte for byte.

Every accepted envelope, directory event and collaboration event is one leaf, appended in
the same transaction as what it records; the leaf's index + 1 is its sync sequence.  A
leaf is the RFC 8785 (JCS) JSON of one object with ``"v": 1`` and a ``"type"``; the log
hashes it as RFC 9162 does (``SHA-256(0x00 ‖ leaf)``, see ``_merkle.leaf_hash``).  A
member recomputes the leaf of every envelope it receives from the envelope itself, so a
hub cannot log one thing and deliver another.  Leaves commit to hashes, never to secrets
(a collaboration key appears only as a SHA-256 commitment).

Types (fields besides ``v`` and ``type``):

- ``envelope``: ``collab``, ``envelope`` (SHA-256 of the exact envelope bytes, hex) and
  ``n``, the envelope's number within its collaboration (1, 2, 3, ... with no gap; absent
  in leaves logged before numbering); for an envelope relayed from a peer hub also
  ``hops``, the SHA-256 of its hop records (``_hops``, docs/federation.md).  A member
  that receives envelope n after n - 2 knows the hub withheld one, even when it served
  that leaf only as a hash.
- ``member.enroll``: ``member``, ``identity``, ``roles`` (sorted), ``key_id``,
  ``public_key`` (raw Ed25519, base64), and, for a key enrolled with an admin-signed
  grant, ``grant``, ``grant_signature`` and ``binding`` (base64; see ``_grant``), and,
  for a member whose client made an encryption key at enrollment, ``encryption_suite``,
  ``encryption_key`` (raw, base64) and ``encryption_proof`` (the enrolled signing key's
  signature over it, base64; see ``_hpke``)
- ``key.rotate``: ``member``, ``key_id``, ``public_key``, ``previous_key_id``, ``proof``
  (the old key's signature over ``sighub-rotate-v1 ‖ new key``, base64)
- ``key.revoke``: ``member``, ``key_id``
- ``key.encryption``: ``member``, ``suite``, ``encryption_key`` (raw, base64), ``proof``
  (base64) and ``key_id``, the current signing key whose proof it is: the member's new
  HPKE encryption key, which replaces the one before
- ``key.attest``: ``member``, ``key_id``, ``public_key``, ``attestation`` and
  ``signature`` (base64): the admin's signature chaining a key enrolled without a grant
- ``member.status``: ``member``, ``status`` (``active``, ``suspended``, ``removed``)
- ``member.roles``: ``member``, ``roles`` (sorted)
- ``collab.add``: ``collab``
- ``collab.join`` / ``collab.leave``: ``collab``, ``member``; a join also ``n``, the
  collaboration's envelope count at the join (absent before numbering), and, when the
  collaboration has designated stewards, ``stewards`` and ``steward_signatures`` (their
  names and the admin's designations, base64, in one order)
- ``collab.steward``: ``collab``, ``member``, ``signature`` (base64, see
  ``_grant.designate_steward``; "" on a hub without an admin key): the admin made
  ``member`` a steward; a member takes a key epoch only from a steward so logged
- ``collab.policy``: ``collab``, ``earlier_epochs``: how many key epochs before the
  current one a joiner is wrapped (absent: none)
- ``collab.epoch``: ``collab``, ``epoch``, ``commitment`` (SHA-256 of
  ``sighub-collab-key-v1 ‖ secret``, hex); made by a steward also ``steward`` and
  ``wraps``, the digest of the wraps stored with it (one such leaf per later wrap too)

- ``peer.add``: ``peer`` (this hub's name for the other hub), ``origin`` and ``log_key``
  (the peer's log origin and checkpoint key, base64), ``address``, ``collabs`` (sorted
  ``remote=local`` strings), ``direction`` (``pull``, ``push``, ``both``), ``max_hops``,
  ``tlp_ceiling`` and ``signature`` (the admin's, base64, over
  ``_grant.peering_statement``): the admin made a peering, which clients verify
- ``peer.status``: ``peer``, ``status`` (``active``, ``suspended``, ``removed``)
- ``peer.checkpoint``: ``origin``, ``note`` (base64): a signed checkpoint of another hub's
  log, copied by a relay (verified under that hub's log key)
- ``peer.leaf``: ``origin``, ``seq``, ``leaf`` (base64), ``size``, ``path`` (base64
  hashes): a directory or peering leaf of another hub's log, copied by a relay, with its
  inclusion proof in that hub's tree of ``size`` leaves (see ``_farlog``)

Envelope leaves and collaboration events are visible to that collaboration's members only
(others receive the leaf hash); directory leaves (``member.*``, ``key.*``) to every member,
so each can watch the keys published under its own name; peering leaves to every member,
which verifies a peer's log against the key its record pins.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from typing import Any, Final

from sighub.client import _json
from sighub.client._envelope import canonical_json
from sighub.client._errors import IntegrityAlarm, JsonBudgetError
from sighub.client._grant import Chain
from sighub.client._hpke import ProvedKey

__all__ = [
    "COLLAB_COPIED_TYPES",
    "COLLAB_TYPES",
    "COPIED_TYPES",
    "DIRECTORY_TYPES",
    "FAR_TYPES",
    "LEAF_TYPES",
    "MAX_EARLIER_EPOCHS",
    "MAX_FAR_LEAF_BYTES",
    "MAX_STEWARDS",
    "PEER_TYPES",
    "LeafError",
    "collab_add",
    "collab_epoch",
    "collab_membership",
    "collab_policy",
    "collab_steward",
    "collab_wrap",
    "envelope_leaf",
    "key_attest",
    "key_commitment",
    "key_encryption",
    "key_revoke",
    "key_rotate",
    "leaf_limit",
    "member_enroll",
    "member_roles",
    "member_status",
    "parse_leaf",
    "peer_add",
    "peer_checkpoint",
    "peer_leaf",
    "peer_status",
    "steward_epoch",
]

VERSION: Final = 1
DIRECTORY_TYPES: Final = frozenset(
    {
        "member.enroll",
        "key.rotate",
        "key.revoke",
        "key.attest",
        "key.encryption",
        "member.status",
        "member.roles",
    }
)
COLLAB_TYPES: Final = frozenset(
    {
        "collab.add",
        "collab.join",
        "collab.leave",
        "collab.epoch",
        "collab.steward",
        "collab.policy",
        "collab.wrap",
    }
)
# The leaves of a collaboration that spans hubs a relay copies, for the collaborations its
# peering maps: who stewards and who is in it (a steward wraps each epoch to the members of
# every hub), the epochs, and the wraps to members of other hubs (``collab.wrap``).
COLLAB_COPIED_TYPES: Final = frozenset(
    {"collab.steward", "collab.join", "collab.leave", "collab.epoch", "collab.wrap"}
)
PEER_TYPES: Final = frozenset({"peer.add", "peer.status", "peer.checkpoint", "peer.leaf"})
# Leaves of another hub's log a relay copies into its own (directories federate): with
# them, a member verifies a publisher enrolled on a hub it never talks to.
FAR_TYPES: Final = frozenset({"peer.checkpoint", "peer.leaf"})
# Which leaves of a peer's log a relay copies: its directory and its peerings (whose log
# keys let the next hub verify the hubs behind it), and what it copied itself; and, of the
# collaborations the peering maps, COLLAB_COPIED_TYPES.
COPIED_TYPES: Final = DIRECTORY_TYPES | frozenset({"peer.add", "peer.status"})
LEAF_TYPES: Final = DIRECTORY_TYPES | COLLAB_TYPES | PEER_TYPES | {"envelope"}
# The fields every leaf of a type holds; every field is a string but these.
_REQUIRED: Final[dict[str, tuple[str, ...]]] = {
    "envelope": ("collab", "envelope"),
    "member.enroll": ("member", "identity", "roles", "key_id", "public_key"),
    "key.rotate": ("member", "key_id", "public_key", "previous_key_id", "proof"),
    "key.revoke": ("member", "key_id"),
    "key.attest": ("member", "key_id", "public_key", "attestation", "signature"),
    "key.encryption": ("member", "suite", "encryption_key", "proof", "key_id"),
    "member.status": ("member", "status"),
    "member.roles": ("member", "roles"),
    "collab.add": ("collab",),
    "collab.join": ("collab", "member"),
    "collab.leave": ("collab", "member"),
    "collab.epoch": ("collab", "epoch", "commitment"),
    "collab.steward": ("collab", "member", "signature"),
    "collab.policy": ("collab", "earlier_epochs"),
    "collab.wrap": (
        "collab",
        "epoch",
        "commitment",
        "recipient",
        "recipient_key_id",
        "suite",
        "sealed",
        "steward",
        "signing_key_id",
        "signature",
    ),
    "peer.add": (
        "peer",
        "origin",
        "log_key",
        "address",
        "collabs",
        "direction",
        "max_hops",
        "tlp_ceiling",
        "signature",
    ),
    "peer.status": ("peer", "status"),
    "peer.checkpoint": ("origin", "note"),
    "peer.leaf": ("origin", "seq", "leaf", "size", "path"),
}
_COUNTS: Final = frozenset(
    {"v", "epoch", "n", "earlier_epochs", "max_hops", "seq", "size", "since"}
)
_LISTS: Final = frozenset(
    {"roles", "stewards", "steward_signatures", "collabs", "path", "consistency"}
)
# A join leaf lists the collaboration's stewards with their designations (about 150 bytes
# each): at most this many keep it well under MAX_LEAF_BYTES.
MAX_STEWARDS: Final = 8
# Earlier key epochs a joiner may be wrapped: an indicator outlives at most a few epochs.
MAX_EARLIER_EPOCHS: Final = 64
KEY_COMMITMENT_CONTEXT: Final = b"sighub-collab-key-v1"
# The largest event leaf, an enrollment with a grant and an MLKEM768-X25519 key, is about
# 2.5 KB (the key alone is 1624 bytes of base64).
MAX_LEAF_BYTES: Final = 4096
# A copied leaf holds another hub's leaf (at most MAX_LEAF_BYTES) and its inclusion proof
# (at most 64 hashes), a copied checkpoint a note of at most 8 KiB, both in base64.
MAX_FAR_LEAF_BYTES: Final = 16384
_LEAF_BUDGET: Final = _json.JsonBudget(MAX_FAR_LEAF_BYTES, max_depth=3, max_containers=4)


def leaf_limit(kind: str) -> int:
    """The most bytes a leaf of ``kind`` may have."""
    return MAX_FAR_LEAF_BYTES if kind in FAR_TYPES else MAX_LEAF_BYTES


class LeafError(IntegrityAlarm, ValueError):
    """A log leaf that is not one sighub writes: served by a hub, it is evidence."""


def _leaf(kind: str, **fields: Any) -> bytes:
    return canonical_json({"v": VERSION, "type": kind, **fields})


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def envelope_leaf(collab: str, envelope: bytes, n: int = 0, hops: bytes = b"") -> bytes:
    """The leaf of an accepted envelope (its exact bytes), the ``n``-th published to
    ``collab`` (0: a leaf from before numbering, which has no ``n``); for one relayed from
    a peer hub, ``hops`` is its hop records as signed (``_hops.encode_hops``), whose SHA-256
    the leaf commits to (empty or ``[]``: published here)."""
    digest = hashlib.sha256(envelope).hexdigest()
    fields: dict[str, Any] = {"collab": collab, "envelope": digest}
    if n:
        fields["n"] = n
    if hops and hops != b"[]":
        fields["hops"] = hashlib.sha256(hops).hexdigest()
    return _leaf("envelope", **fields)


def member_enroll(
    member: str,
    identity: str,
    roles: list[str],
    key_id: str,
    public_key: bytes,
    chain: Chain | None = None,
    encryption: ProvedKey | None = None,
) -> bytes:
    """The leaf of an enrollment: the member's identity, roles and first signing key,
    with the admin-signed chain that proves the key when it was enrolled with one, and
    the member's encryption key with that signing key's proof when it sent one."""
    return _leaf(
        "member.enroll",
        member=member,
        identity=identity,
        roles=sorted(roles),
        key_id=key_id,
        public_key=_b64(public_key),
        **(chain.to_fields() if chain is not None else {}),
        **(encryption.to_fields() if encryption is not None else {}),
    )


def key_encryption(member: str, encryption: ProvedKey, key_id: str) -> bytes:
    """The leaf of a new encryption key of ``member``, proved by its signing key
    ``key_id``."""
    return _leaf(
        "key.encryption",
        member=member,
        suite=encryption.suite,
        encryption_key=_b64(encryption.public),
        proof=_b64(encryption.proof),
        key_id=key_id,
    )


def key_attest(
    member: str, key_id: str, public_key: bytes, attestation: bytes, signature: bytes
) -> bytes:
    """The leaf of the admin's attestation of an existing key of ``member``."""
    return _leaf(
        "key.attest",
        member=member,
        key_id=key_id,
        public_key=_b64(public_key),
        attestation=_b64(attestation),
        signature=_b64(signature),
    )


def key_rotate(
    member: str, key_id: str, public_key: bytes, previous_key_id: str, proof: bytes
) -> bytes:
    """The leaf of a signing-key rotation, with the old key's proof over the new one."""
    return _leaf(
        "key.rotate",
        member=member,
        key_id=key_id,
        public_key=_b64(public_key),
        previous_key_id=previous_key_id,
        proof=_b64(proof),
    )


def key_revoke(member: str, key_id: str) -> bytes:
    """The leaf of a key revocation: envelopes it signs after this leaf are refused."""
    return _leaf("key.revoke", member=member, key_id=key_id)


def member_status(member: str, status: str) -> bytes:
    """The leaf of a suspension (``suspended``), resumption (``active``) or removal."""
    return _leaf("member.status", member=member, status=status)


def member_roles(member: str, roles: list[str]) -> bytes:
    """The leaf of a change of a member's roles."""
    return _leaf("member.roles", member=member, roles=sorted(roles))


def collab_add(collab: str) -> bytes:
    """The leaf of a new collaboration."""
    return _leaf("collab.add", collab=collab)


def collab_membership(
    collab: str,
    member: str,
    joined: bool,
    n: int | None = None,
    stewards: Sequence[tuple[str, str]] = (),
) -> bytes:
    """The leaf of a member joining (``joined``) or leaving ``collab``; a join records
    ``n``, how many envelopes the collaboration had then (None: a leaf from before
    numbering), and ``stewards``, its designated stewards as (member, base64 admin
    signature) (a joiner sees no leaf of the collaboration from before it joined)."""
    kind = "collab.join" if joined else "collab.leave"
    fields: dict[str, Any] = {"collab": collab, "member": member}
    if n is not None:
        fields["n"] = n
    if joined and stewards:
        fields["stewards"] = [name for name, _ in stewards]
        fields["steward_signatures"] = [sig for _, sig in stewards]
    return _leaf(kind, **fields)


def collab_policy(collab: str, earlier_epochs: int) -> bytes:
    """The leaf of ``collab``'s policy: how many epochs before the current one a joiner is
    wrapped."""
    return _leaf("collab.policy", collab=collab, earlier_epochs=earlier_epochs)


def collab_steward(collab: str, member: str, signature: str) -> bytes:
    """The leaf of the admin designating ``member`` a steward of ``collab``: ``signature``
    is the admin's, base64 (``_grant.designate_steward``; "" on a hub without an admin
    key)."""
    return _leaf("collab.steward", collab=collab, member=member, signature=signature)


def key_commitment(secret: bytes) -> str:
    """The hex SHA-256 commitment the log holds for a collaboration key epoch's secret."""
    return hashlib.sha256(KEY_COMMITMENT_CONTEXT + secret).hexdigest()


def collab_epoch(collab: str, epoch: int, secret: bytes) -> bytes:
    """The leaf of a new key epoch: a commitment to its secret, never the secret."""
    return _leaf("collab.epoch", collab=collab, epoch=epoch, commitment=key_commitment(secret))


def steward_epoch(collab: str, epoch: int, commitment: str, steward: str, wraps: str) -> bytes:
    """The leaf of a key epoch a steward made: its commitment, the steward, and ``wraps``,
    the digest of the wraps it sent (``_wraps.wraps_digest``); for a later wrap to a member
    that joined, the same leaf with ``wraps`` of that wrap alone."""
    return _leaf(
        "collab.epoch", collab=collab, epoch=epoch, commitment=commitment, steward=steward,
        wraps=wraps,
    )  # fmt: skip


def collab_wrap(fields: dict[str, Any]) -> bytes:
    """The leaf of a wrap to a member of another hub (recipient ``member@origin``): the
    wrap's fields as ``_wraps.Wrap.leaf_fields`` gives them, so that the member's relays copy
    it to its hub's log and it opens the epoch from there."""
    return _leaf("collab.wrap", **fields)


def peer_add(
    peer: str,
    origin: str,
    log_key: bytes,
    address: str,
    collabs: Sequence[tuple[str, str]],
    direction: str,
    max_hops: int,
    tlp_ceiling: str,
    signature: bytes,
) -> bytes:
    """The leaf of a peering the admin signed (``_grant.peering_statement``): every field
    of the statement, so a client rebuilds it from the leaf alone, and the signature."""
    return _leaf(
        "peer.add",
        peer=peer,
        origin=origin,
        log_key=_b64(log_key),
        address=address,
        collabs=sorted(f"{remote}={local}" for remote, local in collabs),
        direction=direction,
        max_hops=max_hops,
        tlp_ceiling=tlp_ceiling,
        signature=_b64(signature),
    )


def peer_status(peer: str, status: str) -> bytes:
    """The leaf of a peering suspended (``suspended``), resumed (``active``) or removed."""
    return _leaf("peer.status", peer=peer, status=status)


def peer_checkpoint(
    origin: str, note: bytes, since: int = 0, consistency: Sequence[bytes] = ()
) -> bytes:
    """The leaf of another hub's signed checkpoint, copied by a relay: what the inclusion
    proofs of the ``peer.leaf`` leaves after it are checked against.  With ``since``, the
    size of the checkpoint of that hub the relay copied before, and ``consistency``, the
    proof that this tree extends it: a member holding that one checks it, so the origin
    cannot show one relay two histories of different sizes unseen."""
    if not since:
        return _leaf("peer.checkpoint", origin=origin, note=_b64(note))
    return _leaf(
        "peer.checkpoint", origin=origin, note=_b64(note), since=since,
        consistency=[_b64(h) for h in consistency],
    )  # fmt: skip


def peer_leaf(origin: str, seq: int, leaf: bytes, size: int, proof: list[bytes]) -> bytes:
    """The leaf of another hub's log leaf (its sequence ``seq`` there), copied by a relay
    with its inclusion proof in that hub's tree of ``size`` leaves (a ``peer.checkpoint``
    logged before it)."""
    return _leaf(
        "peer.leaf", origin=origin, seq=seq, leaf=_b64(leaf), size=size,
        path=[_b64(h) for h in proof],
    )  # fmt: skip


def parse_leaf(raw: bytes) -> dict[str, Any]:
    """A leaf's fields, checked to be exactly what this module writes (canonical bytes, a
    known type, version 1).  Raises ``LeafError`` naming what is wrong."""
    try:
        doc = _json.loads(raw, _LEAF_BUDGET, "log leaf")
    except JsonBudgetError as exc:
        raise LeafError(f"log leaf: not JSON within budget ({exc})") from None
    if not isinstance(doc, dict) or type(doc.get("v")) is not int or doc["v"] != VERSION:
        raise LeafError(f"log leaf: expected an object with v={VERSION}, received {raw[:80]!r}")
    if doc.get("type") not in LEAF_TYPES:
        raise LeafError(f"log leaf: type {doc.get('type')!r}, expected one of {sorted(LEAF_TYPES)}")
    if len(raw) > leaf_limit(doc["type"]):
        raise LeafError(
            f"log leaf {doc['type']}: {len(raw)} bytes, expected at most {leaf_limit(doc['type'])}"
        )
    try:
        canon = canonical_json(doc)
    except ValueError as exc:  # rfc8785: a lone surrogate, a number outside its domain
        raise LeafError(f"log leaf: not canonicalizable ({exc})") from None
    if canon != raw:
        raise LeafError(f"log leaf: not in canonical (RFC 8785) form: {raw[:80]!r}")
    _check_fields(doc)
    return doc


def _check_fields(doc: dict[str, Any]) -> None:
    """Every field of the type's kind (a member named by a number would be another
    member to every check that compares names), and the type's fields all present."""
    kind = doc["type"]
    missing = [f for f in _REQUIRED[kind] if f not in doc]
    if missing:
        raise LeafError(f"log leaf {kind}: lacks {missing}")
    for field, value in doc.items():
        if field in _COUNTS:
            ok = type(value) is int and value >= 0
        elif field in _LISTS:
            ok = isinstance(value, list) and all(type(x) is str for x in value)
        else:
            ok = type(value) is str
        if not ok:
            raise LeafError(
                f"log leaf {kind}: field {field!r} is {type(value).__name__}"
                f" {str(value)[:40]!r}, expected "
                + ("a count" if field in _COUNTS else "strings" if field in _LISTS else "a string")
            )
