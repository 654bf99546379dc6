"""A member of hub B keeps the peerings B's verified log shows (``_peerlog``) on real hubs:
after each `sighub admin peer` command it syncs to the record with the right status, a
restarted daemon reloads it from local.db, a store from before peerings reads the leaves
again, and a peering the admin did not sign stops the sync with nothing stored."""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sighub.client._daemon import SyncDaemon
from sighub.client._grant import peering_statement, sign_peering
from sighub.client._leaves import peer_add
from sighub.client._local import LOCAL_DB
from sighub.client._logcheck import AlarmKind, LogAlarm
from sighub.client._logguard import KEYS_KEY, KEYS_VERSION, LogGuard
from sighub.client._model import Tlp
from sighub.client._peerlog import LoggedPeer, PeerDirection, PeerStatus
from sighub.hub._store import Store
from tests.hub.conftest import HubProcess, Member

A_COLLAB, B_COLLAB = "sg-csam", "sg-local"
INDUSTRY = "sighub/industry-hub"


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Hub A (industry-hub, sg-csam), hub B (regional-hub, sg-local) and a subscriber of
    B in sg-local."""
    tmp = tmp_path_factory.mktemp("peerlog")
    a, b = HubProcess(tmp / "a", name="industry-hub"), HubProcess(tmp / "b", name="regional-hub")
    try:
        a.start()
        b.start()
        assert a.admin_cli("collab", "add", A_COLLAB) == 0
        assert b.admin_cli("collab", "add", B_COLLAB) == 0
        watcher = b.member("watcher", tmp, roles="subscriber", collabs=(B_COLLAB,))
        yield {"tmp": tmp, "a": a, "b": b, "watcher": watcher}
        watcher.close()
    finally:
        for hub in (a, b):
            if hub.proc is not None:
                hub.stop()


def _peer_add(a: HubProcess, b: HubProcess, tmp: Path, name: str, *extra: str) -> None:
    """B's admin peers with A under ``name`` (A's admin issues the enrollment file)."""
    path = tmp / f"hub-b-{name}.enroll.json"
    assert a.admin_cli("member", "add", f"hub-b-{name}", "--roles", "peer", "--out",
                       str(path)) == 0  # fmt: skip
    assert b.admin_cli("peer", "add", name, "--enrollment", str(path), "--map",
                       f"{A_COLLAB}={B_COLLAB}", *extra) == 0  # fmt: skip


def _seqs(b: HubProcess, kind: str) -> list[int]:
    with b.db() as c:
        return [int(r[0]) for r in c.execute("SELECT seq FROM leaves WHERE type=? ORDER BY seq",
                                             (kind,))]  # fmt: skip


def _guard(d: SyncDaemon) -> LogGuard:
    guard = d._guard
    assert guard is not None
    return guard


def _synced(b: HubProcess, member: Member) -> SyncDaemon:
    d = SyncDaemon(member.data, address=b.address, workers=0)
    d.sync_once()
    assert d.store.alarms() == []
    return d


def test_a_member_tracks_its_hubs_peerings(fed: dict[str, Any]) -> None:
    a: HubProcess = fed["a"]
    b: HubProcess = fed["b"]
    watcher: Member = fed["watcher"]
    _peer_add(a, b, fed["tmp"], "industry", "--max-hops", "4", "--tlp-ceiling", "green",
              "--direction", "both")  # fmt: skip
    d = _synced(b, watcher)
    try:
        guard = _guard(d)
        assert guard.chain_required  # the admin's signature was checked, not taken on trust
        (added,) = _seqs(b, "peer.add")
        key = base64.b64decode(a.admin.hub_public_key)
        expected = LoggedPeer(
            "industry", INDUSTRY, key, a.address, ((A_COLLAB, B_COLLAB),), PeerDirection.BOTH,
            4, Tlp.GREEN, PeerStatus.ACTIVE, added, 0,
        )  # fmt: skip
        assert guard.peers.peers() == [expected] == guard.peers.live()
        assert guard.peers.log_keys() == {INDUSTRY: key}
        assert guard.peers.remote_for(B_COLLAB, INDUSTRY) == A_COLLAB
        assert b.admin_cli("peer", "suspend", "industry") == 0
        d.sync_once()
        suspended = guard.peers.peer("industry")
        assert suspended is not None and suspended.status is PeerStatus.SUSPENDED
        assert suspended.status_seq == _seqs(b, "peer.status")[-1]
        # two changes in one batch: the last is what the member keeps
        assert b.admin_cli("peer", "resume", "industry") == 0
        assert b.admin_cli("peer", "remove", "industry") == 0
        d.sync_once()
        removed = guard.peers.peer("industry")
        assert removed is not None and removed.status is PeerStatus.REMOVED
        assert removed.status_seq == _seqs(b, "peer.status")[-1] and removed.seq == added
        assert guard.peers.live() == [] and guard.peers.log_keys() == {INDUSTRY: key}
        assert d.store.alarms() == []
    finally:
        d.close()
    # a restarted daemon reads the records from local.db, before any sync
    d = SyncDaemon(watcher.data, address=b.address, workers=0)
    try:
        assert _guard(d).peers.peers() == [removed]
    finally:
        d.close()
    # the same hub peered again under another name: the live peering is the new one
    _peer_add(a, b, fed["tmp"], "industry-two")
    d = _synced(b, watcher)
    try:
        peers = _guard(d).peers
        again = peers.by_origin(INDUSTRY)
        assert again is not None and again.name == "industry-two" and again.live
        assert [p.name for p in peers.peers()] == ["industry", "industry-two"]
        assert again.seq == _seqs(b, "peer.add")[-1]
        fed["peers"] = peers.peers()
    finally:
        d.close()


def test_a_store_from_before_peerings_reads_the_leaves_again(fed: dict[str, Any]) -> None:
    """A member synced before peerings were kept (KEYS_VERSION 3, no rows) re-reads its
    leaves on the next sync; a resync forgets the records and reads them again."""
    b: HubProcess = fed["b"]
    watcher: Member = fed["watcher"]
    if "peers" not in fed:
        pytest.skip("needs test_a_member_tracks_its_hubs_peerings")
    with sqlite3.connect(watcher.data / LOCAL_DB) as c:
        c.execute("DELETE FROM log_peers")
        c.execute("UPDATE meta SET value='3' WHERE key=?", (KEYS_KEY,))
    c.close()
    d = SyncDaemon(watcher.data, address=b.address, workers=0)
    try:
        guard = _guard(d)
        assert guard.peers.peers() == [] and guard.needs_frontier()
        d.sync_once()
        assert guard.peers.peers() == fed["peers"]
        assert d.store.meta(KEYS_KEY) == KEYS_VERSION and d.store.alarms() == []
        d.resync()
        assert d.store.log_peers() == [] and guard.peers.peers() == []
        d.sync_once()
        assert guard.peers.peers() == fed["peers"]
        assert [LoggedPeer.from_row(r) for r in d.store.log_peers()] == fed["peers"]
    finally:
        d.close()


def test_a_peering_the_admin_did_not_sign_stops_the_sync(tmp_path: Path) -> None:
    """B's database gains a peer.add leaf signed by another key (as a hub alone could
    make): the member's sync raises a forged-key alarm and stores nothing of the batch."""
    b = HubProcess(tmp_path / "b", name="regional-hub")
    b.start()
    try:
        assert b.admin_cli("collab", "add", B_COLLAB) == 0
        member = b.member("watcher", tmp_path, roles="subscriber", collabs=(B_COLLAB,))
        d = _synced(b, member)
        cursor = d.store.cursor
        d.close()
        b.stop()
        other = Ed25519PrivateKey.generate()
        key = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
        fields = ("mallory", "sighub/mallory-hub", key, "127.0.0.1:7443",
                  ((A_COLLAB, B_COLLAB),), "pull", 3, "amber")  # fmt: skip
        signature = sign_peering(other, peering_statement(*fields))
        store = Store(b.data / "hub.db")
        with store.tx():
            forged_seq = store.append_leaf("peer.add", peer_add(*fields, signature))
        store.close()
        b.start()
        d = SyncDaemon(member.data, address=b.address, workers=0)
        try:
            with pytest.raises(LogAlarm) as alarm:
                d.sync_once()
            assert alarm.value.kind is AlarmKind.FORGED_KEY
            assert "'mallory'" in str(alarm.value) and f"sequence {forged_seq}" in str(alarm.value)
            assert d.store.cursor == cursor and d.store.log_peers() == []
            assert _guard(d).peers.peers() == []
            (recorded,) = d.store.alarms()
            assert recorded.kind == AlarmKind.FORGED_KEY.value
        finally:
            d.close()
        member.close()
    finally:
        if b.proc is not None:
            b.stop()
