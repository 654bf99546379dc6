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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sighub.client._errors import SighubError
from sighub.client._hpke import EncryptionKey, load_key
from sighub.client._keyring import KeyRing
from sighub.client._keys import MemberFiles
from sighub.client._leaves import key_commitment
from sighub.client._rpc import CollabStatus, HubClient, HubRejected
from sighub.client._stewardlog import LoggedEpoch, StewardLog
from sighub.client._wraps import Recipient, Wrap, WrapError, new_secret, unwrap, wrap_epoch

__all__ = ["Rekeyed", "open_wrap", "own_keys", "rekey", "unwrap_all"]

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


def steward_key(ring: KeyRing, steward: str, kid: str, keys: frozenset[str]) -> bytes | None:
    """The public key ``kid`` of ``steward`` as the verified log shows it, unless flawed or
    not among ``keys`` (the steward's keys valid at one of the epoch's leaves: a key
    revoked before them, or logged after them, signed no wrap of this epoch)."""
    logged = ring.get(kid)
    if logged is None or logged.member != steward or logged.flaw or kid not in keys:
        return None
    return logged.public_key


def _key_at(ring: KeyRing, keys: frozenset[str], steward: str, kid: str) -> bytes | None:
    return steward_key(ring, steward, kid, keys)


def _check_logged(w: Wrap, logged: LoggedEpoch) -> None:
    if logged.flaw:
        raise WrapError(f"{w.what}: the epoch is refused: {logged.flaw}")
    if (w.commitment, w.steward) != (logged.commitment, logged.steward):
        raise WrapError(
            f"{w.what}: commitment {w.commitment[:16]} by {w.steward!r}; the verified"
            f" log's collab.epoch leaf has {logged.commitment[:16]} by {logged.steward!r}"
        )


def open_wrap(
    w: Wrap, member: str, keys: Mapping[str, EncryptionKey], ring: KeyRing, logged: LoggedEpoch
) -> bytes:
    """The secret of ``w``, sealed to ``member`` (as the steward named it) under one of
    ``keys``, checked against its epoch as the verified log shows it (``logged``) and the
    steward's keys in ``ring`` valid at that epoch's leaves; WrapError naming the rule
    broken."""
    _check_logged(w, logged)
    key = keys.get(w.recipient_key_id)
    if key is None:
        raise WrapError(
            f"{w.what}: sealed to encryption key {w.recipient_key_id}, which this member"
            " does not hold"
        )
    return unwrap(w, member, key, functools.partial(_key_at, ring, logged.keys))


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
        try:
            secret = open_wrap(w, member, keys, ring, epoch_leaf)
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
    # recipients) each; and why an earlier epoch could not be wrapped
    earlier: tuple[tuple[int, tuple[str, ...]], ...] = ()
    problems: tuple[str, ...] = ()


def _recipients(
    ring: KeyRing, names: Iterable[str], far: Mapping[str, Recipient] | None = None
) -> list[Recipient]:
    """Each of ``names`` with its encryption key: this hub's members' from the ring, other
    hubs' members' (``member@origin``) as ``far`` gives them (``_farkeys``)."""
    out, lacking = [], []
    for name in names:
        if far is not None and name in far:
            out.append(far[name])
            continue
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


def plan(
    status: CollabStatus,
    epochs: Mapping[tuple[str, int], LoggedEpoch],
    far: Iterable[str] = (),
) -> tuple[bool, list[str]]:
    """(whether a new epoch is due, the members to wrap to).  A new epoch when there is
    none yet, when the current one was made by the hub (the move to member-held keys) or
    is refused in this steward's verified log (a steward named before designations were
    logged made it), or when someone holding it is no longer a current member; else the
    current epoch for the members without a wrap of it.  ``far``: the members of other
    hubs (``member@origin``), who count as members alike."""
    members = [m for m, _ in status.members] + sorted(far)
    current = status.epochs[-1] if status.epochs else None
    logged = epochs.get((status.collab, current.epoch)) if current is not None else None
    flawed = logged is not None and bool(logged.flaw)  # not read yet: not judged yet
    if current is None or not current.steward or flawed or set(current.holders) - set(members):
        return True, members
    return False, [m for m in members if m not in current.holders]


