"""Hop records: the provenance a relaying hub adds beside an envelope it relays verbatim
(federation, ``docs/federation.md``).

A hub R that takes an envelope from its peer P appends the exact bytes to its own log with
the hops they arrived with and one more::

    {"relay": R's origin, "from": P's origin, "seq": P's log sequence of the envelope,
     "n": its number in P's collaboration (0: logged before numbering),
     "checkpoint": P's signed checkpoint note (base64) whose tree holds that sequence,
     "path": the inclusion path (base64 hashes) of the envelope's leaf at ``seq`` in that
     tree, "received": R's receive time (RFC 3339, ms), "signature": base64}

P's envelope leaf is ``_leaves.envelope_leaf`` of the collaboration as P names it, the
envelope, ``n`` and the hops before this one: so a verifier that knows the names (through
the peerings' maps) checks that every hub on the path logged the envelope it relayed.

The signature is R's log key over ``sighub-hop-v1\\n`` and the RFC 8785 JSON of the hop's
other fields, the envelope's SHA-256 and the SHA-256 of the JCS of the hops before it; so
no hop can be dropped, reordered, moved to another envelope or edited without breaking a
signature that only its relay's log key could make.  The first hop's ``from`` is the
envelope's origin hub.  ``hops_digest`` (the SHA-256 of the JCS of the whole list) is what
R's envelope leaf commits to, so R's log holds the provenance as well as the bytes.

Two parties compute every byte here alike (relays and clients): ``tests/vectors/hops.json``
freezes it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sighub.client import _json
from sighub.client._checkpoint import Checkpoint, open_checkpoint
from sighub.client._envelope import canonical_json
from sighub.client._errors import IntegrityAlarm, JsonBudgetError, NoteError
from sighub.client._leaves import envelope_leaf
from sighub.client._logcheck import hub_key
from sighub.client._merkle import ProofError, leaf_hash, verify_inclusion

__all__ = [
    "HOP_CONTEXT",
    "MAX_HOPS",
    "HopError",
    "HopRecord",
    "decode_hops",
    "encode_hops",
    "hop_statement",
    "hops_digest",
    "origin_of",
    "sign_hop",
    "verify_hops",
]

HOP_CONTEXT: Final = b"sighub-hop-v1\n"
# More hops than any peering's max_hops may allow (at most 16): a longer list is refused
# before anything of it is read.
MAX_HOPS: Final = 16
_MAX_NAME: Final = 256  # a log origin is a note key name: at most a line
# A hop's checkpoint: the log's signature and a few dozen cosignatures fit in 8 KiB.
HOP_NOTE_BYTES: Final = 8192
MAX_PATH: Final = 64  # hashes in an inclusion path: trees of up to 2**64 leaves
_BUDGET: Final = _json.JsonBudget(
    MAX_HOPS * (HOP_NOTE_BYTES * 4 // 3 + MAX_PATH * 48 + 1024),
    max_depth=3,
    max_containers=2 * MAX_HOPS + 1,
)
_FIELDS: Final = ("relay", "from", "seq", "n", "checkpoint", "path", "received", "signature")
# Characters each text field may hold (base64 of a note at most HOP_NOTE_BYTES; of a
# 64-byte signature; an RFC 3339 time); a log origin: _MAX_NAME.
_LIMITS: Final = {"checkpoint": (HOP_NOTE_BYTES + 2) // 3 * 4, "signature": 88, "received": 40}


class HopError(IntegrityAlarm, ValueError):
    """A hop record that is malformed or does not verify: served by a hub, evidence."""


@dataclass(frozen=True, slots=True)
class HopRecord:
    relay: str  # the relaying hub's log origin; its log key signed this record
    source: str  # the peer's log origin the envelope was taken from ("from")
    seq: int  # the envelope's sequence in the source's log
    checkpoint: bytes  # the source's signed checkpoint note whose tree holds ``seq``
    received: str  # when the relay took it, RFC 3339 UTC with milliseconds
    signature: bytes
    n: int = 0  # its number in the source's collaboration (0: before numbering)
    path: tuple[bytes, ...] = ()  # its leaf's inclusion path in the checkpoint's tree

    def fields(self) -> dict[str, Any]:
        """The record as JSON fields, signature included."""
        return {**_unsigned(self.relay, self.source, self.seq, self.checkpoint, self.received,
                            self.n, self.path),
                "signature": _b64(self.signature)}  # fmt: skip


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unsigned(
    relay: str,
    source: str,
    seq: int,
    checkpoint: bytes,
    received: str,
    n: int,
    path: Sequence[bytes],
) -> dict[str, Any]:
    return {"relay": relay, "from": source, "seq": seq, "n": n, "checkpoint": _b64(checkpoint),
            "path": [_b64(h) for h in path], "received": received}  # fmt: skip


def encode_hops(hops: Sequence[HopRecord]) -> bytes:
    """The JCS of the hop list, as stored and sent."""
    return canonical_json([h.fields() for h in hops])


def hops_digest(hops: Sequence[HopRecord]) -> str:
    """The hex SHA-256 of ``encode_hops``: what a relayed envelope's log leaf commits to."""
    return hashlib.sha256(encode_hops(hops)).hexdigest()


