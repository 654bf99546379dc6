"""Checking synced envelopes: the publisher's signature against the key directory, the
canonical bytes, the bundle rules and the attribution.  The result is the rows to store or
why not.  Pure functions of their arguments, so a daemon can run them in worker processes
while it writes earlier batches."""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sighub.client._envelope import decode_payload, open_envelope
from sighub.client._errors import EnvelopeError, StixError, UnknownKeyError
from sighub.client._local import LocalStore
from sighub.client._stix import parse_bundle

__all__ = [
    "UNKNOWN_KEY",
    "Checked",
    "Directory",
    "Row",
    "check_changes",
    "paused_gc",
]

# key id -> member, identity, raw public key, the log sequence it was revoked at, the
# sequence it was logged at, and why its envelopes are refused ("": they are not)
Directory = dict[str, tuple[str, str, bytes, int | None, int, str]]
Row = tuple[Any, ...]  # LocalStore.row
Checked = str | list[Row]  # why the envelope is refused, or its rows
log = logging.getLogger("sighub.sync")
UNKNOWN_KEY: Final = UnknownKeyError.WORDS  # in a refusal: refresh the directory, check again
_parsed: dict[bytes, Ed25519PublicKey] = {}  # raw public key -> parsed, per process


@contextmanager
def paused_gc() -> Iterator[None]:
    """Run without the cyclic collector: a bundle makes thousands of acyclic objects that
    would trigger collections walking them all (and the caller's heap) for nothing.
    Reference counting still frees them."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _public_key(raw: bytes) -> Ed25519PublicKey:
    key = _parsed.get(raw)
    if key is None:
        key = _parsed[raw] = Ed25519PublicKey.from_public_bytes(raw)
    return key


def check_changes(directory: Directory, changes: Sequence[tuple[int, str, bytes]]) -> list[Checked]:
    """Check every ``(sequence, collaboration, envelope)`` against ``directory``."""
    keys = {kid: _public_key(entry[2]) for kid, entry in directory.items()}
    with paused_gc():
        return [_check_safely(directory, keys, seq, collab, raw) for seq, collab, raw in changes]


def _check_safely(
    directory: Directory,
    keys: dict[str, Ed25519PublicKey],
    seq: int,
    collab: str,
    raw: bytes,
) -> Checked:
    """``_check``, with any failure a refusal: one envelope no check foresaw must cost that
    envelope, never the daemon (or every member's daemon, since all sync the same log)."""
    try:
        return _check(directory, keys, seq, collab, raw)
    except Exception as exc:
        log.exception("envelope seq=%d could not be checked", seq)
        return f"envelope could not be checked ({type(exc).__name__}: {str(exc)[:200]})"


def _check(
    directory: Directory,
    keys: dict[str, Ed25519PublicKey],
    seq: int,
    collab: str,
    raw: bytes,
) -> Checked:
    try:
        envelope = open_envelope(raw, keys)
    except EnvelopeError as exc:
        return str(exc)
    member, identity, _, revoked_seq, since, flaw = directory[envelope.key_id]
    if flaw:
        return f"signed with key {envelope.key_id} of {member!r}, which {flaw}"
    if seq <= since:
        return (
            f"signed with key {envelope.key_id} of {member!r}, which the log holds only from"
            f" sequence {since}, after this envelope's {seq}"
        )
    if revoked_seq is not None and seq > revoked_seq:
        # One rule every member applies alike: what the key signed up to its revocation
        # stays valid until it expires (a fresh member and an old one end equal).
        return f"signed with key {envelope.key_id} of {member!r}, revoked at sequence {revoked_seq}"
    try:  # only now: a refused key costs no parse of its (up to 4 MB) bundle
        bundle = parse_bundle(decode_payload(envelope))
    except (EnvelopeError, StixError) as exc:
        return str(exc)
    if bundle.publisher.id != identity:
        return (
            f"bundle names publisher {bundle.publisher.id} but is signed by "
            f"{envelope.key_id} of {member!r} ({identity})"
        )
    if bundle.collaboration != collab:
        return f"bundle is for {bundle.collaboration!r}, relayed as {collab!r}"
    # In id order: written in key order, each page of the id index is visited once.
    return sorted(LocalStore.row(ind, seq) for ind in bundle.indicators)
