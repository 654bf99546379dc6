"""The signing keys the hub's log vouches for, built by each member from the directory
leaves it verified, never from what the hub's key directory says.

A key enters at the log sequence of its ``member.enroll`` or ``key.rotate`` leaf and is
revoked at that of its ``key.revoke`` leaf, or of the rotation that replaced it: an
envelope at a sequence outside that span is refused.  When the member's credential pins
the admin's key, a first key counts only with its admin-signed chain (``_grant``) or an
admin attestation, and a rotated key inherits the standing of the key that proved it.  A
leaf whose signatures do not verify (a forged grant, a rotation the old key never signed)
is the hub lying: ``LogAlarm``.  A key with no chain at all may be one enrolled before
grants existed, so it is not an alarm; its envelopes are refused with the reason.

The ring also holds each member's current HPKE encryption key (``_hpke``): the one of its
``member.enroll`` leaf or of its latest ``key.encryption`` leaf, each proved by a signing
key of that member as the ring knows it (a proof that fails is the hub lying, as above).
A key proved by a signing key with a flaw, or that this client cannot use, is kept with
the reason and not handed out.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sighub.client._envelope import key_id
from sighub.client._grant import (
    ROTATE_CONTEXT,
    Chain,
    KeyChainError,
    check_attestation,
    check_chain,
)
from sighub.client._hpke import HpkeError, ProvedKey, check_proof, check_public
from sighub.client._keys import identity_for
from sighub.client._logcheck import AlarmKind, LogAlarm

__all__ = ["NO_CHAIN", "KeyRing", "LoggedEncryptionKey", "LoggedKey", "forged"]

NO_CHAIN: Final = "has no admin-signed enrollment chain (the hub alone could have made it)"


@dataclass(frozen=True, slots=True)
class LoggedKey:
    """A signing key as the log shows it; ``flaw`` says why its envelopes are refused
    ("" for none)."""

    key_id: str
    member: str
    identity: str
    public_key: bytes
    since: int
    revoked: int | None = None
    flaw: str = ""

    def row(self) -> tuple[Any, ...]:
        return (
            self.key_id,
            self.member,
            self.identity,
            self.public_key,
            self.since,
            self.revoked,
            self.flaw,
        )


@dataclass(frozen=True, slots=True)
class LoggedEncryptionKey:
    """A member's current encryption key as the log shows it: ``key_id`` is the signing
    key whose proof it carries, ``since`` the sequence of its leaf; ``flaw`` says why it
    is not to be used ("" for none)."""

    member: str
    suite: str
    public_key: bytes
    key_id: str
    since: int
    flaw: str = ""

    def row(self) -> tuple[Any, ...]:
        return (self.member, self.suite, self.public_key, self.key_id, self.since, self.flaw)


def _entry(k: LoggedKey) -> tuple[str, str, bytes, int | None, int, str]:
    return (k.member, k.identity, k.public_key, k.revoked, k.since, k.flaw)


def forged(detail: str, seq: int, leaf: Mapping[str, Any]) -> LogAlarm:
    """A FORGED_KEY alarm for the leaf at ``seq`` whose proof (chain, attestation,
    rotation, steward designation) fails."""
    return LogAlarm(
        AlarmKind.FORGED_KEY, f"sequence {seq}: {detail}", {"sequence": seq, "leaf": dict(leaf)}
    )


def _public(leaf: Mapping[str, Any], seq: int) -> bytes:
    """The leaf's public key, which its key id must name."""
    try:
        raw = base64.b64decode(str(leaf.get("public_key")), validate=True)
        public = Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError):
        raise forged("public_key is not a base64 Ed25519 public key", seq, leaf) from None
    if key_id(public) != leaf.get("key_id"):
        raise forged(f"key id {leaf.get('key_id')!r} does not name its public key", seq, leaf)
    return raw


def _roles(leaf: Mapping[str, Any]) -> list[str]:
    roles = leaf.get("roles")
    return [str(r) for r in roles] if isinstance(roles, list) else []


