"""The member's side of the hub's transparency log: every synced leaf is in a tree the hub
signed, no signed tree contradicts another, and the newest is recent.

A ``Sync`` batch covers the sequences ``(start, end]`` of the whole log.  The member turns
it into one leaf hash per sequence (``leaf_hashes_for_batch``: it recomputes the leaf of
every envelope it receives from the envelope's exact bytes, so the hub cannot log one thing
and deliver another), appends them to its ``Frontier`` and checks the signed checkpoint the
batch came with:

- the note is signed by the pinned hub key, for the pinned origin, and its ``sighub-time``
  is within ``max_age`` of now (older: the hub froze the member on an old tree) and not
  beyond ``max_skew`` ahead (a far-future time would keep a frozen tree "fresh");
- its size is at least that of the last checkpoint verified (smaller: rollback), and at
  the same size its root is the same (else two signed trees disagree: a fork);
- the RFC 9162 consistency proof from the frontier (size = the cursor, root computed from
  the leaves synced) to the checkpoint verifies: everything synced is in the signed tree.

A checkpoint larger than the frontier stays *pending*: when the frontier later reaches its
size, the root computed there must equal the one signed, so leaves served after the proof
cannot differ from the tree the hub signed earlier.

Nothing here is trusted that the member did not compute or verify itself, and every
failure is a ``LogAlarm`` whose ``evidence`` (JSON-able) holds the signed notes and proofs
involved, for the caller to store.  ``LogState`` is the immutable result the caller
commits in the same transaction as the cursor and the applied data.
"""

from __future__ import annotations

import base64
import enum
import hashlib
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sighub.client._checkpoint import Checkpoint, open_checkpoint, parse_checkpoint
from sighub.client._errors import EXIT_BAD_INPUT, IntegrityAlarm, NoteError, SighubError
from sighub.client._hpke import encryption_key_id
from sighub.client._leaves import envelope_leaf
from sighub.client._merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    MAX_SIZE,
    Frontier,
    ProofError,
    verify_consistency,
)
from sighub.client._note import MAX_NOTE_BYTES, Ed25519Verifier, decode_base64, parse_note

__all__ = [
    "DEFAULT_MAX_SKEW",
    "MAX_PENDING",
    "AlarmKind",
    "BatchChange",
    "BatchLeaf",
    "LogAlarm",
    "LogState",
    "LogStateError",
    "LogVerifier",
    "SignedRoot",
    "hub_key",
    "leaf_hashes_for_batch",
    "own_name_alarm",
]

STATE_VERSION: Final = 1
MAX_ENVELOPE_NUMBER: Final = 2**53 - 1  # an envelope's number in its leaf is a JSON integer
# Checkpoints ahead of the frontier kept for comparison.  An honest hub adds one per batch
# at most while a member catches up; past the cap the newest replaces the previous newest,
# so the earliest are still compared and the newest (the last verified) always is.
MAX_PENDING: Final = 64
DEFAULT_MAX_SKEW: Final = timedelta(minutes=5)
# Evidence stays bounded whatever a hostile hub sends: a valid consistency proof has at
# most 2 * 64 hashes, a note at most MAX_NOTE_BYTES.
_EVIDENCE_HASHES: Final = 1024
_EVIDENCE_PROOF: Final = 128


