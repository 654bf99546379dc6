"""Directories that federate (``docs/federation.md``): the logs of hubs a member never
talks to, as far as its own hub's verified log copies them.

A relay copies each directory and peering leaf of its peer's log into its own hub's log as
a ``peer.leaf`` (the leaf, its sequence there, its inclusion proof) after a
``peer.checkpoint`` (the peer's signed note the proof is against), and copies the copies it
finds in its peer's log verbatim, so they travel any number of hops.  ``FarLog`` checks
each one as it reads its own log:

- a checkpoint under the log key of its origin hub: pinned by a peering record of this
  member's hub (admin-signed), or learnt from a verified ``peer.add`` leaf of a hub already
  known (a hub the admin peered with vouches for the hubs it peers with).  A checkpoint of a
  hub whose key is not known yet is skipped, and so are the leaves proved against it;
- a leaf's inclusion in its origin's tree, as that checkpoint signed it.

A copy that fails a check is an integrity alarm: this member's own hub logged it.  Per
origin hub it keeps a key ring (``KeyRing``, sequences in that hub's log) and the
collaboration maps of that hub's peerings; with them ``check_relayed`` verifies a relayed
envelope as a member of its origin hub would: the hop chain, the publisher's signature
under a key the origin's log held at the envelope's sequence there, and the bundle's
collaboration name through every peering's map.
"""

from __future__ import annotations

import base64
import logging
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any, Final, Protocol

from sighub.client._checkpoint import open_checkpoint
from sighub.client._errors import NoteError
from sighub.client._hops import HOP_NOTE_BYTES, HopError, HopRecord, decode_hops, verify_hops
from sighub.client._keyring import KeyRing
from sighub.client._leaves import (
    COLLAB_COPIED_TYPES,
    COPIED_TYPES,
    DIRECTORY_TYPES,
    LeafError,
    parse_leaf,
)
from sighub.client._logcheck import AlarmKind, LogAlarm, hub_key
from sighub.client._merkle import ProofError, leaf_hash, verify_consistency, verify_inclusion
from sighub.client._model import Tlp, tlp_crosses
from sighub.client._rpc import Change
from sighub.client._stewardlog import StewardLog
from sighub.client._verify import Checked, check_changes
from sighub.client._wraps import Wrap, WrapError

__all__ = ["FarLog", "PinnedPeers", "check_relayed"]

log = logging.getLogger("sighub.sync")
# Verified checkpoints kept per origin: a relay copies one per batch that copies directory
# leaves (enrollments, key events: rare), and a copy proved against an older one may come
# late through a slower path of a diamond.
MAX_ROOTS: Final = 100_000
_SEQ: Final = 16  # LocalStore.row: the sequence column
_TLP: Final = 11  # LocalStore.row: the TLP column


class PinnedPeers(Protocol):
    """The peerings of the hub whose log is read (``_peerlog.PeerLog``)."""

    def log_keys(self) -> dict[str, bytes]: ...

    def remote_for(self, local_collab: str, origin: str, at: int | None = None) -> str | None: ...

    def policy_for(self, origin: str, at: int | None = None) -> tuple[int, Tlp] | None: ...

    def local_for(self, remote: str, origin: str) -> str | None: ...

    def mapped_locals(self) -> set[str]: ...

    def is_active(self, origin: str) -> bool: ...


