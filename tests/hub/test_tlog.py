"""The hub's Merkle tree in SQLite: the reference vectors, agreement with the pure
functions at every size it ever had, and all-or-nothing appends."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sighub.client._local import transaction
from sighub.client._merkle import (
    EMPTY_ROOT,
    Frontier,
    Node,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root,
    verify_consistency,
    verify_inclusion,
)
from sighub.hub._store import Store
from sighub.hub._tlog import Tlog, node_row

ROOT = Path(__file__).resolve().parents[2]
VECTORS: dict[str, Any] = json.loads((ROOT / "tests/vectors/merkle-rfc9162.json").read_text())
LEAVES = [bytes.fromhex(x) for x in VECTORS["leaves"]]
ROOTS = [bytes.fromhex(x) for x in VECTORS["roots"]]
TLOG = Tlog()


def connect(path: str | Path = ":memory:") -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)  # as the hub's Store opens it
    TLOG.create_tables(conn)
    return conn


@pytest.fixture
def conn() -> Iterator[sqlite3.Connection]:
    c = connect()
    yield c
    c.close()


def append(conn: sqlite3.Connection, hashes: list[bytes]) -> int:
    with transaction(conn):
        return TLOG.append(conn, hashes)


def leaves(n: int, salt: bytes = b"") -> list[bytes]:
    return [leaf_hash("🧀-".encode() + salt + i.to_bytes(4, "big")) for i in range(n)]


def dump(conn: sqlite3.Connection) -> list[tuple[int, bytes]]:
    return conn.execute(f"SELECT id, hash FROM {TLOG.table} ORDER BY id").fetchall()


# -- reference vectors -------------------------------------------------------------------
@pytest.mark.parametrize("batches", [[8], [1] * 8, [3, 0, 5], [2, 2, 4]])
def test_vectors(conn: sqlite3.Connection, batches: list[int]) -> None:
    hashes = [leaf_hash(x) for x in LEAVES]
    done = 0
    for b in batches:
        assert append(conn, hashes[done : done + b]) == done + b
        done += b
    assert TLOG.size(conn) == 8
    for n in range(9):  # every past size, after the fact
        assert TLOG.root(conn, n) == ROOTS[n], n
    stored = dict(dump(conn))
    for level, row in enumerate(VECTORS["nodes"]):
        for index, expected in enumerate(row):
            assert stored[node_row(Node(level, index))].hex() == expected, (level, index)
    for v in VECTORS["inclusion"]:
        proof = TLOG.inclusion_proof(conn, v["index"], v["size"])
        assert [p.hex() for p in proof] == v["proof"], v
    for v in VECTORS["consistency"]:
        proof = TLOG.consistency_proof(conn, v["size1"], v["size2"])
        assert [p.hex() for p in proof] == v["proof"], v
    assert [TLOG.leaf_hash(conn, i) for i in range(8)] == hashes


def test_empty_tree(conn: sqlite3.Connection) -> None:
    assert TLOG.size(conn) == 0
    assert TLOG.root(conn) == TLOG.root(conn, 0) == EMPTY_ROOT
    assert append(conn, []) == 0
    assert dump(conn) == []


# -- rows ---------------------------------------------------------------------------------
def test_rows_are_numbered_in_the_order_appends_complete_them() -> None:
    """node_row is the post-order number: the order Frontier.append completes subtrees."""
    frontier = Frontier()
    row = 0
    for c in range(1, 1025):
        completed = frontier.append(leaf_hash(c.to_bytes(2, "big")))
        for level in range(len(completed)):
            assert node_row(Node(level, (c >> level) - 1)) == row, (c, level)
            row += 1
    assert row == 2 * 1024 - 1


# -- properties: the SQLite tree and the pure functions agree ----------------------------
BATCHES = st.lists(st.integers(0, 70), min_size=1, max_size=6)


@settings(max_examples=40, deadline=None)
@given(BATCHES, st.binary(max_size=4), st.data())
def test_tree_agrees_with_the_pure_functions(
    batches: list[int], salt: bytes, data: st.DataObject
) -> None:
    conn = connect()
    hashes = leaves(sum(batches), salt)
    done = 0
    for b in batches:
        assert append(conn, hashes[done : done + b]) == done + b
        done += b
        ids = [r[0] for r in conn.execute(f"SELECT id FROM {TLOG.table} ORDER BY id")]
        assert ids == list(range(2 * done - done.bit_count()))  # dense, no other rows
    n = done
    roots = [root(hashes[:k]) for k in range(n + 1)]
    assert [TLOG.root(conn, k) for k in range(n + 1)] == roots
    for k in range(n + 1):
        assert TLOG.frontier(conn, k).hashes == _frontier(hashes[:k]).hashes
    if n == 0:
        return
    # every inclusion proof of the full tree and of a past size verifies
    past = data.draw(st.integers(1, n), label="past size")
    for size in {n, past}:
        for i in range(size):
            proof = TLOG.inclusion_proof(conn, i, size)
            verify_inclusion(i, size, hashes[i], proof, roots[size])
        i = data.draw(st.integers(0, size - 1), label="index")
        assert TLOG.inclusion_proof(conn, i, size) == inclusion_proof(i, size, hashes)
    # every consistency proof between any two sizes verifies (all pairs for small trees)
    if n <= 40:
        pairs = [(a, b) for b in range(1, n + 1) for a in range(1, b + 1)]
    else:
        pairs = data.draw(
            st.lists(st.tuples(st.integers(1, n), st.integers(1, n)), min_size=1, max_size=30),
            label="sizes",
        )
        pairs = [(min(a, b), max(a, b)) for a, b in pairs] + [(1, n), (n, n), (past, n)]
    for a, b in pairs:
        proof = TLOG.consistency_proof(conn, a, b)
        verify_consistency(a, b, roots[a], roots[b], proof)
    a, b = pairs[-1]
    assert TLOG.consistency_proof(conn, a, b) == consistency_proof(a, b, hashes)
    conn.close()


def _frontier(hashes: list[bytes]) -> Frontier:
    frontier = Frontier()
    for h in hashes:
        frontier.append(h)
    return frontier


# -- all or nothing -------------------------------------------------------------------
class Crash(Exception):
    pass


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 100), st.integers(1, 100))
def test_append_in_a_rolled_back_transaction_leaves_the_tree_unchanged(
    before: int, more: int
) -> None:
    conn = connect()
    hashes = leaves(before + more)
    append(conn, hashes[:before])
    rows, head = dump(conn), TLOG.root(conn)
    half = before + more // 2
    with pytest.raises(Crash), transaction(conn):
        assert TLOG.append(conn, hashes[before:half]) == half
        assert TLOG.append(conn, hashes[half:]) == before + more  # goes on from the first
        assert TLOG.root(conn) == root(hashes)  # visible inside the transaction
        raise Crash
    assert TLOG.size(conn) == before and TLOG.root(conn) == head and dump(conn) == rows
    assert append(conn, hashes[before:]) == before + more  # and it goes on from there
    assert TLOG.root(conn) == root(hashes)
    conn.close()


def test_a_bad_hash_writes_nothing(conn: sqlite3.Connection) -> None:
    good = leaves(5)
    append(conn, good[:3])
    rows = dump(conn)
    with pytest.raises(ProofError, match="leaf hash: received 31 bytes"), transaction(conn):
        TLOG.append(conn, [good[3], good[4][:31]])
    assert dump(conn) == rows


def test_append_outside_a_transaction_is_refused(conn: sqlite3.Connection) -> None:
    with pytest.raises(ValueError, match="append outside a transaction"):
        TLOG.append(conn, leaves(1))
    assert TLOG.size(conn) == 0


def test_a_process_killed_mid_transaction_leaves_the_tree_unchanged(tmp_path: Path) -> None:
    db = tmp_path / "hub.db"
    conn = connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    append(conn, leaves(10))
    head = TLOG.root(conn)
    conn.close()
    script = (
        "import os, sqlite3, sys\n"
        "from sighub.hub._tlog import Tlog\n"
        "from sighub.client._merkle import leaf_hash\n"
        "conn = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "conn.execute('BEGIN IMMEDIATE')\n"
        "print(Tlog().append(conn, [leaf_hash(bytes([i])) for i in range(200)]), flush=True)\n"
        "os._exit(9)  # dies before COMMIT, as a power cut would\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script, str(db)], capture_output=True, text=True, check=False
    )
    assert run.returncode == 9 and run.stdout.strip() == "210", run.stderr
    conn = sqlite3.connect(db, isolation_level=None)
    assert TLOG.size(conn) == 10 and TLOG.root(conn) == head
    conn.close()


def test_inside_the_hub_store_transaction(tmp_path: Path) -> None:
    """The integrator's path: a migration creates the table, appends share store.tx()."""
    store = Store(tmp_path / "hub.db")
    store.migrate()  # schema 3 made the table: an empty tree
    assert TLOG.size(store.conn) == 0
    hashes = leaves(33)
    with store.tx():
        TLOG.append(store.conn, hashes[:20])
        store.set_meta("tlog_checkpoint", "20")
    with pytest.raises(Crash), store.tx():
        TLOG.append(store.conn, hashes[20:])
        store.set_meta("tlog_checkpoint", "33")
        raise Crash
    assert TLOG.size(store.conn) == 20 and store.meta("tlog_checkpoint") == "20"
    assert TLOG.root(store.conn) == root(hashes[:20])
    store.close()


