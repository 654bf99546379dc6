"""The relay (federation step 2, ``docs/federation.md``): inside ``sighub hub serve``, one
thread per peering this hub follows (direction ``pull`` or ``both``), and a dialer
(``_tunnel``) per peering it pushes to (``push`` or ``both``), which carries the peer's relay
to this hub.  A relay of a dial-in peering reaches its peer through the tunnel the peer
opened, and enrolls through it the first time.

Each relay is a member of its peer with role ``peer`` and follows the peer's log exactly as
a member daemon does (``SyncDaemon`` over ``DATA/peers/NAME``: every batch verified against
the peer's signed checkpoints and its key ring, the cursor committed after what the batch
delivered).  For each change it decides, in this order, and counts every outcome:

on the relay's thread (nothing of this hub read): the collaboration is mapped; the hop
records decode and verify (``_hops.verify_hops``, log keys as this peering and the peer's
verified log pin them); this hub is neither the origin nor a hop (a cycle); one more hop
stays within ``max_hops``; the publisher's signature verifies under the peer's verified key
ring (for an envelope the peer itself relayed, its verified hop chain vouches instead); every
indicator is at or below the TLP ceiling; the envelope fits this hub's publish limits;

on the hub's writer, in one transaction per batch: the envelope id is not in this hub's log
yet (a diamond or a re-delivery); the publisher's identity is bound to the envelope's origin
hub (a member's identity here, or one first relayed from another hub, is refused); the
versions follow what this hub holds (the creator alone revises, never a revoked one, always
later).  What passes is appended verbatim, under the local collaboration name, with the hops
it arrived with and this hub's own hop record, signed by this hub's log key.

A crash between this hub's commit and the relay's cursor commit re-delivers the batch: the
envelope id makes it a no-op (counted as ``duplicate``)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from sighub.client._daemon import SyncDaemon, SyncReport
from sighub.client._enroll import enroll
from sighub.client._envelope import signing_key_id
from sighub.client._errors import IntegrityAlarm, SighubError
from sighub.client._farlog import FarLog, check_relayed
from sighub.client._hops import HopError, decode_hops, encode_hops, origin_of, sign_hop
from sighub.client._leaves import (
    COLLAB_COPIED_TYPES,
    COPIED_TYPES,
    FAR_TYPES,
    envelope_leaf,
    parse_leaf,
    peer_checkpoint,
    peer_leaf,
)
from sighub.client._logcheck import AlarmKind, LogAlarm
from sighub.client._merkle import ProofError, leaf_hash, verify_consistency, verify_inclusion
from sighub.client._model import Tlp
from sighub.client._rpc import Change, HubClient, HubRejected, SyncBatch, open_channel
from sighub.client._rules import count_problem, envelope_problem
from sighub.client._stix import format_time
from sighub.client._verify import Checked, Row
from sighub.client._wraps import far_recipient
from sighub.hub._peering import Direction, Peering
from sighub.hub._peers import ENROLLMENT_FILE
from sighub.hub._tunnel import Dialer, DialerState, TunnelEnd

if TYPE_CHECKING:
    from sighub.hub._hub import Hub
    from sighub.hub._service import Services
    from sighub.hub._store import Store

__all__ = ["Outcome", "RelayDaemon", "RelayManager", "RelayState", "commit", "prepare"]

log = logging.getLogger("sighub.relay")
RETRY_AFTER_ERROR: Final = 30.0  # seconds before a relay stopped by an error starts again
JOIN_SECONDS: Final = 10.0
NO_TUNNEL_PLAINTEXT: Final = (
    "this hub serves plaintext (--insecure): the peer's relay reaches it over mTLS only, so"
    " nothing is pushed"
)
ACKNOWLEDGE: Final = (
    "the relay stays stopped: look at the evidence in DATA/peers/NAME/local.db (log_alarms),"
    " then `sighub admin peer suspend NAME` and `peer resume NAME` to acknowledge it"
)
DIAL_IN_WAIT: Final = 1.0  # seconds between looks for a dial-in peer's control stream
# a peer steward's key epoch as this hub records it: (local collab, epoch, commitment,
# steward as member@origin)
FarEpoch = tuple[str, int, str, str]
_ID, _PUBLISHER, _KIND, _TLP, _VALID_UNTIL, _MODIFIED, _REVOKED = 0, 2, 4, 11, 13, 14, 15


class Outcome(StrEnum):
    """What the relay did with one change of its peer's log."""

    RELAYED = "relayed"
    COPIED = "copied"  # a directory or peering leaf of another hub's log (``_farlog``)
    DUPLICATE_COPY = "duplicate-copy"
    DUPLICATE = "duplicate"  # already in this hub's log: a diamond, or a re-delivery
    UNMAPPED = "unmapped"  # a collaboration the peering does not map
    CYCLE = "cycle"  # this hub is its origin or one of its hops
    HOP_LIMIT = "hop-limit"
    TLP = "tlp-ceiling"  # an indicator above the peering's TLP ceiling
    LIMITS = "limits"  # over this hub's publish limits
    REFUSED = "refused"  # does not verify: signature, hop records, form
    IDENTITY = "identity"  # its publisher's identity is bound to another hub
    CONFLICT = "conflict"  # revises another publisher's indicator
    STALE = "stale"  # a version older than one this hub holds (a diamond's slower path)
    REPLAYED = "replayed"  # the peer served an envelope again at another sequence