class LogStateError(SighubError, ValueError):
    """A stored ``LogState`` that cannot be right (corrupt, edited, or of another hub):
    names the field, what it held and what was expected."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, field: str, received: str, expected: str) -> None:
        self.field, self.received, self.expected = field, received, expected
        super().__init__(f"log state: {field}: received {received}, expected {expected}")


class AlarmKind(enum.Enum):
    """What the hub did, as the alarm names it."""

    BAD_SIGNATURE = "bad signature"  # the note does not open under the pinned key
    WRONG_ORIGIN = "wrong origin"  # signed by the hub's key, for another log
    STALE = "stale checkpoint"  # freeze: too old, too far ahead, or no time at all
    ROLLBACK = "rollback"  # a smaller tree than one already verified
    FORK = "fork/split view"  # two signed trees of one size with different roots
    ALTERED = "altered leaves"  # the leaves served do not make the root signed at a size
    BAD_PROOF = "bad proof"  # the consistency proof from the synced leaves fails
    GAP = "gap"  # a batch that is not exactly one leaf per sequence of its range
    UNSIGNED = "unsigned leaves"  # leaves served beyond the checkpoint that came with them
    FOREIGN_KEY = "foreign key"  # a key event under the member's name it did not make
    MALFORMED = "malformed leaf"  # a full leaf that is not one sighub writes
    WITHHELD = "withheld envelope"  # an envelope of the stream's collaboration sent as a leaf
    FORGED_KEY = "forged key"  # a key leaf whose grant, attestation or rotation proof fails
    # A peering leaf an honest hub never writes: a name added twice, a second live peering
    # with one hub, a peering with itself, a status change it never makes.
    PEERING = "impossible peering"
    # A checkpoint another party saw (a witness, another member) that this member's
    # verified tree contradicts: the hub shows different members different trees.
    SPLIT_VIEW = "split view"
    UNWITNESSED = "unwitnessed checkpoint"  # fewer than K known witnesses vouch for the tree


class LogAlarm(IntegrityAlarm):
    """The hub served something its log contradicts.  ``kind`` names what it did,
    ``evidence`` is a JSON-able dict (notes in base64, hashes in hex) to keep."""

    def __init__(self, kind: AlarmKind, detail: str, evidence: Mapping[str, Any]) -> None:
        self.kind = kind
        self.evidence: dict[str, Any] = {"alarm": kind.value, **evidence}
        super().__init__(f"hub log alarm ({kind.value}): {detail}")


# -- state ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SignedRoot:
    """A verified checkpoint: its tree size and root, and the signed note they came in."""

    size: int
    root: bytes
    note: bytes


@dataclass(frozen=True, slots=True)
class LogState:
    """What a member knows of the hub's log.  ``size`` (the cursor) and ``hashes`` are its
    frontier; ``checkpoint`` the last checkpoint verified (None before the first);
    ``pending`` the verified checkpoints larger than the frontier, by size.

    Invariants (checked on construction, so a loaded state holds them): a valid frontier;
    pending sizes strictly increasing within ``(size, checkpoint.size]``, at most
    ``MAX_PENDING``; when the checkpoint is ahead of the frontier it is the last pending."""

    size: int = 0
    hashes: tuple[bytes, ...] = ()
    checkpoint: SignedRoot | None = None
    pending: tuple[SignedRoot, ...] = ()

    def __post_init__(self) -> None:
        try:
            Frontier(self.size, self.hashes)
        except ProofError as exc:
            raise LogStateError("frontier", str(exc), "a valid RFC 9162 frontier") from None
        if len(self.pending) > MAX_PENDING:
            raise LogStateError(
                "pending", f"{len(self.pending)} checkpoints", f"at most {MAX_PENDING}"
            )
        top = self.checkpoint.size if self.checkpoint is not None else self.size
        floor = self.size
        for p in self.pending:
            if not floor < p.size <= top or len(p.root) != HASH_SIZE:
                raise LogStateError(
                    "pending",
                    f"a checkpoint of size {p.size} after size {floor}",
                    f"sizes increasing within ({self.size}, {top}], 32-byte roots",
                )
            floor = p.size
        cp = self.checkpoint
        if cp is not None and cp.size > self.size:
            last = self.pending[-1] if self.pending else None
            if last is None or (last.size, last.root) != (cp.size, cp.root):
                raise LogStateError(
                    "pending",
                    "no entry for the checkpoint ahead of the frontier",
                    f"the checkpoint of size {cp.size} as the last pending",
                )

    @property
    def frontier(self) -> Frontier:
        """A new frontier of the synced leaves."""
        return Frontier(self.size, self.hashes)

    def to_dict(self) -> dict[str, Any]:
        """A compact JSON-able form; notes as their text (signed notes are UTF-8)."""
        return {
            "v": STATE_VERSION,
            "size": self.size,
            "frontier": [_b64(h) for h in self.hashes],
            "checkpoint": None if self.checkpoint is None else self.checkpoint.note.decode(),
            "pending": [p.note.decode() for p in self.pending],
        }

    @classmethod
    def from_dict(cls, data: object) -> LogState:
        """The state ``to_dict`` wrote, checked strictly: exact keys and types, canonical
        base64, parseable checkpoint notes, the invariants.  Signatures are checked by
        ``LogVerifier``, which holds the hub key.  Raises ``LogStateError``."""
        if not isinstance(data, dict):
            raise LogStateError("document", type(data).__name__, "an object")
        keys = {"v", "size", "frontier", "checkpoint", "pending"}
        if set(data) != keys:
            raise LogStateError("keys", repr(sorted(map(str, data)))[:120], repr(sorted(keys)))
        if data["v"] != STATE_VERSION or type(data["v"]) is not int:
            raise LogStateError("v", repr(data["v"])[:40], str(STATE_VERSION))
        size = data["size"]
        if type(size) is not int or not 0 <= size <= MAX_SIZE:
            raise LogStateError("size", repr(size)[:40], f"an integer in [0, {MAX_SIZE}]")
        hashes = _string_list(data["frontier"], "frontier", size.bit_count())
        pending_notes = _string_list(data["pending"], "pending", None)
        if len(pending_notes) > MAX_PENDING:
            raise LogStateError(
                "pending", f"{len(pending_notes)} checkpoints", f"at most {MAX_PENDING}"
            )
        raw = data["checkpoint"]
        if raw is not None and not isinstance(raw, str):
            raise LogStateError("checkpoint", type(raw).__name__, "a note text or null")
        return cls(
            size,
            tuple(_hash_from_b64(h, f"frontier[{i}]") for i, h in enumerate(hashes)),
            None if raw is None else _stored_root(raw, "checkpoint"),
            tuple(_stored_root(n, f"pending[{i}]") for i, n in enumerate(pending_notes)),
        )


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _string_list(value: object, field: str, length: int | None) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise LogStateError(field, type(value).__name__, "a list of strings")
    if length is not None and len(value) != length:
        raise LogStateError(field, f"{len(value)} hashes", f"{length} (one per set bit of size)")
    return value


def _hash_from_b64(text: str, field: str) -> bytes:
    try:
        raw = decode_base64(text, "log state", field)
    except NoteError as exc:
        raise LogStateError(field, exc.received, exc.expected) from None
    if len(raw) != HASH_SIZE:
        raise LogStateError(field, f"{len(raw)} bytes", f"{HASH_SIZE} bytes")
    return raw


def _stored_root(text: str, field: str) -> SignedRoot:
    note = text.encode()
    try:
        checkpoint = parse_checkpoint(parse_note(note).text)
    except NoteError as exc:
        raise LogStateError(field, str(exc)[:200], "a signed checkpoint note") from None
    return SignedRoot(checkpoint.size, checkpoint.root, note)


# -- a batch's leaves -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class BatchChange:
    """An envelope the batch delivers: its sequence, collaboration, exact bytes and number
    within the collaboration (0: logged before numbering)."""

    sequence: int
    collab: str
    envelope: bytes
    n: int = 0
    hops: bytes = b""  # relayed: its hop records as signed, part of its leaf


@dataclass(frozen=True, slots=True)
class BatchLeaf:
    """Any other sequence of the batch: the full leaf bytes (``leaf``, when the member may
    see it) or only its RFC 9162 leaf hash (``leaf_hash``); exactly one of them."""

    sequence: int
    leaf: bytes | None = None
    leaf_hash: bytes | None = None


def _gap(start: int, end: int, detail: str) -> LogAlarm:
    return LogAlarm(
        AlarmKind.GAP,
        f"batch ({start}, {end}]: {detail}",
        {"start": start, "end": end, "detail": detail},
    )


def _sequences_in_order(sequences: Iterable[int], what: str, start: int, end: int) -> None:
    previous = start
    for seq in sequences:
        if type(seq) is not int or not start < seq <= end:
            raise _gap(start, end, f"{what} sequence {repr(seq)[:40]} is outside the range")
        if seq <= previous:
            raise _gap(
                start, end, f"{what} sequence {seq} after {previous}: duplicate or out of order"
            )
        previous = seq


def leaf_hashes_for_batch(
    start: int, end: int, changes: Sequence[BatchChange], leaves: Sequence[BatchLeaf]
) -> list[bytes]:
    """The leaf hash of every sequence in ``(start, end]``, in order: an envelope's leaf
    recomputed from its bytes (``envelope_leaf``), a full leaf hashed, a leaf hash taken as
    given.  Whether a hash came where the member should have seen the leaf is the hub's
    visibility rule, not decidable here, so either form is accepted.

    Raises ``LogAlarm`` (GAP) unless ``changes`` and ``leaves`` each list increasing
    sequences within the range and together hold each sequence exactly once, and for a
    ``BatchLeaf`` that is not exactly one of a leaf or a 32-byte hash."""
    if type(start) is not int or type(end) is not int or not 0 <= start <= end <= MAX_SIZE:
        raise _gap(start, end, f"range ({start!r:.40}, {end!r:.40}] is not a range of sequences")
    _sequences_in_order((c.sequence for c in changes), "envelope", start, end)
    _sequences_in_order((x.sequence for x in leaves), "leaf", start, end)
    if len(changes) + len(leaves) != end - start:
        raise _gap(
            start,
            end,
            f"received {len(changes)} envelopes and {len(leaves)} leaves, expected"
            f" {end - start} in all, one per sequence",
        )
    sha256 = hashlib.sha256
    by_seq: dict[int, bytes] = {}
    for c in changes:
        if type(c.n) is not int or not 0 <= c.n <= MAX_ENVELOPE_NUMBER:
            raise _gap(start, end, f"sequence {c.sequence}: envelope number {c.n!r:.40}, expected"
                       f" 0..{MAX_ENVELOPE_NUMBER}")  # fmt: skip
        leaf = envelope_leaf(c.collab, c.envelope, c.n, c.hops)
        by_seq[c.sequence] = sha256(b"\x00" + leaf).digest()
    for x in leaves:
        if x.sequence in by_seq:
            raise _gap(start, end, f"sequence {x.sequence} is both an envelope and a leaf")
        if x.leaf is not None and x.leaf_hash is None:
            by_seq[x.sequence] = sha256(b"\x00" + x.leaf).digest()
        elif x.leaf is None and x.leaf_hash is not None and len(x.leaf_hash) == HASH_SIZE:
            by_seq[x.sequence] = bytes(x.leaf_hash)
        else:
            raise _gap(
                start, end, f"sequence {x.sequence}: expected either leaf bytes or a 32-byte hash"
            )
    # Sequences are distinct and in range, and there are end - start of them: all present.
    return [by_seq[s] for s in range(start + 1, end + 1)]


# -- evidence ---------------------------------------------------------------------------
def _note_evidence(note: bytes) -> str:
    return _b64(note[:MAX_NOTE_BYTES])


def _frontier_evidence(state: LogState) -> dict[str, Any]:
    return {"size": state.size, "hashes": [h.hex() for h in state.hashes]}


def _proof_evidence(proof: Sequence[bytes]) -> list[str]:
    return [bytes(h).hex() if isinstance(h, bytes | bytearray) else "" for h in proof][
        :_EVIDENCE_PROOF
    ]


# -- the verifier -----------------------------------------------------------------------
def hub_key(origin: str, hub_public_key_b64: str) -> Ed25519Verifier:
    """The hub's log key as the note verifier named ``origin``; ``NoteError`` for a key
    that is not base64 of 32 bytes."""
    raw = decode_base64(hub_public_key_b64, "hub public key", "base64")
    if len(raw) != 32:
        raise NoteError("hub public key", "Ed25519 key", f"{len(raw)} bytes", "32 bytes")
    return Ed25519Verifier(origin, raw)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _when(seconds: int) -> str:
    """POSIX ``seconds`` as an ISO time, or as a number where no date has it."""
    try:
        return datetime.fromtimestamp(seconds, UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        return f"POSIX time {seconds}"


class LogVerifier:
    """Checks one hub's log for one member, from ``state`` (None: a fresh member, cursor 0,
    empty frontier).  Each method returns the new ``LogState`` and keeps it as ``state``
    only when everything verified; on ``LogAlarm`` the state is unchanged.  If committing a
    returned state fails, build a new verifier from the state that was stored.

    Raises ``NoteError`` for a hub key that is not base64 of 32 bytes and
    ``LogStateError`` when a stored checkpoint does not verify under the pinned key and
    origin (the state is corrupt or of another hub)."""

    def __init__(
        self,
        origin: str,
        hub_public_key_b64: str,
        state: LogState | None = None,
        max_age: timedelta = timedelta(hours=1),
        clock: Callable[[], datetime] = _utc_now,
        *,
        max_skew: timedelta = DEFAULT_MAX_SKEW,
    ) -> None:
        self.origin = origin
        self._key = hub_key(origin, hub_public_key_b64)
        self._max_age = max_age
        self._max_skew = max_skew
        self._clock = clock
        state = LogState() if state is None else state
        for field, signed in [
            ("checkpoint", state.checkpoint),
            *(("pending", p) for p in state.pending),
        ]:
            if signed is not None:
                self._check_stored(field, signed)
        self._state = state
        # The last note opened and its checkpoint: a hub resends the same note with every
        # batch until it signs a new one, and identical bytes need no second verification.
        self._opened: tuple[bytes, Checkpoint] | None = None

    @property
    def state(self) -> LogState:
        """The state after the last successful call."""
        return self._state

    def _check_stored(self, field: str, signed: SignedRoot) -> None:
        try:
            opened = open_checkpoint(signed.note, self._key, origin=self.origin)
        except NoteError as exc:
            raise LogStateError(
                field, str(exc)[:200], f"a checkpoint signed for {self.origin}"
            ) from None
        if (opened.checkpoint.size, opened.checkpoint.root) != (signed.size, signed.root):
            raise LogStateError(field, "a size and root not the note's", "those the note signs")

    # -- leaves --------------------------------------------------------------------------
    def absorb_batch(self, start_cursor: int, end_cursor: int, items: Sequence[bytes]) -> LogState:
        """Append the leaf hashes ``items`` of sequences ``(start_cursor, end_cursor]`` to
        the frontier, comparing its root with each pending checkpoint it reaches.  The
        result is not proven until ``check_checkpoint`` passes: use ``verify_batch`` to do
        both.  Raises ``LogAlarm``: GAP (the range does not start at the cursor or the
        count differs), ALTERED (a root differs from the one signed for that size)."""
        state = _absorb(self._state, start_cursor, end_cursor, items)
        self._state = state
        return state

    # -- checkpoints ---------------------------------------------------------------------
    def check_checkpoint(self, note: bytes, consistency: Sequence[bytes]) -> LogState:
        """Verify the signed checkpoint ``note`` and the RFC 9162 consistency proof from
        the frontier's size to its size (none from size 0 or at the same size), and make
        it the last verified checkpoint.  Raises ``LogAlarm``: BAD_SIGNATURE,
        WRONG_ORIGIN, STALE, ROLLBACK, FORK, UNSIGNED, ALTERED or BAD_PROOF."""
        state = self._check(self._state, note, consistency)
        self._state = state
        return state

    def verify_batch(
        self,
        start_cursor: int,
        end_cursor: int,
        items: Sequence[bytes],
        note: bytes,
        consistency: Sequence[bytes],
    ) -> LogState:
        """``absorb_batch`` then ``check_checkpoint``, all or nothing: the state changes
        only if both pass.  What the daemon calls for each ``Sync`` batch."""
        absorbed = _absorb(self._state, start_cursor, end_cursor, items)
        state = self._check(absorbed, note, consistency)
        self._state = state
        return state

    def _open(self, note: bytes) -> Checkpoint:
        if self._opened is not None and self._opened[0] == note:
            return self._opened[1]
        if type(note) is not bytes:
            raise LogAlarm(
                AlarmKind.BAD_SIGNATURE,
                f"checkpoint: received a {type(note).__name__}, expected note bytes",
                {},
            )
        try:
            checkpoint = open_checkpoint(note, self._key).checkpoint
        except NoteError as exc:
            raise LogAlarm(
                AlarmKind.BAD_SIGNATURE,
                f"checkpoint does not verify under the hub key for {self.origin}: {exc}",
                {"checkpoint": _note_evidence(note)},
            ) from None
        if checkpoint.origin != self.origin:
            raise LogAlarm(
                AlarmKind.WRONG_ORIGIN,
                f"checkpoint signed for origin {checkpoint.origin[:80]!r}, expected"
                f" {self.origin!r}",
                {"checkpoint": _note_evidence(note)},
            )
        self._opened = (note, checkpoint)
        return checkpoint

    def _check_time(self, checkpoint: Checkpoint, note: bytes) -> None:
        now = self._clock().timestamp()
        stamp = checkpoint.time
        evidence = {"checkpoint": _note_evidence(note), "now": int(now)}
        what = f"checkpoint of size {checkpoint.size}"
        if stamp is None:
            raise LogAlarm(
                AlarmKind.STALE,
                f"{what} carries no sighub-time line, so its freshness cannot be checked",
                evidence,
            )
        # In seconds, not datetimes: a hostile time can be up to 2**63 - 1.
        age = now - stamp
        if age > self._max_age.total_seconds():
            raise LogAlarm(
                AlarmKind.STALE,
                f"{what} signed at {_when(stamp)}, {int(age)} s ago, older than the limit of"
                f" {self._max_age}: the hub may be freezing this member on an old tree",
                evidence,
            )
        if -age > self._max_skew.total_seconds():
            raise LogAlarm(
                AlarmKind.STALE,
                f"{what} signed at {_when(stamp)}, {int(-age)} s ahead of this clock, more than"
                f" {self._max_skew}: a future time would keep a frozen tree looking fresh",
                evidence,
            )

    def _check(self, state: LogState, note: bytes, consistency: Sequence[bytes]) -> LogState:
        checkpoint = self._open(note)
        self._check_time(checkpoint, note)
        new = SignedRoot(checkpoint.size, checkpoint.root, note)
        last = state.checkpoint
        if last is not None:
            _against_last(last, new)
        if new.size < state.size:
            raise LogAlarm(
                AlarmKind.UNSIGNED,
                f"leaves served up to sequence {state.size}, but the checkpoint that came"
                f" with them covers only {new.size}",
                {"checkpoint": _note_evidence(note), "frontier": _frontier_evidence(state)},
            )
        _prove_consistency(state, new, consistency)
        pending = state.pending
        if new.size > state.size and (not pending or pending[-1].size < new.size):
            # Past the cap the newest replaces the previous newest (see MAX_PENDING).
            kept = pending if len(pending) < MAX_PENDING else pending[:-1]
            pending = (*kept, new)
        return replace(state, checkpoint=new, pending=pending)


def _against_last(last: SignedRoot, new: SignedRoot) -> None:
    evidence = {"checkpoint": _note_evidence(new.note), "previous": _note_evidence(last.note)}
    if new.size < last.size:
        raise LogAlarm(
            AlarmKind.ROLLBACK,
            f"checkpoint of size {new.size} after one of size {last.size} was verified",
            evidence,
        )
    if new.size == last.size and new.root != last.root:
        raise LogAlarm(
            AlarmKind.FORK,
            f"two signed checkpoints of size {new.size} with roots {last.root.hex()} and"
            f" {new.root.hex()}",
            evidence,
        )


def _prove_consistency(state: LogState, new: SignedRoot, proof: Sequence[bytes]) -> None:
    """Check that the frontier's tree is a prefix of ``new``'s."""
    if isinstance(proof, str | bytes | bytearray) or not isinstance(proof, Sequence):
        raise LogAlarm(
            AlarmKind.BAD_PROOF,
            f"consistency proof: received a {type(proof).__name__}, expected a list of hashes",
            {"checkpoint": _note_evidence(new.note), "frontier": _frontier_evidence(state)},
        )
    evidence = {
        "checkpoint": _note_evidence(new.note),
        "frontier": _frontier_evidence(state),
        "proof": _proof_evidence(proof),
    }
    if state.size in (0, new.size):
        # From the empty tree nothing needs proving (RFC 9162 defines no such proof); at the
        # same size the proof is empty and the roots must be equal.
        if proof:
            raise LogAlarm(
                AlarmKind.BAD_PROOF,
                f"consistency proof from size {state.size} to {new.size}: received"
                f" {len(proof)} hashes, expected none",
                evidence,
            )
        computed = state.frontier.root() if state.size else EMPTY_ROOT
        if new.size == state.size and computed != new.root:
            raise LogAlarm(
                AlarmKind.ALTERED,
                f"the leaves served make root {computed.hex()} at size {new.size}, but the"
                f" hub signed root {new.root.hex()}: it dropped, reordered or altered leaves",
                {**evidence, "computed_root": computed.hex()},
            )
        return
    try:
        verify_consistency(state.size, new.size, state.frontier.root(), new.root, proof)
    except ProofError as exc:
        raise LogAlarm(
            AlarmKind.BAD_PROOF,
            f"the leaves served up to sequence {state.size} are not a prefix of the signed"
            f" tree of size {new.size}: {exc}",
            evidence,
        ) from None


def _extend(frontier: Frontier, items: Sequence[bytes], start: int, end: int) -> None:
    try:
        frontier.extend(items)
    except ProofError as exc:
        raise _gap(start, end, f"a leaf hash is malformed: {exc}") from None


def _absorb(state: LogState, start: int, end: int, items: Sequence[bytes]) -> LogState:
    if start != state.size or type(end) is not int or not start <= end <= MAX_SIZE:
        raise _gap(start, end, f"expected a range starting at the member's cursor {state.size}")
    if len(items) != end - start:
        raise _gap(start, end, f"received {len(items)} leaves, expected {end - start}")
    frontier = state.frontier
    pending = list(state.pending)
    at = 0
    while pending and pending[0].size <= end:
        # Stop at each size a checkpoint signed: its root must be the one computed there.
        signed = pending.pop(0)
        _extend(frontier, items[at : signed.size - start], start, end)
        at = signed.size - start
        computed = frontier.root()
        if computed != signed.root:
            raise LogAlarm(
                AlarmKind.ALTERED,
                f"the leaves served make root {computed.hex()} at size {signed.size}, but"
                f" the hub signed root {signed.root.hex()} for that size: it dropped,"
                " reordered or altered leaves after proving the tree",
                {
                    "checkpoint": _note_evidence(signed.note),
                    "computed_root": computed.hex(),
                    "frontier": _frontier_evidence(state),
                    "start": start,
                    "end": end,
                    "leaf_hashes": [h.hex() for h in items[:_EVIDENCE_HASHES]],
                },
            )
    _extend(frontier, items[at:], start, end)
    return replace(state, size=frontier.size, hashes=frontier.hashes, pending=tuple(pending))


# -- key transparency -------------------------------------------------------------------
def _encryption_id(leaf: Mapping[str, Any]) -> str | None:
    """The id of the encryption key a leaf carries (None: it carries none); a value that
    is not base64 gets an id no member holds."""
    raw = leaf.get("encryption_key")
    if raw is None:
        return None
    try:
        return encryption_key_id(base64.b64decode(str(raw), validate=True))
    except ValueError:  # binascii.Error is one
        return f"(not base64: {str(raw)[:40]!r})"


def own_name_alarm(
    member: str,
    leaf: Mapping[str, Any],
    my_key_ids: Collection[str],
    revoked_by_me: Collection[str] = (),
) -> LogAlarm | None:
    """The alarm for a directory leaf (as ``_leaves.parse_leaf`` returns it) under this
    member's own name that the member did not make, or None.

    - ``member.enroll`` / ``key.rotate`` / ``key.attest``: the key must be one of
      ``my_key_ids`` (every key this member generated); another is a key planted in its
      name, with which the hub could sign envelopes as this member.
    - ``key.revoke``: the key must be in ``revoked_by_me`` (keys this member revoked or
      rotated away from itself).  An admin's revocation is reported too: legitimate or
      not, it silences the member's envelopes, and the member must learn of it.
    - ``key.encryption``, and ``member.enroll`` with an encryption key: that key's id
      (``_hpke.encryption_key_id``) must be in ``my_key_ids`` too; another is a key the
      hub could open what others seal to this member with.
    - Other leaves (status, roles, collaborations, envelopes) carry no key: None."""
    if leaf.get("member") != member:
        return None
    kind, key_id = leaf.get("type"), leaf.get("key_id")
    encryption = _encryption_id(leaf) if kind in ("member.enroll", "key.encryption") else None
    if kind in ("member.enroll", "key.rotate", "key.attest") and key_id not in my_key_ids:
        detail = f"published key {key_id!r} under member {member!r} ({kind}), a key it did not make"
    elif encryption is not None and encryption not in my_key_ids:
        detail = (
            f"published encryption key {encryption!r} under member {member!r} ({kind}),"
            " a key it did not make"
        )
    elif kind == "key.revoke" and key_id not in revoked_by_me:
        detail = f"revoked key {key_id!r} of member {member!r}, which the member did not revoke"
    else:
        return None
    return LogAlarm(AlarmKind.FOREIGN_KEY, detail, {"member": member, "leaf": dict(leaf)})