class FarLog:
    """What this member's verified log copied of other hubs' logs: see the module.

    ``here`` is the origin of the log read and ``here_key`` its log key; ``pinned`` that
    log's peerings.  ``apply`` each copied leaf in log order; ``save`` writes what was
    applied since in the caller's transaction; ``load`` rebuilds from ``local.db``."""

    def __init__(self, here: str, here_key: bytes, pinned: PinnedPeers) -> None:
        self.here, self.here_key, self.pinned = here, here_key, pinned
        self.learnt: dict[str, bytes] = {}  # origin -> log key, from verified peer.add copies
        self.roots: dict[str, dict[int, bytes]] = {}  # origin -> tree size -> root
        self.rings: dict[str, KeyRing] = {}
        self.last: dict[str, int] = {}  # origin -> the last sequence of it applied
        # origin -> every sequence of it applied: a leaf one path withheld (a revocation)
        # still counts when another brings it later, out of the origin's order
        self.taken_seqs: dict[str, set[int]] = {}
        # (hub, its peer's origin, local collaboration there) -> the peer's name for it
        self.maps: dict[tuple[str, str, str], str] = {}
        # Collaborations that span hubs: per origin, its stewards, members and key epochs
        # as copied (a ``StewardLog`` of that hub, keys from its ring), and the wraps its
        # stewards made for members of this hub ((origin, collab there, epoch, recipient)
        # -> the wrap), which those members open (``_farkeys``).
        self.stewards: dict[str, StewardLog] = {}
        self.roles: dict[tuple[str, str], tuple[str, ...]] = {}  # (origin, member) -> roles
        # (origin, member) -> its status there, from member.status leaves (a member not
        # listed is active): a steward wraps no new epoch to a suspended far member
        self.statuses: dict[tuple[str, str], str] = {}
        self.wraps: dict[tuple[str, str, int, str], Wrap] = {}
        # (origin, collab there) -> this log's sequence of its first steward epoch copied:
        # a collaboration takes its keys from one hub, the first whose epoch reached here
        self.first_epoch: dict[tuple[str, str], int] = {}
        self.collabs_changed = False  # a collaboration leaf was copied since last asked
        self._pending: list[tuple[int, bytes]] = []

    # -- keys and names --------------------------------------------------------------
    def log_keys(self) -> dict[str, bytes]:
        """Origin -> log key of every hub known: this log's own, its pinned peers' (they
        win), and those learnt from copies."""
        return {**self.learnt, **self.pinned.log_keys(), self.here: self.here_key}

    def collab_names(
        self, collab: str, hops: Sequence[HopRecord], at: int | None = None
    ) -> list[str] | None:
        """The name of the collaboration named ``collab`` here in each hop's source log
        (the origin's first), through the map of each peering the envelope crossed; None
        where a map is not known.  With ``at`` (the envelope's sequence in this log), this
        hub's own peering counts only if it was in force there: logged before, not removed
        before (a hub alone cannot keep relaying from a peer its admin removed)."""
        names: list[str] = []
        name = collab
        for hop in reversed(hops):
            if hop.relay == self.here:
                found = self.pinned.remote_for(name, hop.source, at)
            else:
                found = self.maps.get((hop.relay, hop.source, name))
            if found is None:
                return None
            name = found
            names.append(name)
        return names[::-1]

    def names_at(self, collab: str, active: bool = False) -> dict[str, str]:
        """Origin -> the name this hub's ``collab`` has in that hub's log: through this
        hub's live peerings' maps (with ``active``, active ones only), then the copied
        peerings of the hubs behind them, any number of hops (a collaboration that spans
        hubs, ``_farkeys``)."""
        out: dict[str, str] = {}
        frontier: list[str] = []
        for origin in sorted(self.pinned.log_keys()):
            if active and not self.pinned.is_active(origin):
                continue
            remote = self.pinned.remote_for(collab, origin)
            if remote is not None and self.pinned.local_for(remote, origin) == collab:
                out[origin] = remote
                frontier.append(origin)
        maps = sorted(self.maps.items())
        while frontier:
            hub = frontier.pop(0)
            for (h, peer, local), remote in maps:
                if h == hub and local == out[hub] and peer not in out and peer != self.here:
                    out[peer] = remote
                    frontier.append(peer)
        return out

    def key_origin(self, local: str) -> str | None:
        """The hub this hub's ``local`` collaboration takes its keys from: the one whose
        steward epoch for it was copied here first (another hub's epochs for it would
        number the same epochs again)."""
        names = self.names_at(local)  # a cheap filter before the exact inverse
        firsts = [
            (seq, origin)
            for (origin, remote), seq in self.first_epoch.items()
            if names.get(origin) == remote and self.local_name(remote, origin) == local
        ]
        return min(firsts)[1] if firsts else None

    def local_name(self, remote: str, origin: str) -> str | None:
        """This hub's collaboration whose name in ``origin``'s log is ``remote`` (the
        inverse of ``names_at``); None: no chain of peerings maps it."""
        for local in sorted(self.pinned.mapped_locals()):
            if self.names_at(local).get(origin) == remote:
                return local
        return None

    # -- reading the log -------------------------------------------------------------
    def apply(self, sequence: int, doc: Mapping[str, Any], raw: bytes) -> None:
        """Take one ``peer.checkpoint`` or ``peer.leaf`` leaf of this log (at
        ``sequence``); raises ``LogAlarm`` for a copy that does not verify."""
        if self._take(sequence, doc):
            self._pending.append((sequence, raw))

    def _take(self, sequence: int, doc: Mapping[str, Any], replay: bool = False) -> bool:
        origin = str(doc["origin"])
        if origin == self.here:
            return False  # this log's own leaves, come back round a cycle
        key = self.log_keys().get(origin)
        if key is None:
            if not replay:
                log.warning("sequence %d: a copy from hub %r, whose log key this member does"
                            " not know; skipped", sequence, origin)  # fmt: skip
            return False
        if doc["type"] == "peer.checkpoint":
            return self._checkpoint(sequence, origin, key, doc)
        return self._leaf(sequence, origin, doc)

    def _checkpoint(self, sequence: int, origin: str, key: bytes, doc: Mapping[str, Any]) -> bool:
        note = _b64(doc["note"], sequence)
        try:
            opened = open_checkpoint(
                note, hub_key(origin, base64.b64encode(key).decode()), origin=origin,
                max_bytes=HOP_NOTE_BYTES,
            )  # fmt: skip
        except NoteError as exc:
            detail = f"checkpoint of {origin!r}: {exc}"
            raise _alarm(AlarmKind.BAD_SIGNATURE, sequence, detail) from None
        roots = self.roots.setdefault(origin, {})
        size, root = opened.checkpoint.size, opened.checkpoint.root
        if roots.get(size, root) != root:  # two signed trees of one size: the origin forked
            detail = (
                f"{origin!r} signed two trees of {size} leaves: root {roots[size].hex()} and"
                f" {root.hex()} (a split view, seen through two paths)"
            )
            raise _alarm(AlarmKind.FORK, sequence, detail)
        self._extends(sequence, origin, doc, size, root)
        roots[size] = root
        for size in sorted(roots)[:-MAX_ROOTS]:
            del roots[size]
        return True

    def _extends(
        self, sequence: int, origin: str, doc: Mapping[str, Any], size: int, root: bytes
    ) -> None:
        """A copied checkpoint that names the one its relay copied before (``since``) comes
        with the proof that it extends it: checked where that one's root is known here (a
        fork at different sizes, which equal sizes alone would not show)."""
        since = int(doc.get("since", 0))
        old = self.roots.get(origin, {}).get(since) if since else None
        if old is None:
            return  # none named, or the relay's earlier copy is not in this log (yet)
        proof = [_b64(h, sequence) for h in doc.get("consistency", [])]
        try:
            verify_consistency(since, size, old, root, proof)
        except ProofError as exc:
            detail = (
                f"{origin!r} signed a tree of {size} leaves that does not extend its tree of"
                f" {since} ({exc}): two histories (a split view)"
            )
            raise _alarm(AlarmKind.FORK, sequence, detail) from None

    def _leaf(self, sequence: int, origin: str, doc: Mapping[str, Any]) -> bool:
        seq, size = int(doc["seq"]), int(doc["size"])
        if seq in self.taken_seqs.get(origin, ()):
            return False  # already taken (a diamond delivers a copy twice)
        root = self.roots.get(origin, {}).get(size)
        if root is None:
            raise _alarm(AlarmKind.MALFORMED, sequence,
                         f"a leaf of {origin!r} proved against a tree of {size} leaves whose"
                         " checkpoint this log did not copy before it")  # fmt: skip
        leaf = _b64(doc["leaf"], sequence)
        path = [_b64(h, sequence) for h in doc["path"]]
        try:
            verify_inclusion(seq - 1, size, leaf_hash(leaf), path, root)
            inner = parse_leaf(leaf)
        except (ProofError, LeafError) as exc:
            detail = f"leaf {seq} of {origin!r}: {exc}"
            raise _alarm(AlarmKind.BAD_PROOF, sequence, detail) from None
        kind = inner["type"]
        if kind not in COPIED_TYPES and kind not in COLLAB_COPIED_TYPES:
            detail = f"leaf {seq} of {origin!r} is a {kind} leaf, not one relays copy"
            raise _alarm(AlarmKind.MALFORMED, sequence, detail)
        if kind in DIRECTORY_TYPES:
            self.rings.setdefault(origin, KeyRing(origin, None)).apply(seq, inner)
            if kind in ("member.enroll", "member.roles"):
                roles = inner["roles"] if isinstance(inner.get("roles"), list) else []
                self.roles[(origin, str(inner["member"]))] = tuple(map(str, roles))
            elif kind == "member.status":
                self.statuses[(origin, str(inner["member"]))] = str(inner["status"])
        elif kind == "peer.add":
            self._peering(origin, inner)
        elif kind in COLLAB_COPIED_TYPES:
            self._collab(sequence, origin, seq, inner)
        # taken once applied: a copy that raised an alarm is not seen, and alarms again
        self.last[origin] = max(seq, self.last.get(origin, 0))
        self.taken_seqs.setdefault(origin, set()).add(seq)
        return True

    def _collab(self, sequence: int, origin: str, seq: int, inner: Mapping[str, Any]) -> None:
        """A leaf of a collaboration that spans hubs, as its origin logged it.  Its
        steward designations are taken on the origin log's word (its admin key is not
        known here; its log key is); a wrap is kept only for a member of this hub."""
        if inner["type"] == "collab.wrap":
            if not str(inner["recipient"]).endswith("@" + self.here):
                return
            try:
                w = Wrap.from_leaf(inner)
            except WrapError as exc:
                raise _alarm(AlarmKind.MALFORMED, sequence, str(exc)) from None
            self.wraps.setdefault((origin, w.collab, w.epoch, w.recipient), w)
            self.collabs_changed = True
            return
        if inner["type"] == "collab.epoch" and "steward" in inner:
            self.first_epoch.setdefault((origin, str(inner["collab"])), sequence)
        self.collabs_changed = True
        ring = self.rings.setdefault(origin, KeyRing(origin, None))
        view = self.stewards.setdefault(origin, StewardLog(origin, None))
        view.apply(seq, inner, ring.valid_keys)
        view.saved()  # rebuilt from the stored copies on load: nothing of it is stored apart

    def _peering(self, hub: str, doc: Mapping[str, Any]) -> None:
        peer = str(doc["origin"])
        if peer != self.here:
            self.learnt.setdefault(peer, _b64(doc["log_key"], 0))
        for pair in doc["collabs"]:
            remote, _, local = str(pair).partition("=")
            self.maps[(hub, peer, local)] = remote

    def taken(self) -> set[int]:
        """The sequences of the copies applied (so verified) since the last ``save``: a
        relay copies on only these, never one it could not check."""
        return {seq for seq, _ in self._pending}

    # -- storage ---------------------------------------------------------------------
    def save(self, conn: sqlite3.Connection) -> None:
        """Store the copies applied since the last ``save`` (the caller's transaction)."""
        create(conn)
        conn.executemany("INSERT OR REPLACE INTO log_far (seq, leaf) VALUES (?, ?)", self._pending)
        self._pending.clear()

    @classmethod
    def load(
        cls, conn: sqlite3.Connection, here: str, here_key: bytes, pinned: PinnedPeers
    ) -> FarLog:
        """The state the stored copies make (each was verified when it was applied)."""
        far = cls(here, here_key, pinned)
        create(conn)
        for seq, raw in conn.execute("SELECT seq, leaf FROM log_far ORDER BY seq"):
            far._take(int(seq), parse_leaf(bytes(raw)), replay=True)
        return far


