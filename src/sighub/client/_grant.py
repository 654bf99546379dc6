"""Keys a hub alone cannot mint: the admin-signed chain behind every member signing key.

The chain of a first key::

    admin signing key  --signs-->  grant {origin, member, roles, enrollment_key, ...}
    enrollment key     --signs-->  the member's signing public key  (the "binding")

The admin (``sighub admin member add``, on the admin's machine) draws a one-time
enrollment key, signs a grant naming it, and puts the grant, its signature and the
enrollment key's private half in the enrollment file, which goes to the member out of
band.  The member's client signs its new signing key with the enrollment key.  The hub
sees the grant and the binding, never either private key, so a hub process (or whoever
took over its host) cannot produce a chain for a key of its own: clients refuse a key
without one.  Later keys are chained by the rotation proof of the key before them.

An attestation is the admin's signature over one existing key: it chains a key enrolled
before grants existed (``sighub admin member attest``).

Every signed message starts with its own context string, so no signature of one kind can
be replayed as another.  Grants and attestations are RFC 8785 JSON.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from sighub.client import _json
from sighub.client._envelope import canonical_json, key_id
from sighub.client._errors import EXIT_REFUSED, JsonBudgetError, KeyFileError, SighubError
from sighub.client._keys import read_secret, write_secret

__all__ = [
    "ADMIN_SIGNING_KEY",
    "ROTATE_CONTEXT",
    "Chain",
    "KeyChainError",
    "admin_public_key",
    "attest_key",
    "bind_key",
    "check_attestation",
    "check_chain",
    "check_designation",
    "check_peering",
    "create_admin_key",
    "decode_b64",
    "decode_public",
    "designate_steward",
    "issue_grant",
    "load_admin_key",
    "peering_statement",
    "sign_peering",
]

ADMIN_SIGNING_KEY: Final = "admin-signing.key"  # in the admin credential folder
GRANT_CONTEXT: Final = b"sighub-enrollment-grant-v1\n"
BIND_CONTEXT: Final = b"sighub-enrollment-bind-v1\n"
ATTEST_CONTEXT: Final = b"sighub-key-attestation-v1\n"
STEWARD_CONTEXT: Final = b"sighub-steward-designation-v1\n"
PEERING_CONTEXT: Final = b"sighub-peering-v1\n"
# A rotation: the old signing key's signature over this and the new raw public key.
ROTATE_CONTEXT: Final = b"sighub-rotate-v1"
MAX_GRANT_BYTES: Final = 2048  # a grant is about 300 bytes
_BUDGET: Final = _json.JsonBudget(MAX_GRANT_BYTES, max_depth=2, max_containers=2)


class KeyChainError(SighubError):
    """A signing key whose admin-signed chain is missing or does not verify."""

    exit_code = EXIT_REFUSED


@dataclass(frozen=True, slots=True)
class Chain:
    """What a ``member.enroll`` leaf carries to prove its key: the grant's exact bytes,
    the admin's signature over them, and the enrollment key's signature over the key."""

    grant: bytes
    grant_signature: bytes
    binding: bytes

    def to_fields(self) -> dict[str, str]:
        return {
            "grant": _b64(self.grant),
            "grant_signature": _b64(self.grant_signature),
            "binding": _b64(self.binding),
        }

    @classmethod
    def from_fields(cls, doc: dict[str, Any], what: str) -> Chain | None:
        """The chain of a leaf or file's fields; None when it has none; ``KeyChainError``
        when it has some of them, or one is not base64."""
        present = [k for k in ("grant", "grant_signature", "binding") if k in doc]
        if not present:
            return None
        if len(present) != 3:
            raise KeyChainError(
                f"{what}: has {present}; a chain needs grant, grant_signature and binding"
            )
        return cls(*(decode_b64(doc[k], f"{what}: {k}") for k in present))


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def decode_b64(value: object, what: str) -> bytes:
    """Bytes of a base64 string of bounded size, else ``KeyChainError`` naming ``what``."""
    if not isinstance(value, str) or len(value) > 4 * MAX_GRANT_BYTES:
        raise KeyChainError(f"{what}: expected a base64 string, received {type(value).__name__}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise KeyChainError(f"{what}: not base64") from None


def decode_public(text: str, what: str) -> bytes:
    """A raw Ed25519 public key from its base64 text (a pinned admin key)."""
    raw = decode_b64(text, what)
    if len(raw) != 32:
        raise KeyChainError(f"{what}: {len(raw)} bytes, expected a 32-byte Ed25519 public key")
    return raw


def _raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


# -- the admin's key ---------------------------------------------------------------------
def create_admin_key(folder: Path) -> Ed25519PrivateKey:
    """A new admin signing key in ``folder`` (0600; never overwrites one)."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    write_secret(folder / ADMIN_SIGNING_KEY, pem)
    return key


