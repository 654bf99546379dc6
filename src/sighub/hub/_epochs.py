"""The hub's rules for member-held collaboration keys (``sighub.client._wraps``): a
steward puts an epoch's wraps, members fetch theirs.  The hub never sees an epoch secret
of a collaboration with stewards: it checks what it can without one (who may put, which
epoch, that each wrap is addressed to a current member's current encryption key and signed
by the steward's current signing key, that a new epoch leaves no member out) and relays."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from sighub.client import _leaves
from sighub.client._hpke import SUITES
from sighub.client._model import holds_keys
from sighub.client._wraps import SECRET_SIZE, Wrap, WrapError, split_recipient, wraps_digest
from sighub.hub._errors import HubError
from sighub.hub._peering import ORIGIN_RE, Peering
from sighub.hub._store import MemberRow, Store

__all__ = ["CollabStatus", "EpochHolders", "collab_status", "put_epoch", "wraps_for"]

_COMMITMENT: Final = re.compile(r"[0-9a-f]{64}")
_MEMBER: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_TAG: Final = 16  # ChaCha20-Poly1305's tag, the AEAD of every suite


@dataclass(frozen=True, slots=True)
class EpochHolders:
    epoch: int
    steward: str  # "" for an epoch the hub made
    holders: tuple[str, ...]
    created: str


@dataclass(frozen=True, slots=True)
class CollabStatus:
    stewards: tuple[str, ...]
    members: tuple[tuple[str, str], ...]  # (member, encryption key id or "")
    epochs: tuple[EpochHolders, ...]
    earlier_epochs: int = 0


def _signing_keys(store: Store, member: str) -> dict[str, bytes]:
    return {k[0]: k[1] for k in store.member_keys(member) if k[3] is None}


def active_members(store: Store, collab: str) -> list[str]:
    """The members of ``collab`` a key epoch is wrapped to: the active ones (a suspended
    member gets no new epoch; it is wrapped the current one once resumed), but for peer
    hubs' relays (role ``peer`` alone), which relay envelopes and never match: they hold
    no encryption key, and a steward must not wait for one."""
    return [
        r[0]
        for r in store.all(
            "SELECT m.member, s.roles FROM memberships m JOIN members s ON s.name = m.member"
            " WHERE m.collab=? AND s.status='active' ORDER BY m.member",
            collab,
        )
        if holds_keys(str(r[1]).split(","))
    ]


def _missing(store: Store, collab: str, epoch: int) -> list[str]:
    """Current members of ``collab`` without a wrap of ``epoch``."""
    return [
        r[0]
        for r in store.all(
            "SELECT member FROM memberships WHERE collab=? AND member NOT IN"
            " (SELECT recipient FROM epoch_wraps WHERE collab=? AND epoch=?) ORDER BY member",
            collab,
            collab,
            epoch,
        )
    ]


def put_epoch(
    store: Store,
    m: MemberRow,
    collab: str,
    epoch: int,
    commitment: str,
    wraps: list[Wrap],
    now: str,
) -> tuple[int, int]:
    """Store a steward's wraps (a new epoch, or the current one for members without a
    wrap); returns (sequence of the epoch leaf or 0, wraps stored)."""
    stewards = store.stewards(collab)
    if m.name not in stewards:
        raise HubError.denied(
            f"collaboration {collab!r}: {m.name!r} is not a steward (stewards: {stewards})"
        )
    designated = store.one(
        "SELECT seq FROM collab_stewards WHERE collab=? AND member=? AND seq IS NOT NULL",
        collab,
        m.name,
    )
    if designated is None:
        raise HubError.precondition(
            f"collaboration {collab!r}: steward {m.name!r} was named before designations were"
            " logged, so members would refuse its epochs; the admin runs `sighub admin collab"
            f" steward {collab} {m.name}` first"
        )
    if not _COMMITMENT.fullmatch(commitment):
        raise HubError.invalid(
            f"collaboration {collab!r} epoch {epoch}: commitment {commitment[:80]!r};"
            " expected 64 lowercase hex digits (a SHA-256)"
        )
    current = store.collab_epoch(collab)
    logged = store.one(
        "SELECT commitment, steward, seq FROM collab_epochs WHERE collab=? AND epoch=?",
        collab,
        epoch,
    )
    new = logged is None
    if not new and logged[1] != m.name:  # members hold wraps to the epoch leaf's steward
        raise HubError.denied(
            f"collaboration {collab!r} epoch {epoch} was made by {logged[1]!r}; only its"
            f" steward wraps it to new members ({m.name!r} makes a new epoch instead)"
        )
    if new and epoch != (-1 if current is None else current) + 1:
        raise HubError.precondition(
            f"collaboration {collab!r}: epoch {epoch} received, expected the next epoch"
            f" {0 if current is None else current + 1}"
        )
    if not new and int(logged[2]) < int(designated[0]):
        raise HubError.precondition(
            f"collaboration {collab!r}: epoch {epoch} was made before {m.name!r}'s designation"
            " was logged, so members refuse it; make a new epoch (`sighub collab rekey"
            f" {collab} --new`)"
        )
    if not new and logged[0] != commitment:
        raise HubError.precondition(
            f"collaboration {collab!r}: wraps of epoch {epoch} with a commitment other than"
            " the logged one"
        )
    earliest = (current or 0) - store.earlier_epochs(collab)
    if not new and epoch < earliest:
        raise HubError.precondition(
            f"collaboration {collab!r}: wraps of epoch {epoch}; the collaboration's policy"
            f" wraps joiners epochs {earliest} to {current} only (admin collab policy)"
        )
    if not wraps:
        raise HubError.invalid(f"collaboration {collab!r} epoch {epoch}: no wraps")
    members = set(active_members(store, collab))
    signers = _signing_keys(store, m.name)
    crossing = _crossing(store, collab) if any(w.far for w in wraps) else []
    seen: set[str] = set()
    for w in wraps:
        _check_wrap(store, w, collab, epoch, commitment, m.name, members, signers, crossing)
        if w.recipient in seen:
            raise HubError.invalid(f"{w.what}: more than one wrap for {w.recipient!r}")
        seen.add(w.recipient)
    if new and members - seen:
        raise HubError.precondition(
            f"collaboration {collab!r} epoch {epoch}: no wrap for current members"
            f" {sorted(members - seen)}; a new epoch is wrapped to every member"
        )
    if not new:
        have = set(store.all_column(
            "SELECT recipient FROM epoch_wraps WHERE collab=? AND epoch=?", collab, epoch
        ))  # fmt: skip
        if have & seen:
            raise HubError.exists(
                f"collaboration {collab!r} epoch {epoch}: already wrapped to {sorted(have & seen)}"
            )
    with store.tx() as c:
        leaf = _leaves.steward_epoch(collab, epoch, commitment, m.name, wraps_digest(wraps))
        seq = store.append_leaf("collab.epoch", leaf, collab)
        if new:
            c.execute(
                "INSERT INTO collab_epochs (collab, epoch, commitment, steward, created, seq)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (collab, epoch, commitment, m.name, now, seq),
            )
            # the first steward epoch moves the collaboration to member-held keys: the
            # hub's own secrets go (members keep the copies they hold until expiry)
            c.execute("DELETE FROM collab_keys WHERE collab=?", (collab,))
        for w in wraps:  # copied by the relays to the recipients' hubs
            if w.far:
                store.append_leaf("collab.wrap", _leaves.collab_wrap(w.leaf_fields()), collab)
        c.executemany(
            "INSERT INTO epoch_wraps (collab, epoch, recipient, recipient_key_id, suite, sealed,"
            " steward, signing_key_id, signature, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (collab, epoch, w.recipient, w.recipient_key_id, w.suite, w.sealed, w.steward,
                 w.signing_key_id, w.signature, seq)
                for w in wraps
            ],
        )  # fmt: skip
        store.audit(now, m.name, "collab.epoch", collab, epoch=epoch, wraps=len(wraps), new=new)
    return (seq if new else 0), len(wraps)


def _check_wrap(
    store: Store,
    w: Wrap,
    collab: str,
    epoch: int,
    commitment: str,
    steward: str,
    members: set[str],
    signers: dict[str, bytes],
    crossing: list[Peering],
) -> None:
    if (w.collab, w.epoch, w.commitment, w.steward) != (collab, epoch, commitment, steward):
        raise HubError.invalid(
            f"{w.what}: names {w.collab!r} epoch {w.epoch} by {w.steward!r}; the request is"
            f" {collab!r} epoch {epoch} by {steward!r}, with one commitment"
        )
    expected = SUITES[w.suite].enc_size + SECRET_SIZE + _TAG if w.suite in SUITES else -1
    if len(w.sealed) != expected:
        raise HubError.invalid(
            f"{w.what}: sealed is {len(w.sealed)} bytes; expected {expected} for suite"
            f" {w.suite[:80]!r} (its encapsulated key, a {SECRET_SIZE}-byte secret, a tag)"
        )
    if w.far:
        _check_far(store, w, collab, crossing)
    else:
        _check_recipient(store, w, collab, members)
    public = signers.get(w.signing_key_id)
    if public is None:
        raise HubError.unauthenticated(
            f"{w.what}: signing key {w.signing_key_id} is not a current key of {steward!r}"
        )
    try:
        w.check_signature(public)
    except WrapError as exc:
        raise HubError.unauthenticated(str(exc)) from None


def _check_recipient(store: Store, w: Wrap, collab: str, members: set[str]) -> None:
    if w.recipient not in members:
        raise HubError.precondition(f"{w.what}: {w.recipient!r} is not a member of {collab!r}")
    current = store.encryption_key(w.recipient)
    if current is None or (current[0], current[1]) != (w.recipient_key_id, w.suite):
        raise HubError.precondition(
            f"{w.what}: sealed to key {w.recipient_key_id} ({w.suite}); {w.recipient!r}'s"
            f" current encryption key is {current[0] if current else 'none'}"
        )


def _crossing(store: Store, collab: str) -> list[Peering]:
    """The active peerings that map a collaboration of the peer to ``collab``."""
    return [
        p for p in store.peerings()
        if p.status == "active" and any(local == collab for _, local in p.collabs)
    ]  # fmt: skip


def _check_far(store: Store, w: Wrap, collab: str, crossing: list[Peering]) -> None:
    """A wrap to a member of another hub (``member@origin``): ``collab`` crosses an active
    peering (``crossing``), and that hub is a peer or one this hub's log holds copies of (a
    hub behind a peer).  Its member and key are that hub's to know: its members check the
    wrap against their own verified log."""
    member, origin = split_recipient(w.recipient)
    # a malformed origin is the request's fault, not a peering this hub lacks
    if not _MEMBER.fullmatch(member) or not ORIGIN_RE.fullmatch(origin):
        raise HubError.invalid(
            f"{w.what}: recipient {w.recipient[:80]!r}; expected member@sighub/<hub name>"
        )
    direct = store.live_peering_by_origin(origin)
    peer = store.peering(direct) if direct is not None else None
    if peer is not None and peer.status != "active":
        raise HubError.precondition(
            f"{w.what}: the peering with {origin[:80]!r} is {peer.status}; nothing is wrapped"
            " across it until it is resumed"
        )
    if not crossing:
        raise HubError.precondition(
            f"{w.what}: {collab!r} crosses no active peering; wraps go to members of the"
            " hubs a collaboration crosses to"
        )
    known = origin in {p.origin for p in crossing} or store.one(
        "SELECT 1 FROM relayed_leaves WHERE key >= ? AND key < ? LIMIT 1",
        f"leaf {origin} ",
        f"leaf {origin}!",
    )
    if not known:
        raise HubError.precondition(
            f"{w.what}: {origin[:80]!r} is neither a peer this collaboration crosses to nor a"
            " hub whose leaves this log copied"
        )


def _rows_to_wraps(rows: list[Any]) -> list[Wrap]:
    return [
        Wrap(r[0], int(r[1]), r[2], r[3], r[4], r[5], bytes(r[6]), r[7], r[8], bytes(r[9]))
        for r in rows
    ]


def missing_for(store: Store, member: str, collab: str) -> tuple[int, list[str]] | None:
    """(current epoch or -1, stewards) when ``collab`` has stewards and its current epoch
    has no wrap for ``member``; None otherwise."""
    stewards = store.stewards(collab)
    if not stewards:
        return None
    epoch = store.collab_epoch(collab)
    if epoch is not None and member not in _missing(store, collab, epoch):
        return None
    return (-1 if epoch is None else epoch), stewards


def refusal(collab: str, member: str, epoch: int, stewards: list[str]) -> HubError:
    which = "has no key epoch yet" if epoch < 0 else f"epoch {epoch} has no wrap for {member!r}"
    return HubError.precondition(
        f"collaboration {collab!r}: {which}; steward {' or '.join(stewards)} runs"
        f" `sighub collab rekey {collab}`"
    )


def wraps_for(
    store: Store, m: MemberRow, collab: str = ""
) -> tuple[list[Wrap], list[tuple[str, int, list[str]]]]:
    """The wraps addressed to ``m`` (of ``collab``, or of all its collaborations) and its
    collaborations whose current epoch lacks one (refused outright for ``collab``)."""
    collabs = store.member_collabs(m.name)
    if collab:
        if collab not in collabs:
            raise HubError.denied(f"member {m.name!r} is not in collaboration {collab!r}")
        collabs = [collab]
    missing = []
    for name in collabs:
        gap = missing_for(store, m.name, name)
        if gap is not None:
            if collab:
                raise refusal(name, m.name, *gap)
            missing.append((name, *gap))
    if not collabs:
        return [], missing
    marks = ",".join("?" * len(collabs))
    rows = store.all(
        f"SELECT w.collab, w.epoch, e.commitment, w.recipient, w.recipient_key_id, w.suite,"
        f" w.sealed, w.steward, w.signing_key_id, w.signature FROM epoch_wraps w JOIN"
        f" collab_epochs e ON e.collab = w.collab AND e.epoch = w.epoch WHERE w.recipient = ?"
        f" AND w.collab IN ({marks}) ORDER BY w.collab, w.epoch",
        m.name,
        *collabs,
    )
    return _rows_to_wraps(rows), missing


def collab_status(store: Store, m: MemberRow, collab: str) -> CollabStatus:
    if collab not in store.member_collabs(m.name):
        raise HubError.denied(f"member {m.name!r} is not in collaboration {collab!r}")
    members = tuple(
        (name, (store.encryption_key(name) or ("",))[0]) for name in active_members(store, collab)
    )
    epochs = [
        EpochHolders(int(e), "", (), str(t))
        for e, t in store.all(
            "SELECT epoch, created FROM collab_keys WHERE collab=? ORDER BY epoch", collab
        )
    ]
    for e, steward, t in store.all(
        "SELECT epoch, steward, created FROM collab_epochs WHERE collab=? ORDER BY epoch", collab
    ):
        holders = store.all_column(
            "SELECT recipient FROM epoch_wraps WHERE collab=? AND epoch=? ORDER BY recipient",
            collab,
            e,
        )
        epochs.append(EpochHolders(int(e), str(steward), tuple(holders), str(t)))
    return CollabStatus(
        tuple(store.stewards(collab)), members, tuple(epochs), store.earlier_epochs(collab)
    )
