"""The member's log verifier: every honest sync verifies whatever its batch and checkpoint
shapes, and each lie a hub can tell is caught with the right alarm and its evidence."""

from __future__ import annotations

import base64
import dataclasses
import json
import sqlite3
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sighub.client import _leaves as lv
from sighub.client._checkpoint import Checkpoint, sign_checkpoint
from sighub.client._errors import IntegrityAlarm
from sighub.client._hpke import ProvedKey
from sighub.client._logcheck import (
    MAX_PENDING,
    AlarmKind,
    BatchChange,
    BatchLeaf,
    LogAlarm,
    LogState,
    LogStateError,
    LogVerifier,
    leaf_hashes_for_batch,
    own_name_alarm,
)
from sighub.client._merkle import EMPTY_ROOT, consistency_proof, leaf_hash, root
from sighub.client._note import Ed25519Signer, NoteError
from sighub.hub._tlog import Tlog

ORIGIN = "sighub/hub-a"
HUB = Ed25519Signer(ORIGIN, bytes(range(32)))
HUB_KEY = base64.b64encode(HUB.public_key).decode()
NOW = datetime(2030, 1, 1, tzinfo=UTC)
NOW_S = int(NOW.timestamp())
MAX_AGE = timedelta(minutes=10)


def _clock() -> datetime:
    return NOW


def verifier(state: LogState | None = None) -> LogVerifier:
    return LogVerifier(ORIGIN, HUB_KEY, state, MAX_AGE, _clock)


def note(
    size: int,
    root_hash: bytes,
    *,
    time: int | None = NOW_S,
    signer: Ed25519Signer = HUB,
    origin: str = ORIGIN,
) -> bytes:
    checkpoint = Checkpoint(origin, size, root_hash)
    if time is not None:
        checkpoint = checkpoint.with_time(time)
    return sign_checkpoint(checkpoint, signer)


# -- an honest hub ----------------------------------------------------------------------
@dataclass
class Log:
    """Leaves as a hub logs them: envelopes (delivered as changes) and other leaves, some
    visible to the member (full bytes), others only as hashes."""

    entries: list[tuple[str, Any]] = field(default_factory=list)
    hashes: list[bytes] = field(default_factory=list)

    def add_envelope(self, i: int) -> None:
        collab, envelope = "sg-🧀🍕", f'{{"envelope":{i},"from":"s3ller"}}'.encode()
        self.entries.append(("change", (collab, envelope)))
        self.hashes.append(leaf_hash(lv.envelope_leaf(collab, envelope)))

    def add_leaf(self, i: int, visible: bool) -> None:
        raw = lv.collab_membership("sg-carrd", f"member-{i}", joined=True)
        self.entries.append(("leaf" if visible else "hash", raw))
        self.hashes.append(leaf_hash(raw))

    def grow(self, count: int) -> None:
        for _ in range(count):
            i = len(self.hashes)
            if i % 3 == 0:
                self.add_envelope(i)
            else:
                self.add_leaf(i, visible=i % 3 == 1)

    def batch(self, start: int, end: int) -> tuple[list[BatchChange], list[BatchLeaf]]:
        changes, leaves = [], []
        for seq in range(start + 1, end + 1):
            kind, value = self.entries[seq - 1]
            if kind == "change":
                changes.append(BatchChange(seq, *value))
            elif kind == "leaf":
                leaves.append(BatchLeaf(seq, leaf=value))
            else:
                leaves.append(BatchLeaf(seq, leaf_hash=leaf_hash(value)))
        return changes, leaves

    def items(self, start: int, end: int) -> list[bytes]:
        return leaf_hashes_for_batch(start, end, *self.batch(start, end))

    def root(self, size: int) -> bytes:
        return root(self.hashes[:size])

    def checkpoint(self, size: int, time: int = NOW_S) -> bytes:
        return note(size, self.root(size), time=time)

    def proof(self, size1: int, size2: int) -> list[bytes]:
        if size1 in (0, size2):
            return []
        return consistency_proof(size1, size2, self.hashes)


def grown(count: int) -> Log:
    log = Log()
    log.grow(count)
    return log


def sync(v: LogVerifier, log: Log, start: int, end: int, size: int) -> LogState:
    return v.verify_batch(
        start, end, log.items(start, end), log.checkpoint(size), log.proof(end, size)
    )


