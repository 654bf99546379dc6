"""The daemon verifies the hub's transparency log (issue 10, items 4 and 5): on real hub
processes for the honest path, and against a lying hub (a fake gRPC server signing with
the real hub's log key) that plants a key, drops an envelope, rewrites history, rolls
back or freezes: each caught, kept as evidence, nothing applied."""

from __future__ import annotations

import base64
import json
import shutil
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sighub.client import _leaves
from sighub.client._checkpoint import parse_checkpoint
from sighub.client._daemon import LOCAL_DB, SyncDaemon
from sighub.client._enckey import rotate_encryption_key
from sighub.client._enroll import rotate_signing_key
from sighub.client._envelope import key_id, seal
from sighub.client._errors import EXIT_ALARM
from sighub.client._grant import Chain, bind_key, issue_grant
from sighub.client._hpke import EncryptionKey, ProvedKey, prove
from sighub.client._keyring import NO_CHAIN
from sighub.client._keys import identity_for
from sighub.client._logcheck import AlarmKind, LogAlarm, LogState
from sighub.client._logguard import STATE_KEY, AlarmRecorded
from sighub.client._note import parse_note
from sighub.client._proto import directory_pb2, sync_pb2
from sighub.client._rpc import LogLeaf
from sighub.client._stix import build_bundle
from sighub.hub._cli import main as sighub
from sighub.hub._store import TLOG
from tests.conftest import SIGHUB
from tests.hub.conftest import ROOT, HubProcess, Member, running_world
from tests.hub.lyinghub import Entry, FakeLog, LyingHub


@pytest.fixture(scope="module")
def logw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """``running_world`` with one publisher, pub."""
    with running_world(
        tmp_path_factory.mktemp("logw"), ("pub",), publishes_per_minute=6000, burst=1000
    ) as w:
        yield w


@pytest.fixture(autouse=True)
def _quiet_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("CRITICAL", logger="sighub.sync")


def _copy(m: Member, to: Path) -> Path:
    """A second data directory of member ``m`` (its keys and credential, no local store)."""
    shutil.copytree(m.data, to, ignore=shutil.ignore_patterns("local.db*"))
    return to


def _synced_copy(m: Member, to: Path, fake: LyingHub) -> Path:
    """``_copy`` of ``m``, synced once from ``fake`` (honest until a test makes it lie)."""
    victim = _copy(m, to)
    d = SyncDaemon(victim, insecure=True, address=fake.address, workers=0)
    d.sync_once()
    d.close()
    return victim


def _state(data: Path) -> LogState | None:
    c = sqlite3.connect(data / LOCAL_DB)
    try:
        row = c.execute("SELECT value FROM meta WHERE key=?", (STATE_KEY,)).fetchone()
    finally:
        c.close()
    return None if row is None else LogState.from_dict(json.loads(row[0]))


def _hub_root(h: HubProcess, size: int) -> bytes:
    with h.db() as c:
        return TLOG.root(c, size)


def _hidden(h: HubProcess, collab: str) -> int:
    with h.db() as c:
        return int(
            c.execute(
                "SELECT COUNT(*) FROM leaves WHERE collab IS NOT NULL AND collab != ?", (collab,)
            ).fetchone()[0]
        )


# -- the honest path, on a real hub ---------------------------------------------------------
def test_sync_verifies_the_log_and_resumes_across_restarts(logw: dict[str, Any]) -> None:
    h, pub, sub, outsider = logw["hub"], logw["pub"], logw["sub"], logw["outsider"]
    pub.publish(pub.indicators(2))
    outsider.publish(outsider.indicators(1, "other"), collab="other")
    assert _hidden(h, "sg-csam") >= 3  # other's add, epoch, join, envelope: hashes for sub
    d = SyncDaemon(sub.data, address=h.address, workers=0, batch_size=1)
    report = d.sync_once()
    d.close()
    state = _state(sub.data)
    assert state is not None and state.checkpoint is not None
    assert state.size == report.cursor == report.log_size == state.checkpoint.size
    assert bytes.fromhex(report.log_root) == state.checkpoint.root == _hub_root(h, state.size)
    # a restart: a new daemon resumes from the stored state, hashes only again included
    outsider.publish(outsider.indicators(1, "other"), collab="other")
    pub.publish(pub.indicators(1))
    d = SyncDaemon(sub.data, address=h.address, workers=0)
    again = d.sync_once()
    d.close()
    after = _state(sub.data)
    assert after is not None and after.size == again.cursor > state.size
    assert after.frontier.root() == _hub_root(h, after.size)
    assert sighub(["status", "--data", str(sub.data)]) == 0


