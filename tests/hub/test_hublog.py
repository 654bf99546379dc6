"""The hub's transparency log end to end (issue 10), on real hub processes: one leaf per
envelope and event in the same transaction, signed checkpoints, LogService, Sync batches
that let a member recompute the root, migration of an existing hub, kill -9."""

from __future__ import annotations

import base64
import hashlib
import json
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sighub.client import _leaves
from sighub.client._checkpoint import OpenedCheckpoint, open_checkpoint
from sighub.client._enckey import rotate_encryption_key
from sighub.client._enroll import EnrollmentFile, rotate_signing_key
from sighub.client._envelope import key_id
from sighub.client._grant import Chain
from sighub.client._hpke import DEFAULT_SUITE, ENCRYPTION_KEY, ProvedKey, load_key, prove
from sighub.client._merkle import (
    Frontier,
    leaf_hash,
    root,
    verify_consistency,
    verify_inclusion,
)
from sighub.client._note import Ed25519Verifier
from sighub.client._rpc import Credential, HubClient, HubRejected, SyncBatch
from sighub.hub._errors import HubError
from sighub.hub._store import MIGRATIONS, TLOG, Store, log_origin
from tests.hub.conftest import HubProcess, Member, running_world


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """``running_world`` with one publisher, pub."""
    with running_world(
        tmp_path_factory.mktemp("logged"),
        ("pub",),
        publishes_per_minute=6000,
        burst=1000,
        checkpoint_interval_seconds=0.5,
    ) as w:
        yield w


def _leaf_rows(h: HubProcess, after: int = 0) -> list[tuple[int, str, bytes]]:
    with h.db() as c:
        return [
            (r[0], r[1], bytes(r[2]))
            for r in c.execute(
                "SELECT seq, type, leaf FROM leaves WHERE seq > ? ORDER BY seq", (after,)
            )
        ]


def _size(h: HubProcess) -> int:
    with h.db() as c:
        return int(c.execute("SELECT COUNT(*) FROM leaves").fetchone()[0])


def _verifier(m: Member) -> Ed25519Verifier:
    cred = Credential.load(m.data)
    assert cred.log_origin == "sighub/test-hub"
    return Ed25519Verifier(cred.log_origin, base64.b64decode(cred.hub_public_key))


def _opened(m: Member, note: bytes) -> OpenedCheckpoint:
    return open_checkpoint(note, _verifier(m), origin="sighub/test-hub")


def _new_leaves(h: HubProcess, before: int) -> list[tuple[str, bytes]]:
    return [(kind, leaf) for _, kind, leaf in _leaf_rows(h, before)]


def _secret(h: HubProcess, collab: str, epoch: int) -> bytes:
    with h.db() as c:
        row = c.execute(
            "SELECT secret FROM collab_keys WHERE collab=? AND epoch=?", (collab, epoch)
        ).fetchone()
    return bytes(row[0])