# Outcomes that are evidence of a peer (or a hub behind it) misbehaving, or of a conflict
# an operator should look at: logged as errors and kept in the relay's ``refused`` table.
SERIOUS: Final = frozenset({Outcome.REFUSED, Outcome.IDENTITY, Outcome.CONFLICT, Outcome.REPLAYED})


@dataclass(frozen=True, slots=True)
class Prepared:
    """A change that passed the relay thread's checks, with this hub's hop record."""

    sequence: int  # in the peer's log
    envelope_id: str
    raw: bytes
    collab: str  # the local collaboration
    identity: str  # the publisher's STIX identity
    origin: str  # the origin hub's log origin
    key_id: str
    hops: str  # JCS of every hop, this hub's last
    rows: list[tuple[str, str, str, str, str, int]]  # the hub's indicator rows

    @property
    def publisher(self) -> str:
        """The publisher as this hub records it: an identity qualified by its origin hub,
        which no member name (``[a-z0-9-]``) can equal."""
        return f"{self.identity}@{self.origin}"


@dataclass(frozen=True, slots=True)
class Copy:
    """A leaf of another hub's log to copy into this one (``peer.leaf``/``peer.checkpoint``)."""

    sequence: int  # in the peer's log: copies go in that order, among the envelopes
    kind: str
    leaf: bytes
    key: str  # what makes it the same copy when it comes again
    # a key epoch of a mapped collaboration, which this hub records for a collaboration
    # whose keys come from a peer
    epoch: FarEpoch | None = None


def _copy_key(doc: dict[str, Any]) -> str:
    """What makes two copies the same: an origin's leaf by its sequence there, a checkpoint
    by its note as copied (text: a copy this hub cannot check is still named, not read)."""
    if doc["type"] == "peer.leaf":
        return f"leaf {doc['origin']} {doc['seq']}"
    digest = hashlib.sha256(str(doc["note"]).encode()).hexdigest()
    return f"checkpoint {doc['origin']} {digest}"


@dataclass(frozen=True, slots=True)
class Skipped:
    sequence: int
    envelope_id: str
    collab: str  # as the peer names it
    outcome: Outcome
    reason: str


@dataclass
class RelayState:
    """What ``sighub admin peer status`` shows of one relay."""

    peer: str
    state: str = "stopped"  # starting, waiting, following, retrying, alarm, stopped
    cursor: int = 0  # the peer's log sequence relayed up to
    head: int = 0  # the peer's log size as last seen
    last_batch: str = ""  # RFC 3339 time of the last batch committed
    error: str = ""  # why it stopped or retries, if it did
    push: str = ""  # push or both: the dialer's state
    push_connections: int = 0

    @property
    def lag(self) -> int:
        return max(0, self.head - self.cursor)


class _Context:
    """What the relay thread's checks read: the peering, this hub's origin and log signer,
    its publish limits."""

    def __init__(self, hub: Hub, peering: Peering) -> None:
        signer = hub.log_signer
        if signer is None:
            raise RuntimeError("relay: the hub has no log signer")
        self.peering, self.signer, self.hub = peering, signer, hub
        self.here = signer.name

    def received(self) -> str:
        return self.hub.now()


