"""The member side of its HPKE encryption key (``_hpke``): made at enrollment, proved by
the signing key, registered and logged by the hub, rotated as the signing key is.

Files in the member data directory: ``encryption.key`` (the current key),
``encryption.<id>.retired.key`` (keys rotated away from) and
``encryption.<id>.pending.key`` (a rotation's new key, written before the hub is asked, so
a daemon reading the ``key.encryption`` leaf finds it among the member's own keys)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sighub.client._errors import SighubError
from sighub.client._hpke import (
    DEFAULT_SUITE,
    ENCRYPTION_KEY,
    EncryptionKey,
    ProvedKey,
    load_key,
    prove,
)
from sighub.client._keys import MemberFiles, fsync_path
from sighub.client._rpc import Credential, HubClient, HubRejected, HubUnreachable

__all__ = ["Rotated", "enrollment_key", "own_encryption_keys", "rotate_encryption_key"]

log = logging.getLogger("sighub.member")


def _proved(key: EncryptionKey, signing: Ed25519PrivateKey) -> ProvedKey:
    return ProvedKey(key.suite, key.public, prove(signing, key.suite, key.public))


def enrollment_key(data: Path, signing: Ed25519PrivateKey, suite: str = DEFAULT_SUITE) -> ProvedKey:
    """The encryption key to enroll with, proved by ``signing``: the one in ``data`` when
    an enrollment that failed left it there, else a new key of ``suite`` written there."""
    path = data / ENCRYPTION_KEY
    if path.exists():
        return _proved(load_key(path), signing)
    key = EncryptionKey.generate(suite)
    key.write(path)
    return _proved(key, signing)


@dataclass(frozen=True, slots=True)
class Rotated:
    key_id: str
    suite: str
    signing_key_id: str
    previous_key_id: str  # "" when the member had none (enrolled before encryption keys)
    sequence: int  # of the key.encryption leaf


def _short(key_id: str) -> str:
    return key_id.removeprefix("hpke:")[:12]


def rotate_encryption_key(
    data: Path, insecure: bool = False, address: str | None = None, suite: str = DEFAULT_SUITE
) -> Rotated:
    """Register a new encryption key of ``suite`` (proved by the current signing key),
    then make it ``encryption.key`` and keep the old one as retired.  For a member
    enrolled before encryption keys, this registers its first."""
    files = MemberFiles(data)
    signing = files.signing_key()
    new = EncryptionKey.generate(suite)
    cred = Credential.load(data)
    if address is not None:
        cred = replace(cred, hub=address)
    pending = data / f"encryption.{_short(new.key_id)}.pending.key"
    new.write(pending)
    try:
        with HubClient.connect(cred, insecure) as hub:
            kid, signer, old, seq = hub.rotate_encryption_key(_proved(new, signing))
    except HubRejected as exc:
        if not isinstance(exc, HubUnreachable):  # refused: the hub logged nothing
            pending.unlink()
        raise  # unreachable: it may have been logged, so the key stays this member's
    if kid != new.key_id:
        raise SighubError(f"hub answered encryption key {kid}; expected {new.key_id}")
    current = data / ENCRYPTION_KEY
    if current.exists():
        current.rename(data / f"encryption.{_short(load_key(current).key_id)}.retired.key")
    pending.rename(current)
    files.write_identity(files.identity(), kid)
    fsync_path(data)
    return Rotated(kid, suite, signer, old, seq)


def own_encryption_keys(data: Path) -> tuple[frozenset[str], frozenset[str]]:
    """(the ids of every encryption key this member made, those it rotated away from):
    ``encryption.key`` and its retired and pending keys in ``data`` (``_logguard.own_keys``
    adds the one ``member.json`` names)."""
    mine: set[str] = set()
    retired: set[str] = set()
    for path in sorted(data.glob("encryption*.key")):
        try:
            kid = load_key(path).key_id
        except (SighubError, OSError) as exc:
            log.warning(
                "%s: not read as an encryption key (%s); not counted as this member's", path, exc
            )
            continue
        mine.add(kid)
        if path.name.endswith(".retired.key"):
            retired.add(kid)
    return frozenset(mine), frozenset(retired)