def test_every_envelope_and_event_appends_exactly_its_leaf(tmp_path: Path) -> None:
    h = HubProcess(tmp_path / "hub", publishes_per_minute=6000, burst=1000)
    h.start()
    try:
        before = _size(h)  # the admin's enrollment at init
        assert _new_leaves(h, 0)[0][0] == "member.enroll"
        assert h.admin_cli("collab", "add", "sg-csam") == 0
        assert _new_leaves(h, before) == [
            ("collab.add", _leaves.collab_add("sg-csam")),
            ("collab.epoch", _leaves.collab_epoch("sg-csam", 0, _secret(h, "sg-csam", 0))),
        ]
        before = _size(h)
        pub = h.member("pub", tmp_path)  # enroll, then join
        ident = pub.files.identity()
        public = ident.public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        added = _new_leaves(h, before)
        chain = Chain.from_fields(_leaves.parse_leaf(added[0][1]), "pub's enrollment")
        assert chain is not None  # the admin-signed chain, which members check
        # the encryption key pub's client made, proved by its signing key (Ed25519 signs
        # deterministically, so the proof is recomputed here)
        enc = load_key(pub.data / ENCRYPTION_KEY)
        assert enc.suite == DEFAULT_SUITE
        proved = ProvedKey(
            enc.suite, enc.public, prove(pub.files.signing_key(), enc.suite, enc.public)
        )
        assert added == [
            ("member.enroll", _leaves.member_enroll("pub", ident.publisher.id,
                                                    ["subscriber", "publisher"], ident.key_id,
                                                    public, chain, proved)),
            ("collab.join", _leaves.collab_membership("sg-csam", "pub", True, 0)),
        ]  # fmt: skip
        before = _size(h)
        raw = pub.envelope(pub.indicators(2))
        result = pub.client().publish("sg-csam", raw)
        assert result.sequence == before + 1
        assert _new_leaves(h, before) == [("envelope", _leaves.envelope_leaf("sg-csam", raw, 1))]
        assert pub.client().publish("sg-csam", raw).duplicate and _size(h) == before + 1
        before = _size(h)
        old_kid = ident.key_id
        rotate_signing_key(pub.data, address=h.address)
        new = pub.files.identity()
        # member.json names the new signing key and still the encryption key
        assert json.loads((pub.data / "member.json").read_text())["encryption_key_id"] == (
            enc.key_id
        )
        (rotated,) = _new_leaves(h, before)
        doc = _leaves.parse_leaf(rotated[1])
        assert rotated[0] == "key.rotate" and (doc["key_id"], doc["previous_key_id"]) == (
            new.key_id,
            old_kid,
        )
        new_public = new.public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        proof = base64.b64decode(doc["proof"])
        assert rotated[1] == _leaves.key_rotate("pub", new.key_id, new_public, old_kid, proof)
        with h.db() as c:  # the old key is revoked at the rotation's leaf
            assert (
                c.execute(
                    "SELECT revoked_seq FROM member_keys WHERE key_id=?", (old_kid,)
                ).fetchone()[0]
                == before + 1
            )
        before = _size(h)
        rotated_enc = rotate_encryption_key(pub.data, address=h.address)
        new_enc = load_key(pub.data / ENCRYPTION_KEY)
        assert (rotated_enc.key_id, rotated_enc.previous_key_id) == (new_enc.key_id, enc.key_id)
        new_proof = prove(pub.files.signing_key(), new_enc.suite, new_enc.public)
        assert _new_leaves(h, before) == [
            ("key.encryption", _leaves.key_encryption(
                "pub", ProvedKey(new_enc.suite, new_enc.public, new_proof), new.key_id)),
        ]  # fmt: skip
        assert rotated_enc.sequence == before + 1
        before = _size(h)
        assert h.admin_cli("member", "suspend", "pub") == 0
        assert h.admin_cli("member", "resume", "pub") == 0
        assert h.admin_cli("collab", "rotate-key", "sg-csam") == 0
        assert h.admin_cli("collab", "leave", "sg-csam", "pub") == 0
        assert h.admin_cli("collab", "join", "sg-csam", "pub") == 0
        assert _new_leaves(h, before) == [
            ("member.status", _leaves.member_status("pub", "suspended")),
            ("member.status", _leaves.member_status("pub", "active")),
            ("collab.epoch", _leaves.collab_epoch("sg-csam", 1, _secret(h, "sg-csam", 1))),
            ("collab.leave", _leaves.collab_membership("sg-csam", "pub", False)),
            ("collab.join", _leaves.collab_membership("sg-csam", "pub", True, 1)),
        ]
        before = _size(h)
        extra = Ed25519PrivateKey.generate().public_key()
        extra_raw = extra.public_bytes(Encoding.Raw, PublicFormat.Raw)
        with sqlite3.connect(h.data / "hub.db") as c:  # a second key, to revoke by itself
            c.execute(
                "INSERT INTO member_keys (key_id, member, public_key, added) VALUES (?, 'pub',"
                " ?, '2026-11-01T00:00:00.000Z')",
                (key_id(extra), extra_raw),
            )
        assert h.admin_cli("member", "revoke-key", "pub", key_id(extra)) == 0
        assert _new_leaves(h, before) == [("key.revoke", _leaves.key_revoke("pub", key_id(extra)))]
        before = _size(h)
        assert h.admin_cli("member", "remove", "pub") == 0  # revokes its keys, leaves
        assert _new_leaves(h, before) == [
            ("key.revoke", _leaves.key_revoke("pub", new.key_id)),
            ("collab.leave", _leaves.collab_membership("sg-csam", "pub", False)),
            ("member.status", _leaves.member_status("pub", "removed")),
        ]
        with h.db() as c:
            assert (
                c.execute(
                    "SELECT revoked_seq FROM member_keys WHERE key_id=?", (new.key_id,)
                ).fetchone()[0]
                == before + 1
            )
        _check_consistent(h.data / "hub.db")
        pub.close()
    finally:
        h.stop()