def test_follow_verifies_live_batches(logw: dict[str, Any]) -> None:
    h, pub, sub = logw["hub"], logw["pub"], logw["sub"]
    d = SyncDaemon(sub.data, address=h.address, workers=0)
    stop = threading.Event()
    follower = threading.Thread(target=d.follow, args=(stop,), daemon=True)
    follower.start()
    try:
        sent = pub.publish(pub.indicators(1)).sequence
        deadline = time.monotonic() + 30
        while (s := _state(sub.data)) is None or s.size < sent:
            assert time.monotonic() < deadline, "the follow did not reach the publish"
            time.sleep(0.1)
    finally:
        stop.set()
        d.interrupt()
        follower.join(timeout=30)
        d.close()
    state = _state(sub.data)
    assert state is not None and state.frontier.root() == _hub_root(h, state.size)
    with sqlite3.connect(sub.data / LOCAL_DB) as c:
        assert c.execute("SELECT COUNT(*) FROM log_alarms").fetchone()[0] == 0


def test_the_members_own_rotation_does_not_alarm(logw: dict[str, Any]) -> None:
    h, pub = logw["hub"], logw["pub"]
    d = SyncDaemon(pub.data, address=h.address, workers=0)
    d.sync_once()
    rotate_signing_key(pub.data, address=h.address)
    assert list(pub.data.glob("signing.*.retired.key"))
    assert not list(pub.data.glob("signing.*.pending.key"))
    pub.publish(pub.indicators(1))  # signed by the new key
    report = d.sync_once()  # reads the key.rotate leaf under its own name
    d.close()
    assert report.log_size and not report.refused


def test_a_store_from_before_the_log_rebuilds_its_frontier(
    logw: dict[str, Any], tmp_path: Path
) -> None:
    h, pub, sub = logw["hub"], logw["pub"], logw["sub"]
    data = _copy(sub, tmp_path / "old")
    d = SyncDaemon(data, address=h.address, workers=0)
    cursor = d.sync_once().cursor
    with d.store.tx():  # as a daemon from before the log left it
        d.store.conn.execute("DELETE FROM meta WHERE key=?", (STATE_KEY,))
    d.close()
    pub.publish(pub.indicators(1))
    d = SyncDaemon(data, address=h.address, workers=0)
    report = d.sync_once()
    d.close()
    state = _state(data)
    assert state is not None and report.cursor > cursor
    assert state.frontier.root() == _hub_root(h, state.size)


def test_a_credential_without_log_origin_pins_the_first_one(
    logw: dict[str, Any], tmp_path: Path
) -> None:
    h, sub = logw["hub"], logw["sub"]
    data = _copy(sub, tmp_path / "older")
    doc = json.loads((data / "hub.json").read_text())
    del doc["log_origin"]
    (data / "hub.json").write_text(json.dumps(doc))
    d = SyncDaemon(data, address=h.address, workers=0)
    assert d.sync_once().log_size
    assert d.store.meta("log_origin") == "sighub/test-hub"
    d.close()


# -- a lying hub ----------------------------------------------------------------------------
@pytest.fixture
def lying(logw: dict[str, Any], tmp_path: Path) -> Iterator[dict[str, Any]]:
    """pub's data copied as ``victim``, synced honestly from a fake hub that serves the
    real hub's log with its key; a new genuine envelope of pub is appended, unsynced."""
    h, pub = logw["hub"], logw["pub"]
    log = FakeLog.of(h)
    with LyingHub(log, pub.client()) as fake:
        victim = _synced_copy(pub, tmp_path / "victim", fake)
        fresh = pub.indicators(1)
        log.add_envelope("sg-csam", pub.envelope(fresh))
        yield {"log": log, "fake": fake, "victim": victim, "fresh": fresh, "pub": pub}


def _snapshot(data: Path) -> tuple[Any, ...]:
    c = sqlite3.connect(data / LOCAL_DB)
    try:
        rows = c.execute("SELECT * FROM indicators ORDER BY id").fetchall()
        meta = dict(c.execute("SELECT key, value FROM meta").fetchall())
    finally:
        c.close()
    return rows, meta["cursor"], meta[STATE_KEY]


