"""The wire contract offline: buf lint, enums by readable name, Timestamps, the
pre-serialized Sync batch, page tokens, audit details, the sync progress arithmetic."""

from __future__ import annotations

import base64
import json
import logging
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from sighub.client._cli import sync_progress
from sighub.client._daemon import SyncReport
from sighub.client._intake import _merge
from sighub.client._proto import admin_pb2, sync_pb2, types_pb2
from sighub.client._rpc import (
    MEMBER_STATUS,
    ROLE,
    Change,
    Hop,
    LogLeaf,
    SyncBatch,
    from_timestamp,
    to_timestamp,
)
from sighub.client._stix import format_time
from sighub.hub._adminservice import (
    _AUDIT_POSITION,
    _MEMBER_POSITION,
    PAGE_DEFAULT,
    PAGE_MAX,
    _audit_detail,
    _page_position,
    _page_size,
    _page_token,
    _since,
)
from sighub.hub._errors import HubError
from sighub.hub._hub import ROLES
from sighub.hub._service import _batch, _timestamp
from sighub.hub._store import EnvelopeRow, LogRange

ROOT = Path(__file__).resolve().parents[1]


def _buf() -> str | None:
    beside = Path(sys.executable).parent / "buf"
    return str(beside) if beside.exists() else shutil.which("buf")