def _check_consistent(db: Path) -> int:
    """Every envelope has its leaf at its seq; the tree holds exactly the leaves."""
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        leaves = c.execute("SELECT seq, type, collab, leaf FROM leaves ORDER BY seq").fetchall()
        assert [r[0] for r in leaves] == list(range(1, len(leaves) + 1))
        assert TLOG.size(c) == len(leaves)
        assert TLOG.root(c) == root([leaf_hash(bytes(r[3])) for r in leaves])
        numbers: dict[str, int] = {}
        rows = c.execute("SELECT seq, collab, raw, collab_n FROM envelopes ORDER BY seq")
        for seq, collab, raw, n in rows:
            kind, leaf_collab, leaf = leaves[seq - 1][1:]
            assert (kind, leaf_collab) == ("envelope", collab)
            assert bytes(leaf) == _leaves.envelope_leaf(collab, bytes(raw), n or 0)
            if n is not None:  # numbered 1, 2, 3, ... per collaboration, no gap
                assert n == numbers.get(collab, 0) + 1
                numbers[collab] = n
            assert TLOG.leaf_hash(c, seq - 1) == leaf_hash(bytes(leaf))
        kinds = [r[1] for r in leaves]
        envelopes = c.execute("SELECT COUNT(*) FROM envelopes").fetchone()[0]
        assert kinds.count("envelope") == envelopes
        return len(leaves)
    finally:
        c.close()


def _recompute(batches: list[SyncBatch], m: Member, start: Frontier) -> tuple[Frontier, int]:
    """Fold a member's view of Sync batches into ``start``: envelope leaves recomputed
    from the envelopes, the others from the leaves field; each batch's checkpoint verified
    and its root reached by the consistency proof.  Returns the frontier and how many
    leaves came as hashes only."""
    frontier, hidden = start, 0
    for b in batches:
        items: dict[int, bytes] = {}
        for ch in b.changes:
            leaf = _leaves.envelope_leaf(ch.collaboration, ch.envelope, ch.n)
            items[ch.sequence] = leaf_hash(leaf)
        for leaf in b.leaves:
            if leaf.leaf is not None:
                _leaves.parse_leaf(leaf.leaf)
                items[leaf.sequence] = leaf_hash(leaf.leaf)
            else:
                assert leaf.leaf_hash is not None and len(leaf.leaf_hash) == 32
                items[leaf.sequence] = leaf.leaf_hash
                hidden += 1
        assert sorted(items) == list(range(frontier.size + 1, b.cursor + 1))
        frontier.extend(items[s] for s in sorted(items))
        cp = _opened(m, b.checkpoint).checkpoint
        assert cp.size >= b.cursor and cp.time is not None
        if b.cursor == cp.size:
            assert frontier.root() == cp.root and not b.consistency
        elif b.cursor:
            verify_consistency(b.cursor, cp.size, frontier.root(), cp.root, b.consistency)
    return frontier, hidden


def test_a_member_recomputes_the_signed_root_from_sync(logged: dict[str, Any]) -> None:
    h, pub, sub, outsider = logged["hub"], logged["pub"], logged["sub"], logged["outsider"]
    for _ in range(3):
        pub.publish(pub.indicators(1))
    outsider.publish(outsider.indicators(1, "other"), collab="other")
    batches = list(sub.client().sync(0, batch_size=2))
    frontier, hidden = _recompute(batches, sub, Frontier())
    last = batches[-1]
    assert last.caught_up and last.cursor == last.head == _size(h)
    assert hidden >= 2  # other's collab.add/epoch/join and the envelope: hashes only
    cp = _opened(sub, last.checkpoint).checkpoint
    assert cp.size == frontier.size and cp.root == frontier.root()
    # resuming from the cursor mid-log: the same root, from a frontier the member kept
    middle = batches[1].cursor
    again, _ = _recompute(batches[:2], sub, Frontier())
    assert again.size == middle
    pub.publish(pub.indicators(1))
    more = list(sub.client().sync(middle))
    resumed, _ = _recompute(more, sub, again)
    assert resumed.root() == _opened(sub, more[-1].checkpoint).checkpoint.root
    assert resumed.size == _size(h)