def _check_members(status: CollabStatus, view: StewardLog) -> None:
    """Wrap only to members this steward's verified log shows (where it was read from the
    collaboration's start): never to whoever the hub names."""
    state = view.collabs.get(status.collab)
    if state is None or not state.complete:
        return
    unknown = sorted({m for m, _ in status.members} - state.members)
    if unknown:
        raise WrapError(
            f"collaboration {status.collab!r}: the hub names members {unknown} that the"
            " verified log does not show in it; no key is wrapped to them"
        )


def rekey(
    hub: HubClient,
    files: MemberFiles,
    member: str,
    ring: KeyRing,
    view: StewardLog,
    collab: str,
    held: dict[tuple[str, int], bytes],
    force_new: bool = False,
    far: Mapping[str, Recipient] | None = None,
) -> tuple[Rekeyed, bytes | None]:
    """Bring ``collab``'s key up to date as its steward ``member`` (as ``view``, the
    verified log, shows it): a new epoch wrapped to every current member, or the current
    epoch wrapped to those that lack it (``held``: the secrets this member holds); then
    the earlier epochs this steward made, within the collaboration's policy, to the
    members that lack them.  Returns what was done and the new secret (None when no new
    epoch), which the caller stores.  ``far``: the collaboration's members on other hubs,
    with their keys (``_farkeys.far_recipients``), wrapped like this hub's."""
    if member not in view.stewards(collab):
        raise WrapError(
            f"collaboration {collab!r}: {member!r} is not a steward the verified log shows"
            f" designated (it shows {sorted(view.stewards(collab))})"
        )
    status = hub.collab_status(collab)
    _check_members(status, view)
    far = far or {}
    new, names = plan(status, view.epochs, far)
    current = status.epochs[-1].epoch if status.epochs else -1
    secret = None if new or force_new else held.get((collab, current))
    if force_new or (not new and secret is None):  # asked, or this steward lacks the secret
        new, names = True, [m for m, _ in status.members] + sorted(far)
    signing = files.signing_key()
    seq = 0
    if names:
        if new:
            current, secret = current + 1, new_secret()
        assert secret is not None
        recipients = _recipients(ring, names, far)
        wraps = wrap_epoch(signing, member, collab, current, secret, recipients)
        seq = hub.put_epoch(collab, current, key_commitment(secret), wraps)
    earlier, problems = _wrap_earlier(hub, signing, member, ring, view, status, held, current, far)
    done = Rekeyed(collab, current, new and bool(names), tuple(names), seq, earlier, problems)
    return done, (secret if new and names else None)


def _wrap_earlier(
    hub: HubClient,
    signing: Ed25519PrivateKey,
    member: str,
    ring: KeyRing,
    view: StewardLog,
    status: CollabStatus,
    held: dict[tuple[str, int], bytes],
    current: int,
    far: Mapping[str, Recipient],
) -> tuple[tuple[tuple[int, tuple[str, ...]], ...], tuple[str, ...]]:
    """Wrap each epoch before ``current`` within the policy, that this steward made, holds
    and its log does not refuse, to the current members without a wrap of it; what was
    wrapped, and what failed (the new epoch above stands either way)."""
    members = [m for m, _ in status.members] + sorted(far)
    done, problems = [], []
    for e in status.epochs:
        secret = held.get((status.collab, e.epoch))
        logged = view.epochs.get((status.collab, e.epoch))
        if not current - status.earlier_epochs <= e.epoch < current or secret is None:
            continue
        lacking = [m for m in members if m not in e.holders]
        if e.steward != member or not lacking or logged is None or logged.flaw:
            continue
        try:
            wraps = wrap_epoch(signing, member, status.collab, e.epoch, secret,
                               _recipients(ring, lacking, far))  # fmt: skip
            hub.put_epoch(status.collab, e.epoch, key_commitment(secret), wraps)
        except (WrapError, HubRejected) as exc:
            problems.append(f"earlier epoch {e.epoch}: {exc}")
            continue
        done.append((e.epoch, tuple(lacking)))
    return tuple(done), tuple(problems)