class RelayDaemon(SyncDaemon):
    """A ``SyncDaemon`` over ``DATA/peers/NAME`` whose verified changes go to this hub's
    log (``commit``) instead of a member's local store.  It holds no blinding keys: a relay
    never matches, so it fetches no wraps and does no steward duties."""

    def __init__(self, data: Path, context: _Context, services: Services, state: RelayState,
                 loop: asyncio.AbstractEventLoop, via: str | None = None) -> None:  # fmt: skip
        super().__init__(data)
        self.context, self.services, self.state, self.loop = context, services, state, loop
        self.via = via  # a dial-in peer's tunnel socket

    def connect(self) -> HubClient:
        if self.via is None:
            return super().connect()
        return HubClient(open_channel(self.cred, via=self.via), self.cred.hub)

    # A relay reads signing keys from the peer's verified log, never its directory, and
    # needs no blinding key: nothing of the directory is fetched.
    def refresh_directory(self, hub: HubClient) -> None:
        self._keys = None

    def unwrap(self, hub: HubClient) -> list[str]:
        return []

    def steward_duties(self, hub: HubClient) -> list[Any]:
        return []

    def _known_keys(self, batch: Any, checked: list[Checked], hub: HubClient) -> list[Checked]:
        return checked

    def _explained(self, exc: HubRejected) -> SighubError:
        # follow() retries a peer gone away with backoff, saying so only in the log: shown
        # here too, or `admin peer status` could not tell an unreachable peer from an idle one.
        final = super()._explained(exc)
        self.state.state, self.state.error = "retrying", str(final)[:500]
        return final

    def _apply_next(self, reader: Any, report: SyncReport, hub: HubClient) -> bool:
        self._peer = hub  # for the inclusion proofs of the leaves a batch copies
        return super()._apply_next(reader, report, hub)

    def _write(
        self,
        c: sqlite3.Connection,
        batch: SyncBatch,
        checked: list[Checked],
        now: str,
        report: SyncReport,
        applied: list[Row] | None,
    ) -> None:
        self._relay(c, batch.changes, checked, self._copies(batch), now, report)
        report.batches += 1

    def _write_changes(
        self,
        c: sqlite3.Connection,
        changes: Sequence[Change],
        checked: list[Checked],
        now: str,
        report: SyncReport,
        applied: list[Row] | None,
    ) -> None:
        """History pages (a collaboration joined after the cursor passed it): changes only."""
        self._relay(c, changes, checked, [], now, report)

    def _path(self, change: Change) -> list[bytes]:
        """The inclusion path of ``change``'s leaf in the peer's tree of the batch's
        checkpoint, as the peer gives it, checked here (the hop record carries it on)."""
        guard = self._guard
        assert guard is not None and guard.state is not None and guard.state.checkpoint
        cp = guard.state.checkpoint
        leaf = envelope_leaf(change.collaboration, change.envelope, change.n, change.hop_records)
        return self._included(change.sequence, leaf, cp, "envelope")

    def _included(self, sequence: int, leaf: bytes, cp: Any, what: str) -> list[bytes]:
        """The peer's inclusion path of ``leaf`` at ``sequence`` in its checkpoint ``cp``,
        checked here; a path that does not verify is an alarm (its own signed tree
        contradicts it: evidence, kept)."""
        path = self._peer.inclusion_proof(sequence - 1, cp.size)
        try:
            verify_inclusion(sequence - 1, cp.size, leaf_hash(leaf), path, cp.root)
        except ProofError as exc:
            raise LogAlarm(
                AlarmKind.BAD_PROOF,
                f"{self.context.peering.origin}: the inclusion path it gave for the {what}"
                f" at sequence {sequence} does not verify in its checkpoint of"
                f" {cp.size} leaves ({exc})",
                {"sequence": sequence, "size": cp.size, "path": [h.hex() for h in path]},
            ) from None
        return path

    def _copies(self, batch: SyncBatch) -> list[Copy]:
        """The leaves of ``batch`` this hub copies into its log (see ``_farlog``): the
        peer's own directory and peering leaves, each with its inclusion proof in the
        batch's checkpoint (asked of the peer, checked here), after that checkpoint; and
        the copies the peer's log holds of hubs behind it that the guard verified, verbatim."""
        guard, peer = self._guard, self.context.peering.origin
        assert guard is not None and guard.state is not None and guard.state.checkpoint
        cp = guard.state.checkpoint
        own: list[Copy] = []
        far: list[Copy] = []
        # A copy the guard did not take (an origin whose key the peer's log does not give)
        # was checked by no one: members who know that origin's key would alarm on it.
        verified = guard.far.taken()
        for x in batch.leaves:
            if x.leaf is None:
                continue
            doc = parse_leaf(x.leaf)  # the guard parsed it already: it cannot fail here
            kind = doc["type"]
            # a collaboration's leaf is copied where the peering maps it: its local name
            local = (
                self.context.peering.local_collab(str(doc["collab"]))
                if kind in COLLAB_COPIED_TYPES
                else None
            )
            if kind in COPIED_TYPES or local is not None:
                path = self._included(x.sequence, x.leaf, cp, f"{kind} leaf")
                leaf = peer_leaf(peer, x.sequence, x.leaf, cp.size, path)
                epoch = _far_epoch(doc, local, peer) if kind == "collab.epoch" else None
                key = f"leaf {peer} {x.sequence}"
                own.append(Copy(x.sequence, "peer.leaf", leaf, key, epoch))
            elif (
                kind in FAR_TYPES and x.sequence in verified and doc["origin"] != self.context.here
            ):
                epoch = self._behind_epoch(doc) if kind == "peer.leaf" else None
                far.append(Copy(x.sequence, kind, x.leaf, _copy_key(doc), epoch))
        if own:
            key = f"checkpoint {peer} {cp.size}"
            note = peer_checkpoint(peer, cp.note, *self._extends(cp))
            own.insert(0, Copy(own[0].sequence, "peer.checkpoint", note, key))
        return sorted(own + far, key=lambda x: x.sequence)

    def _extends(self, cp: Any) -> tuple[int, list[bytes]]:
        """(the size of the peer's checkpoint this relay copied before, the proof that
        ``cp`` extends it), checked here; (0, []) for the first.  Remembered in the relay's
        own transaction, with the cursor."""
        before = (self.store.meta("copied_checkpoint") or "").split()
        self.store.set_meta("copied_checkpoint", f"{cp.size} {cp.root.hex()}")
        if len(before) != 2 or int(before[0]) >= cp.size:
            return 0, []
        size, old = int(before[0]), bytes.fromhex(before[1])
        proof = self._peer.consistency_proof(size, cp.size)
        try:
            verify_consistency(size, cp.size, old, cp.root, proof)
        except ProofError as exc:
            raise LogAlarm(
                AlarmKind.BAD_PROOF,
                f"{self.context.peering.origin}: its consistency proof from the tree of"
                f" {size} leaves this relay copied to its tree of {cp.size} fails ({exc})",
                {"first": size, "second": cp.size, "proof": [h.hex() for h in proof]},
            ) from None
        return size, proof

    def _behind_epoch(self, doc: dict[str, Any]) -> FarEpoch | None:
        """A steward's epoch leaf of a hub behind the peer, copied by the peer: recorded
        here for the collaboration this hub maps the peer's name of it to (the peer's name
        through the peer's own peerings, as its verified log gives them)."""
        guard = self._guard
        if guard is None:
            return None
        inner = parse_leaf(base64.b64decode(doc["leaf"]))  # verified by the guard
        if inner["type"] != "collab.epoch":
            return None
        origin = str(doc["origin"])
        at_peer = guard.far.local_name(str(inner["collab"]), origin)
        local = self.context.peering.local_collab(at_peer) if at_peer is not None else None
        return _far_epoch(inner, local, origin)

    def _relay(
        self,
        c: sqlite3.Connection,
        changes: Sequence[Change],
        checked: list[Checked],
        copies: list[Copy],
        now: str,
        report: SyncReport,
    ) -> None:
        """Inside the relay's local transaction (rolled back, cursor and all, if this hub's
        commit fails): check each change, commit those that pass and the copies to this
        hub in the peer's log order, count and record every outcome."""
        guard = self._guard
        assert guard is not None and guard.state is not None and guard.state.checkpoint
        note = guard.state.checkpoint.note
        entries: list[Copy | Prepared] = list(copies)
        skipped: list[Skipped] = []
        for change, result in zip(changes, checked, strict=True):
            got = prepare(self.context, guard.far, note, self._path, change, result)
            if isinstance(got, Prepared):
                entries.append(got)
            else:
                skipped.append(got)
        entries.sort(key=lambda e: e.sequence)  # stable: a checkpoint stays before its leaves
        counts = Counter(s.outcome.value for s in skipped)
        done = self._commit(entries, counts)
        for item, (outcome, reason) in zip(entries, done, strict=True):
            if isinstance(item, Prepared) and outcome not in (Outcome.RELAYED, Outcome.COPIED):
                skipped.append(
                    Skipped(item.sequence, item.envelope_id, item.collab, outcome, reason)
                )
        for s in skipped:
            self._note(c, s, now, report)
        report.envelopes += len(changes)

    def _commit(
        self, ready: list[Copy | Prepared], counts: Counter[str]
    ) -> list[tuple[Outcome, str]]:
        """Commit ``ready`` on this hub's writer (one transaction, the relay's bulk lane),
        with the counts of what was skipped; then wake this hub's followers."""
        peer, services = self.context.peering.name, self.services

        def job() -> tuple[list[tuple[Outcome, str]], tuple[int, bytes] | None]:
            return commit(services.hub, peer, ready, counts, services.sign_after_commit)

        future: Future[tuple[list[tuple[Outcome, str]], tuple[int, bytes] | None]]
        future = services.writer.submit(job, f" relay {peer}")
        done, issued = future.result()
        if any(o in (Outcome.RELAYED, Outcome.COPIED) for o, _ in done):
            if issued is not None:
                asyncio.run_coroutine_threadsafe(services.signed(issued), self.loop)
            else:
                self.loop.call_soon_threadsafe(services.committed)
        return done

    def _note(self, c: sqlite3.Connection, s: Skipped, now: str, report: SyncReport) -> None:
        peer = self.context.peering.name
        if s.outcome in SERIOUS:
            log.error("relay %s: REFUSED envelope seq=%d collab=%s id=%s (%s): %s", peer,
                      s.sequence, s.collab, s.envelope_id[:16], s.outcome, s.reason)  # fmt: skip
            self.store.refuse(c, s.envelope_id, s.sequence, s.collab,
                              f"{s.outcome.value}: {s.reason}", now)  # fmt: skip
            report.add_refused(s.sequence, s.reason)
        elif s.outcome is not Outcome.DUPLICATE:
            log.info("relay %s: envelope seq=%d collab=%s not relayed (%s): %s", peer,
                     s.sequence, s.collab, s.outcome.value, s.reason)  # fmt: skip