def load_admin_key(path: Path) -> Ed25519PrivateKey:
    """The admin signing key in ``path`` (PEM, 0600)."""
    try:
        key = load_pem_private_key(read_secret(path), password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path}: not a PEM private key ({type(exc).__name__})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: holds a {type(key).__name__}, expected an Ed25519 key")
    return key


def admin_public_key(key: Ed25519PrivateKey) -> str:
    """The base64 public half, as enrollment files and the hub pin it."""
    return _b64(_raw_public(key))


# -- grants --------------------------------------------------------------------------------
def issue_grant(
    admin: Ed25519PrivateKey, origin: str, member: str, roles: list[str]
) -> tuple[bytes, bytes, Ed25519PrivateKey]:
    """(grant, admin signature, one-time enrollment key) for enrolling ``member``."""
    enrollment = Ed25519PrivateKey.generate()
    grant = canonical_json(
        {
            "v": 1,
            "type": "enrollment-grant",
            "origin": origin,
            "member": member,
            "roles": sorted(roles),
            "enrollment_key": _b64(_raw_public(enrollment)),
            "issued": int(time.time()),
            "nonce": secrets.token_hex(16),
        }
    )
    return grant, admin.sign(GRANT_CONTEXT + grant), enrollment


def bind_key(enrollment: Ed25519PrivateKey, grant: bytes, signing_public: bytes) -> bytes:
    """The enrollment key's signature over the member's new signing key."""
    return enrollment.sign(_binding_message(grant, signing_public))


def _binding_message(grant: bytes, signing_public: bytes) -> bytes:
    return BIND_CONTEXT + hashlib.sha256(grant).digest() + signing_public


def _verify(public: bytes, signature: bytes, message: bytes, what: str) -> None:
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
    except (InvalidSignature, ValueError):
        raise KeyChainError(f"{what}: signature does not verify") from None


def _document(raw: bytes, kind: str, what: str) -> dict[str, Any]:
    try:
        doc = _json.loads(raw, _BUDGET, what)
    except JsonBudgetError as exc:
        raise KeyChainError(f"{what}: not JSON within budget ({exc})") from None
    if not isinstance(doc, dict) or doc.get("type") != kind or doc.get("v") != 1:
        raise KeyChainError(f"{what}: expected a v1 {kind!r} object")
    return doc


def _expect(doc: dict[str, Any], field: str, expected: object, what: str) -> None:
    if doc.get(field) != expected:
        raise KeyChainError(
            f"{what}: {field} is {str(doc.get(field))[:80]!r}, expected {str(expected)[:80]!r}"
        )


def check_chain(
    admin_public: bytes,
    origin: str,
    member: str,
    roles: list[str],
    signing_public: bytes,
    chain: Chain,
) -> None:
    """That ``chain`` binds ``signing_public`` to ``member`` of log ``origin`` under the
    admin key: the grant is signed by the admin, names this member, log and roles, and
    its enrollment key signed this signing key.  Raises ``KeyChainError`` naming what
    failed."""
    what = f"enrollment grant of {member!r}"
    _verify(admin_public, chain.grant_signature, GRANT_CONTEXT + chain.grant, f"{what} (admin)")
    doc = _document(chain.grant, "enrollment-grant", what)
    _expect(doc, "origin", origin, what)
    _expect(doc, "member", member, what)
    _expect(doc, "roles", sorted(roles), what)
    enrollment = decode_b64(doc.get("enrollment_key"), f"{what}: enrollment_key")
    _verify(
        enrollment,
        chain.binding,
        _binding_message(chain.grant, signing_public),
        f"{what} (binding of key {key_id(Ed25519PublicKey.from_public_bytes(signing_public))})",
    )


# -- attestations of keys enrolled before grants -------------------------------------------
def _attestation(origin: str, member: str, signing_public: bytes) -> bytes:
    public = Ed25519PublicKey.from_public_bytes(signing_public)
    return canonical_json(
        {
            "v": 1,
            "type": "key-attestation",
            "origin": origin,
            "member": member,
            "key_id": key_id(public),
            "public_key": _b64(signing_public),
        }
    )