def create(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS log_far (seq INTEGER PRIMARY KEY, leaf BLOB NOT NULL)")


def clear(conn: sqlite3.Connection) -> None:
    """Forget every copy (a resync reads the log again), in the caller's transaction."""
    create(conn)
    conn.execute("DELETE FROM log_far")


def _b64(text: object, sequence: int) -> bytes:
    try:
        return base64.b64decode(str(text), validate=True)
    except ValueError:
        raise _alarm(AlarmKind.MALFORMED, sequence, f"{str(text)[:40]!r} is not base64") from None


def _alarm(kind: AlarmKind, sequence: int, detail: str) -> LogAlarm:
    return LogAlarm(kind, f"sequence {sequence}: copied leaf: {detail}", {"sequence": sequence})


def check_relayed(
    change: Change, far: FarLog, hops: tuple[HopRecord, ...] | None = None
) -> Checked:
    """``_check_relayed`` (``hops``: the change's hop records, when the caller decoded
    them already), with any failure a refusal: one relayed envelope no check foresaw must
    cost that envelope, never the daemon (every member syncs the same log)."""
    try:
        return _check_relayed(
            change, decode_hops(change.hop_records) if hops is None else hops, far
        )
    except HopError as exc:
        return str(exc)
    except Exception as exc:
        log.exception("relayed envelope seq=%d could not be checked", change.sequence)
        return f"relayed envelope could not be checked ({type(exc).__name__}: {str(exc)[:200]})"


def _check_relayed(change: Change, hops: tuple[HopRecord, ...], far: FarLog) -> Checked:
    """A relayed envelope checked as a member of its origin hub would check it, or why it
    is refused: its hop chain (ending at the hub whose log is read) under the known log
    keys, each hub on the path having logged it (named through every peering's map); the
    publisher's signature under a key the origin's copied directory held at the envelope's
    sequence there, for the collaboration as the origin names it.  The rows carry this
    log's sequence and collaboration name (whose key epochs a member matches them under)."""
    if not hops:
        return "relayed, with an empty hop list"
    try:
        names = far.collab_names(change.collaboration, hops, change.sequence)
        if names is None:
            return (
                f"relayed from hub {hops[0].source!r}: no peering maps"
                f" {change.collaboration!r} along its path"
            )
        verify_hops(change.envelope, hops, far.log_keys(), far.here, names)
    except HopError as exc:
        return str(exc)
    origin, seq = hops[0].source, hops[0].seq
    ring = far.rings.get(origin)
    if ring is None:
        return f"relayed from hub {origin!r}, whose directory this log holds no copy of"
    result = check_changes(ring.directory(), [(seq, names[0], change.envelope)])[0]
    if isinstance(result, str):
        return f"relayed from hub {origin!r} (its sequence {seq}): {result}"
    problem = _policy_problem(far, hops, [Tlp(str(row[_TLP])) for row in result], change.sequence)
    if problem is not None:
        return problem
    here = change.collaboration
    return [(row[0], here, *row[2:_SEQ], change.sequence, *row[_SEQ + 1 :]) for row in result]


def _policy_problem(far: FarLog, hops: Sequence[HopRecord], tlps: list[Tlp], at: int) -> str | None:
    """What this hub's peering (as its admin signed it, in force where the envelope was
    logged) does not allow: more hops than its ``max_hops``, an indicator above its TLP
    ceiling; red never crosses at all.  The hub's relay checks the same before it logs: a
    failure here is the hub alone overriding its admin."""
    if Tlp.RED in tlps:
        return f"relayed from hub {hops[0].source!r} with a red indicator: red never crosses"
    source = hops[-1].source
    policy = far.pinned.policy_for(source, at)
    if policy is None:
        return None  # no peering of this hub's with it: collab_names refused it already
    max_hops, ceiling = policy
    if len(hops) > max_hops:
        return f"relayed over {len(hops)} hops; the peering with {source!r} allows {max_hops}"
    above = sorted({t.value for t in tlps if not tlp_crosses(t, ceiling)})
    if above:
        return (
            f"relayed from {source!r} with TLP {', '.join(above)}, above the peering's"
            f" ceiling {ceiling.value}"
        )
    return None