def test_a_follow_stream_carries_a_checkpoint_covering_each_new_envelope(
    logged: dict[str, Any],
) -> None:
    pub, sub = logged["pub"], logged["sub"]
    start = list(sub.client().sync(0))[-1].cursor
    got: list[SyncBatch] = []
    stream = sub.client().sync(start, follow=True)

    def follow() -> None:
        for batch in stream:
            got.append(batch)
            if batch.changes:
                return

    t = threading.Thread(target=follow, daemon=True)
    t.start()
    time.sleep(0.2)
    sent = pub.publish(pub.indicators(1)).sequence
    t.join(timeout=20)
    (batch,) = [b for b in got if b.changes]
    assert batch.changes[0].sequence == sent
    cp = _opened(sub, batch.checkpoint).checkpoint
    assert cp.size >= batch.cursor >= sent


def test_leaves_of_other_collaborations_come_as_hashes(logged: dict[str, Any]) -> None:
    h, pub, sub, outsider = logged["hub"], logged["pub"], logged["sub"], logged["outsider"]
    pub.publish(pub.indicators(1))
    outsider.publish(outsider.indicators(1, "other"), collab="other")
    size = _size(h)
    rows = _leaf_rows(h)
    with h.db() as c:
        collab_of = dict(c.execute("SELECT seq, collab FROM leaves").fetchall())
    for member, mine in ((sub, {"sg-csam"}), (outsider, {"other"})):
        got = []
        while len(got) < size:
            got += member.client().leaves(len(got), size)
        assert [g.sequence for g in got] == list(range(1, size + 1))
        for g, (seq, kind, leaf) in zip(got, rows, strict=True):
            if kind in _leaves.DIRECTORY_TYPES or collab_of[seq] in mine:
                assert (g.leaf, g.leaf_hash) == (leaf, None)
            else:
                assert (g.leaf, g.leaf_hash) == (None, leaf_hash(leaf))
        assert any(g.leaf_hash for g in got) and any(g.leaf for g in got)
    part = sub.client().leaves(2, 4)
    assert [p.sequence for p in part] == [3, 4]


