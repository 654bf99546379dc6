"""The member side of member-held collaboration keys (``_wraps``): unwrapping the epochs
sealed to this member, and a steward's rekey (a new epoch wrapped to every current member)
and wraps of the current epoch for members that joined since.

Recipients' encryption keys and the steward's signing key are taken from the verified log
(``KeyRing``), never from the hub's word; the hub only says who the members are, and a
new epoch it is not told about by a steward cannot exist.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sighub.client._errors import SighubError
from sighub.client._hpke import EncryptionKey, load_key
from sighub.client._keyring import KeyRing
from sighub.client._keys import MemberFiles
from sighub.client._leaves import key_commitment
from sighub.client._rpc import CollabStatus, HubClient
from sighub.client._stewardlog import LoggedEpoch
from sighub.client._wraps import Recipient, Wrap, WrapError, new_secret, unwrap, wrap_epoch

__all__ = ["Rekeyed", "own_keys", "rekey", "unwrap_all"]

log = logging.getLogger("sighub.steward")


def own_keys(data: Path) -> dict[str, EncryptionKey]:
    """This member's encryption keys (current, retired, pending) by key id."""
    out: dict[str, EncryptionKey] = {}
    for path in sorted(data.glob("encryption*.key")):
        try:
            key = load_key(path)
        except (SighubError, OSError) as exc:
            log.warning("%s: not read as an encryption key (%s)", path, exc)
            continue
        out[key.key_id] = key
    return out


def steward_key(ring: KeyRing, steward: str, kid: str, seqs: Iterable[int]) -> bytes | None:
    """The public key ``kid`` of ``steward`` as the verified log shows it, unless flawed or
    not valid at any of ``seqs`` (the epoch's leaves: a key revoked before them, or
    logged after them, signed no wrap of this epoch)."""
    logged = ring.get(kid)
    if logged is None or logged.member != steward or logged.flaw:
        return None
    if not any(logged.since < s and (logged.revoked is None or s < logged.revoked) for s in seqs):
        return None
    return logged.public_key


def _key_at(ring: KeyRing, seqs: tuple[int, ...], steward: str, kid: str) -> bytes | None:
    return steward_key(ring, steward, kid, seqs)


def _check_logged(w: Wrap, logged: LoggedEpoch) -> None:
    if logged.flaw:
        raise WrapError(f"{w.what}: the epoch is refused: {logged.flaw}")
    if (w.commitment, w.steward) != (logged.commitment, logged.steward):
        raise WrapError(
            f"{w.what}: commitment {w.commitment[:16]} by {w.steward!r}; the verified"
            f" log's collab.epoch leaf has {logged.commitment[:16]} by {logged.steward!r}"
        )


def unwrap_all(
    wraps: Iterable[Wrap],
    member: str,
    keys: dict[str, EncryptionKey],
    ring: KeyRing,
    have: set[tuple[str, int]],
    logged: Mapping[tuple[str, int], LoggedEpoch],
) -> tuple[list[tuple[str, int, bytes]], list[str]]:
    """(collab, epoch, secret) of each wrap not in ``have`` that checks, against the ring
    and ``logged`` (the epochs as the verified log shows them: commitment, steward, a
    designated steward, the sequences its signing key must be valid at); and the reason
    each refused wrap was refused (logged at ERROR: a hub or steward misbehaving).  A
    wrap whose epoch leaf or steward key this member has not verified yet waits for a
    later sync."""
    got: list[tuple[str, int, bytes]] = []
    refused: list[str] = []
    for w in wraps:
        if (w.collab, w.epoch) in have:
            continue
        epoch_leaf = logged.get((w.collab, w.epoch))
        if ring.get(w.signing_key_id) is None or epoch_leaf is None:
            log.debug("%s: its epoch leaf or steward key is not verified yet", w.what)
            continue
        key = keys.get(w.recipient_key_id)
        try:
            _check_logged(w, epoch_leaf)
            if key is None:
                raise WrapError(
                    f"{w.what}: sealed to encryption key {w.recipient_key_id}, which this"
                    " member does not hold"
                )
            secret = unwrap(w, member, key, functools.partial(_key_at, ring, epoch_leaf.seqs))
        except WrapError as exc:
            log.error("wrap refused: %s", exc)
            refused.append(str(exc))
            continue
        got.append((w.collab, w.epoch, secret))
    return got, refused