def prepare(
    ctx: _Context,
    far: FarLog,
    note: bytes,
    path: Callable[[Change], list[bytes]],
    change: Change,
    result: Checked,
) -> Prepared | Skipped:
    """The relay thread's checks of one change (see the module docstring)."""
    peering, raw = ctx.peering, change.envelope
    envelope_id = hashlib.sha256(raw).hexdigest()

    def skip(outcome: Outcome, reason: str) -> Skipped:
        return Skipped(change.sequence, envelope_id, change.collaboration, outcome, reason)

    local = peering.local_collab(change.collaboration)
    if local is None:
        return skip(Outcome.UNMAPPED, f"collaboration {change.collaboration!r} is not mapped")
    try:
        hops = decode_hops(change.hop_records) if change.hop_records else ()
    except HopError as exc:
        return skip(Outcome.REFUSED, str(exc))
    origin = origin_of(hops, peering.origin)
    if ctx.here == origin or any(ctx.here in (h.relay, h.source) for h in hops):
        return skip(Outcome.CYCLE, f"this hub ({ctx.here}) is its origin or one of its hops")
    if len(hops) + 1 > peering.max_hops:
        return skip(
            Outcome.HOP_LIMIT, f"{len(hops) + 1} hops; the peering allows {peering.max_hops}"
        )
    rows = check_relayed(change, far, hops) if hops else result
    if isinstance(rows, str):
        return skip(Outcome.REFUSED, rows)
    above = sorted({r[_TLP] for r in rows if not peering.tlp_allows(Tlp(r[_TLP]))})
    if above:
        return skip(
            Outcome.TLP, f"TLP {', '.join(above)} above the ceiling {peering.tlp_ceiling.value}"
        )
    limits = ctx.hub.config.publish_limits
    problem = envelope_problem(len(raw), limits) or count_problem(len(rows), limits)
    if problem is not None:
        return skip(Outcome.LIMITS, str(problem))
    hop = sign_hop(ctx.signer.sign, ctx.here, raw, hops, peering.origin, change.sequence, note,
                   ctx.received(), change.n, path(change))  # fmt: skip
    return Prepared(
        change.sequence, envelope_id, raw, local, str(rows[0][_PUBLISHER]), origin,
        signing_key_id(raw), encode_hops((*hops, hop)).decode(),
        [(str(r[_ID]), str(r[_KIND]), str(r[_MODIFIED]), str(r[_VALID_UNTIL]),
          str(r[_PUBLISHER]), int(r[_REVOKED])) for r in rows],
    )  # fmt: skip