def _caught(lie: dict[str, Any], kind: AlarmKind, **daemon: Any) -> dict[str, Any]:
    """Sync the victim: the alarm of ``kind``, nothing applied, the evidence kept, status
    exit 5, and later syncs refused until cleared.  Returns the evidence."""
    victim = lie["victim"]
    before = _snapshot(victim)
    d = SyncDaemon(victim, insecure=True, address=lie["fake"].address, workers=0, **daemon)
    try:
        with pytest.raises(LogAlarm) as err:
            d.sync_once()
        assert err.value.kind is kind, err.value
        assert _snapshot(victim) == before  # no indicator, cursor or state changed
        (alarm,) = d.store.alarms()
        assert alarm.kind == kind.value and alarm.acknowledged is None
        with pytest.raises(AlarmRecorded, match=kind.value):
            d.sync_once()
    finally:
        d.close()
    done = subprocess.run(
        [*SIGHUB, "status", "--data", str(victim), "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == EXIT_ALARM, done.stderr
    shown = json.loads(done.stdout)["alarms"]
    assert [a["kind"] for a in shown] == [kind.value] and shown[0]["at"]
    evidence: dict[str, Any] = json.loads(alarm.evidence)
    assert evidence["alarm"] == kind.value
    return evidence


@pytest.mark.parametrize("event", ["member.enroll", "key.rotate"])
def test_a_key_planted_under_the_members_name(lying: dict[str, Any], event: str) -> None:
    log, pub = lying["log"], lying["pub"]
    planted = Ed25519PrivateKey.generate().public_key()
    raw = planted.public_bytes(Encoding.Raw, PublicFormat.Raw)
    ident = pub.files.identity()
    if event == "member.enroll":
        leaf = _leaves.member_enroll(
            "pub", ident.publisher.id, ["publisher", "subscriber"], key_id(planted), raw
        )
    else:
        leaf = _leaves.key_rotate("pub", key_id(planted), raw, ident.key_id, b"\0" * 64)
    seq = log.add_leaf(leaf)
    evidence = _caught(lying, AlarmKind.FOREIGN_KEY)
    assert evidence["sequence"] == seq and evidence["leaf"]["key_id"] == key_id(planted)
    # the human status names what the hub did
    done = subprocess.run(
        [*SIGHUB, "status", "--data", str(lying["victim"])],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == EXIT_ALARM
    first = done.stdout.splitlines()[0]
    assert first.startswith("ALARM: ") and "foreign key" in first and key_id(planted) in first
    # the operator clears it: the evidence stays, the planted key still alarms
    assert sighub(["sync", "--data", str(lying["victim"]), "--insecure", "--hub",
                   lying["fake"].address, "--clear-alarm"]) == EXIT_ALARM  # fmt: skip
    c = sqlite3.connect(lying["victim"] / LOCAL_DB)
    rows = c.execute("SELECT kind, acknowledged FROM log_alarms ORDER BY id").fetchall()
    c.close()
    assert [k for k, _ in rows] == ["foreign key", "foreign key"] and rows[0][1] is not None


@pytest.mark.parametrize("event", ["member.enroll", "key.encryption"])
def test_an_encryption_key_planted_under_the_members_name(
    lying: dict[str, Any], event: str
) -> None:
    """A key pub did not make, logged as pub's encryption key (even with a proof by pub's
    own signing key, as a hub holding a copy of it could make): whatever others seal to
    it the hub could open, so pub alarms."""
    log, pub = lying["log"], lying["pub"]
    planted = EncryptionKey.generate()
    ident = pub.files.identity()
    signing = pub.files.signing_key()
    proved = ProvedKey(planted.suite, planted.public, prove(signing, planted.suite,
                                                            planted.public))  # fmt: skip
    if event == "member.enroll":  # pub's own signing key, another encryption key
        raw = ident.public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        leaf = _leaves.member_enroll(
            "pub", ident.publisher.id, ["publisher", "subscriber"], ident.key_id, raw, None, proved
        )
    else:
        leaf = _leaves.key_encryption("pub", proved, ident.key_id)
    seq = log.add_leaf(leaf)
    evidence = _caught(lying, AlarmKind.FOREIGN_KEY)
    assert evidence["sequence"] == seq and evidence["leaf"]["type"] == event
    done = subprocess.run(
        [*SIGHUB, "status", "--data", str(lying["victim"])],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    first = done.stdout.splitlines()[0]
    assert first.startswith("ALARM: ") and planted.key_id in first and "encryption key" in first


def test_the_members_own_encryption_rotation_does_not_alarm(logw: dict[str, Any]) -> None:
    h, pub = logw["hub"], logw["pub"]
    d = SyncDaemon(pub.data, address=h.address, workers=0)
    try:
        d.sync_once()
        rotate_encryption_key(pub.data, address=h.address)
        assert list(pub.data.glob("encryption.*.retired.key"))
        assert not list(pub.data.glob("encryption.*.pending.key"))
        report = d.sync_once()  # reads the key.encryption leaf under its own name
        assert report.log_size and d.store.alarms() == []
    finally:
        d.close()


def test_a_forged_encryption_proof_is_an_alarm_for_every_member(
    lying: dict[str, Any], logw: dict[str, Any], tmp_path: Path
) -> None:
    """A key.encryption for pub whose proof pub's signing key did not make: the hub's
    forgery, which every other member catches before sealing anything to it."""
    pub = lying["pub"]
    planted = EncryptionKey.generate()
    forger = Ed25519PrivateKey.generate()
    proved = ProvedKey(planted.suite, planted.public, prove(forger, planted.suite,
                                                            planted.public))  # fmt: skip
    seq = lying["log"].add_leaf(_leaves.key_encryption("pub", proved, pub.files.identity().key_id))
    d = _as_other(lying, logw, tmp_path)
    try:
        with pytest.raises(LogAlarm) as err:
            d.sync_once()
        assert err.value.kind is AlarmKind.FORGED_KEY and err.value.evidence["sequence"] == seq
        assert "did not prove" in str(err.value)
        assert d.store.cursor == 0 and d.store.log_encryption_keys() == []  # nothing applied
    finally:
        d.close()


def _as_other(lie: dict[str, Any], logw: dict[str, Any], tmp: Path) -> SyncDaemon:
    """A daemon for sub (a member that pins the admin key), synced from the lying hub."""
    other = _copy(logw["sub"], tmp / "other")
    return SyncDaemon(other, insecure=True, address=lie["fake"].address, workers=0)


def test_a_planted_key_is_refused_outright_by_every_other_member(
    lying: dict[str, Any], logw: dict[str, Any], tmp_path: Path
) -> None:
    """The hub logs a key for pub that no admin grant chains, and signs as pub with it: pub
    alarms (above); every other member refuses the envelope, naming why."""
    log, pub = lying["log"], lying["pub"]
    planted = Ed25519PrivateKey.generate()
    raw = planted.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    ident = pub.files.identity()
    log.add_leaf(
        _leaves.member_enroll(
            "pub", ident.publisher.id, ["publisher", "subscriber"], key_id(planted.public_key()),
            raw,
        )
    )  # fmt: skip
    forged = pub.indicators(1)
    seq = log.add_envelope("sg-csam", seal(build_bundle(ident.publisher, forged), planted))
    d = _as_other(lying, logw, tmp_path)
    try:
        report = d.sync_once()
        reasons = dict(report.refused)
        assert NO_CHAIN in reasons[seq] and key_id(planted.public_key()) in reasons[seq]
        assert d.store.states([forged[0].id]) == {}  # nothing of it applied
        assert {i.id for i in lying["fresh"]} <= set(d.store.states([lying["fresh"][0].id]))
    finally:
        d.close()


def test_a_key_only_the_hubs_directory_serves_is_unknown(
    lying: dict[str, Any], logw: dict[str, Any], tmp_path: Path
) -> None:
    """The directory the hub serves (GetKeys) is not the log: a key in it alone signs
    nothing a member accepts."""
    pub, fake = lying["pub"], lying["fake"]
    planted = Ed25519PrivateKey.generate()
    ident = pub.files.identity()
    fake.keys.keys.append(
        directory_pb2.MemberKey(
            member="pub", identity=ident.publisher.id, key_id=key_id(planted.public_key()),
            public_key=planted.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw),
        )
    )  # fmt: skip
    seq = lying["log"].add_envelope(
        "sg-csam", seal(build_bundle(ident.publisher, pub.indicators(1)), planted)
    )
    d = _as_other(lying, logw, tmp_path)
    try:
        reasons = dict(d.sync_once().refused)
        assert "unknown" in reasons[seq] and key_id(planted.public_key()) in reasons[seq]
    finally:
        d.close()


def test_a_forged_grant_is_an_alarm_for_every_member(
    lying: dict[str, Any], logw: dict[str, Any], tmp_path: Path
) -> None:
    """A grant the hub made up (signed by a key of its own) is evidence of a lying hub."""
    planted, fake_admin = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    raw = planted.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    grant, signature, enrollment = issue_grant(fake_admin, "sighub/test-hub", "pub2", ["publisher"])
    chain = Chain(grant, signature, bind_key(enrollment, grant, raw))
    seq = lying["log"].add_leaf(
        _leaves.member_enroll(
            "pub2", identity_for("pub2"), ["publisher"], key_id(planted.public_key()), raw, chain
        )
    )
    d = _as_other(lying, logw, tmp_path)
    try:
        with pytest.raises(LogAlarm) as err:
            d.sync_once()
        assert err.value.kind is AlarmKind.FORGED_KEY and err.value.evidence["sequence"] == seq
        (alarm,) = d.store.alarms()
        assert alarm.kind == AlarmKind.FORGED_KEY.value and "admin" in alarm.message
        assert d.store.cursor == 0 and d.store.log_keys() == []  # nothing applied
    finally:
        d.close()


def test_an_envelope_passed_off_as_another_collaborations_hash(lying: dict[str, Any]) -> None:
    """The hub serves pub's fresh envelope as a bare hash, as if of a collaboration pub is
    not in: the next envelope of sg-csam, numbered one further, gives it away."""
    log, pub = lying["log"], lying["pub"]
    hidden = log.size  # the fresh envelope
    number = log.entries[hidden - 1].n
    log.add_envelope("sg-csam", pub.envelope(pub.indicators(1)))
    lying["fake"].script = lambda r: [log.batch(r.cursor, as_hash=frozenset({hidden}))]
    evidence = _caught(lying, AlarmKind.WITHHELD)
    assert evidence["collab"] == "sg-csam" and evidence["missing"] == [number]
    assert evidence["sequence"] == hidden + 1


def test_a_renumbered_envelope_does_not_match_its_leaf(lying: dict[str, Any]) -> None:
    """Numbers are part of the leaves: a hub that serves another number than it logged
    serves leaves that do not make the signed root."""
    log = lying["log"]
    log.entries[-1].n += 1  # served with a number other than the one in its leaf
    _caught(lying, AlarmKind.ALTERED)


@pytest.mark.parametrize("how", ["missing", "as_leaf"])
def test_a_dropped_envelope(lying: dict[str, Any], how: str) -> None:
    log = lying["log"]
    first = log.size  # the fresh envelope
    log.add_envelope("sg-csam", lying["pub"].envelope(lying["pub"].indicators(1)))
    dropped = frozenset({first})
    if how == "missing":
        lying["fake"].script = lambda r: [log.batch(r.cursor, skip=dropped)]
        evidence = _caught(lying, AlarmKind.GAP)
        assert evidence["end"] == log.size
    else:
        lying["fake"].script = lambda r: [log.batch(r.cursor, as_leaf=dropped)]
        evidence = _caught(lying, AlarmKind.WITHHELD)
        assert evidence["sequence"] == first


def test_rewritten_history_is_a_fork_with_both_notes(lying: dict[str, Any]) -> None:
    log = lying["log"]
    size = log.size - 1  # what the victim verified
    rewritten = FakeLog(log.signer, list(log.entries[:size]))
    rewritten.entries[-1] = Entry(_leaves.collab_add("s3ller-🧀"), "x")
    lying["fake"].script = lambda r: [rewritten.batch(r.cursor, collabs=frozenset({"sg-csam"}))]
    evidence = _caught(lying, AlarmKind.FORK)
    notes = [base64.b64decode(evidence[k]) for k in ("previous", "checkpoint")]
    roots = {parse_checkpoint(parse_note(n).text).root for n in notes}
    sizes = {parse_checkpoint(parse_note(n).text).size for n in notes}
    assert len(roots) == 2 and sizes == {size}


def test_an_older_checkpoint_is_a_rollback(lying: dict[str, Any]) -> None:
    log = lying["log"]
    older = log.size - 3
    lying["fake"].script = lambda r: [
        sync_pb2.SyncResponse(
            cursor=r.cursor, caught_up=True, head=older, checkpoint=log.checkpoint(older)
        )
    ]
    evidence = _caught(lying, AlarmKind.ROLLBACK)
    assert evidence["previous"] and evidence["checkpoint"]


def test_a_stale_checkpoint_is_a_freeze(lying: dict[str, Any]) -> None:
    log = lying["log"]
    old = log.checkpoint(age=timedelta(hours=25).total_seconds())  # default limit: 24 h
    lying["fake"].script = lambda r: [log.batch(r.cursor, note=old)]
    _caught(lying, AlarmKind.STALE)


def test_the_staleness_limit_is_an_option(lying: dict[str, Any]) -> None:
    log = lying["log"]
    lying["fake"].script = lambda r: [log.batch(r.cursor, note=log.checkpoint(age=600))]
    _caught(lying, AlarmKind.STALE, max_checkpoint_age=timedelta(minutes=5))


# -- history: a collaboration joined after the cursor passed its envelopes ---------------
@pytest.fixture
def late(logw: dict[str, Any], tmp_path: Path) -> Iterator[dict[str, Any]]:
    """outsider publishes two envelopes to 'other'; pub's copy (not in 'other') syncs past
    them from a fake hub; then the fake log adds pub's join to 'other', counting them."""
    h, pub, outsider = logw["hub"], logw["pub"], logw["outsider"]
    published = [outsider.indicators(1, collab="other") for _ in range(2)]
    for indicators in published:
        outsider.publish(indicators, collab="other")
    log = FakeLog.of(h)
    with LyingHub(log, pub.client()) as fake:
        victim = _synced_copy(pub, tmp_path / "victim", fake)
        count = max(e.n for e in log.entries if e.collab == "other")
        join = log.add_leaf(_leaves.collab_membership("other", "pub", True, count), "other")
        both = frozenset({"sg-csam", "other"})
        fake.script = lambda r: [log.batch(r.cursor, collabs=both)]
        ids = [i[0].id for i in published]
        yield {"log": log, "fake": fake, "victim": victim, "ids": ids, "join": join, "n": count}


def test_a_collaboration_joined_late_brings_its_history(late: dict[str, Any]) -> None:
    d = SyncDaemon(late["victim"], insecure=True, address=late["fake"].address, workers=0)
    try:
        report = d.sync_once()
        assert set(d.store.states(late["ids"])) == set(late["ids"]) and not report.refused
        stored = json.loads(d.store.meta("collab_numbers"))
        assert stored["history"] == {} and stored["last"]["other"] == late["n"]
        assert d.sync_once().applied == 0  # nothing fetched twice
    finally:
        d.close()


@pytest.mark.parametrize("lie", ["nothing", "one_missing", "bad_proof", "after_the_join"])
def test_a_history_the_hub_withholds_or_forges_is_caught(late: dict[str, Any], lie: str) -> None:
    log, fake = late["log"], late["fake"]

    def lying(request: sync_pb2.GetHistoryRequest) -> sync_pb2.GetHistoryResponse:
        honest = log.history(request)
        entries = list(honest.entries)
        if lie == "nothing":
            entries = []
        elif lie == "one_missing":
            entries = entries[1:]
        elif lie == "bad_proof":
            entries[0].inclusion_proof[0] = b"\1" * 32
        else:  # an envelope claimed to precede the join that is logged after it
            entries[0].change.sequence = late["join"] + 1
        return sync_pb2.GetHistoryResponse(entries=entries)

    fake.history = lying
    d = SyncDaemon(late["victim"], insecure=True, address=fake.address, workers=0)
    try:
        with pytest.raises(LogAlarm) as err:
            d.sync_once()
        kind = AlarmKind.BAD_PROOF if lie == "bad_proof" else AlarmKind.WITHHELD
        assert err.value.kind is kind, err.value
        assert not d.store.states(late["ids"])  # nothing of the history applied
        (alarm,) = d.store.alarms()
        assert alarm.kind == kind.value
    finally:
        d.close()


def test_a_frontier_rebuilt_from_more_leaves_than_asked_is_a_gap(
    logw: dict[str, Any], tmp_path: Path
) -> None:
    """A store from before the log rebuilds its frontier from GetLeaves: a hub answering
    past the cursor (leaves the member never applied) is refused, nothing stored."""
    h, sub = logw["hub"], logw["sub"]
    data = _copy(sub, tmp_path / "old")
    d = SyncDaemon(data, address=h.address, workers=0)
    try:
        d.sync_once()
        with d.store.tx():  # as a daemon from before the log left it
            d.store.conn.execute("DELETE FROM meta WHERE key=?", (STATE_KEY,))
        d._guard.reload()  # type: ignore[union-attr]
        real = d.connect()

        class Over:
            def leaves(self, start: int, end: int) -> list[LogLeaf]:
                return [*real.leaves(start, end), LogLeaf(end + 1, None, b"\0" * 32)]

        with pytest.raises(LogAlarm) as err:
            d._guard.adopt_frontier(Over())  # type: ignore[union-attr, arg-type]
        assert err.value.kind is AlarmKind.GAP
        assert d.store.meta(STATE_KEY) == ""  # nothing stored
        real.close()
    finally:
        d.close()
