"""Collaboration key epochs made by members: a steward's client draws each epoch's secret
and seals it with HPKE (``_hpke``) to every current member's logged encryption key; the
hub stores and relays only these wraps.

A wrap's AAD binds the collaboration, the epoch, the recipient and the recipient's key
id, so a wrap moved to another collaboration, epoch or member does not open.  The steward
signs each wrap (``sighub-epoch-wrap-v1\\n`` and the canonical JSON of its fields, the
sealed bytes as their SHA-256), so the hub cannot make or swap one; the member checks the
signature under the steward's signing key as its verified log shows it, and that the
secret opened matches the wrap's commitment (the one the ``collab.epoch`` leaf logs).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sighub.client._envelope import canonical_json, key_id
from sighub.client._errors import EXIT_BAD_INPUT, SighubError
from sighub.client._hpke import EncryptionKey, HpkeError, encryption_key_id, seal
from sighub.client._leaves import key_commitment

__all__ = [
    "SECRET_SIZE",
    "Recipient",
    "Wrap",
    "WrapError",
    "far_recipient",
    "split_recipient",
    "unwrap",
    "wrap_epoch",
    "wraps_digest",
]

SECRET_SIZE: Final = 32
SIGN_CONTEXT: Final = b"sighub-epoch-wrap-v1\n"
AAD_CONTEXT: Final = b"sighub-epoch-aad-v1\n"
INFO: Final = b"sighub collaboration key epoch"


# A wrap's fields the steward signs (the sealed bytes go in as their hash) and those
# that are bytes (base64 in a leaf).
_SIGNED: Final = ("collab", "epoch", "commitment", "recipient", "recipient_key_id", "suite",
                  "steward")  # fmt: skip
_BYTES: Final = ("sealed", "signature")


class WrapError(SighubError, ValueError):
    """A wrap this member refuses: the message names the wrap and the rule it breaks."""

    exit_code = EXIT_BAD_INPUT


@dataclass(frozen=True, slots=True)
class Recipient:
    """A member and its current encryption key as the verified log shows it."""

    member: str
    suite: str
    public: bytes

    @property
    def key_id(self) -> str:
        return encryption_key_id(self.public)


@dataclass(frozen=True, slots=True)
class Wrap:
    """One epoch secret sealed to one member, signed by a steward."""

    collab: str
    epoch: int
    commitment: str
    recipient: str
    recipient_key_id: str
    suite: str
    sealed: bytes
    steward: str
    signing_key_id: str
    signature: bytes

    @property
    def what(self) -> str:
        return f"wrap of {self.collab!r} epoch {self.epoch} for {self.recipient!r}"

    def statement(self) -> bytes:
        """What the steward signs: every field but the signature's own, the sealed bytes as
        their SHA-256."""
        fields = {name: getattr(self, name) for name in _SIGNED}
        fields["sealed"] = hashlib.sha256(self.sealed).hexdigest()
        return SIGN_CONTEXT + canonical_json(fields)

    @property
    def far(self) -> bool:
        """Addressed to a member of another hub (``member@origin``, ``far_recipient``)."""
        return "@" in self.recipient

    def leaf_fields(self) -> dict[str, Any]:
        """The fields of its ``collab.wrap`` leaf (``_leaves.collab_wrap``): all of them,
        the bytes in base64."""
        fields: dict[str, Any] = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name in _BYTES:
            fields[name] = base64.b64encode(fields[name]).decode()
        return fields

    @classmethod
    def from_leaf(cls, doc: Mapping[str, Any]) -> Wrap:
        """The wrap of a parsed ``collab.wrap`` leaf (its types checked by ``parse_leaf``);
        WrapError for base64 that is not."""
        fields = {f.name: doc[f.name] for f in dataclasses.fields(cls)}
        try:
            for name in _BYTES:
                fields[name] = base64.b64decode(str(fields[name]), validate=True)
        except ValueError:
            raise WrapError(
                f"collab.wrap leaf of {doc.get('collab')!r} epoch {doc.get('epoch')}: sealed or"
                " signature is not base64"
            ) from None
        return cls(**fields)

    def check_signature(self, steward_public: bytes) -> None:
        try:
            Ed25519PublicKey.from_public_bytes(steward_public).verify(
                self.signature, self.statement()
            )
        except (InvalidSignature, ValueError):
            raise WrapError(
                f"{self.what}: the signature does not verify under steward {self.steward!r}'s"
                f" key {self.signing_key_id}"
            ) from None


def far_recipient(member: str, origin: str) -> str:
    """How a steward names a member of another hub in a wrap: ``member@origin`` (a member
    name never holds "@", so it is never a member of the steward's own hub)."""
    return f"{member}@{origin}"


def split_recipient(recipient: str) -> tuple[str, str]:
    """(member, origin) of a ``far_recipient`` name; origin "" for a member of this hub."""
    member, _, origin = recipient.partition("@")
    return member, origin


def aad(collab: str, epoch: int, recipient: str, recipient_key_id: str) -> bytes:
    return AAD_CONTEXT + canonical_json(
        {"collab": collab, "epoch": epoch, "recipient": recipient, "key": recipient_key_id}
    )


def wraps_digest(wraps: Iterable[Wrap]) -> str:
    """Hex SHA-256 over the wraps' statements in recipient order: what a ``collab.epoch``
    leaf logs of them."""
    h = hashlib.sha256()
    for w in sorted(wraps, key=lambda w: w.recipient):
        statement = w.statement()
        h.update(len(statement).to_bytes(4, "big") + statement)
    return h.hexdigest()


def new_secret() -> bytes:
    return os.urandom(SECRET_SIZE)


def wrap_epoch(
    signing: Ed25519PrivateKey,
    steward: str,
    collab: str,
    epoch: int,
    secret: bytes,
    recipients: Iterable[Recipient],
) -> list[Wrap]:
    """``secret`` sealed to each of ``recipients`` and signed by ``steward``."""
    if len(secret) != SECRET_SIZE:
        raise WrapError(f"epoch secret: {len(secret)} bytes, expected {SECRET_SIZE}")
    commitment = key_commitment(secret)
    kid = key_id(signing.public_key())
    out = []
    for r in recipients:
        sealed = seal(r.suite, r.public, secret, aad(collab, epoch, r.member, r.key_id), INFO)
        unsigned = Wrap(
            collab, epoch, commitment, r.member, r.key_id, r.suite, sealed, steward, kid, b""
        )
        out.append(replace(unsigned, signature=signing.sign(unsigned.statement())))
    return out


def unwrap(
    wrap: Wrap,
    member: str,
    key: EncryptionKey,
    steward_key: Callable[[str, str], bytes | None],
    stewards: Iterable[str] | None = None,
) -> bytes:
    """The secret ``wrap`` seals to ``member`` under ``key``, once the steward's signature
    (``steward_key(steward, signing key id)``: the public key the verified log shows for
    it, None when it shows none), the AAD and the commitment check."""
    if wrap.recipient != member or wrap.recipient_key_id != key.key_id:
        raise WrapError(
            f"{wrap.what}: sealed to {wrap.recipient!r} key {wrap.recipient_key_id}, expected"
            f" {member!r} key {key.key_id}"
        )
    if stewards is not None and wrap.steward not in set(stewards):
        raise WrapError(f"{wrap.what}: made by {wrap.steward!r}, who is not a steward")
    public = steward_key(wrap.steward, wrap.signing_key_id)
    if public is None:
        raise WrapError(
            f"{wrap.what}: signing key {wrap.signing_key_id} is not a valid key of steward"
            f" {wrap.steward!r} in the verified log"
        )
    wrap.check_signature(public)
    try:
        secret = key.open_(wrap.sealed, aad(wrap.collab, wrap.epoch, member, key.key_id), INFO)
    except HpkeError as exc:
        raise WrapError(f"{wrap.what}: {exc}") from None
    if len(secret) != SECRET_SIZE or key_commitment(secret) != wrap.commitment:
        raise WrapError(f"{wrap.what}: the secret does not match the commitment")
    return secret