def alarm(kind: AlarmKind, call: Any, *args: Any) -> LogAlarm:
    with pytest.raises(LogAlarm) as caught:
        call(*args)
    assert caught.value.kind is kind, str(caught.value)
    assert isinstance(caught.value, IntegrityAlarm)
    assert str(caught.value).startswith(f"hub log alarm ({kind.value}): ")
    json.dumps(caught.value.evidence)  # JSON-able as it is, for the caller to store
    assert caught.value.evidence["alarm"] == kind.value
    return caught.value


def evidence_note(value: str) -> bytes:
    return base64.b64decode(value)


# -- honest logs ------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(
    total=st.integers(0, 150),
    cuts=st.lists(st.integers(0, 150), max_size=8),
    lags=st.lists(st.integers(0, 60), min_size=9, max_size=9),
    reload_at=st.sets(st.integers(0, 9)),
)
def test_every_honest_sync_verifies_and_the_frontier_makes_the_root(
    total: int, cuts: list[int], lags: list[int], reload_at: set[int]
) -> None:
    log = grown(total)
    ends = sorted({min(c, total) for c in cuts} | {total})
    v = verifier()
    start, signed, sizes = 0, 0, set()
    for i, end in enumerate(ends):
        # The hub's checkpoint covers the batch and may run ahead of it, never back.
        signed = max(signed, min(end + lags[i], total))
        sizes.add(signed)
        state = sync(v, log, start, end, signed)
        assert state.size == end and state.frontier.root() == log.root(end)
        assert state.checkpoint is not None and state.checkpoint.size == signed
        assert [p.size for p in state.pending] == sorted(s for s in sizes if s > end)
        if i in reload_at:  # stored and loaded as the daemon does between runs
            loaded = LogState.from_dict(json.loads(json.dumps(state.to_dict())))
            assert loaded == state
            v = verifier(loaded)
        start = end
    assert v.state.size == total and v.state.frontier.root() == root(log.hashes)


def test_a_fresh_member_accepts_the_empty_tree_and_refuses_a_wrong_empty_root() -> None:
    v = verifier()
    state = v.check_checkpoint(note(0, EMPTY_ROOT), [])
    assert state.checkpoint is not None and state.checkpoint.size == 0 and not state.pending
    a = alarm(AlarmKind.ALTERED, verifier().check_checkpoint, note(0, b"\x01" * 32), [])
    assert a.evidence["computed_root"] == EMPTY_ROOT.hex()
    log = grown(3)
    alarm(AlarmKind.BAD_PROOF, verifier().check_checkpoint, log.checkpoint(3), log.hashes[:1])


def test_hub_proofs_from_its_sqlite_tree_verify() -> None:
    log = grown(300)
    conn = sqlite3.connect(":memory:", isolation_level=None)
    tlog = Tlog()
    tlog.create_tables(conn)
    v = verifier()
    start = 0
    for end in (1, 2, 5, 64, 65, 200, 256, 300):
        ahead = min(end + 37, 300)  # the hub has grown past the batch
        conn.execute("BEGIN")
        tlog.append(conn, log.hashes[tlog.size(conn) : ahead])
        conn.execute("COMMIT")
        signed = note(ahead, tlog.root(conn))
        v.verify_batch(
            start, end, log.items(start, end), signed, tlog.consistency_proof(conn, end, ahead)
        )
        start = end
    assert v.state.frontier.root() == tlog.root(conn) == root(log.hashes)


def test_a_lagging_member_catches_up_through_many_pending_checkpoints() -> None:
    log = grown(400)
    v = verifier()
    # While the member syncs 1 leaf per batch, the hub's checkpoint grows by 2 each time.
    for end in range(1, 100):
        state = sync(v, log, end - 1, end, 100 + 2 * end)
        assert len(state.pending) <= MAX_PENDING
    assert state.pending[-1].size == 298  # the newest is always kept
    sizes = [p.size for p in state.pending]
    assert sizes == sorted(set(sizes)) and sizes[0] == 102
    sync(v, log, 99, 400, 400)
    assert v.state.pending == () and v.state.frontier.root() == root(log.hashes)