def commit(
    hub: Hub,
    peer: str,
    ready: Sequence[Copy | Prepared],
    counts: Counter[str],
    sign: Callable[[], tuple[int, bytes] | None],
) -> tuple[list[tuple[Outcome, str]], tuple[int, bytes] | None]:
    """On the writer: append what passes this hub's checks, count every outcome, in one
    transaction; then sign a checkpoint if one is due (as a publish does)."""
    store, done = hub.store, []
    now = hub.now()
    with store.tx():
        for item in ready:
            if isinstance(item, Copy):
                outcome, reason = _copy(hub, item)
            else:
                outcome, reason = _commit_one(hub, peer, item, now)
            done.append((outcome, reason))
            counts[outcome.value] += 1
        store.count_relayed(peer, dict(counts))
    changed = any(o in (Outcome.RELAYED, Outcome.COPIED) for o, _ in done)
    return done, sign() if changed else None


def _copy(hub: Hub, item: Copy) -> tuple[Outcome, str]:
    """Append a copied leaf of another hub's log, once (a diamond brings it twice); a
    peer steward's key epoch is recorded for the collaboration it maps to."""
    if not hub.store.take_copy(item.key):
        return Outcome.DUPLICATE_COPY, "already copied"
    seq = hub.store.append_leaf(item.kind, item.leaf)
    if item.epoch is not None and not hub.record_far_epoch(*item.epoch, seq):
        collab, epoch, _, steward = item.epoch
        log.warning("collaboration %r: epoch %d of %s not recorded: the collaboration has"
                    " stewards or keys of this hub (make it with --keys-from-peer), or takes"
                    " its keys from another hub", collab, epoch, steward)  # fmt: skip
    return Outcome.COPIED, ""