def test_buf_lint_is_clean() -> None:
    buf = _buf()
    if buf is None:
        pytest.skip("no buf binary (pip install buf-bin, the test extras)")
    done = subprocess.run(
        [buf, "lint"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_buf_lint_would_catch_a_missing_comment(tmp_path: Path) -> None:
    """The test above can fail: the COMMENTS rules are on."""
    buf = _buf()
    if buf is None:
        pytest.skip("no buf binary (pip install buf-bin, the test extras)")
    shutil.copy(ROOT / "buf.yaml", tmp_path / "buf.yaml")
    shutil.copytree(ROOT / "proto" / "sighub", tmp_path / "proto" / "sighub")
    sync = tmp_path / "proto" / "sighub" / "v1" / "sync.proto"
    text = sync.read_text()
    sync.write_text(text.replace("  // The relaying hub's name.\n", "", 1))
    done = subprocess.run(
        [buf, "lint"], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode != 0 and 'Field "hub" should have a non-empty comment' in done.stdout


def test_enums_by_readable_name() -> None:
    assert set(ROLE.values) == set(ROLES)  # the hub's roles are the wire's, no more
    assert ROLE.values["publisher"] == types_pb2.ROLE_PUBLISHER
    assert ROLE.name(types_pb2.ROLE_PEER, "roles[0]") == "peer"
    assert set(MEMBER_STATUS.values) == {"pending", "active", "suspended", "removed"}
    assert MEMBER_STATUS.name(types_pb2.MEMBER_STATUS_ACTIVE, "status") == "active"
    with pytest.raises(ValueError, match=r"roles\[1\]: received ROLE_UNSPECIFIED \(0\)"):
        ROLE.names_of([types_pb2.ROLE_ADMIN, 0], "roles")
    with pytest.raises(ValueError, match="received 99, not a Role; expected one of publisher"):
        ROLE.name(99, "roles[0]")
    with pytest.raises(ValueError, match="--roles: received 'superuser'"):
        ROLE.value("superuser", "--roles")
    assert MEMBER_STATUS.label(7) == "MemberStatus(7)"  # shown, not refused, in answers
    assert MEMBER_STATUS.label(types_pb2.MEMBER_STATUS_SUSPENDED) == "suspended"


def test_timestamps_round_trip() -> None:
    when = datetime(2026, 11, 1, 12, 30, 5, 123000, tzinfo=UTC)
    assert from_timestamp(to_timestamp(when)) == when
    assert from_timestamp(to_timestamp(when.astimezone(timezone(timedelta(hours=2))))) == when
    text = format_time(when)  # how the hub stores times
    assert format_time(from_timestamp(_timestamp(text))) == text
    assert _timestamp("2026-11-01T12:30:05.123Z") == to_timestamp(when)


def test_since_rounds_up_to_the_stored_millisecond() -> None:
    base = to_timestamp(datetime(2026, 11, 1, tzinfo=UTC))
    assert _since(base, "since") == "2026-11-01T00:00:00.000Z"
    half = Timestamp(seconds=base.seconds, nanos=500_000)
    assert _since(half, "since") == "2026-11-01T00:00:00.001Z"  # no entry at .000 is after
    last = Timestamp(seconds=base.seconds, nanos=999_999_999)
    assert _since(last, "since") == "2026-11-01T00:00:01.000Z"
    with pytest.raises(HubError, match="since: received seconds=") as info:
        _since(Timestamp(seconds=10**15), "since")
    assert info.value.code.name == "INVALID_ARGUMENT"


HOPS = json.loads((Path(__file__).parent / "vectors" / "hops.json").read_text())["encoded"]


def test_the_pre_serialized_batch_decodes_with_its_head_and_log() -> None:
    rows = [
        EnvelopeRow(7, "a" * 64, "sg-csam", b'{"e":1}', "[]"),
        EnvelopeRow(9, "b" * 64, "sg-csam", b'{"e":2}', HOPS),
    ]
    leaves = [(6, b'{"type":"collab.add"}', True), (8, b"\x01" * 32, False)]
    part = LogRange(rows, leaves, 9, 0)
    proof = [b"\x02" * 32, b"\x03" * 32]
    out = _batch(part, False, 12, b"sighub/test-hub\n12\n...", proof)
    got = sync_pb2.SyncResponse.FromString(out.data)
    assert (got.cursor, got.caught_up, got.head) == (9, False, 12)
    assert [(c.sequence, c.collaboration, c.envelope) for c in got.changes] == [
        (7, "sg-csam", b'{"e":1}'),
        (9, "sg-csam", b'{"e":2}'),
    ]
    assert not got.changes[0].hops and got.changes[0].hop_records == b""
    assert got.changes[1].hop_records == HOPS.encode()  # the exact bytes the relays signed
    hop = got.changes[1].hops[0]
    assert hop.hub == "sighub/regional"
    assert format_time(from_timestamp(hop.received_at)) == "2026-11-28T12:00:00.000Z"
    assert [(x.sequence, x.WhichOneof("content")) for x in got.leaves] == [
        (6, "leaf"),
        (8, "leaf_hash"),
    ]
    assert got.leaves[0].leaf == leaves[0][1] and got.leaves[1].leaf_hash == b"\x01" * 32
    assert got.checkpoint == b"sighub/test-hub\n12\n..." and list(got.consistency) == proof
    assert (out.changes, out.envelope_bytes, out.cursor) == (2, 14, 9)
    # a head below the cursor is sent as the cursor: the contract says head is never below
    keepalive = sync_pb2.SyncResponse.FromString(
        _batch(LogRange([], [], 20, 0), True, 5, b"", []).data
    )
    assert (keepalive.cursor, keepalive.head, keepalive.caught_up, len(keepalive.changes)) == (
        20,
        20,
        True,
        0,
    )


def test_merged_batches_keep_the_latest_head_and_checkpoint() -> None:
    c1 = Change(1, "sg-csam", b"x", (Hop("h1", datetime(2026, 11, 1, tzinfo=UTC)),))
    c2 = Change(4, "sg-csam", b"y", ())
    l2, l3 = LogLeaf(2, b"{}", None), LogLeaf(3, None, b"\x00" * 32)
    first = SyncBatch((c1,), 2, False, 5, (l2,), b"cp5", (b"p" * 32,))
    second = SyncBatch((c2,), 4, False, 6, (l3,), b"cp6", ())
    assert _merge([first, second]) == SyncBatch((c1, c2), 4, False, 6, (l2, l3), b"cp6", ())


def test_page_tokens() -> None:
    assert _page_size(0) == PAGE_DEFAULT and _page_size(5) == 5 and _page_size(10**6) == PAGE_MAX
    token = _page_token("ListMembers", "platform-a")
    assert "platform-a" not in token  # opaque, not a name to edit
    assert _page_position("ListMembers", token, _MEMBER_POSITION) == "platform-a"
    assert _page_position("ListMembers", "", _MEMBER_POSITION) is None
    audit = _page_token("Audit", "42")
    assert _page_position("Audit", audit, _AUDIT_POSITION) == "42"
    bad = [
        "not base64 !",
        "x" * 500,
        audit,  # another RPC's token
        base64.urlsafe_b64encode(b"Audit:0").decode(),
        base64.urlsafe_b64encode(b"Audit:-3").decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ]
    for token in bad:
        with pytest.raises(HubError, match=r"ListMembers: page_token .* is not one") as info:
            _page_position("ListMembers", token, _MEMBER_POSITION)
        assert info.value.code.name == "INVALID_ARGUMENT" and len(str(info.value)) < 300
    with pytest.raises(HubError, match="Audit: page_token"):
        _page_position("Audit", base64.urlsafe_b64encode(b"Audit:0").decode(), _AUDIT_POSITION)
    # 19 digits may pass 2**63 - 1, which SQLite cannot bind: refused like any bad token
    huge = _page_token("Audit", "9" * 19)
    with pytest.raises(HubError, match="Audit: page_token"):
        _page_position("Audit", huge, _AUDIT_POSITION)
    assert _page_position("Audit", _page_token("Audit", "9" * 18), _AUDIT_POSITION) == "9" * 18


def test_audit_details_are_typed(caplog: pytest.LogCaptureFixture) -> None:
    got = _audit_detail('{"roles": ["publisher", "subscriber"]}', 1)
    assert list(got.roles) == [types_pb2.ROLE_PUBLISHER, types_pb2.ROLE_SUBSCRIBER]
    got = _audit_detail(
        '{"cert_serial": "ab", "not_after": "2027-12-01T00:00:00.000Z",'
        ' "previous_cert_serial": "cd"}',
        2,
    )
    assert (got.cert_serial, got.previous_cert_serial) == ("ab", "cd")
    assert format_time(from_timestamp(got.cert_not_after)) == "2027-12-01T00:00:00.000Z"
    got = _audit_detail(
        '{"envelope": "e1", "indicators": 3, "revoked": 0, "seq": 17}', 3
    )  # revoked 0 is recorded, so present
    assert got.envelope_id == "e1" and got.log_sequence == 17 and got.indicators == 3
    assert got.HasField("revoked_indicators") and got.revoked_indicators == 0
    assert not got.HasField("key_epoch") and not got.HasField("cert_not_after")
    got = _audit_detail('{"collab": "sg-csam"}', 4)
    assert got == admin_pb2.AuditDetail(collaboration="sg-csam")
    assert _audit_detail('{"epoch": 2}', 5).key_epoch == 2
    with caplog.at_level(logging.WARNING, logger="sighub.hub"):
        got = _audit_detail('{"key_id": "ed25519:00", "surprise": 1}', 6)
    assert got == admin_pb2.AuditDetail(key_id="ed25519:00")
    assert "audit entry 6: detail 'surprise'" in caplog.text


def test_sync_progress_is_sequences_from_the_start_to_the_head() -> None:
    report = SyncReport(cursor=10)
    assert sync_progress(report, 10) == (0, 0)  # before the first batch
    report.cursor, report.head = 25, 110
    assert sync_progress(report, 10) == (100, 15)
    report.cursor, report.head = 120, 120  # published meanwhile: the total grew
    assert sync_progress(report, 10) == (110, 110)


def test_a_long_follow_keeps_the_latest_refusals_and_counts_them_all() -> None:
    from sighub.client._daemon import REFUSED_KEPT

    report = SyncReport()
    for seq in range(1, 5 * REFUSED_KEPT + 2):
        report.add_refused(seq, "signed by unknown key")
        assert len(report.refused) < 2 * REFUSED_KEPT
    assert report.refused_count == 5 * REFUSED_KEPT + 1
    assert report.refused[-1] == (5 * REFUSED_KEPT + 1, "signed by unknown key")
    assert len(report.refused) >= REFUSED_KEPT  # at least the latest REFUSED_KEPT


def test_a_timestamp_no_datetime_holds_is_a_refused_answer() -> None:
    from google.protobuf.timestamp_pb2 import Timestamp

    from sighub.client._rpc import HubRejected, answer_time

    assert answer_time(Timestamp(seconds=0)).year == 1970
    with pytest.raises(HubRejected, match="INVALID_ANSWER") as err:
        answer_time(Timestamp(seconds=10**12))  # past year 9999
    assert err.value.code == "INVALID_ANSWER"