# -- refusals -------------------------------------------------------------------------
def test_proofs_beyond_the_log_are_refused(conn: sqlite3.Connection) -> None:
    append(conn, leaves(8))
    with pytest.raises(ProofError, match=r"tree size: received 9, expected .*\[0, 8\]"):
        TLOG.inclusion_proof(conn, 0, 9)
    with pytest.raises(ProofError, match=r"leaf index: received 8, expected .*\[0, 8\)"):
        TLOG.inclusion_proof(conn, 8, 8)
    with pytest.raises(ProofError, match="tree size: received 9"):
        TLOG.consistency_proof(conn, 1, 9)
    with pytest.raises(ProofError, match="none from the empty tree"):
        TLOG.consistency_proof(conn, 0, 8)
    with pytest.raises(ProofError, match=r"size1: received 8, expected .*\[1, 7\]"):
        TLOG.consistency_proof(conn, 8, 7)
    with pytest.raises(ProofError, match="tree size: received 9"):
        TLOG.root(conn, 9)
    with pytest.raises(ProofError, match="tree size: received -1"):
        TLOG.frontier(conn, -1)
    with pytest.raises(ProofError, match="tree size: received an integer of 5001 bits"):
        TLOG.root(conn, 2**5000)
    with pytest.raises(ProofError, match=r"leaf index: received 8, expected .*\[0, 8\)"):
        TLOG.leaf_hash(conn, 8)
    with pytest.raises(ProofError, match="leaf index: received '0'"):
        TLOG.leaf_hash(conn, "0")  # type: ignore[arg-type]