def _far_epoch(doc: dict[str, Any], local: str | None, peer: str) -> FarEpoch | None:
    """A steward's epoch leaf of a mapped collaboration, as this hub records it (a hub-made
    epoch of the peer has no steward: its key never leaves the peer)."""
    steward = doc.get("steward")
    if local is None or not isinstance(steward, str):
        return None
    return local, int(doc["epoch"]), str(doc["commitment"]), far_recipient(steward, peer)


def _duplicate(store: Store, item: Prepared) -> tuple[Outcome, str]:
    """An envelope already in this hub's log: a diamond's other path, or the same batch
    again after a crash (the same sequence of the same peer) is a duplicate; the same peer
    serving it at another sequence logged it twice, which an honest hub never does."""
    stored = json.loads(store.one("SELECT hops FROM envelopes WHERE id=?", item.envelope_id)[0])
    mine = json.loads(item.hops)[-1]
    if stored and stored[-1]["from"] == mine["from"] and stored[-1]["seq"] != mine["seq"]:
        return Outcome.REPLAYED, (
            f"{mine['from']} served it at sequence {mine['seq']}, and before at"
            f" {stored[-1]['seq']}: its log holds it twice"
        )
    return Outcome.DUPLICATE, "already in this hub's log"


def _commit_one(hub: Hub, peer: str, item: Prepared, now: str) -> tuple[Outcome, str]:
    store = hub.store
    if store.envelope_seq(item.envelope_id) is not None:
        return _duplicate(store, item)
    if not store.collab_exists(item.collab):
        return Outcome.UNMAPPED, f"local collaboration {item.collab!r} does not exist"
    bound = store.identity_origin(item.identity)
    if bound is not None and bound != item.origin:
        return Outcome.IDENTITY, (
            f"publisher {item.identity} is bound to hub {bound!r}; this envelope comes from"
            f" {item.origin!r}"
        )
    # Versions as members apply them: another publisher's indicator refuses the envelope;
    # rows this hub holds the same or a later version of (or revoked) are not its state,
    # and an envelope with none newer is stale (a diamond's slower path).
    states = store.indicator_states([r[0] for r in item.rows])
    fresh = []
    for row in item.rows:
        old = states.get(row[0])
        if old is not None and old.publisher != item.publisher:
            return Outcome.CONFLICT, f"indicator {row[0]} belongs to {old.publisher!r}"
        if old is None or (not old.revoked and row[2] > old.modified):
            fresh.append(row)
    if not fresh:
        return Outcome.STALE, "this hub holds the same or a later version of every indicator"
    if bound is None:  # bound by the first envelope it stores, not by one refused
        store.bind_identity(item.identity, item.origin, peer, item.sequence)
    seq = store.append_envelope(item.envelope_id, item.collab, item.publisher, item.key_id, now,
                                item.hops, item.raw, item.rows, fresh)  # fmt: skip
    store.audit(now, f"peer:{peer}", "relay", item.collab, envelope=item.envelope_id, seq=seq,
                origin=item.origin, peer_seq=item.sequence, indicators=len(item.rows))  # fmt: skip
    return Outcome.RELAYED, ""