@dataclass(frozen=True, slots=True)
class Rekeyed:
    collab: str
    epoch: int
    new: bool  # a new epoch (False: the current one wrapped to members that lacked it)
    recipients: tuple[str, ...]
    sequence: int
    # earlier epochs wrapped to joiners, as the collaboration's policy says: (epoch,
    # recipients) each
    earlier: tuple[tuple[int, tuple[str, ...]], ...] = ()


def _recipients(ring: KeyRing, names: Iterable[str]) -> list[Recipient]:
    out, lacking = [], []
    for name in names:
        logged = ring.encryption_key(name)
        if logged is None:
            lacking.append(name)
        else:
            out.append(Recipient(name, *logged))
    if lacking:
        raise WrapError(
            f"members {lacking} have no usable encryption key in the verified log; each"
            " runs `sighub member rotate-encryption-key` (or enrolls again) before a rekey"
        )
    return out


def plan(status: CollabStatus) -> tuple[bool, list[str]]:
    """(whether a new epoch is due, the members to wrap to).  A new epoch when there is
    none yet, when the current one was made by the hub (the move to member-held keys), or
    when someone holding it is no longer a current member; else the current epoch for the
    members without a wrap of it."""
    members = [m for m, _ in status.members]
    current = status.epochs[-1] if status.epochs else None
    if current is None or not current.steward or set(current.holders) - set(members):
        return True, members
    return False, [m for m in members if m not in current.holders]


def rekey(
    hub: HubClient,
    files: MemberFiles,
    member: str,
    ring: KeyRing,
    collab: str,
    held: dict[tuple[str, int], bytes],
    force_new: bool = False,
) -> tuple[Rekeyed, bytes | None]:
    """Bring ``collab``'s key up to date as its steward ``member``: a new epoch wrapped to
    every current member, or the current epoch wrapped to those that lack it (``held``:
    the secrets this member holds); then the earlier epochs this steward made, within the
    collaboration's policy, to the members that lack them.  Returns what was done and the
    new secret (None when no new epoch), which the caller stores."""
    status = hub.collab_status(collab)
    if member not in status.stewards:
        raise SighubError(
            f"collaboration {collab!r}: {member!r} is not a steward (stewards:"
            f" {list(status.stewards)})"
        )
    new, names = plan(status)
    current = status.epochs[-1].epoch if status.epochs else -1
    secret = None if new or force_new else held.get((collab, current))
    if force_new or (not new and secret is None):  # asked, or this steward lacks the secret
        new, names = True, [m for m, _ in status.members]
    signing = files.signing_key()
    seq = 0
    if names:
        if new:
            current, secret = current + 1, new_secret()
        assert secret is not None
        wraps = wrap_epoch(signing, member, collab, current, secret, _recipients(ring, names))
        seq = hub.put_epoch(collab, current, key_commitment(secret), wraps)
    earlier = tuple(_wrap_earlier(hub, signing, member, ring, status, held, current))
    done = Rekeyed(collab, current, new and bool(names), tuple(names), seq, earlier)
    return done, (secret if new and names else None)


def _wrap_earlier(
    hub: HubClient,
    signing: Ed25519PrivateKey,
    member: str,
    ring: KeyRing,
    status: CollabStatus,
    held: dict[tuple[str, int], bytes],
    current: int,
) -> Iterator[tuple[int, tuple[str, ...]]]:
    """Wrap each epoch before ``current`` within the policy that this steward made and
    holds to the current members without a wrap of it."""
    members = [m for m, _ in status.members]
    for e in status.epochs:
        secret = held.get((status.collab, e.epoch))
        if not current - status.earlier_epochs <= e.epoch < current or secret is None:
            continue
        lacking = [m for m in members if m not in e.holders]
        if e.steward != member or not lacking:
            continue
        wraps = wrap_epoch(signing, member, status.collab, e.epoch, secret,
                           _recipients(ring, lacking))  # fmt: skip
        hub.put_epoch(status.collab, e.epoch, key_commitment(secret), wraps)
        yield e.epoch, tuple(lacking)