def test_wire_sizes_past_sqlites_integers_are_refused_not_overflowed(
    conn: sqlite3.Connection,
) -> None:
    """A uint64 from GetInclusionProof or GetConsistencyProof: INVALID_ARGUMENT at the hub,
    never an OverflowError (INTERNAL and a traceback per call)."""
    append(conn, leaves(8))
    top = 2**64 - 1
    for call in (
        lambda: TLOG.inclusion_proof(conn, 0, top),
        lambda: TLOG.consistency_proof(conn, 1, top),
        lambda: TLOG.root(conn, top),
    ):
        with pytest.raises(ProofError, match="tree size"):
            call()
    assert TLOG.size(conn) == 8


def test_a_damaged_table_is_named(conn: sqlite3.Connection) -> None:
    append(conn, leaves(8))
    conn.execute(f"DELETE FROM {TLOG.table} WHERE id = 14")  # the root of all 8
    with pytest.raises(sqlite3.DatabaseError, match="no tree size has"):
        TLOG.size(conn)
    conn.execute(f"INSERT INTO {TLOG.table} VALUES (14, ?)", (bytes(32),))
    conn.execute(f"DELETE FROM {TLOG.table} WHERE id = 3")
    with pytest.raises(sqlite3.DatabaseError, match=r"subtree Node\(level=0, index=2\) \(row 3\)"):
        TLOG.inclusion_proof(conn, 3, 8)
    with pytest.raises(sqlite3.IntegrityError):  # the schema refuses a hash of another size
        conn.execute(f"INSERT INTO {TLOG.table} VALUES (3, ?)", (bytes(31),))


def test_table_name_is_checked() -> None:
    with pytest.raises(ValueError, match=r"Tlog\.table: received 'x; DROP TABLE y'"):
        Tlog("x; DROP TABLE y")
    other = Tlog("tlog_other")
    conn = sqlite3.connect(":memory:", isolation_level=None)
    other.create_tables(conn)
    with transaction(conn):
        other.append(conn, leaves(3))
    assert other.root(conn) == root(leaves(3))
    conn.close()