def test_the_same_note_twice_is_accepted_and_a_later_freeze_is_still_caught() -> None:
    log = grown(20)
    signed = log.checkpoint(20)
    v = verifier()
    v.verify_batch(0, 10, log.items(0, 10), signed, log.proof(10, 20))
    v.verify_batch(10, 20, log.items(10, 20), signed, [])
    late = LogVerifier(ORIGIN, HUB_KEY, v.state, MAX_AGE, lambda: NOW + MAX_AGE * 2)
    alarm(AlarmKind.STALE, late.check_checkpoint, signed, [])


# -- lies -------------------------------------------------------------------------------
def test_a_dropped_leaf_is_a_gap() -> None:
    log = grown(12)
    changes, leaves = log.batch(0, 12)
    a = alarm(AlarmKind.GAP, leaf_hashes_for_batch, 0, 12, changes, leaves[1:])
    assert "expected 12" in str(a)
    v = verifier()
    alarm(AlarmKind.GAP, v.absorb_batch, 0, 12, log.items(0, 12)[:-1])
    alarm(AlarmKind.GAP, v.absorb_batch, 1, 12, log.items(1, 12))  # not from the cursor
    assert v.state == LogState()


def test_a_dropped_leaf_with_renumbering_breaks_the_signed_root() -> None:
    log = grown(12)
    items = log.items(0, 12)
    renumbered = items[:4] + items[5:] + [items[11]]  # leaf 5 gone, the rest shifted
    a = alarm(AlarmKind.ALTERED, verifier().verify_batch, 0, 12, renumbered, log.checkpoint(12), [])
    assert a.evidence["computed_root"] == root(renumbered).hex()
    big = grown(20)
    a = alarm(
        AlarmKind.BAD_PROOF,
        verifier().verify_batch,
        0,
        12,
        renumbered,
        big.checkpoint(20),
        big.proof(12, 20),
    )
    assert a.evidence["proof"] == [h.hex() for h in big.proof(12, 20)]
    assert evidence_note(a.evidence["checkpoint"]) == big.checkpoint(20)


def test_reordered_leaves_are_caught() -> None:
    log = grown(10)
    changes, leaves = log.batch(0, 10)
    alarm(AlarmKind.GAP, leaf_hashes_for_batch, 0, 10, changes, leaves[::-1])
    duplicated = [*leaves[:-1], dataclasses.replace(leaves[-1], sequence=leaves[0].sequence)]
    alarm(AlarmKind.GAP, leaf_hashes_for_batch, 0, 10, changes, duplicated)
    # Same sequences, contents swapped: the root is not the one signed.
    swapped = [
        dataclasses.replace(c, sequence=s) for c, s in zip(changes, [4, 1, 7, 10], strict=True)
    ]
    items = leaf_hashes_for_batch(0, 10, sorted(swapped, key=lambda c: c.sequence), leaves)
    alarm(AlarmKind.ALTERED, verifier().verify_batch, 0, 10, items, log.checkpoint(10), [])


def test_malformed_batches_are_refused() -> None:
    log = grown(6)
    changes, leaves = log.batch(0, 6)
    both = BatchLeaf(leaves[0].sequence, leaf=b"x", leaf_hash=b"\x00" * 32)
    short = BatchLeaf(leaves[0].sequence, leaf_hash=b"\x00" * 31)
    for bad in (both, short, BatchLeaf(leaves[0].sequence)):
        alarm(AlarmKind.GAP, leaf_hashes_for_batch, 0, 6, changes, [bad, *leaves[1:]])
    clash = BatchLeaf(changes[0].sequence, leaf=b"x")
    alarm(AlarmKind.GAP, leaf_hashes_for_batch, 0, 6, changes, [clash, *leaves[1:]])
    outside = dataclasses.replace(leaves[-1], sequence=7)
    alarm(AlarmKind.GAP, leaf_hashes_for_batch, 0, 6, changes, [*leaves[:-1], outside])
    alarm(AlarmKind.GAP, leaf_hashes_for_batch, 6, 0, [], [])
    alarm(AlarmKind.GAP, verifier().absorb_batch, 0, 2, [b"\x00" * 32, b"\x00" * 5])


