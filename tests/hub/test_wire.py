"""The wire contract against a real hub: enum values refused, pages, Timestamps, the log
head on every Sync batch, and the CLI that reads all of it back as before."""

from __future__ import annotations

import io
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from rich.progress import Progress

from sighub.client import _cli as client_cli
from sighub.client._daemon import SyncDaemon
from sighub.client._proto import admin_pb2, admin_pb2_grpc, sync_pb2, sync_pb2_grpc, types_pb2
from sighub.client._rpc import Credential, from_timestamp, open_channel, to_timestamp
from sighub.hub import _admin
from tests.conftest import SIGHUB
from tests.hub.conftest import ROOT, HubProcess, Member


@pytest.fixture(scope="module")
def wire(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A hub with collaborations sg-csam and other; pub publishes in both, sub reads
    sg-csam only; three more pending members (m-1..m-3) for the pages."""
    tmp = tmp_path_factory.mktemp("wire")
    hub = HubProcess(tmp / "hub", publishes_per_minute=6000, burst=1000)
    hub.start()
    try:
        assert hub.admin_cli("collab", "add", "sg-csam") == 0
        assert hub.admin_cli("collab", "add", "other") == 0
        pub = hub.member("pub", tmp, collabs=("sg-csam", "other"))
        sub = hub.member("sub", tmp, roles="subscriber")
        for n in range(1, 4):
            out = str(tmp / f"m-{n}.enroll.json")
            assert hub.admin_cli("member", "add", f"m-{n}", "--roles", "peer", "--out", out) == 0
        yield {"hub": hub, "pub": pub, "sub": sub, "tmp": tmp}
        pub.close()
        sub.close()
    finally:
        if hub.proc is not None:
            hub.stop()


@pytest.fixture(scope="module")
def admin(wire: dict[str, Any]) -> Iterator[admin_pb2_grpc.AdminServiceStub]:
    """AdminService with the hub's admin credential."""
    hub: HubProcess = wire["hub"]
    cred = hub.admin
    with open_channel(
        Credential(cred.folder, hub.address, cred.member, cred.bearer_token, cred.hub_public_key)
    ) as channel:
        yield admin_pb2_grpc.AdminServiceStub(channel)


# -- enums ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("roles", "words"),
    [
        ([types_pb2.ROLE_UNSPECIFIED], "roles[0]: received ROLE_UNSPECIFIED (0)"),
        ([types_pb2.ROLE_PUBLISHER, 99], "roles[1]: received 99, not a Role"),
        ([], "roles []; expected some of"),
    ],
)
def test_add_member_refuses_unspecified_and_unknown_roles(
    wire: dict[str, Any],
    admin: admin_pb2_grpc.AdminServiceStub,
    roles: list[int],
    words: str,
) -> None:
    hub: HubProcess = wire["hub"]
    before = hub.state()
    with pytest.raises(grpc.RpcError) as info:
        admin.AddMember(admin_pb2.AddMemberRequest(name="y-1", roles=roles), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words in (info.value.details() or "")
    assert "member 'y-1'" in (info.value.details() or "")
    assert hub.state() == before  # nothing stored, nothing audited
    with hub.db() as c:
        assert c.execute("SELECT COUNT(*) FROM members WHERE name='y-1'").fetchone()[0] == 0


def test_members_carry_enums_and_the_cli_shows_names(
    wire: dict[str, Any], admin: admin_pb2_grpc.AdminServiceStub, capsys: pytest.CaptureFixture[str]
) -> None:
    shown = admin.ShowMember(admin_pb2.ShowMemberRequest(name="sub"), timeout=10).member
    assert list(shown.roles) == [types_pb2.ROLE_SUBSCRIBER]
    assert shown.status == types_pb2.MEMBER_STATUS_ACTIVE
    pending = admin.ShowMember(admin_pb2.ShowMemberRequest(name="m-1"), timeout=10).member
    assert pending.status == types_pb2.MEMBER_STATUS_PENDING and not pending.key_ids
    capsys.readouterr()
    assert wire["hub"].admin_cli("member", "show", "m-1") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["roles"] == ["peer"] and doc["status"] == "pending" and doc["key_ids"] == []


# -- pages --------------------------------------------------------------------------------------
def test_list_members_pages(admin: admin_pb2_grpc.AdminServiceStub) -> None:
    everyone = admin.ListMembers(admin_pb2.ListMembersRequest(), timeout=10)
    names = [m.name for m in everyone.members]
    assert names == sorted(names) and {"admin", "pub", "sub", "m-1"} <= set(names)
    assert everyone.next_page_token == ""  # all fit in the default page
    got, token, pages = [], "", 0
    while True:
        page = admin.ListMembers(
            admin_pb2.ListMembersRequest(page_size=2, page_token=token), timeout=10
        )
        assert len(page.members) <= 2
        got += [m.name for m in page.members]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert got == names and pages == (len(names) + 1) // 2


def test_audit_pages_newest_first_and_since(admin: admin_pb2_grpc.AdminServiceStub) -> None:
    everything = admin.Audit(admin_pb2.AuditRequest(page_size=1000), timeout=10).entries
    seqs = [e.sequence for e in everything]
    assert seqs == sorted(seqs, reverse=True) and len(seqs) >= 8
    got: list[int] = []
    token = ""
    while True:
        page = admin.Audit(admin_pb2.AuditRequest(page_size=3, page_token=token), timeout=10)
        got += [e.sequence for e in page.entries]
        token = page.next_page_token
        if not token:
            break
    assert got == seqs
    # since: an entry's own time includes it, a millisecond later does not
    middle = everything[len(everything) // 2]
    at = from_timestamp(middle.at)
    later = admin.Audit(admin_pb2.AuditRequest(since=to_timestamp(at), page_size=1000), timeout=10)
    assert middle.sequence in [e.sequence for e in later.entries]
    assert all(from_timestamp(e.at) >= at for e in later.entries)
    after = to_timestamp(at + timedelta(microseconds=1))
    later = admin.Audit(admin_pb2.AuditRequest(since=after, page_size=1000), timeout=10)
    assert middle.sequence not in [e.sequence for e in later.entries]
    # only the member's entries, each with its typed detail
    mine = admin.Audit(admin_pb2.AuditRequest(member="sub"), timeout=10).entries
    assert {e.action for e in mine} >= {"member.add", "member.enroll", "collab.join"}
    add = next(e for e in mine if e.action == "member.add")
    assert list(add.detail.roles) == [types_pb2.ROLE_SUBSCRIBER]
    assert add.HasField("at") and add.detail.key_id == ""


@pytest.mark.parametrize("rpc", ["ListMembers", "Audit"])
def test_a_malformed_page_token_is_refused(
    wire: dict[str, Any], admin: admin_pb2_grpc.AdminServiceStub, rpc: str
) -> None:
    other = {"ListMembers": "Audit", "Audit": "ListMembers"}[rpc]
    # a genuine token of the other RPC
    stranger = getattr(admin, other)(
        getattr(admin_pb2, f"{other}Request")(page_size=1), timeout=10
    ).next_page_token
    assert stranger
    for token in ("garbage!", stranger, "QXVkaXQ6MA"):  # the last: "Audit:0"
        with pytest.raises(grpc.RpcError) as info:
            getattr(admin, rpc)(getattr(admin_pb2, f"{rpc}Request")(page_token=token), timeout=10)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert f"{rpc}: page_token" in (info.value.details() or "")


def test_the_cli_reads_every_page(
    wire: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    hub: HubProcess = wire["hub"]
    capsys.readouterr()
    assert hub.admin_cli("member", "list") == 0
    one_page = json.loads(capsys.readouterr().out)
    assert hub.admin_cli("audit", "--limit", "0") == 0
    all_entries = json.loads(capsys.readouterr().out)["entries"]
    monkeypatch.setattr(_admin, "PAGE_MAX", 2)  # the CLI now needs several pages
    assert hub.admin_cli("member", "list") == 0
    assert json.loads(capsys.readouterr().out) == one_page
    assert [m["status"] for m in one_page["members"] if m["name"] == "m-2"] == ["pending"]
    assert hub.admin_cli("audit", "--limit", "0") == 0
    assert json.loads(capsys.readouterr().out)["entries"] == all_entries
    assert hub.admin_cli("audit", "--limit", "3") == 0
    assert json.loads(capsys.readouterr().out)["entries"] == all_entries[:3]
    assert hub.admin_cli("audit", "--since", "yesterday") == 2
    assert "--since: received 'yesterday'" in capsys.readouterr().err


# -- Timestamps -----------------------------------------------------------------------------------
def test_directory_timestamps_round_trip(wire: dict[str, Any], tmp_path: Path) -> None:
    hub: HubProcess = wire["hub"]
    before = datetime.now(UTC) - timedelta(seconds=1)
    m = hub.member("stamped", tmp_path)
    after = datetime.now(UTC) + timedelta(seconds=1)
    (key,) = [k for k in m.client().key_directory() if k.member == "stamped"]
    assert before <= key.added_at <= after and key.added_at.tzinfo is not None
    assert key.revoked_at is None and key.revoked_sequence is None
    assert key.member_status == "active"
    for shared in m.client().collab_keys():
        assert shared.created_at.tzinfo is not None and shared.created_at <= after
    assert hub.admin_cli("member", "revoke-key", "stamped", key.key_id) == 0
    (revoked,) = [k for k in wire["sub"].client().key_directory() if k.member == "stamped"]
    assert revoked.revoked_at is not None and revoked.added_at <= revoked.revoked_at
    assert revoked.revoked_sequence is not None
    with hub.db() as c:
        (stored,) = c.execute(
            "SELECT revoked_at FROM member_keys WHERE key_id=?", (key.key_id,)
        ).fetchone()
    assert revoked.revoked_at == datetime.fromisoformat(stored)
    assert hub.admin_cli("member", "suspend", "stamped") == 0
    (suspended,) = [k for k in wire["sub"].client().key_directory() if k.member == "stamped"]
    assert suspended.member_status == "suspended"
    m.close()


# -- the head on Sync batches ----------------------------------------------------------------------
def _published(wire: dict[str, Any]) -> tuple[list[int], list[int]]:
    pub: Member = wire["pub"]
    mine = [pub.publish(pub.indicators(1)).sequence for _ in range(5)]
    theirs = [pub.publish(pub.indicators(1, "other"), collab="other").sequence]
    return mine, theirs


def test_every_batch_covers_a_contiguous_range_of_the_whole_log(wire: dict[str, Any]) -> None:
    mine, theirs = _published(wire)
    assert theirs[0] > mine[-1]  # the log's head is in a collaboration sub does not read
    sub: Member = wire["sub"]
    stub = sync_pb2_grpc.SyncServiceStub(sub.client().channel)
    with sub.hub.db() as c:
        size = c.execute("SELECT MAX(seq) FROM leaves").fetchone()[0]
    assert size == theirs[0]
    start = mine[1]
    batches = list(stub.Sync(sync_pb2.SyncRequest(cursor=start, batch_size=1), timeout=30))
    assert [c.sequence for b in batches for c in b.changes] == mine[2:]
    previous = start
    for b in batches:  # (previous cursor, cursor]: each sequence a change or a leaf
        covered = sorted([c.sequence for c in b.changes] + [x.sequence for x in b.leaves])
        assert covered == list(range(previous + 1, b.cursor + 1))
        previous = b.cursor
    assert all(b.head == size for b in batches)
    assert [b.caught_up for b in batches] == [False] * (len(batches) - 1) + [True]
    assert batches[-1].cursor == size  # caught up at the head it reported
    (other,) = [x for b in batches for x in b.leaves if x.sequence == theirs[0]]
    assert other.WhichOneof("content") == "leaf_hash" and len(other.leaf_hash) == 32
    # the SDK passes it up
    sdk = list(sub.client().sync(start, batch_size=2))
    assert all(b.head == size for b in sdk) and sdk[-1].caught_up
    assert [x.sequence for b in sdk for x in b.leaves] == [theirs[0]]
    # nothing left: one empty, caught-up batch at the head
    (last,) = stub.Sync(sync_pb2.SyncRequest(cursor=size), timeout=30)
    assert (len(last.changes), len(last.leaves), last.cursor, last.head, last.caught_up) == (
        0,
        0,
        size,
        size,
        True,
    )


def test_a_follow_stream_reports_the_head_as_it_grows(wire: dict[str, Any]) -> None:
    sub, pub = wire["sub"], wire["pub"]
    start = max((c.sequence for b in sub.client().sync(0) for c in b.changes), default=0)
    heads: list[tuple[int, int]] = []
    stream = sub.client().sync(start, follow=True)

    def follow() -> None:
        for batch in stream:
            heads.extend((c.sequence, batch.head) for c in batch.changes)
            if len(heads) >= 2:
                return

    t = threading.Thread(target=follow, daemon=True)
    t.start()
    time.sleep(0.3)
    sent = [pub.publish(pub.indicators(1)).sequence for _ in range(2)]
    t.join(timeout=20)
    assert [s for s, _ in heads] == sent
    assert all(head >= seq for seq, head in heads) and heads[-1][1] == sent[-1]


def test_sync_shows_a_determinate_bar_on_a_terminal_only(
    wire: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub: HubProcess = wire["hub"]
    reader = hub.member("barred", tmp_path, roles="subscriber")
    _published(wire)
    updates: list[dict[str, Any]] = []

    class Recording(Progress):
        def update(self, task_id: Any, **fields: Any) -> None:
            updates.append(fields)
            super().update(task_id, **fields)

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal, stdout = Terminal(), io.StringIO()
    monkeypatch.setattr(client_cli, "Progress", Recording)
    monkeypatch.setattr("sys.stderr", terminal)
    monkeypatch.setattr("sys.stdout", stdout)
    daemon = SyncDaemon(reader.data, address=hub.address, batch_size=1, workers=0)
    try:
        report = client_cli._sync_with_progress(daemon)
    finally:
        daemon.close()
    monkeypatch.undo()
    assert stdout.getvalue() == ""  # the bar is on stderr
    assert "syncing" in terminal.getvalue() and "%" in terminal.getvalue()
    # one update per commit (the daemon commits up to 2 s of batches at once), each with
    # the total from the starting cursor (0) to the head the hub reported
    assert updates and all(u["total"] == report.head for u in updates)
    done = [u["completed"] for u in updates]
    assert done == sorted(done) and done[-1] == report.cursor == report.head
    # --json, with stderr not a terminal: one document on stdout, no bar anywhere
    run = subprocess.run(
        [*SIGHUB, "sync", "--json", "--resync", "--data", str(reader.data), "--hub", hub.address],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["cursor"] == report.cursor
    assert "syncing" not in run.stderr
    reader.close()