class _Relay:
    """One relay thread: follows until stopped; an error that retrying cannot fix (an
    integrity alarm, the peer refusing this hub) is shown and retried after a pause."""

    def __init__(self, services: Services, peering: Peering, loop: asyncio.AbstractEventLoop,
                 state: RelayState, after: _Relay | None = None,
                 end: TunnelEnd | None = None, acknowledge: bool = False) -> None:  # fmt: skip
        self.services, self.peering, self.loop, self.state = services, peering, loop, state
        self.after = after  # a stopped relay of the same peering, whose thread must end first
        self.end = end  # a dial-in peering's tunnel
        self.acknowledge = acknowledge  # clear the relay's alarms first (a resume)
        self.stop = threading.Event()
        self.daemon: RelayDaemon | None = None
        self.thread = threading.Thread(target=self._run, name=f"relay-{peering.name}", daemon=True)

    def _run(self) -> None:
        hub = self.services.hub
        # Never two relays on one credential directory: one that outlived its stop ends
        # its current batch (its stream is closed) before this one starts.
        while self.after is not None and self.after.thread.is_alive() and not self.stop.is_set():
            self.after.thread.join(1.0)
        self.after = None
        while not self.stop.is_set():
            self.state.state, self.state.error = "starting", ""
            try:
                if not self._dialed_in():
                    break
                via = self.end.target if self.end is not None else None
                self.daemon = RelayDaemon(hub.peers.data(self.peering.name),
                                          _Context(hub, self.peering), self.services,
                                          self.state, self.loop, via)  # fmt: skip
                self.state.cursor = self.daemon.store.cursor
                self._acknowledged(self.daemon)
                self.state.state = "following"
                self.daemon.follow(self.stop, self._batch)
            except IntegrityAlarm as exc:  # evidence kept; stopped until acknowledged
                if self.stop.is_set():
                    break
                log.error("relay %s stopped by a log alarm: %s", self.peering.name, exc)
                self.state.state = "alarm"
                self.state.error = f"{str(exc)[:400]} ({ACKNOWLEDGE})"
                self.stop.wait(RETRY_AFTER_ERROR)
            except Exception as exc:  # shown by `admin peer status`, retried after a pause
                if self.stop.is_set():
                    break
                log.error("relay %s stopped: %s; retrying in %.0f s", self.peering.name, exc,
                          RETRY_AFTER_ERROR)  # fmt: skip
                self.state.state, self.state.error = "retrying", str(exc)[:500]
                self.stop.wait(RETRY_AFTER_ERROR)
            finally:
                if self.daemon is not None:
                    self.daemon.close()
                    self.daemon = None
        self.state.state = "stopped"

    def _acknowledged(self, daemon: RelayDaemon) -> None:
        """After a resume, the relay's alarms are acknowledged: the operator's word that
        the peer's history is looked into (the evidence stays in its local.db)."""
        if self.acknowledge:
            self.acknowledge = False
            if daemon.clear_alarms():
                log.warning("relay %s: alarms acknowledged by resuming the peering",
                            self.peering.name)  # fmt: skip

    def _dialed_in(self) -> bool:
        """For a dial-in peering: wait for the peer's control stream, and enroll through the
        tunnel if this hub has not yet (the file ``add`` kept is spent, then deleted).
        False when stopped first."""
        end = self.end
        if end is None:
            return True
        while not end.dialed.wait(DIAL_IN_WAIT):
            self.state.state = "waiting"
            self.state.error = "the peer has not dialed in (its push peering and dialer)"
            if self.stop.is_set():
                return False
        data = self.services.hub.peers.data(self.peering.name)
        kept = data / ENROLLMENT_FILE
        if not (data / "hub.json").exists():
            enroll(kept, data, address=self.peering.address, via=end.target)
            log.info("relay %s: enrolled at %s through its tunnel", self.peering.name,
                     self.peering.origin)  # fmt: skip
        kept.unlink(missing_ok=True)
        return True

    def _batch(self, report: SyncReport) -> None:
        self.state.cursor, self.state.head = report.cursor, report.head
        self.state.state, self.state.error = "following", ""  # reached its peer again
        self.state.last_batch = format_time(datetime.now(UTC))

    def halt(self) -> None:
        self.stop.set()
        daemon = self.daemon
        if daemon is not None:
            daemon.interrupt()