def test_an_altered_envelope_is_caught_at_once_or_when_its_size_is_reached() -> None:
    log = grown(30)
    changes, leaves = log.batch(0, 10)
    altered = [changes[0], dataclasses.replace(changes[1], envelope=b'{"envelope":"forged"}')]
    items = leaf_hashes_for_batch(0, 10, altered + changes[2:], leaves)
    alarm(AlarmKind.ALTERED, verifier().verify_batch, 0, 10, items, log.checkpoint(10), [])
    alarm(
        AlarmKind.BAD_PROOF,
        verifier().verify_batch,
        0,
        10,
        items,
        log.checkpoint(20),
        log.proof(10, 20),
    )
    # Proven first, altered later: the hub signed size 20 before serving (10, 20].  A
    # forked tree built on the altered leaves is then caught at size 20, not trusted.
    v = verifier()
    sync(v, log, 0, 10, 20)
    forked = Log(list(log.entries), list(log.hashes))
    forked.hashes[14] = leaf_hash(lv.envelope_leaf("sg-🧀🍕", b"forged"))
    a = alarm(
        AlarmKind.ALTERED,
        v.verify_batch,
        10,
        25,
        forked.hashes[10:25],
        forked.checkpoint(25),
        forked.proof(25, 25),
    )
    assert evidence_note(a.evidence["checkpoint"]) == log.checkpoint(20)
    assert a.evidence["computed_root"] == root(forked.hashes[:20]).hex()
    assert v.state.size == 10  # nothing of the failed batch was kept


def test_rewritten_history_is_a_fork_with_both_notes_kept() -> None:
    log = grown(10)
    v = verifier()
    sync(v, log, 0, 10, 10)
    rewritten = note(10, b"\x07" * 32, time=NOW_S + 1)
    a = alarm(AlarmKind.FORK, v.check_checkpoint, rewritten, [])
    assert evidence_note(a.evidence["previous"]) == log.checkpoint(10)
    assert evidence_note(a.evidence["checkpoint"]) == rewritten
    # Rewritten below the cursor and extended: not a prefix of what was synced.
    other = grown(20)
    other.hashes[3] = leaf_hash(b"rewritten")
    alarm(AlarmKind.BAD_PROOF, v.check_checkpoint, other.checkpoint(20), other.proof(10, 20))


def test_a_fork_ahead_of_the_frontier_is_caught_too() -> None:
    log = grown(30)
    v = verifier()
    sync(v, log, 0, 5, 20)
    a = alarm(AlarmKind.FORK, v.check_checkpoint, note(20, b"\x05" * 32), log.proof(5, 20))
    assert evidence_note(a.evidence["previous"]) == log.checkpoint(20)


def test_a_smaller_checkpoint_is_a_rollback() -> None:
    log = grown(20)
    v = verifier()
    sync(v, log, 0, 10, 20)
    a = alarm(AlarmKind.ROLLBACK, v.check_checkpoint, log.checkpoint(15), log.proof(10, 15))
    assert evidence_note(a.evidence["previous"]) == log.checkpoint(20)
    assert evidence_note(a.evidence["checkpoint"]) == log.checkpoint(15)
    sync(v, log, 10, 20, 20)
    alarm(AlarmKind.ROLLBACK, v.check_checkpoint, log.checkpoint(12), [])


def test_leaves_beyond_the_checkpoint_are_unsigned() -> None:
    log = grown(20)
    v = verifier()
    sync(v, log, 0, 5, 5)
    alarm(
        AlarmKind.UNSIGNED,
        v.verify_batch,
        5,
        20,
        log.items(5, 20),
        log.checkpoint(10),
        log.proof(10, 10),
    )


def test_stale_future_and_timeless_checkpoints_are_refused() -> None:
    log = grown(4)
    v = verifier()
    old = NOW_S - int(MAX_AGE.total_seconds()) - 1
    a = alarm(AlarmKind.STALE, v.check_checkpoint, log.checkpoint(4, time=old), [])
    assert "freezing" in str(a) and a.evidence["now"] == NOW_S
    alarm(AlarmKind.STALE, v.check_checkpoint, log.checkpoint(4, time=NOW_S + 3600), [])
    alarm(AlarmKind.STALE, v.check_checkpoint, log.checkpoint(4, time=2**63 - 1), [])
    alarm(AlarmKind.STALE, v.check_checkpoint, note(4, log.root(4), time=None), [])
    assert v.state == LogState()
    v.check_checkpoint(log.checkpoint(4, time=NOW_S - int(MAX_AGE.total_seconds())), [])


