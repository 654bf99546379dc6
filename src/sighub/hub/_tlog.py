"""The hub's append-only Merkle tree (RFC 9162) in SQLite: it answers the root, inclusion
and consistency proofs of any size it ever had, each from one indexed query.

One table holds the hash of every perfect subtree (``2**level`` leaves starting at a
multiple of ``2**level``; the leaves are those of level 0) once it is complete.  It never
changes afterwards, so the nodes of a tree of any past size are all still there.  Rows are
numbered in the order appends complete them (post-order), which makes every append an
insert at the end of one B-tree and lets the tree size follow from the row count.

Every method takes an open ``sqlite3.Connection`` and runs in the caller's transaction:
the hub appends leaves in the same transaction as the log entries they hash, so both
commit or neither does.  Proof methods raise ``ProofError`` for a size or index the log
cannot prove (beyond its size, or an index not below the size).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from sighub.client._merkle import (
    HASH_SIZE,
    MAX_SIZE,
    Frontier,
    Node,
    ProofError,
    _show,  # quotes untrusted numbers as the verifier does
    consistency_plan,
    fold,
    inclusion_plan,
)

__all__ = ["Tlog", "node_row"]

_IDENTIFIER: Final = re.compile(r"[a-z_][a-z0-9_]*")


def node_row(node: Node) -> int:
    """The row number of ``node``: how many perfect subtrees are complete before it.

    Appending leaf number ``c`` (1-based) completes the leaf and then one parent per
    trailing zero bit of ``c``; after ``c`` leaves, ``2c - popcount(c)`` subtrees are
    complete.  ``node`` is completed by leaf ``c = end`` as the ``level``-th of those."""
    c = (node.index + 1) << node.level  # node.end
    # 2c - popcount(c) complete, less those leaf c completes above ``level``: bit length
    # of c & -c is the number of trailing zeros plus one.
    return 2 * c - c.bit_count() - (c & -c).bit_length() + node.level


def _size_of(rows: int) -> int | None:
    """The tree size whose complete subtrees number ``rows``, or None if there is none."""
    # 2n - popcount(n) == rows, and popcount(n) <= bit length: n is within 64 of rows / 2.
    n = (rows + 1) // 2
    while 2 * n - n.bit_count() < rows:
        n += 1
    return n if 2 * n - n.bit_count() == rows else None


_SQLITE_MAX: Final = 2**63 - 1  # the largest integer SQLite stores


@dataclass(frozen=True, slots=True)
class Tlog:
    """One append-only Merkle tree in the table ``table`` (``tlog_nodes`` by default).
    Holds no state but the table's name: a tree is wholly in its database."""

    table: str = "tlog_nodes"

    def __post_init__(self) -> None:
        if not _IDENTIFIER.fullmatch(self.table):
            raise ValueError(
                f"Tlog.table: received {self.table!r}, expected a lowercase SQL identifier"
            )

    def create_tables(self, conn: sqlite3.Connection) -> None:
        """Create the tree's table (empty tree); for a schema migration.  Raises
        ``sqlite3.OperationalError`` if it exists."""
        # INTEGER PRIMARY KEY: the row number is the rowid, rows append to one B-tree.
        conn.execute(
            f"CREATE TABLE {self.table} (id INTEGER PRIMARY KEY, hash BLOB NOT NULL"
            f" CHECK (length(hash) = {HASH_SIZE}))"
        )

    def size(self, conn: sqlite3.Connection) -> int:
        """The number of leaves.  Raises ``sqlite3.DatabaseError`` if the table holds a
        number of rows no tree has (it was edited outside this class)."""
        last = conn.execute(f"SELECT MAX(id) FROM {self.table}").fetchone()[0]
        rows = 0 if last is None else int(last) + 1
        size = _size_of(rows)
        if size is None:
            raise sqlite3.DatabaseError(
                f"{self.table}: holds rows up to {rows - 1}, which no tree size has"
                " (2n - popcount(n) rows for n leaves): the table is damaged"
            )
        return size

    def append(self, conn: sqlite3.Connection, leaf_hashes: Iterable[bytes]) -> int:
        """Append leaves by their RFC 9162 leaf hashes (``_merkle.leaf_hash`` of each
        entry) and return the new size.  O(log n) queries per call, O(1) inserted rows per
        leaf on average.  Must run inside the caller's transaction, with the log entries
        the leaves hash; raises ``ValueError`` outside one and ``ProofError`` for a hash
        that is not 32 bytes (then nothing is written)."""
        if conn.isolation_level is None and not conn.in_transaction:
            raise ValueError(
                f"{self.table}: append outside a transaction; expected BEGIN first, so"
                " that leaves and the entries they hash commit together"
            )
        size = self.size(conn)
        frontier = self.frontier(conn, size)
        row = 2 * size - size.bit_count()
        rows: list[tuple[int, bytes]] = []
        for leaf in leaf_hashes:
            for h in frontier.append(leaf):
                rows.append((row, h))
                row += 1
        conn.executemany(f"INSERT INTO {self.table} (id, hash) VALUES (?, ?)", rows)
        return frontier.size

    def leaf_hash(self, conn: sqlite3.Connection, index: int) -> bytes:
        """The hash of leaf ``index``.  Raises ``ProofError`` unless it is below the size."""
        size = self.size(conn)
        if type(index) is not int or not 0 <= index < size:
            raise ProofError(
                f"{self.table}: leaf index: received {_show(index)}, expected an integer in"
                f" [0, {size})"
            )
        return self._hashes(conn, [Node(0, index)])[0]

    def frontier(self, conn: sqlite3.Connection, size: int) -> Frontier:
        """The right border of the tree of the first ``size`` leaves (its perfect subtrees,
        largest first), to append to or take the root of.  Raises ``ProofError`` for a
        size beyond the log's."""
        if type(size) is not int or not 0 <= size <= MAX_SIZE:
            raise self._refuse_size(conn, size)
        nodes = []
        start = 0
        for level in reversed(range(size.bit_length())):
            if (size >> level) & 1:
                nodes.append(Node(level, start >> level))
                start += 1 << level
        return Frontier(size, self._hashes(conn, nodes, size))

    def root(self, conn: sqlite3.Connection, size: int | None = None) -> bytes:
        """The RFC 9162 root of the tree of the first ``size`` leaves (default: all).
        Raises ``ProofError`` for a size beyond the log's."""
        return self.frontier(conn, self.size(conn) if size is None else size).root()

    def inclusion_proof(self, conn: sqlite3.Connection, index: int, size: int) -> list[bytes]:
        """The RFC 9162 inclusion proof of leaf ``index`` in the tree of the first ``size``
        leaves, leaf side first.  Raises ``ProofError`` unless
        ``0 <= index < size <= self.size(conn)``."""
        return self._resolve(conn, inclusion_plan(index, size), size)

    def consistency_proof(self, conn: sqlite3.Connection, size1: int, size2: int) -> list[bytes]:
        """The RFC 9162 consistency proof from the tree of the first ``size1`` leaves to
        that of the first ``size2``.  Raises ``ProofError`` unless
        ``0 < size1 <= size2 <= self.size(conn)``."""
        return self._resolve(conn, consistency_plan(size1, size2), size2)

    # -- helpers ------------------------------------------------------------------------
    def _refuse_size(self, conn: sqlite3.Connection, size: object) -> ProofError:
        return ProofError(
            f"{self.table}: tree size: received {_show(size)}, expected an integer in"
            f" [0, {self.size(conn)}] (the log's size)"
        )

    def _resolve(
        self, conn: sqlite3.Connection, plan: list[tuple[Node, ...]], size: int
    ) -> list[bytes]:
        """Each proof hash of ``plan`` for the tree of ``size`` leaves, from one query for
        all the subtrees it names."""
        hashes = self._hashes(conn, [n for item in plan for n in item], size)
        out = []
        at = 0
        for item in plan:
            if len(item) == 1:  # most are one perfect subtree: nothing to fold
                out.append(hashes[at])
            else:
                out.append(fold(hashes[at : at + len(item)]))
            at += len(item)
        return out

    def _hashes(
        self, conn: sqlite3.Connection, nodes: list[Node], size: int | None = None
    ) -> list[bytes]:
        """The hashes of ``nodes``, in their order.  With ``size``, also checks in the same
        query that the log has that many leaves (the last row they make exists) and raises
        ``ProofError`` if not.  Raises ``sqlite3.DatabaseError`` if a node is missing from
        a log that has the leaves it covers."""
        last = 2 * size - size.bit_count() - 1 if size else -1
        if last > _SQLITE_MAX:  # a uint64 from the wire that no log of this hub reaches
            raise self._refuse_size(conn, size or 0)
        ids = list(map(node_row, nodes))
        marks = ",".join("?" * (len(ids) + 1))
        by_id = dict(
            conn.execute(f"SELECT id, hash FROM {self.table} WHERE id IN ({marks})", [*ids, last])
        )
        if size and last not in by_id:
            raise self._refuse_size(conn, size)
        try:
            return [by_id[i] for i in ids]
        except KeyError:
            missing = next(n for n, i in zip(nodes, ids, strict=True) if i not in by_id)
            raise sqlite3.DatabaseError(
                f"{self.table}: subtree {missing} (row {node_row(missing)}) is missing"
                " though the tree size says it is complete: the table is damaged"
            ) from None