def test_proofs_verify_and_bad_ranges_are_refused(logged: dict[str, Any]) -> None:
    h, pub, sub = logged["hub"], logged["pub"], logged["sub"]
    pub.publish(pub.indicators(1))
    client = sub.client()
    deadline = time.monotonic() + 10
    while (cp := _opened(sub, client.checkpoint()).checkpoint).size < _size(h):
        assert time.monotonic() < deadline, "no checkpoint after the publish"
        time.sleep(0.05)
    rows = _leaf_rows(h)[: cp.size]
    assert root([leaf_hash(leaf) for _, _, leaf in rows]) == cp.root
    for index in (0, cp.size // 2, cp.size - 1):
        proof = client.inclusion_proof(index, cp.size)
        verify_inclusion(index, cp.size, leaf_hash(rows[index][2]), proof, cp.root)
    for first in (1, cp.size // 3, cp.size - 1, cp.size):
        old = root([leaf_hash(leaf) for _, _, leaf in rows[:first]])
        verify_consistency(first, cp.size, old, cp.root, client.consistency_proof(first, cp.size))
    state, size = h.state(), _size(h)
    bad: list[Any] = [
        lambda: client.inclusion_proof(size, size),
        lambda: client.inclusion_proof(0, size + 1),
        lambda: client.consistency_proof(0, size),
        lambda: client.consistency_proof(3, 2),
        lambda: client.consistency_proof(1, size + 1),
        lambda: client.leaves(3, 3),
        lambda: client.leaves(0, size + 1),
        lambda: client.leaves(2**63, 2**64 - 1),
    ]
    for call in bad:
        with pytest.raises(HubRejected) as err:
            call()
        assert err.value.code == "INVALID_ARGUMENT", err.value
    assert h.state() == state and _size(h) == size


def test_an_idle_hub_issues_checkpoints_within_the_interval(logged: dict[str, Any]) -> None:
    h, sub = logged["hub"], logged["sub"]
    with h.db() as c:
        (first,) = c.execute("SELECT MAX(id) FROM checkpoints").fetchone()
    time.sleep(1.5)  # three intervals of 0.5 s, nothing committed
    with h.db() as c:
        issued = c.execute(
            "SELECT size, note, issued FROM checkpoints WHERE id > ? ORDER BY id", (first,)
        ).fetchall()
    assert len(issued) >= 2
    times = [_opened(sub, bytes(note)).checkpoint.time for _, note, _ in issued]
    assert times == sorted(times) and times[-1] is not None
    assert abs(times[-1] - time.time()) < 5
    assert {size for size, _, _ in issued} == {_size(h)}  # the same tree, re-signed


def test_migration_3_logs_an_existing_hub(tmp_path: Path) -> None:
    db = tmp_path / "hub.db"
    store = Store(db)
    with store.tx() as c:  # a hub as schema 2 left it
        for migration in MIGRATIONS[:2]:
            migration(store.db)
        c.execute("PRAGMA user_version=2")
        store.set_meta("hub_name", "old hub")
        keys = [Ed25519PrivateKey.generate().public_key() for _ in range(3)]
        raw = [k.public_bytes(Encoding.Raw, PublicFormat.Raw) for k in keys]
        for name, status in (("pub", "active"), ("gone", "removed"), ("late", "pending")):
            c.execute(
                "INSERT INTO members (name, identity, roles, status, created) VALUES (?, ?,"
                " 'publisher,subscriber', ?, '2026-11-01T00:00:00.000Z')",
                (name, f"identity--{name}", status),
            )
        rows = [(key_id(keys[0]), "pub", raw[0], None), (key_id(keys[1]), "pub", raw[1], "t1"),
                (key_id(keys[2]), "gone", raw[2], "t2")]  # fmt: skip
        for i, (kid, member, public, revoked) in enumerate(rows):
            c.execute(
                "INSERT INTO member_keys (key_id, member, public_key, added, revoked_at,"
                " revoked_seq) VALUES (?, ?, ?, ?, ?, ?)",
                (kid, member, public, f"2026-11-01T00:00:0{i}.000Z", revoked,
                 None if revoked is None else 1),
            )  # fmt: skip
        c.execute("INSERT INTO collabs (name, created) VALUES ('sg-csam', 't')")
        c.execute("INSERT INTO memberships (collab, member) VALUES ('sg-csam', 'pub')")
        for epoch in (0, 1):
            c.execute(
                "INSERT INTO collab_keys (collab, epoch, secret, created) VALUES"
                " ('sg-csam', ?, ?, 't')",
                (epoch, bytes([epoch]) * 32),
            )
        envelopes = [b'{"envelope":%d}' % i for i in range(3)]
        for i, env in enumerate(envelopes):
            c.execute(
                "INSERT INTO envelopes (id, collab, publisher, key_id, received, n_indicators,"
                " hops, raw) VALUES (?, 'sg-csam', 'pub', ?, 't', 0, '[]', ?)",
                (hashlib.sha256(env).hexdigest(), key_id(keys[i % 2]), env),
            )
    assert store.migrate() == len(MIGRATIONS)
    assert store.one("SELECT COUNT(*) FROM cosignatures")[0] == 0  # schema 4: no witness yet
    leaves = [bytes(r[0]) for r in store.all("SELECT leaf FROM leaves ORDER BY seq")]
    sorted_roles = ["publisher", "subscriber"]
    assert leaves == [
        *(_leaves.envelope_leaf("sg-csam", env) for env in envelopes),
        _leaves.member_enroll("gone", "identity--gone", sorted_roles, key_id(keys[2]), raw[2]),
        _leaves.key_revoke("gone", key_id(keys[2])),
        _leaves.member_status("gone", "removed"),
        _leaves.member_enroll("pub", "identity--pub", sorted_roles, key_id(keys[0]), raw[0]),
        _leaves.member_enroll("pub", "identity--pub", sorted_roles, key_id(keys[1]), raw[1]),
        _leaves.key_revoke("pub", key_id(keys[1])),
        _leaves.collab_add("sg-csam"),
        _leaves.collab_membership("sg-csam", "pub", True),
        _leaves.collab_epoch("sg-csam", 0, bytes([0]) * 32),
        _leaves.collab_epoch("sg-csam", 1, bytes([1]) * 32),
    ]
    assert TLOG.root(store.conn) == root(map(leaf_hash, leaves))
    assert store.meta("log_origin") == "sighub/old-hub" == log_origin("old hub")
    # new envelopes continue the same sequence
    with store.tx():
        seq = store.append_envelope(
            "x" * 64, "sg-csam", "pub", key_id(keys[0]), "t", "[]", b"{}", []
        )
    assert seq == len(leaves) + 1 == store.head()
    store.close()
    _check_consistent(db)


def test_migration_3_refuses_envelope_seqs_with_gaps(tmp_path: Path) -> None:
    store = Store(tmp_path / "hub.db")
    with store.tx() as c:
        for migration in MIGRATIONS[:2]:
            migration(store.db)
        c.execute("PRAGMA user_version=2")
        for seq in (1, 3):
            c.execute(
                "INSERT INTO envelopes (seq, id, collab, publisher, key_id, received,"
                " n_indicators, hops, raw) VALUES (?, ?, 'c', 'p', 'k', 't', 0, '[]', x'00')",
                (seq, str(seq)),
            )
    with pytest.raises(RuntimeError, match=r"seq 1\.\.3; expected exactly 1\.\.2"):
        store.migrate()
    assert store.one("PRAGMA user_version")[0] == 2  # nothing of it stayed
    assert store.one("SELECT COUNT(*) FROM sqlite_master WHERE name='leaves'")[0] == 0
    store.close()


def test_kill_9_during_publishes_keeps_every_leaf_with_its_row(tmp_path: Path) -> None:
    h = HubProcess(tmp_path / "hub", publishes_per_minute=60000, burst=10000)
    h.start()
    assert h.admin_cli("collab", "add", "sg-csam") == 0
    pub = h.member("pub", tmp_path)
    envelopes = [pub.envelope(pub.indicators(1)) for _ in range(200)]
    acknowledged: list[int] = []
    stop = threading.Event()

    def publish(part: list[bytes]) -> None:
        cred = Credential.load(pub.data)
        client = HubClient.connect(
            Credential(pub.data, h.address, "pub", cred.bearer_token, cred.hub_public_key)
        )
        try:
            for raw in part:
                if stop.is_set():
                    return
                acknowledged.append(client.publish("sg-csam", raw, timeout=10).sequence)
        except HubRejected:
            return
        finally:
            client.close()

    threads = [threading.Thread(target=publish, args=(envelopes[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(acknowledged) < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert h.stop(signal.SIGKILL) == -signal.SIGKILL
    stop.set()
    for t in threads:
        t.join(timeout=30)
    pub.close()
    assert len(acknowledged) >= 20
    size = _check_consistent(h.data / "hub.db")
    with h.db() as c:
        stored = {r[0] for r in c.execute("SELECT seq FROM envelopes")}
    assert set(acknowledged) <= stored  # acknowledged means committed, with its leaf
    h.start()  # and the hub serves on from there
    try:
        sub = h.member("sub", tmp_path, roles="subscriber")
        batches = list(sub.client().sync(0))
        frontier, _ = _recompute(batches, sub, Frontier())
        assert frontier.size == _size(h) >= size
        sub.close()
    finally:
        h.stop()


def test_credentials_and_enrollment_files_from_before_the_log_still_load(
    logged: dict[str, Any], tmp_path: Path
) -> None:
    sub: Member = logged["sub"]
    doc = json.loads((sub.data / "hub.json").read_text())
    assert doc["log_origin"] == "sighub/test-hub"
    del doc["log_origin"]
    old = tmp_path / "old"
    old.mkdir()
    (old / "hub.json").write_text(json.dumps(doc))
    (old / "hub.json").chmod(0o600)
    assert Credential.load(old).log_origin == ""
    enrollment = EnrollmentFile("127.0.0.1:1", "s3ller", "t", b"ca", "k", log_origin="sighub/x")
    assert json.loads(enrollment.to_json())["log_origin"] == "sighub/x"
    path = tmp_path / "old.enroll.json"
    older = json.loads(enrollment.to_json())
    del older["log_origin"]
    path.write_text(json.dumps(older))
    path.chmod(0o600)
    assert EnrollmentFile.load(path).log_origin == ""


def test_a_leaf_members_could_not_read_is_never_appended(tmp_path: Path) -> None:
    """Every member refuses a leaf over MAX_LEAF_BYTES (a malformed-leaf alarm that stops
    its sync): the store refuses to log one, whatever rule upstream let it through."""
    store = Store(tmp_path / "hub.db")
    store.migrate()
    try:
        with pytest.raises(HubError, match="members read at most"), store.tx():
            store.append_leaf("collab.add", _leaves.collab_add("c" * _leaves.MAX_LEAF_BYTES))
        assert store.head() == 0 and TLOG.size(store.conn) == 0
    finally:
        store.close()