def test_another_key_or_origin_is_refused() -> None:
    log = grown(4)
    v = verifier()
    impostor = Ed25519Signer(ORIGIN, b"\x09" * 32)
    a = alarm(
        AlarmKind.BAD_SIGNATURE, v.check_checkpoint, note(4, log.root(4), signer=impostor), []
    )
    assert evidence_note(a.evidence["checkpoint"]) == note(4, log.root(4), signer=impostor)
    other_name = Ed25519Signer("sighub/hub-b", bytes(range(32)))
    alarm(AlarmKind.BAD_SIGNATURE, v.check_checkpoint, note(4, log.root(4), signer=other_name), [])
    wrong = note(4, log.root(4), origin="sighub/hub-b")
    alarm(AlarmKind.WRONG_ORIGIN, v.check_checkpoint, wrong, [])
    tampered = log.checkpoint(4).replace(b"\n4\n", b"\n5\n")
    alarm(AlarmKind.BAD_SIGNATURE, v.check_checkpoint, tampered, [])
    alarm(AlarmKind.BAD_SIGNATURE, v.check_checkpoint, b"\xff" * 100, [])
    alarm(AlarmKind.BAD_SIGNATURE, v.check_checkpoint, "text", [])


def test_bad_consistency_proofs_are_refused() -> None:
    log = grown(40)
    v = verifier()
    sync(v, log, 0, 13, 13)
    proof = log.proof(13, 40)
    flipped = [proof[0][:-1] + bytes([proof[0][-1] ^ 1]), *proof[1:]]
    for bad in (flipped, proof[:-1], [*proof, proof[0]], [b"\x00" * 31, *proof[1:]]):
        alarm(AlarmKind.BAD_PROOF, v.check_checkpoint, log.checkpoint(40), bad)
    alarm(AlarmKind.BAD_PROOF, v.check_checkpoint, log.checkpoint(40), b"\x00" * 32)
    alarm(AlarmKind.BAD_PROOF, v.check_checkpoint, log.checkpoint(13), proof[:1])
    alarm(AlarmKind.BAD_PROOF, verifier().check_checkpoint, log.checkpoint(40), proof)
    assert v.state.checkpoint is not None and v.state.checkpoint.size == 13
    v.check_checkpoint(log.checkpoint(40), proof)


# -- state ------------------------------------------------------------------------------
def _state(log: Log) -> LogState:
    v = verifier()
    sync(v, log, 0, 5, 9)
    return v.state


def test_state_round_trips_through_json() -> None:
    state = _state(grown(9))
    stored = json.loads(json.dumps(state.to_dict()))
    assert set(stored) == {"v", "size", "frontier", "checkpoint", "pending"}
    assert LogState.from_dict(stored) == state
    assert LogState.from_dict(LogState().to_dict()) == LogState()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: [], "document"),
        (lambda d: {**d, "extra": 1}, "keys"),
        (lambda d: {**d, "v": 2}, "v"),
        (lambda d: {**d, "v": True}, "v"),
        (lambda d: {**d, "size": True}, "size"),
        (lambda d: {**d, "size": -1}, "size"),
        (lambda d: {**d, "size": 2**64}, "size"),
        (lambda d: {**d, "size": 7}, "frontier"),
        (lambda d: {**d, "frontier": "AAAA"}, "frontier"),
        (lambda d: {**d, "frontier": [d["frontier"][0], 1]}, "frontier"),
        (lambda d: {**d, "frontier": [d["frontier"][0] + "=", d["frontier"][1]]}, "frontier[0]"),
        (lambda d: {**d, "frontier": [d["frontier"][0], "AAAA"]}, "frontier[1]"),
        (lambda d: {**d, "checkpoint": 5}, "checkpoint"),
        (lambda d: {**d, "checkpoint": "not a note"}, "checkpoint"),
        (lambda d: {**d, "pending": []}, "pending"),
        (lambda d: {**d, "pending": d["pending"] * 2}, "pending"),
        (lambda d: {**d, "pending": d["pending"] * (MAX_PENDING + 1)}, "pending"),
        (lambda d: {**d, "checkpoint": None}, "pending"),
        (lambda d: {**d, "size": 9}, "pending"),
    ],
)
def test_corrupt_state_is_refused(change: Any, field: str) -> None:
    stored = _state(grown(9)).to_dict()
    with pytest.raises(LogStateError) as caught:
        LogState.from_dict(change(stored))
    assert caught.value.field == field, str(caught.value)
    assert str(caught.value).startswith(f"log state: {field}: received ")