def hop_statement(
    envelope: bytes,
    previous: Sequence[HopRecord],
    relay: str,
    source: str,
    seq: int,
    checkpoint: bytes,
    received: str,
    n: int = 0,
    path: Sequence[bytes] = (),
) -> bytes:
    """What the relay's log key signs for one hop."""
    doc = {
        **_unsigned(relay, source, seq, checkpoint, received, n, path),
        "envelope": hashlib.sha256(envelope).hexdigest(),
        "previous": hops_digest(previous),
    }
    return HOP_CONTEXT + canonical_json(doc)


def sign_hop(
    sign: Callable[[bytes], bytes],
    relay: str,
    envelope: bytes,
    previous: Sequence[HopRecord],
    source: str,
    seq: int,
    checkpoint: bytes,
    received: str,
    n: int = 0,
    path: Sequence[bytes] = (),
) -> HopRecord:
    """The hop record of ``relay`` (whose log key ``sign`` signs with) taking ``envelope``
    from ``source`` at its sequence ``seq`` (number ``n`` there; ``path``, its leaf's
    inclusion path in ``checkpoint``'s tree)."""
    message = hop_statement(envelope, previous, relay, source, seq, checkpoint, received, n, path)
    return HopRecord(relay, source, seq, checkpoint, received, sign(message), n, tuple(path))


def origin_of(hops: Sequence[HopRecord], here: str) -> str:
    """The origin hub of an envelope with ``hops`` at the hub ``here``."""
    return hops[0].source if hops else here


def _field(doc: Mapping[str, Any], name: str, kind: type, what: str) -> Any:
    value = doc.get(name)
    if type(value) is not kind:
        raise HopError(f"{what}: {name!r} is {type(value).__name__}, expected {kind.__name__}")
    limit = _LIMITS.get(name, _MAX_NAME)
    if isinstance(value, str) and not 0 < len(value) <= limit:
        raise HopError(f"{what}: {name!r} of {len(value)} characters, expected 1 to {limit}")
    return value


def _bytes(doc: Mapping[str, Any], name: str, what: str) -> bytes:
    try:
        return base64.b64decode(_field(doc, name, str, what), validate=True)
    except (binascii.Error, ValueError):
        raise HopError(f"{what}: {name!r} is not base64") from None


def _record(doc: Any, i: int) -> HopRecord:
    what = f"hop {i}"
    if not isinstance(doc, dict) or sorted(doc) != sorted(_FIELDS):
        shown = sorted(doc) if isinstance(doc, dict) else type(doc).__name__
        raise HopError(f"{what}: fields {shown}, expected {sorted(_FIELDS)}")
    seq = _field(doc, "seq", int, what)
    if not 0 < seq < 2**63:
        raise HopError(f"{what}: seq {seq}, expected 1 to 2**63 - 1")
    n = _field(doc, "n", int, what)
    if not 0 <= n < 2**63:
        raise HopError(f"{what}: n {n}, expected 0 to 2**63 - 1")
    return HopRecord(
        _field(doc, "relay", str, what),
        _field(doc, "from", str, what),
        seq,
        _bytes(doc, "checkpoint", what),
        _field(doc, "received", str, what),
        _bytes(doc, "signature", what),
        n,
        _path(doc.get("path"), what),
    )


def _path(value: Any, what: str) -> tuple[bytes, ...]:
    if not isinstance(value, list) or len(value) > MAX_PATH:
        raise HopError(f"{what}: 'path' is {type(value).__name__}, expected a list of at most"
                       f" {MAX_PATH} hashes")  # fmt: skip
    out = []
    for h in value:
        try:
            raw = base64.b64decode(h, validate=True) if isinstance(h, str) else b""
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != 32:
            raise HopError(f"{what}: 'path' holds {str(h)[:48]!r}, expected base64 of 32 bytes")
        out.append(raw)
    return tuple(out)