class KeyRing:
    """The keys of the log up to some sequence.  ``apply`` each directory leaf in log
    order; ``changed`` lists the keys to store since the last ``saved``."""

    def __init__(
        self,
        origin: str,
        admin_public: bytes | None,
        keys: Iterable[LoggedKey] = (),
        encryption: Iterable[LoggedEncryptionKey] = (),
    ) -> None:
        self.origin, self.admin_public = origin, admin_public
        self._keys = {k.key_id: k for k in keys}
        self._changed: set[str] = set()
        self._encryption = {e.member: e for e in encryption}
        self._encryption_changed: set[str] = set()
        # Built on the thread that applies leaves, replaced (never changed) on each change:
        # the reader thread that checks envelopes ahead takes whichever it finds.
        self._snapshot: dict[str, tuple[str, str, bytes, int | None, int, str]] = {
            k.key_id: _entry(k) for k in self._keys.values()
        }

    def get(self, kid: str) -> LoggedKey | None:
        return self._keys.get(kid)

    def __len__(self) -> int:
        return len(self._keys)

    def directory(self) -> dict[str, tuple[str, str, bytes, int | None, int, str]]:
        """key id -> (member, identity, public key, revoked at, since, flaw): what the
        envelope checks use.  A new dict after each change, so a reader thread may hold
        the previous one."""
        return self._snapshot

    def changed(self) -> list[LoggedKey]:
        return [self._keys[kid] for kid in sorted(self._changed)]

    def changed_encryption(self) -> list[LoggedEncryptionKey]:
        return [self._encryption[m] for m in sorted(self._encryption_changed)]

    def saved(self) -> None:
        self._changed.clear()
        self._encryption_changed.clear()

    def encryption_record(self, member: str) -> LoggedEncryptionKey | None:
        """``member``'s current encryption key as logged, flawed or not."""
        return self._encryption.get(member)

    def encryption_key(self, member: str) -> tuple[str, bytes] | None:
        """(suite, raw public key) of ``member``'s current encryption key; None when the
        log holds none, or one not to be used: a flaw of its own, or a signing key behind
        its proof that the ring refuses (no admin-signed chain where one is required)."""
        record = self._encryption.get(member)
        if record is None or record.flaw:
            return None
        signer = self._keys.get(record.key_id)
        if signer is None or signer.flaw:
            return None
        return record.suite, record.public_key

    def valid_keys(self, member: str) -> list[str]:
        """The ids of ``member``'s signing keys the ring takes now: not revoked, no flaw."""
        return [
            k.key_id
            for k in self._keys.values()
            if k.member == member and k.revoked is None and not k.flaw
        ]

    def _put(self, key: LoggedKey) -> None:
        self._keys[key.key_id] = key
        self._changed.add(key.key_id)
        self._snapshot = {**self._snapshot, key.key_id: _entry(key)}

    def apply(self, seq: int, leaf: Mapping[str, Any]) -> None:
        """Take one directory leaf (as ``_leaves.parse_leaf`` returns it) at ``seq``."""
        kind = leaf.get("type")
        if kind == "member.enroll":
            self._enroll(seq, leaf)
        elif kind == "key.rotate":
            self._rotate(seq, leaf)
        elif kind == "key.revoke":
            old = self._keys.get(str(leaf.get("key_id")))
            if old is not None and old.member == leaf.get("member") and old.revoked is None:
                self._put(replace(old, revoked=seq))
        elif kind == "key.attest":
            self._attest(seq, leaf)
        elif kind == "key.encryption":
            self._encryption_key(seq, leaf)

    def _enroll(self, seq: int, leaf: Mapping[str, Any]) -> None:
        member, public = str(leaf.get("member")), _public(leaf, seq)
        if leaf.get("identity") != identity_for(member):
            raise forged(
                f"enrolls {member!r} under identity {leaf.get('identity')!r},"
                f" not the one its name derives ({identity_for(member)})",
                seq,
                leaf,
            )
        kid = str(leaf["key_id"])
        try:
            encryption = ProvedKey.from_fields(dict(leaf), f"enrollment of {member!r}")
        except HpkeError as exc:
            raise forged(str(exc), seq, leaf) from None
        if kid in self._keys:
            if self._keys[kid].member != member:
                raise forged(f"key {kid} enrolled again, for {member!r}", seq, leaf)
            return  # a hub from before the log listed each key it held as an enrollment
        logged = (
            None
            if encryption is None
            else self._proved_encryption(seq, leaf, member, encryption, kid, public)
        )
        flaw = self._enroll_flaw(seq, leaf, member, public)
        self._put(LoggedKey(kid, member, identity_for(member), public, seq, flaw=flaw))
        if logged is not None:
            self._put_encryption(logged)

    def _enroll_flaw(self, seq: int, leaf: Mapping[str, Any], member: str, public: bytes) -> str:
        if self.admin_public is None:
            return ""  # the credential pins no admin key (enrolled before chains existed)
        try:
            chain = Chain.from_fields(dict(leaf), f"enrollment of {member!r}")
            if chain is None:
                return NO_CHAIN
            check_chain(self.admin_public, self.origin, member, _roles(leaf), public, chain)
        except KeyChainError as exc:
            raise forged(f"the hub logged a key whose chain fails: {exc}", seq, leaf) from None
        return ""

    def _rotate(self, seq: int, leaf: Mapping[str, Any]) -> None:
        member, public = str(leaf.get("member")), _public(leaf, seq)
        previous = self._keys.get(str(leaf.get("previous_key_id")))
        if previous is None or previous.member != member or previous.revoked is not None:
            raise forged(
                f"rotation of {member!r} from key {leaf.get('previous_key_id')!r},"
                " which is not a current key of that member",
                seq,
                leaf,
            )
        try:
            proof = base64.b64decode(str(leaf.get("proof")), validate=True)
            Ed25519PublicKey.from_public_bytes(previous.public_key).verify(
                proof, ROTATE_CONTEXT + public
            )
        except (binascii.Error, ValueError, InvalidSignature):
            raise forged(
                f"rotation of {member!r}: the proof does not verify under {previous.key_id}",
                seq,
                leaf,
            ) from None
        kid = str(leaf["key_id"])
        if kid in self._keys:
            raise forged(f"rotation to key {kid}, which the log already holds", seq, leaf)
        self._put(replace(previous, revoked=seq))
        self._put(LoggedKey(kid, member, previous.identity, public, seq, flaw=previous.flaw))

    def _attest(self, seq: int, leaf: Mapping[str, Any]) -> None:
        member, public = str(leaf.get("member")), _public(leaf, seq)
        old = self._keys.get(str(leaf["key_id"]))
        if old is None or old.member != member:
            raise forged(
                f"attests key {leaf['key_id']!r} of {member!r}, which the log does"
                " not hold for that member",
                seq,
                leaf,
            )
        if self.admin_public is None:
            return
        try:
            check_attestation(
                self.admin_public,
                self.origin,
                member,
                public,
                _field_bytes(leaf, "attestation"),
                _field_bytes(leaf, "signature"),
            )
        except KeyChainError as exc:
            raise forged(f"the hub logged an attestation that fails: {exc}", seq, leaf) from None
        if old.flaw:
            self._put(replace(old, flaw=""))

    def _encryption_key(self, seq: int, leaf: Mapping[str, Any]) -> None:
        member, kid = str(leaf.get("member")), str(leaf.get("key_id"))
        signer = self._keys.get(kid)
        if signer is None or signer.member != member or signer.revoked is not None:
            raise forged(
                f"encryption key of {member!r} proved by key {kid!r}, which is not a current"
                " key of that member",
                seq,
                leaf,
            )
        fields = {
            "encryption_suite": leaf.get("suite"),
            "encryption_key": leaf.get("encryption_key"),
            "encryption_proof": leaf.get("proof"),
        }
        try:
            encryption = ProvedKey.from_fields(fields, f"encryption key of {member!r}")
        except HpkeError as exc:
            raise forged(str(exc), seq, leaf) from None
        if encryption is None:  # from_fields saw none of them: not a leaf sighub writes
            raise forged(f"encryption key of {member!r} without a key", seq, leaf)
        self._put_encryption(
            self._proved_encryption(seq, leaf, member, encryption, kid, signer.public_key)
        )

    def _put_encryption(self, key: LoggedEncryptionKey) -> None:
        self._encryption[key.member] = key
        self._encryption_changed.add(key.member)

    def _proved_encryption(
        self,
        seq: int,
        leaf: Mapping[str, Any],
        member: str,
        encryption: ProvedKey,
        kid: str,
        signing_public: bytes,
    ) -> LoggedEncryptionKey:
        """``encryption`` as ``member``'s key logged at ``seq``, once its proof verifies
        under the signing key ``kid``; a key this client cannot use has the reason."""
        try:
            check_proof(signing_public, encryption.suite, encryption.public, encryption.proof)
        except HpkeError as exc:
            raise forged(
                f"the hub logged an encryption key of {member!r} that key {kid} did not prove:"
                f" {exc}",
                seq,
                leaf,
            ) from None
        try:
            check_public(encryption.suite, encryption.public, f"encryption key of {member!r}")
            flaw = ""
        except HpkeError as exc:  # proved by the member, so not the hub's forgery
            flaw = str(exc)
        return LoggedEncryptionKey(member, encryption.suite, encryption.public, kid, seq, flaw)


def _field_bytes(leaf: Mapping[str, Any], field: str) -> bytes:
    try:
        return base64.b64decode(str(leaf.get(field)), validate=True)
    except (binascii.Error, ValueError):
        raise KeyChainError(f"{field} is not base64") from None