def test_state_of_another_hub_or_with_a_forged_root_is_refused() -> None:
    state = _state(grown(9))
    with pytest.raises(LogStateError, match="checkpoint"):
        LogVerifier("sighub/hub-b", HUB_KEY, state, MAX_AGE, _clock)
    other = base64.b64encode(Ed25519Signer(ORIGIN, b"\x02" * 32).public_key).decode()
    with pytest.raises(LogStateError, match="checkpoint"):
        LogVerifier(ORIGIN, other, state, MAX_AGE, _clock)
    assert state.checkpoint is not None
    forged = dataclasses.replace(state.checkpoint, root=b"\x00" * 32)
    with pytest.raises(LogStateError, match="a size and root not the note's"):
        verifier(dataclasses.replace(state, checkpoint=forged, pending=(forged,)))
    with pytest.raises(NoteError):
        LogVerifier(ORIGIN, "AAAA", None, MAX_AGE, _clock)


# -- key transparency -------------------------------------------------------------------
def test_own_name_alarm_reports_keys_and_revocations_the_member_did_not_make() -> None:
    key = bytes(range(32))
    leaf = lv.parse_leaf

    def check(raw: bytes, mine: set[str], revoked: Collection[str] = ()) -> LogAlarm | None:
        return own_name_alarm("s3ller", leaf(raw), mine, revoked)

    enroll = lv.member_enroll("s3ller", "identity--1", ["publisher"], "ed25519:aa", key)
    assert check(enroll, {"ed25519:aa"}) is None
    planted = check(enroll, {"ed25519:bb"})
    assert planted is not None and planted.kind is AlarmKind.FOREIGN_KEY
    assert "'ed25519:aa'" in str(planted) and planted.evidence["leaf"]["type"] == "member.enroll"
    rotate = lv.key_rotate("s3ller", "ed25519:cc", key, "ed25519:aa", b"\x01" * 64)
    assert check(rotate, {"ed25519:aa", "ed25519:cc"}) is None
    assert check(rotate, {"ed25519:aa"}) is not None
    revoke = lv.key_revoke("s3ller", "ed25519:aa")
    assert check(revoke, {"ed25519:aa"}, {"ed25519:aa"}) is None
    revoked = check(revoke, {"ed25519:aa"})
    assert revoked is not None and "did not revoke" in str(revoked)
    assert check(lv.key_revoke("someone-else", "ed25519:aa"), set()) is None
    assert check(lv.member_enroll("other", "i", [], "ed25519:zz", key), set()) is None
    assert check(lv.member_status("s3ller", "suspended"), set()) is None
    assert check(lv.envelope_leaf("sg", b"x"), set()) is None


def test_own_name_alarm_reports_encryption_keys_the_member_did_not_make() -> None:
    signing = bytes(range(32))
    mine, planted = ProvedKey("s", b"m" * 32, b"p" * 64), ProvedKey("s", b"x" * 32, b"p" * 64)

    def check(raw: bytes, ids: set[str]) -> LogAlarm | None:
        return own_name_alarm("s3ller", lv.parse_leaf(raw), ids)

    ours = {"ed25519:aa", mine.key_id}
    enroll = lv.member_enroll("s3ller", "identity--1", ["publisher"], "ed25519:aa", signing,
                              None, mine)  # fmt: skip
    assert check(enroll, ours) is None
    # its own signing key, another's encryption key: the hub could open what is sealed to it
    foreign = lv.member_enroll("s3ller", "identity--1", ["publisher"], "ed25519:aa", signing,
                               None, planted)  # fmt: skip
    alarm = check(foreign, ours)
    assert alarm is not None and alarm.kind is AlarmKind.FOREIGN_KEY
    assert planted.key_id in str(alarm) and "encryption key" in str(alarm)
    assert check(lv.key_encryption("s3ller", mine, "ed25519:aa"), ours) is None
    alarm = check(lv.key_encryption("s3ller", planted, "ed25519:aa"), ours)
    assert alarm is not None and planted.key_id in str(alarm)
    assert check(lv.key_encryption("other", planted, "ed25519:zz"), ours) is None
    # a value that is not base64 alarms too, never as "mine"
    doc = lv.parse_leaf(lv.key_encryption("s3ller", mine, "ed25519:aa"))
    alarm = own_name_alarm("s3ller", {**doc, "encryption_key": "%%"}, ours)
    assert alarm is not None and "not base64" in str(alarm)
