"""The peerings of this member's hub as its verified log shows them (docs/federation.md).

A member verifies an envelope relayed from a peer hub by the log key the admin pinned for
that peer (each hop record, ``_hops.verify_hops``) and accepts the origin's name for the
collaboration where the peering maps it to the local one.  Both come from the ``peer.add``
leaf, whose statement the member rebuilds and checks against the admin key its credential
pins (``_grant.check_peering``): a hub alone cannot make a peer its members trust.  A member
enrolled before key chains (no admin key) takes the log's word, as ``_stewardlog`` does.

The log holds only what an honest hub writes: a name is added once (removal is final and
the name stays taken), one live peering per peer hub, never a peering with itself, and
status changes active <-> suspended and active/suspended -> removed.  A leaf that
contradicts this is the hub lying: ``LogAlarm``, raised before anything changes.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Final

from sighub.client._grant import KeyChainError, check_peering, peering_statement
from sighub.client._keyring import forged
from sighub.client._logcheck import AlarmKind, LogAlarm
from sighub.client._model import TLP_CEILINGS, Tlp

__all__ = ["LoggedPeer", "PeerDirection", "PeerLog", "PeerStatus"]

# As the hub checks them (hub/_peering.py), which a client may not import.
_NAME_RE: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_ORIGIN_RE: Final = re.compile(r"sighub/[^\s+\x00-\x1f\x7f]{1,200}")
_ADDRESS_RE: Final = re.compile(r"[^\s\x00-\x1f\x7f]{1,255}:[0-9]{1,5}")
MAX_HOPS: Final = 16
MAX_MAPPINGS: Final = 16


class PeerStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    REMOVED = "removed"


class PeerDirection(StrEnum):
    """``pull``: this hub follows the peer; ``push``: it sends to the peer; ``both``."""

    PULL = "pull"
    PUSH = "push"
    BOTH = "both"


# The status changes the hub makes (hub/_peers.PeerBook): removal is final.
_TRANSITIONS: Final = frozenset(
    {
        (PeerStatus.ACTIVE, PeerStatus.SUSPENDED),
        (PeerStatus.SUSPENDED, PeerStatus.ACTIVE),
        (PeerStatus.ACTIVE, PeerStatus.REMOVED),
        (PeerStatus.SUSPENDED, PeerStatus.REMOVED),
    }
)


@dataclass(frozen=True, slots=True)
class LoggedPeer:
    """A peering as the verified log shows it: ``collabs`` maps the peer's collaboration
    names to this hub's, sorted; ``seq`` is the sequence of its ``peer.add`` leaf,
    ``status_seq`` that of its latest ``peer.status`` leaf (0: none yet)."""

    name: str
    origin: str
    log_key: bytes
    address: str
    collabs: tuple[tuple[str, str], ...]
    direction: PeerDirection
    max_hops: int
    tlp_ceiling: Tlp
    status: PeerStatus
    seq: int
    status_seq: int = 0

    @property
    def live(self) -> bool:
        return self.status is not PeerStatus.REMOVED

    def in_force_at(self, sequence: int) -> bool:
        """Whether the peering was logged before ``sequence`` and not removed before it
        (what the hub could relay under at that point of its log)."""
        removed_before = self.status is PeerStatus.REMOVED and self.status_seq < sequence
        return self.seq < sequence and not removed_before

    def local_collab(self, remote: str) -> str | None:
        """This hub's collaboration for the peer's ``remote`` one; None: it does not cross."""
        return next((ours for theirs, ours in self.collabs if theirs == remote), None)

    def remote_collab(self, local: str) -> str | None:
        """The peer's collaboration mapped to this hub's ``local`` one, if any."""
        return next((theirs for theirs, ours in self.collabs if ours == local), None)

    def row(self) -> tuple[Any, ...]:
        """The ``log_peers`` row (``LocalStore.put_log_peers``)."""
        return (
            self.name, self.origin, self.log_key, self.address,
            json.dumps([f"{r}={x}" for r, x in self.collabs]), self.direction.value,
            self.max_hops, self.tlp_ceiling.value, self.status.value, self.seq, self.status_seq,
        )  # fmt: skip

    @classmethod
    def from_row(cls, row: Iterable[Any]) -> LoggedPeer:
        """A record from its ``log_peers`` row (written by ``row`` from a verified leaf)."""
        name, origin, key, address, collabs, direction, hops, ceiling, status, seq, at = row
        pairs = tuple((r, x) for r, _, x in (str(m).partition("=") for m in json.loads(collabs)))
        return cls(
            str(name), str(origin), bytes(key), str(address), pairs, PeerDirection(direction),
            int(hops), Tlp(ceiling), PeerStatus(status), int(seq), int(at),
        )  # fmt: skip


def _alarm(kind: AlarmKind, detail: str, seq: int, leaf: Mapping[str, Any]) -> LogAlarm:
    return LogAlarm(
        kind,
        f"sequence {seq}: {detail}",
        {"sequence": seq, "peer": str(leaf.get("peer")), "leaf": dict(leaf)},
    )


def _malformed(
    name: str, field: str, received: object, expected: str, seq: int, leaf: Mapping[str, Any]
) -> LogAlarm:
    shown = repr(received)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return _alarm(
        AlarmKind.MALFORMED,
        f"peer.add of peering {name!r}: {field} is {shown}; expected {expected}",
        seq,
        leaf,
    )


def _mapping(name: str, text: str, seq: int, leaf: Mapping[str, Any]) -> tuple[str, str]:
    remote, sep, local = text.partition("=")
    if not sep or not _NAME_RE.fullmatch(remote) or not _NAME_RE.fullmatch(local):
        raise _malformed(name, "a collaboration mapping", text, "remote=local names", seq, leaf)
    return remote, local


def _record(seq: int, leaf: Mapping[str, Any]) -> tuple[LoggedPeer, bytes]:
    """The peering a ``peer.add`` leaf records and its signature, every field checked as
    the hub checks it before logging (a MALFORMED alarm names the first that fails)."""
    name = str(leaf["peer"])
    if not _NAME_RE.fullmatch(name):
        raise _malformed(name, "peer", name, "a name of [a-z0-9-], 1-63 characters", seq, leaf)
    origin, address = str(leaf["origin"]), str(leaf["address"])
    if not _ORIGIN_RE.fullmatch(origin):
        raise _malformed(name, "origin", origin, "a log origin 'sighub/<hub name>'", seq, leaf)
    if not _ADDRESS_RE.fullmatch(address):
        raise _malformed(name, "address", address, "HOST:PORT", seq, leaf)
    try:
        key = base64.b64decode(str(leaf["log_key"]), validate=True)
        signature = base64.b64decode(str(leaf["signature"]), validate=True)
    except (binascii.Error, ValueError):
        raise _malformed(name, "log_key or signature", "not base64", "base64", seq, leaf) from None
    if len(key) != 32:
        raise _malformed(name, "log_key", f"{len(key)} bytes", "a 32-byte Ed25519 key", seq, leaf)
    collabs = leaf["collabs"]
    pairs = tuple(_mapping(name, str(m), seq, leaf) for m in collabs)
    if not 1 <= len(pairs) <= MAX_MAPPINGS or list(collabs) != sorted(collabs):
        raise _malformed(
            name, "collabs", collabs, f"1-{MAX_MAPPINGS} sorted remote=local mappings", seq, leaf
        )
    for side in (0, 1):
        names = [p[side] for p in pairs]
        if len(set(names)) != len(names):
            raise _malformed(name, "collabs", collabs, "each collaboration mapped once", seq, leaf)
    if leaf["direction"] not in tuple(PeerDirection):
        expected = f"one of {[d.value for d in PeerDirection]}"
        raise _malformed(name, "direction", leaf["direction"], expected, seq, leaf)
    hops = leaf["max_hops"]
    if type(hops) is not int or not 1 <= hops <= MAX_HOPS:
        raise _malformed(name, "max_hops", hops, f"an integer 1-{MAX_HOPS}", seq, leaf)
    if leaf["tlp_ceiling"] not in TLP_CEILINGS:
        expected = f"one of {[t.value for t in TLP_CEILINGS]} (red never crosses)"
        raise _malformed(name, "tlp_ceiling", leaf["tlp_ceiling"], expected, seq, leaf)
    record = LoggedPeer(
        name, origin, key, address, pairs,
        PeerDirection(leaf["direction"]), hops, Tlp(leaf["tlp_ceiling"]), PeerStatus.ACTIVE,
        seq,
    )  # fmt: skip
    return record, signature


class PeerLog:
    """The peerings up to some sequence of the log of ``origin``; ``apply`` each peering
    leaf in log order, ``changed`` lists the records to store, ``saved`` after storing."""

    def __init__(
        self, origin: str, admin_public: bytes | None, peers: Iterable[LoggedPeer] = ()
    ) -> None:
        self.origin, self.admin_public = origin, admin_public
        self._peers: dict[str, LoggedPeer] = {p.name: p for p in peers}
        self._changed: set[str] = set()

    # -- reading ----------------------------------------------------------------------
    def peer(self, name: str) -> LoggedPeer | None:
        return self._peers.get(name)

    def peers(self) -> list[LoggedPeer]:
        """Every peering ever logged, removed ones too, in log order."""
        return sorted(self._peers.values(), key=lambda p: p.seq)

    def live(self) -> list[LoggedPeer]:
        """The peerings not removed (active or suspended), in log order."""
        return [p for p in self.peers() if p.live]

    def by_origin(self, origin: str) -> LoggedPeer | None:
        """The peering with the hub of log ``origin``: the live one, else the latest."""
        found = [p for p in self.peers() if p.origin == origin]
        live = [p for p in found if p.live]
        return (live or found)[-1] if found else None

    def log_keys(self) -> dict[str, bytes]:
        """origin -> the log key its peering pins, for every peer hub ever logged: an
        envelope relayed before a removal stays verifiable.  Where one hub was peered more
        than once, the key of ``by_origin``'s record."""
        out: dict[str, bytes] = {}
        for origin in {p.origin for p in self._peers.values()}:
            record = self.by_origin(origin)
            if record is not None:
                out[origin] = record.log_key
        return out

    def remote_for(self, local_collab: str, origin: str, at: int | None = None) -> str | None:
        """The peer hub ``origin``'s name for this hub's ``local_collab``, as a peering with
        it maps them: the live peering's first, then earlier ones, latest first (envelopes
        relayed under a peering since removed stay verifiable).  With ``at``, only the
        peerings in force at that sequence count.  None: no peering maps it."""
        found = [p for p in self.peers() if p.origin == origin]
        if at is not None:
            found = [p for p in found if p.in_force_at(at)]
        for record in sorted(found, key=lambda p: (p.live, p.seq), reverse=True):
            remote = record.remote_collab(local_collab)
            if remote is not None:
                return remote
        return None

    def mapped_locals(self) -> set[str]:
        """This hub's collaborations that a live peering maps."""
        return {local for p in self.live() for _, local in p.collabs}

    def local_for(self, remote: str, origin: str) -> str | None:
        """This hub's collaboration that the live peering with the hub ``origin`` maps
        that hub's ``remote`` one to; None: none does (a collaboration's keys cross only
        a peering in force)."""
        record = self.by_origin(origin)
        return record.local_collab(remote) if record is not None and record.live else None

    def is_active(self, origin: str) -> bool:
        """Whether the peering with the hub ``origin`` is active: a suspended one carries no
        new key epoch (its hub refuses wraps to that hub's members, ``_epochs._check_far``)."""
        record = self.by_origin(origin)
        return record is not None and record.status is PeerStatus.ACTIVE

    def policy_for(self, origin: str, at: int | None = None) -> tuple[int, Tlp] | None:
        """(max_hops, tlp_ceiling) of the peering with the hub ``origin`` (in force at
        ``at``, if given; the live one first, then the latest), as the admin signed it."""
        found = [p for p in self.peers() if p.origin == origin]
        if at is not None:
            found = [p for p in found if p.in_force_at(at)]
        if not found:
            return None
        record = max(found, key=lambda p: (p.live, p.seq))
        return record.max_hops, record.tlp_ceiling

    # -- applying ---------------------------------------------------------------------
    def apply(self, seq: int, leaf: Mapping[str, Any]) -> None:
        """Take one ``peer.add`` or ``peer.status`` leaf (``parse_leaf``'s fields) at
        sequence ``seq``; other types are not this log's.  Raises ``LogAlarm`` and changes
        nothing for a leaf an honest hub never writes."""
        kind = leaf.get("type")
        if kind == "peer.add":
            self._add(seq, leaf)
        elif kind == "peer.status":
            self._status(seq, leaf)

    def _add(self, seq: int, leaf: Mapping[str, Any]) -> None:
        record, signature = _record(seq, leaf)
        name = record.name
        if self.admin_public is not None:
            statement = peering_statement(
                name, record.origin, record.log_key, record.address, record.collabs,
                record.direction.value, record.max_hops, record.tlp_ceiling.value,
            )  # fmt: skip
            try:
                check_peering(self.admin_public, statement, signature, name)
            except KeyChainError as exc:
                raise forged(
                    f"peer.add of peering {name!r}: {exc} under the admin key this member"
                    " pins; a hub alone cannot make a peer",
                    seq,
                    leaf,
                ) from None
        old = self._peers.get(name)
        if old is not None:
            raise _alarm(
                AlarmKind.PEERING,
                f"peer.add of peering {name!r} again; the log added it at sequence {old.seq}"
                f" (now {old.status.value}), and a hub adds a name once (removal is final)",
                seq,
                leaf,
            )
        if self.origin and record.origin == self.origin:
            raise _alarm(
                AlarmKind.PEERING,
                f"peer.add of peering {name!r} with origin {record.origin!r}, this hub's own"
                " log; a hub never peers with itself",
                seq,
                leaf,
            )
        other = next((p for p in self._peers.values() if p.live and p.origin == record.origin),
                     None)  # fmt: skip
        if other is not None:
            raise _alarm(
                AlarmKind.PEERING,
                f"peer.add of peering {name!r} with {record.origin!r}, already peered as"
                f" {other.name!r} (sequence {other.seq}, {other.status.value}); expected at"
                " most one live peering per peer hub",
                seq,
                leaf,
            )
        self._peers[name] = record
        self._changed.add(name)

    def _status(self, seq: int, leaf: Mapping[str, Any]) -> None:
        name, text = str(leaf["peer"]), leaf["status"]
        if text not in tuple(PeerStatus):
            raise _alarm(
                AlarmKind.MALFORMED,
                f"peer.status of peering {name!r} is {str(text)[:40]!r}; expected one of"
                f" {[s.value for s in PeerStatus]}",
                seq,
                leaf,
            )
        status = PeerStatus(text)
        old = self._peers.get(name)
        if old is None:
            raise _alarm(
                AlarmKind.PEERING,
                f"peer.status {status.value!r} of peering {name!r}, which the log never added"
                " (expected its peer.add before it)",
                seq,
                leaf,
            )
        if (old.status, status) not in _TRANSITIONS:
            raise _alarm(
                AlarmKind.PEERING,
                f"peer.status of peering {name!r} from {old.status.value} (sequence"
                f" {old.status_seq or old.seq}) to {status.value}; a hub makes only"
                " active->suspended, suspended->active and active/suspended->removed",
                seq,
                leaf,
            )
        self._peers[name] = replace(old, status=status, status_seq=seq)
        self._changed.add(name)

    # -- storing ----------------------------------------------------------------------
    def changed(self) -> list[tuple[Any, ...]]:
        """The ``log_peers`` rows of the records changed since ``saved``."""
        return [self._peers[n].row() for n in sorted(self._changed)]

    def saved(self) -> None:
        self._changed.clear()