class RelayManager:
    """The relays of one hub: a thread per active peering with direction pull or both (with
    a tunnel end when the peer dials in), a dialer per active peering with direction push or
    both, started and stopped as the peerings change (``refresh``).  ``own`` is where this
    hub's server is reached from inside it (for the dialers' data streams)."""

    def __init__(self, services: Services, loop: asyncio.AbstractEventLoop,
                 own: str = "") -> None:  # fmt: skip
        self.services, self.loop, self.own = services, loop, own
        self._relays: dict[str, _Relay] = {}
        self._states: dict[str, RelayState] = {}
        self._tunnels: dict[str, TunnelEnd] = {}
        self._dialers: dict[str, Dialer] = {}
        self._dialing: dict[str, DialerState] = {}
        self._lock = asyncio.Lock()  # one refresh at a time (two admin calls at once)
        # Peerings whose status is being changed (``stop``): no refresh (another admin
        # call's) starts their relay again before the change is committed or refused.
        self._held: Counter[str] = Counter()
        # Set by ``close``: an admin call still served while the hub shuts down starts
        # no relay that nothing would stop.
        self._closed = False
        self._last: dict[str, _Relay] = {}  # the relay stopped last, per peering
        self._acknowledge: set[str] = set()  # resumed: their relays' alarms acknowledged

    async def refresh(self, release: str | None = None) -> None:
        """Start the relays of the peerings that should run and stop the others; with
        ``release``, after the status change ``stop`` held that relay for."""
        async with self._lock:
            if release is not None and self._held[release] > 0:
                self._held[release] -= 1
            if not self._closed:
                await self._refresh()

    async def _refresh(self) -> None:
        store = self.services.hub.store
        peerings = await self.services.run(store.peerings)
        wanted = {p.name: p for p in peerings if _follows(p)}
        pushing = {p.name for p in peerings if _pushes(p)}
        for name in [n for n in self._relays if n not in wanted]:
            await self._stop_relay(name)
        for name in [n for n in self._dialers if n not in pushing]:
            await self._dialers.pop(name).stop()
        for name, p in wanted.items():
            if name not in self._relays and not self._held[name]:
                await self._start_relay(p)
        for name in sorted(pushing):
            if not self.own:  # said, not silently ignored
                self._dialing[name] = DialerState("stopped", NO_TUNNEL_PLAINTEXT)
            elif name not in self._dialers and not self._held[name]:
                state = self._dialing.setdefault(name, DialerState())
                dialer = Dialer(name, self.services.hub.peers.data(name), self.own, state)
                self._dialers[name] = dialer
                dialer.start()

    async def _start_relay(self, p: Peering) -> None:
        end = None
        if p.dial_in:
            end = self._tunnels.get(p.name)
            if end is None:
                end = self._tunnels[p.name] = TunnelEnd(p.name)
                await end.start()
        state = self._states.setdefault(p.name, RelayState(p.name))
        acknowledge = p.name in self._acknowledge
        self._acknowledge.discard(p.name)
        relay = _Relay(self.services, p, self.loop, state, self._last.pop(p.name, None), end,
                       acknowledge)  # fmt: skip
        self._relays[p.name] = relay
        relay.thread.start()

    async def _stop_relay(self, name: str) -> None:
        end = self._tunnels.pop(name, None)
        if end is not None:
            end.cut()  # at once: the relay's stream and the peer's streams end
        relay = self._pop(name)
        if relay is not None:
            await asyncio.to_thread(self._stop, relay)
        if end is not None:
            await end.close()

    async def stop(self, name: str) -> None:
        """Stop ``name``'s relay (and tunnel) and dialer now (before its peering is
        suspended or removed, so that it never writes past that change, nor into a
        credential directory being deleted); ``refresh`` starts them again if the change
        is refused (after ``hold``, only ``refresh(release=name)`` does)."""
        async with self._lock:
            await self._stop_relay(name)
            dialer = self._dialers.pop(name, None)
            if dialer is not None:
                await dialer.stop()

    def acknowledge(self, name: str) -> None:
        """The operator resumed ``name``: its next relay acknowledges the relay's alarms
        (the evidence stays), as ``sighub sync --clear-alarm`` does for a member."""
        self._acknowledge.add(name)

    def tunnel(self, name: str) -> TunnelEnd | None:
        """The tunnel end of dial-in peering ``name``, while its relay runs."""
        return self._tunnels.get(name)

    def _pop(self, name: str) -> _Relay | None:
        """Take ``name``'s relay out of the running ones, remembered until the next starts
        (which waits for its thread first, should it outlive ``_stop``'s join)."""
        relay = self._relays.pop(name, None)
        if relay is not None:
            self._last[name] = relay
        return relay

    def hold(self, name: str) -> None:
        """Keep ``name``'s relay from starting until ``refresh(release=name)``: held before
        a status change, so that no other call's refresh starts it in between."""
        self._held[name] += 1

    @staticmethod
    def _stop(relay: _Relay) -> None:
        relay.halt()
        relay.thread.join(JOIN_SECONDS)
        if relay.thread.is_alive():
            log.warning("relay %s did not stop within %.0f s", relay.peering.name, JOIN_SECONDS)

    def known(self, name: str) -> bool:
        """Whether ``name``'s relay or dialer ran since this hub started."""
        return name in self._states or name in self._dialing

    def state(self, name: str) -> RelayState:
        relay = self._states.get(name)
        state = RelayState(name, state="pushing") if relay is None else replace(relay)
        dialing = self._dialing.get(name)
        if dialing is not None:
            state.push, state.push_connections = dialing.state, dialing.connections
            if relay is None:
                state.error = dialing.error
        return state

    async def close(self) -> None:
        async with self._lock:
            self._closed = True
            relays, self._relays = list(self._relays.values()), {}
            for end in self._tunnels.values():
                end.cut()
            for relay in relays:
                relay.halt()  # all at once: each ends its stream
            for relay in relays:
                await asyncio.to_thread(self._stop, relay)
            for end in self._tunnels.values():
                await end.close()
            self._tunnels = {}
            for dialer in self._dialers.values():
                await dialer.stop()
            self._dialers = {}


def _follows(p: Peering) -> bool:
    return p.status == "active" and p.direction in (Direction.PULL, Direction.BOTH)


def _pushes(p: Peering) -> bool:
    return p.status == "active" and p.direction in (Direction.PUSH, Direction.BOTH)