def decode_hops(raw: bytes) -> tuple[HopRecord, ...]:
    """The hop list of ``raw`` (``encode_hops``), under a budget, in canonical form."""
    try:
        doc = _json.loads(raw, _BUDGET, "hop list")
    except JsonBudgetError as exc:
        raise HopError(f"hop list: not JSON within budget ({exc})") from None
    if not isinstance(doc, list) or len(doc) > MAX_HOPS:
        size = len(doc) if isinstance(doc, list) else type(doc).__name__
        raise HopError(f"hop list: {size}, expected a list of at most {MAX_HOPS} hops")
    hops = tuple(_record(d, i) for i, d in enumerate(doc))
    if encode_hops(hops) != raw:
        raise HopError("hop list: not in canonical (RFC 8785) form")
    return hops


def verify_hops(
    envelope: bytes,
    hops: Sequence[HopRecord],
    log_keys: Mapping[str, bytes],
    here: str,
    names: Sequence[str] | None = None,
) -> Checkpoint | None:
    """Check every hop of ``envelope`` as it arrived at hub ``here``: a chain (each hop's
    ``from`` is the relay before it, the last hop's relay is ``here``, no hub twice), each
    signature under its relay's log key in ``log_keys`` (origin -> raw Ed25519 key) and each
    checkpoint signed by its source's log key and holding the hop's sequence; with
    ``names`` (the collaboration's name in each hop's source log), that each source logged
    the envelope there (the hop's inclusion path).  Returns the origin's checkpoint (None
    for no hops).  Raises ``HopError`` naming the hop."""
    if len(hops) > MAX_HOPS:
        raise HopError(f"{len(hops)} hops, at most {MAX_HOPS}")
    if names is not None and len(names) != len(hops):
        raise HopError(f"{len(names)} collaboration names for {len(hops)} hops")
    seen = {hops[0].source} if hops else set()
    first: Checkpoint | None = None
    for i, hop in enumerate(hops):
        what = f"hop {i} ({hop.source} -> {hop.relay})"
        if i and hop.source != hops[i - 1].relay:
            raise HopError(
                f"{what}: from {hop.source!r}, but hop {i - 1} went to {hops[i - 1].relay!r}"
            )
        if hop.relay in seen:
            raise HopError(f"{what}: {hop.relay!r} appears twice: a cycle")
        seen.add(hop.relay)
        checkpoint = _checkpoint(hop, log_keys, what)
        first = first or checkpoint
        _check_signature(envelope, hops[:i], hop, log_keys, what)
        if names is not None:
            _check_logged(envelope, hops[:i], hop, names[i], checkpoint, what)
    if hops and hops[-1].relay != here:
        raise HopError(f"the last hop went to {hops[-1].relay!r}, not to this hub ({here!r})")
    return first


def _check_logged(
    envelope: bytes,
    previous: Sequence[HopRecord],
    hop: HopRecord,
    collab: str,
    checkpoint: Checkpoint,
    what: str,
) -> None:
    """That the source's log holds the envelope (as ``collab``'s number ``hop.n``, with the
    hops before) at ``hop.seq`` of the checkpoint's tree."""
    leaf = envelope_leaf(collab, envelope, hop.n, encode_hops(previous))
    try:
        verify_inclusion(hop.seq - 1, checkpoint.size, leaf_hash(leaf), hop.path, checkpoint.root)
    except ProofError as exc:
        raise HopError(f"{what}: not in {hop.source!r}'s log as {collab!r}: {exc}") from None


def _key(log_keys: Mapping[str, bytes], origin: str, what: str) -> bytes:
    key = log_keys.get(origin)
    if key is None:
        raise HopError(f"{what}: no log key pinned for hub {origin!r}")
    return key


def _checkpoint(hop: HopRecord, log_keys: Mapping[str, bytes], what: str) -> Checkpoint:
    verifier = hub_key(hop.source, _b64(_key(log_keys, hop.source, what)))
    try:
        opened = open_checkpoint(
            hop.checkpoint, verifier, origin=hop.source, max_bytes=HOP_NOTE_BYTES
        )
    except NoteError as exc:
        raise HopError(f"{what}: checkpoint: {exc}") from None
    if hop.seq > opened.checkpoint.size:
        raise HopError(
            f"{what}: sequence {hop.seq} is past the checkpoint's tree of"
            f" {opened.checkpoint.size} leaves"
        )
    return opened.checkpoint


def _check_signature(
    envelope: bytes,
    previous: Sequence[HopRecord],
    hop: HopRecord,
    log_keys: Mapping[str, bytes],
    what: str,
) -> None:
    message = hop_statement(
        envelope, previous, hop.relay, hop.source, hop.seq, hop.checkpoint, hop.received,
        hop.n, hop.path,
    )  # fmt: skip
    key = _key(log_keys, hop.relay, what)
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(hop.signature, message)
    except (InvalidSignature, ValueError):
        raise HopError(f"{what}: the relay's signature does not verify") from None