def attest_key(
    admin: Ed25519PrivateKey, origin: str, member: str, signing_public: bytes
) -> tuple[bytes, bytes]:
    """(attestation, admin signature) chaining an existing key of ``member``."""
    raw = _attestation(origin, member, signing_public)
    return raw, admin.sign(ATTEST_CONTEXT + raw)


def check_attestation(
    admin_public: bytes,
    origin: str,
    member: str,
    signing_public: bytes,
    attestation: bytes,
    signature: bytes,
) -> None:
    """That the admin attested exactly this key of ``member`` in log ``origin``."""
    what = f"key attestation of {member!r}"
    _verify(admin_public, signature, ATTEST_CONTEXT + attestation, f"{what} (admin)")
    if attestation != _attestation(origin, member, signing_public):
        doc = _document(attestation, "key-attestation", what)
        for field in ("origin", "member"):
            _expect(doc, field, {"origin": origin, "member": member}[field], what)
        raise KeyChainError(f"{what}: names key {str(doc.get('key_id'))[:80]!r}, another key")


# -- steward designations ------------------------------------------------------------------
DESIGNATION_NONCE: Final = 16
DESIGNATION_BYTES: Final = DESIGNATION_NONCE + 64  # the nonce, then the Ed25519 signature


def _designation(origin: str, collab: str, member: str, nonce: bytes) -> bytes:
    return canonical_json(
        {"v": 1, "type": "steward-designation", "origin": origin, "collab": collab,
         "member": member, "nonce": nonce.hex()}
    )  # fmt: skip


def designate_steward(admin: Ed25519PrivateKey, origin: str, collab: str, member: str) -> bytes:
    """The admin's designation of ``member`` as a steward of ``collab`` in log ``origin``:
    a fresh nonce and the admin's signature over it (members take key epochs only from
    stewards so designated).  The nonce makes each designation its own bytes, so one that
    ended (the steward left) cannot be passed off as a new one."""
    nonce = secrets.token_bytes(DESIGNATION_NONCE)
    return nonce + admin.sign(STEWARD_CONTEXT + _designation(origin, collab, member, nonce))


def check_designation(
    admin_public: bytes, origin: str, collab: str, member: str, designation: bytes
) -> None:
    """That the admin designated ``member`` a steward of ``collab``; ``KeyChainError``."""
    what = f"steward designation of {member!r} for {collab!r}"
    if len(designation) != DESIGNATION_BYTES:
        raise KeyChainError(
            f"{what}: {len(designation)} bytes, expected {DESIGNATION_BYTES} (nonce, signature)"
        )
    nonce, signature = designation[:DESIGNATION_NONCE], designation[DESIGNATION_NONCE:]
    message = STEWARD_CONTEXT + _designation(origin, collab, member, nonce)
    _verify(admin_public, signature, message, f"{what} (admin)")


# -- peering records -----------------------------------------------------------------------
def peering_statement(
    peer: str,
    origin: str,
    log_key: bytes,
    address: str,
    collabs: Sequence[tuple[str, str]],
    direction: str,
    max_hops: int,
    tlp_ceiling: str,
) -> bytes:
    """What the admin signs for a peering with the hub of log ``origin``: RFC 8785 JSON of
    the record, the peer's checkpoint key ``log_key`` as base64 and the collaboration map as
    sorted ``remote=local`` strings, so a hub and its clients compute the same bytes."""
    return canonical_json(
        {
            "peer": peer,
            "origin": origin,
            "log_key": _b64(log_key),
            "address": address,
            "collabs": sorted(f"{remote}={local}" for remote, local in collabs),
            "direction": direction,
            "max_hops": max_hops,
            "tlp_ceiling": tlp_ceiling,
        }
    )


def sign_peering(admin: Ed25519PrivateKey, statement: bytes) -> bytes:
    """The admin's signature over a ``peering_statement``: clients pin the admin key, so a
    hub alone cannot make a peer whose log they would trust."""
    return admin.sign(PEERING_CONTEXT + statement)


def check_peering(admin_public: bytes, statement: bytes, signature: bytes, peer: str) -> None:
    """That the admin signed exactly ``statement`` for peering ``peer``; ``KeyChainError``."""
    _verify(admin_public, signature, PEERING_CONTEXT + statement, f"peering {peer!r} (admin)")
