"""Witness cosignatures at the hub (issue 10, item 7): a member that verified one of the
hub's checkpoints co-signs it (C2SP ``tlog-cosignature``, cosignature/v1) and sends the
cosignature with ``LogService.AddCosignature``; the hub keeps each witness key's latest
one (table ``cosignatures``) and serves them with ``GetCheckpoint``.

The hub stores only what it would itself vouch for: a checkpoint its own log key signed,
for its own origin, whose root is its tree's root at that size, co-signed by the key the
request names.  A witness key belongs to the first member that sent it, so no member can
replace (or freeze) another's cosignatures; each member holds at most
``MAX_KEYS_PER_MEMBER`` keys and each key one row, so the table stays small.  Every
refusal changes nothing and names the rule broken.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from sighub.client._checkpoint import (
    Checkpoint,
    CosignatureVerifier,
    cosignature_time,
    parse_checkpoint,
)
from sighub.client._errors import NoteError
from sighub.client._merkle import ProofError
from sighub.client._note import Ed25519Verifier, Note, parse_note, shown
from sighub.client._witness import MAX_WITNESS_KEYS
from sighub.hub._errors import HubError
from sighub.hub._store import TLOG, Store

__all__ = [
    "MAX_KEYS_PER_MEMBER",
    "MAX_REQUESTED",
    "Cosigned",
    "check_cosignature",
    "store_cosignature",
    "witness_ids",
    "witnessed",
]

MAX_KEYS_PER_MEMBER: Final = 4  # a member's witness keys (rotations, a few daemons)
MAX_REQUESTED: Final = MAX_WITNESS_KEYS  # witness keys one GetCheckpoint may name
MAX_ALL: Final = 1000  # cosigned checkpoints one GetCheckpoint(all_witnesses) returns
# A hub's checkpoint note is about 200 bytes; a cosignature line about 120.
MAX_CHECKPOINT_BYTES: Final = 4096
MAX_LINE_BYTES: Final = 1024
_WITNESS: Final = re.compile(r"([^\s+]{1,1000})\+([0-9a-f]{8})")
_RPC: Final = "AddCosignature"


@dataclass(frozen=True, slots=True)
class Cosigned:
    """A checked cosignature: the witness key, the checkpoint, the time the witness
    signed at, the hub's note (its text and the hub's signature only) and the line."""

    witness: CosignatureVerifier
    checkpoint: Checkpoint
    signed_at: int
    note: bytes
    line: bytes


def _invalid(field: str, received: str, expected: str) -> HubError:
    return HubError.invalid(f"{_RPC}: {field}: received {received}; expected {expected}")


def check_cosignature(
    log_key: Ed25519Verifier,
    checkpoint: bytes,
    line: bytes,
    witness_key: str,
    now: int,
    max_skew: int,
) -> Cosigned:
    """The request's cosignature, checked without the store: ``witness_key`` a valid
    cosigner vkey, ``checkpoint`` a note signed by ``log_key`` alone for its origin,
    ``line`` one signature line by that witness key that verifies over the checkpoint's
    text and is dated at most ``max_skew`` seconds after ``now``.  Raises ``HubError``
    INVALID_ARGUMENT naming the field otherwise."""
    try:
        witness = CosignatureVerifier.from_vkey(witness_key)
    except NoteError as exc:
        raise _invalid("witness_key", str(exc), "a cosigner vkey <name>+<key ID>+<key>") from None
    if len(checkpoint) > MAX_CHECKPOINT_BYTES:
        raise _invalid("checkpoint", f"{len(checkpoint)} bytes", f"<= {MAX_CHECKPOINT_BYTES}")
    newlines = line.count(b"\n")
    if len(line) > MAX_LINE_BYTES or newlines != 1 or not line.endswith(b"\n"):
        raise _invalid(
            "cosignature",
            f"{len(line)} bytes, {newlines} newlines",
            f"one signature line ending in a newline, <= {MAX_LINE_BYTES} bytes",
        )
    try:
        note = parse_note(checkpoint + line, max_signatures=2)
        body = parse_checkpoint(note.text)
    except NoteError as exc:
        raise _invalid("checkpoint and cosignature", str(exc), "a signed checkpoint note") from None
    if len(note.signatures) != 2:
        raise _invalid(
            "checkpoint",
            f"{len(note.signatures) - 1} signature lines",
            "exactly one, the hub's log signature",
        )
    hub_sig, cosig = note.signatures
    message = note.text.encode()
    if (hub_sig.name, hub_sig.key_id) != (log_key.name, log_key.key_id) or not log_key.verify(
        message, hub_sig.value
    ):
        raise _invalid(
            "checkpoint",
            f"a signature by {shown(hub_sig.name)}+{hub_sig.key_id:08x} that this hub did not make",
            f"a checkpoint signed by this hub's log key {log_key.name}+{log_key.key_id:08x}",
        )
    if body.origin != log_key.name:
        raise _invalid("checkpoint", f"origin {shown(body.origin)}", repr(log_key.name))
    if (cosig.name, cosig.key_id) != (witness.name, witness.key_id):
        raise _invalid(
            "cosignature",
            f"a line by {shown(cosig.name)}+{cosig.key_id:08x}",
            f"a line by the witness key {witness.name}+{witness.key_id:08x}",
        )
    if not witness.verify(message, cosig.value):
        raise _invalid(
            "cosignature",
            f"a signature that does not verify with {witness.name}+{witness.key_id:08x}",
            "a cosignature/v1 of the checkpoint's text by that key",
        )
    signed_at = cosignature_time(cosig)  # verify() checked its length
    if signed_at > now + max_skew:
        raise _invalid(
            "cosignature",
            f"time {signed_at}, {signed_at - now} s ahead of the hub's clock",
            f"at most {max_skew} s ahead (max_clock_skew_seconds)",
        )
    hub_only = Note(note.text, (hub_sig,)).encode()
    return Cosigned(witness, body, signed_at, hub_only, cosig.line.encode())


def store_cosignature(store: Store, member: str, c: Cosigned, received: str) -> int:
    """Keep ``c`` as witness key's latest cosignature, sent by ``member``, inside the
    caller's transaction; returns the size now held.  Raises ``HubError``:
    FAILED_PRECONDITION for a tree this log does not have or one older than the stored
    cosignature, PERMISSION_DENIED for a key another member sent first (or another key
    under the same name and key ID), RESOURCE_EXHAUSTED past ``MAX_KEYS_PER_MEMBER``."""
    w, cp = c.witness, c.checkpoint
    key = f"witness key {w.name}+{w.key_id:08x}"
    try:
        ours = TLOG.root(store.conn, cp.size)
    except ProofError:
        raise HubError.precondition(
            f"{_RPC}: checkpoint: tree size {cp.size} is beyond this log's"
            f" ({TLOG.size(store.conn)}); expected a checkpoint this hub issued"
        ) from None
    if ours != cp.root:
        raise HubError.precondition(
            f"{_RPC}: checkpoint: root {cp.root.hex()} at size {cp.size}; this log's root"
            f" there is {ours.hex()}"
        )
    row = store.one(
        "SELECT member, public_key, size, signed_at FROM cosignatures"
        " WHERE key_name = ? AND key_id = ?",
        w.name,
        w.key_id,
    )
    if row is not None:
        owner, public, size, signed_at = row[0], bytes(row[1]), int(row[2]), int(row[3])
        if owner != member or public != w.public_key:
            who = "another key under that name and ID" if owner == member else repr(owner)
            raise HubError.denied(
                f"{_RPC}: {key} was first sent by {who}; a witness key belongs to the member"
                f" that sent it first (received it from {member!r})"
            )
        if (c.checkpoint.size, c.signed_at) < (size, signed_at):
            raise HubError.precondition(
                f"{_RPC}: {key}: received a cosignature of size {cp.size} at time"
                f" {c.signed_at}; the hub holds one of size {size} at time {signed_at},"
                " expected a size at least as large and a time no earlier"
            )
    else:
        held = store.one("SELECT COUNT(*) FROM cosignatures WHERE member = ?", member)[0]
        if held >= MAX_KEYS_PER_MEMBER:
            raise HubError.exhausted(
                f"{_RPC}: member {member!r} already has {held} witness keys; at most"
                f" {MAX_KEYS_PER_MEMBER}, so {key} is not added"
            )
    store.conn.execute(
        "INSERT OR REPLACE INTO cosignatures (key_name, key_id, public_key, member, size,"
        " signed_at, checkpoint, cosignature, received) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (w.name, w.key_id, w.public_key, member, cp.size, c.signed_at, c.note, c.line, received),
    )
    return cp.size


def witness_ids(requested: Sequence[str]) -> list[tuple[str, int]]:
    """GetCheckpoint's ``witnesses`` as (name, key ID); INVALID_ARGUMENT for more than
    ``MAX_REQUESTED`` or one not spelled ``<name>+<8 hex digits>``."""
    if len(requested) > MAX_REQUESTED:
        raise HubError.invalid(
            f"GetCheckpoint: witnesses: received {len(requested)}; expected at most {MAX_REQUESTED}"
        )
    out = []
    for i, text in enumerate(requested):
        m = _WITNESS.fullmatch(text)
        if m is None:
            raise HubError.invalid(
                f"GetCheckpoint: witnesses[{i}]: received {shown(text)}; expected"
                " <key name>+<8 lowercase hex digits key ID>"
            )
        out.append((m.group(1), int(m.group(2), 16)))
    return out


def witnessed(store: Store, keys: Sequence[tuple[str, int]] | None) -> list[bytes]:
    """The latest cosigned checkpoint of each witness in ``keys`` the hub holds one of
    (None: every witness, at most ``MAX_ALL``), as notes signed by the hub and then the
    witness, in the order asked (by key name and ID for all)."""
    if keys is None:
        rows = store.all(
            "SELECT checkpoint, cosignature FROM cosignatures ORDER BY key_name, key_id LIMIT ?",
            MAX_ALL,
        )
    else:
        rows = []
        for name, kid in dict.fromkeys(keys):
            row = store.one(
                "SELECT checkpoint, cosignature FROM cosignatures"
                " WHERE key_name = ? AND key_id = ?",
                name,
                kid,
            )
            if row is not None:
                rows.append(row)
    return [bytes(note) + bytes(line) for note, line in rows]
