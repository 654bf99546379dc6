"""The member's local store (``DATA/local.db``): verified indicators, the sync cursor, the
key directory and collaboration keys.  Applying a batch and advancing the cursor is one
SQLite transaction, so a crash at any point neither loses nor doubles a change."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import orjson

from sighub.client._model import Indicator
from sighub.client._stix import format_time

__all__ = [
    "LOCAL_DB",
    "LocalStore",
    "StoredAlarm",
    "StoredIndicator",
    "stored",
    "stored_row",
    "transaction",
]

# The local store's file name inside a member's data directory.
LOCAL_DB: Final = "local.db"

# The indicator_changes entries kept: a matcher further behind rebuilds from every row.
CHANGES_KEPT: Final = 65536
_OLD_ROW: Final = (
    "VALUES (OLD.rowid, OLD.collab, OLD.key_epoch, OLD.form, OLD.value, OLD.canon, OLD.scheme)"
)


def _change_trigger(event: str, row: str) -> str:
    name, timing = event.split(" ", 1)
    return (
        f"CREATE TRIGGER IF NOT EXISTS indicator_changes_{name} {timing} ON indicators"
        " BEGIN INSERT INTO indicator_changes"
        f" (row, collab, key_epoch, form, value, canon, scheme) {row};"
        " DELETE FROM indicator_changes"
        f" WHERE n <= (SELECT max(n) FROM indicator_changes) - {CHANGES_KEPT}; END"
    )


# Each indicator's (canon version, blinding scheme): the matcher blinds a text's candidates
# under each pair its rules use.  Stores made before canon/2 gain the columns; their rows
# are canon/1 and blake2b-128, the only pair there was.
_CANON_DECL: Final = "TEXT NOT NULL DEFAULT 'canon/1'"
_SCHEME_DECL: Final = "TEXT NOT NULL DEFAULT 'blake2b-128'"
_PAIR_COLUMNS: Final = f"canon {_CANON_DECL}, scheme {_SCHEME_DECL}"

_SCHEMA: Final = [
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS indicators (id TEXT PRIMARY KEY, collab TEXT NOT NULL,"
    " publisher TEXT NOT NULL, publisher_name TEXT NOT NULL, kind TEXT NOT NULL,"
    " form TEXT NOT NULL, value TEXT NOT NULL, key_epoch INTEGER, confidence INTEGER NOT NULL,"
    " labels TEXT NOT NULL, description TEXT NOT NULL, tlp TEXT NOT NULL,"
    " valid_from TEXT NOT NULL, valid_until TEXT NOT NULL, modified TEXT NOT NULL,"
    " revoked INTEGER NOT NULL, seq INTEGER NOT NULL, created TEXT NOT NULL,"
    f" {_PAIR_COLUMNS})",
    "CREATE INDEX IF NOT EXISTS indicators_valid_until ON indicators (valid_until)",
    "CREATE TABLE IF NOT EXISTS refused (envelope_id TEXT PRIMARY KEY, seq INTEGER NOT NULL,"
    " collab TEXT NOT NULL, reason TEXT NOT NULL, at TEXT NOT NULL)",
    # The key directory, replaced whole on every refresh (the earlier ``keys`` table
    # revoked by time; revocation now takes effect at a log sequence).
    "DROP TABLE IF EXISTS keys",
    "CREATE TABLE IF NOT EXISTS signing_keys (key_id TEXT PRIMARY KEY, member TEXT NOT NULL,"
    " identity TEXT NOT NULL, public_key BLOB NOT NULL, revoked_seq INTEGER)",
    "CREATE TABLE IF NOT EXISTS collab_keys (collab TEXT NOT NULL, epoch INTEGER NOT NULL,"
    " secret BLOB NOT NULL, PRIMARY KEY (collab, epoch))",
    # The signing keys the hub's log vouches for (``_keyring``), kept with the log state.
    "CREATE TABLE IF NOT EXISTS log_keys (key_id TEXT PRIMARY KEY, member TEXT NOT NULL,"
    " identity TEXT NOT NULL, public_key BLOB NOT NULL, since INTEGER NOT NULL,"
    " revoked INTEGER, flaw TEXT NOT NULL)",
    # Each member's current HPKE encryption key as the log shows it (``_keyring``).
    "CREATE TABLE IF NOT EXISTS log_encryption_keys (member TEXT PRIMARY KEY,"
    " suite TEXT NOT NULL, public_key BLOB NOT NULL, key_id TEXT NOT NULL,"
    " since INTEGER NOT NULL, flaw TEXT NOT NULL)",
    # Each collaboration key epoch a steward made, as its leaves in the verified log show
    # it (``_stewardlog.LoggedEpoch``): a wrap must carry that commitment and steward.
    "CREATE TABLE IF NOT EXISTS log_epochs (collab TEXT NOT NULL, epoch INTEGER NOT NULL,"
    " commitment TEXT NOT NULL, steward TEXT NOT NULL, PRIMARY KEY (collab, epoch))",
    # Each collaboration's stewards, members and ended designations as the verified log
    # shows them (``_stewardlog.CollabState``, JSON).
    "CREATE TABLE IF NOT EXISTS log_collabs (collab TEXT PRIMARY KEY, state TEXT NOT NULL)",
    # Each peering of the hub with another hub as the verified log shows it
    # (``_peerlog.LoggedPeer.row``): the log key and collaboration map the admin signed.
    "CREATE TABLE IF NOT EXISTS log_peers (name TEXT PRIMARY KEY, origin TEXT NOT NULL,"
    " log_key BLOB NOT NULL, address TEXT NOT NULL, collabs TEXT NOT NULL,"
    " direction TEXT NOT NULL, max_hops INTEGER NOT NULL, tlp_ceiling TEXT NOT NULL,"
    " status TEXT NOT NULL, seq INTEGER NOT NULL, status_seq INTEGER NOT NULL)",
    # Where each envelope relayed from another hub came from (its sequence in this log):
    # the origin hub and the hubs it was relayed through, this one last (JSON list).
    "CREATE TABLE IF NOT EXISTS relayed (seq INTEGER PRIMARY KEY, origin TEXT NOT NULL,"
    " hops TEXT NOT NULL)",
    # What the hub's log showed that does not verify, kept as evidence; an operator's
    # ``sync --clear-alarm`` sets ``acknowledged`` and keeps the row.
    "CREATE TABLE IF NOT EXISTS log_alarms (id INTEGER PRIMARY KEY, at TEXT NOT NULL,"
    " kind TEXT NOT NULL, message TEXT NOT NULL, evidence TEXT NOT NULL, acknowledged TEXT)",
    # What a matcher must forget: the old version of each indicator row replaced, updated or
    # deleted (``row``: its rowid), so a reload applies changes instead of reading every row.
    # New rows need no entry: their rowids lie above the matcher's last one.  Triggers keep
    # it; it holds the latest CHANGES_KEPT entries.  A row replaced on a connection without
    # recursive_triggers goes unlogged: the matcher then keeps a reference that finds no
    # row when it fires (results stay right, the reference lingers until a full read).
    "CREATE TABLE IF NOT EXISTS indicator_changes (n INTEGER PRIMARY KEY, row INTEGER NOT NULL,"
    " collab TEXT NOT NULL, key_epoch INTEGER, form TEXT NOT NULL, value TEXT NOT NULL,"
    f" {_PAIR_COLUMNS})",
]
_TRIGGERS: Final = [
    _change_trigger("updated AFTER UPDATE", _OLD_ROW),
    _change_trigger("deleted AFTER DELETE", _OLD_ROW),
]


@dataclass(frozen=True, slots=True)
class StoredIndicator:
    """An indicator in force, as a member's local store holds it and as sinks receive it:
    ``collab`` and ``publisher`` (identity id) and ``publisher_name`` say where it comes
    from; ``value`` is the blinded digest (hex) or the pattern; ``valid_until`` is
    RFC 3339 UTC; ``tlp`` its TLP 2.0 level (honour ``red``)."""

    id: str
    collab: str
    publisher: str
    publisher_name: str
    kind: str
    form: str
    value: str
    key_epoch: int | None
    confidence: int
    labels: tuple[str, ...]
    description: str
    valid_until: str
    tlp: str = "amber"  # TLP 2.0 level: detection code must honour red
    canon: str = "canon/1"  # the canon version its value was canonicalized under
    scheme: str = "blake2b-128"  # its blinding scheme ("" for a pattern)


@dataclass(frozen=True, slots=True)
class StoredAlarm:
    """A log alarm as ``local.db`` keeps it: when, what the hub did (``kind``), the
    message, the evidence (JSON text) and when an operator acknowledged it (or None)."""

    id: int
    at: str
    kind: str
    message: str
    evidence: str
    acknowledged: str | None


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any exception: all or nothing."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def stored(ind: Indicator) -> StoredIndicator:
    return stored_row(LocalStore.row(ind, 0))


def stored_row(r: tuple[Any, ...]) -> StoredIndicator:
    """The StoredIndicator of a row made by ``LocalStore.row``."""
    labels = tuple(json.loads(r[9]))
    return StoredIndicator(
        r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], labels, r[10], r[13], r[11],
        r[18], r[19],
    )  # fmt: skip


_MARKS: Final = ",".join("?" * 20)  # one per column of LocalStore.row
_STORED_COLUMNS: Final = (
    "id, collab, publisher, publisher_name, kind, form, value, key_epoch, confidence, labels,"
    " description, valid_until, tlp, canon, scheme"
)


_PEER_COLUMNS: Final = (
    "name, origin, log_key, address, collabs, direction, max_hops, tlp_ceiling, status, seq,"
    " status_seq"
)

_MATCHER_COLUMNS: Final = (
    "rowid, collab, key_epoch, form, value, canon, scheme, valid_from, valid_until, revoked"
)


def _stored_row(r: tuple[Any, ...]) -> StoredIndicator:
    """A StoredIndicator from a row selected with _STORED_COLUMNS."""
    labels = tuple(json.loads(r[9]))
    return StoredIndicator(
        r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], labels, r[10], r[11], r[12],
        r[13], r[14],
    )  # fmt: skip


class LocalStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("PRAGMA busy_timeout=10000")
        # A large sync inserts random ids: keep the id index's pages cached (128 MiB) and
        # checkpoint in larger steps, rather than rewriting pages batch after batch.
        self.conn.execute("PRAGMA cache_size=-131072")
        self.conn.execute("PRAGMA wal_autocheckpoint=10000")
        # so that a row INSERT OR REPLACE deletes is logged in indicator_changes: a trigger
        # on every insert instead would slow a sync's inserts by half
        self.conn.execute("PRAGMA recursive_triggers=ON")
        for stmt in _SCHEMA:
            self.conn.execute(stmt)
        self._add_columns("log_epochs", flaw="TEXT NOT NULL DEFAULT ''", keys="TEXT NOT NULL"
                          " DEFAULT ''")  # fmt: skip
        self._add_canon_column()
        for stmt in _TRIGGERS:
            self.conn.execute(stmt)

    def _add_columns(self, table: str, **columns: str) -> bool:
        """Columns a table made by an earlier version lacks (``CREATE ... IF NOT EXISTS``
        leaves it as it was), each checked on its own (each ALTER commits apart: a crash
        between two leaves one); whether any was added."""
        have = {r[1] for r in self.conn.execute(f"PRAGMA table_info({table})")}
        added = False
        for name, decl in columns.items():
            if name not in have:
                self.conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")
                added = True
        return added

    def _add_canon_column(self) -> None:
        """Give a store made before canon/2 its ``canon`` and ``scheme`` columns, and
        triggers that log them (the old ones would log every change as canon/1)."""
        for table in ("indicators", "indicator_changes"):
            if self._add_columns(table, canon=_CANON_DECL, scheme=_SCHEME_DECL):
                for name in ("updated", "deleted"):
                    self.conn.execute(f"DROP TRIGGER IF EXISTS indicator_changes_{name}")

    def close(self) -> None:
        self.conn.close()

    def tx(self) -> AbstractContextManager[sqlite3.Connection]:
        return transaction(self.conn)

    # -- cursor and meta --------------------------------------------------------------
    def meta(self, key: str, default: str = "") -> str:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return default if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    @property
    def cursor(self) -> int:
        return int(self.meta("cursor", "0"))

    # -- the hub's log ------------------------------------------------------------------
    def add_alarm(self, at: str, kind: str, message: str, evidence: dict[str, Any]) -> None:
        """Keep an alarm's evidence (in its own transaction: what the alarm stopped was
        rolled back)."""
        with self.tx() as c:
            c.execute(
                "INSERT INTO log_alarms (at, kind, message, evidence) VALUES (?, ?, ?, ?)",
                (at, kind, message, json.dumps(evidence, sort_keys=True, default=str)),
            )

    def alarms(self, open_only: bool = True) -> list[StoredAlarm]:
        """The alarms recorded, oldest first; only those not acknowledged by default."""
        where = " WHERE acknowledged IS NULL" if open_only else ""
        return [
            StoredAlarm(*r)
            for r in self.conn.execute(
                "SELECT id, at, kind, message, evidence, acknowledged FROM log_alarms"
                f"{where} ORDER BY id"
            )
        ]

    def acknowledge_alarms(self, at: str) -> int:
        """Mark every open alarm acknowledged at ``at`` (the evidence stays); how many."""
        with self.tx() as c:
            return c.execute(
                "UPDATE log_alarms SET acknowledged = ? WHERE acknowledged IS NULL", (at,)
            ).rowcount

    # -- directory --------------------------------------------------------------------
    def replace_directory(
        self,
        keys: Iterable[tuple[str, str, str, bytes, int | None]] | None,
        collab_keys: Iterable[tuple[str, int, bytes]],
    ) -> None:
        """Replace the hub's signing-key directory (``keys``; None: leave it) and add the
        collaboration keys."""
        with self.tx() as c:
            if keys is not None:
                c.execute("DELETE FROM signing_keys")
                c.executemany("INSERT INTO signing_keys VALUES (?, ?, ?, ?, ?)", list(keys))
            c.executemany("INSERT OR REPLACE INTO collab_keys VALUES (?, ?, ?)", list(collab_keys))

    def put_collab_keys(self, collab_keys: Iterable[tuple[str, int, bytes]]) -> None:
        """Keep collaboration key epochs (unwrapped, or made here as a steward)."""
        with self.tx() as c:
            c.executemany("INSERT OR REPLACE INTO collab_keys VALUES (?, ?, ?)", list(collab_keys))
        for suffix in ("", "-wal", "-shm"):  # secrets live here now: owner only
            with contextlib.suppress(FileNotFoundError):
                os.chmod(f"{self.path}{suffix}", 0o600)

    def directory(self) -> dict[str, tuple[str, str, bytes, int | None, int, str]]:
        """key id -> (member, identity, public key, log sequence it was revoked at, 0, ""),
        as the hub's key directory served it (used only when the log is not checked)."""
        return {
            r[0]: (r[1], r[2], bytes(r[3]), r[4], 0, "")
            for r in self.conn.execute(
                "SELECT key_id, member, identity, public_key, revoked_seq FROM signing_keys"
            )
        }

    def log_keys(self) -> list[tuple[Any, ...]]:
        """The rows of ``log_keys``: (key id, member, identity, public key, since,
        revoked, flaw)."""
        return [
            (r[0], r[1], r[2], bytes(r[3]), r[4], r[5], r[6])
            for r in self.conn.execute(
                "SELECT key_id, member, identity, public_key, since, revoked, flaw FROM log_keys"
            )
        ]

    def put_log_keys(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """Insert or replace ``log_keys`` rows, inside the caller's transaction."""
        self.conn.executemany("INSERT OR REPLACE INTO log_keys VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def log_encryption_keys(self) -> list[tuple[Any, ...]]:
        """The rows of ``log_encryption_keys``: (member, suite, public key, signing key
        id, since, flaw)."""
        return [
            (r[0], r[1], bytes(r[2]), r[3], r[4], r[5])
            for r in self.conn.execute(
                "SELECT member, suite, public_key, key_id, since, flaw FROM log_encryption_keys"
            )
        ]

    def put_log_encryption_keys(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """Insert or replace ``log_encryption_keys`` rows, inside the caller's
        transaction."""
        self.conn.executemany(
            "INSERT OR REPLACE INTO log_encryption_keys VALUES (?, ?, ?, ?, ?, ?)", rows
        )

    def log_epochs(self) -> dict[tuple[str, int], tuple[str, str, str, str]]:
        """(collab, epoch) -> (commitment, steward, flaw, signing key ids) of the stewards'
        logged epochs (``_stewardlog.LoggedEpoch.from_row``)."""
        return {
            (r[0], r[1]): (r[2], r[3], r[4], r[5])
            for r in self.conn.execute(
                "SELECT collab, epoch, commitment, steward, flaw, keys FROM log_epochs"
            )
        }

    def put_log_epochs(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """Insert or replace logged epochs, inside the caller's transaction."""
        self.conn.executemany(
            "INSERT OR REPLACE INTO log_epochs (collab, epoch, commitment, steward, flaw, keys)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )

    def log_collabs(self) -> dict[str, str]:
        """collab -> its state as the verified log shows it (JSON)."""
        return dict(self.conn.execute("SELECT collab, state FROM log_collabs").fetchall())

    def put_log_collabs(self, rows: Iterable[tuple[str, str]]) -> None:
        """Insert or replace collaborations' states, inside the caller's transaction."""
        self.conn.executemany("INSERT OR REPLACE INTO log_collabs VALUES (?, ?)", rows)

    def log_peers(self) -> list[tuple[Any, ...]]:
        """The rows of ``log_peers`` (``_peerlog.LoggedPeer.from_row``), in log order."""
        q = f"SELECT {_PEER_COLUMNS} FROM log_peers ORDER BY seq"
        return [tuple(r) for r in self.conn.execute(q)]

    def put_log_peers(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """Insert or replace peerings' records, inside the caller's transaction."""
        self.conn.executemany(
            f"INSERT OR REPLACE INTO log_peers ({_PEER_COLUMNS})"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )

    def clear_log_keys(self) -> None:
        """Forget the logged keys, signing and encryption, the logged epochs, stewards and
        peerings (a resync reads the log again), in the caller's transaction."""
        for table in ("log_keys", "log_encryption_keys", "log_epochs", "log_collabs", "log_peers"):
            self.conn.execute(f"DELETE FROM {table}")

    def collab_keys(self) -> list[tuple[str, int, bytes]]:
        return [
            (r[0], r[1], bytes(r[2]))
            for r in self.conn.execute(
                "SELECT collab, epoch, secret FROM collab_keys ORDER BY collab, epoch"
            )
        ]

    # -- applying ---------------------------------------------------------------------
    def states(self, ids: list[str]) -> dict[str, tuple[str, str, int]]:
        """id -> (publisher identity, modified, revoked) for the ids already stored."""
        out: dict[str, tuple[str, str, int]] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for r in self.conn.execute(
                f"SELECT id, publisher, modified, revoked FROM indicators WHERE id IN ({marks})",
                chunk,
            ):
                out[r[0]] = (r[1], r[2], r[3])
        return out

    def upsert(self, c: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
        c.executemany(f"INSERT OR REPLACE INTO indicators VALUES ({_MARKS})", rows)

    def insert_new(self, c: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> bool:
        """Insert ``rows`` if none of their ids is stored yet (the common case: new
        indicators, no lookup needed); otherwise insert nothing and return False."""
        c.execute("SAVEPOINT new_rows")
        before = c.total_changes
        c.executemany(f"INSERT INTO indicators VALUES ({_MARKS}) ON CONFLICT (id) DO NOTHING", rows)
        fresh = c.total_changes - before == len(rows)
        if not fresh:
            c.execute("ROLLBACK TO new_rows")
        c.execute("RELEASE new_rows")
        return fresh

    @staticmethod
    def row(ind: Indicator, seq: int) -> tuple[Any, ...]:
        return (
            ind.id,
            ind.collaboration,
            ind.publisher.id,
            ind.publisher.name,
            ind.kind.value,
            ind.form.value,
            ind.value,
            ind.key_epoch,
            ind.confidence,
            orjson.dumps(ind.labels).decode(),
            ind.description,
            ind.tlp.value,
            format_time(ind.valid_from),
            format_time(ind.valid_until),
            format_time(ind.modified),
            int(ind.revoked),
            seq,
            format_time(ind.created),
            ind.canon_version,
            ind.scheme or "",  # a pattern has none
        )

    def refuse(
        self, c: sqlite3.Connection, envelope_id: str, seq: int, collab: str, reason: str, at: str
    ) -> None:
        c.execute(
            "INSERT OR REPLACE INTO refused VALUES (?, ?, ?, ?, ?)",
            (envelope_id, seq, collab, reason, at),
        )

    def record_relayed(
        self, c: sqlite3.Connection, seq: int, origin: str, hops: Sequence[str]
    ) -> None:
        """Where the relayed envelope at ``seq`` came from (see ``provenance``)."""
        c.execute(
            "INSERT OR REPLACE INTO relayed (seq, origin, hops) VALUES (?, ?, ?)",
            (seq, origin, json.dumps(list(hops))),
        )

    # -- reading ----------------------------------------------------------------------
    def provenance(self, indicator_id: str) -> tuple[str, tuple[str, ...]] | None:
        """(origin hub, hubs relayed through) of the stored version of ``indicator_id``
        when it was relayed from another hub; None when it was published on this one (or
        is not stored)."""
        row = self.conn.execute(
            "SELECT r.origin, r.hops FROM indicators i JOIN relayed r ON r.seq = i.seq"
            " WHERE i.id = ?",
            (indicator_id,),
        ).fetchone()
        return None if row is None else (str(row[0]), tuple(json.loads(row[1])))

    def active(self, now: datetime) -> list[StoredIndicator]:
        """Indicators in force at ``now``: not revoked, not expired (enforced locally)."""
        t = format_time(now)
        rows = self.conn.execute(
            f"SELECT {_STORED_COLUMNS} FROM indicators"
            " WHERE revoked = 0 AND valid_until > ? AND valid_from <= ?",
            (t, t),
        )
        return [_stored_row(r) for r in rows]

    def get(self, ids: list[str]) -> dict[str, tuple[Any, ...]]:
        """Full stored rows by id (a publisher revoking its own indicators reads them)."""
        out = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for r in self.conn.execute(f"SELECT * FROM indicators WHERE id IN ({marks})", chunk):
                out[r[0]] = tuple(r)
        return out

    def own_rows(self, publisher: str, collab: str, now: datetime) -> list[tuple[Any, ...]]:
        """Full rows of ``publisher``'s indicators in ``collab`` in force at ``now`` (not
        revoked, not expired)."""
        q = (
            "SELECT * FROM indicators WHERE publisher = ? AND collab = ? AND revoked = 0"
            " AND valid_until > ?"
        )
        return [tuple(r) for r in self.conn.execute(q, (publisher, collab, format_time(now)))]

    # -- what a matcher reads: rows as (rowid, collab, key_epoch, form, value, canon,
    # scheme, valid_from, valid_until, revoked), within one ``snapshot`` so they agree ---
    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """One read transaction: every read inside sees the same state of the store."""
        self.conn.execute("BEGIN")
        try:
            yield
        finally:
            self.conn.execute("COMMIT")

    def live_rows(self, now: datetime) -> Iterator[tuple[Any, ...]]:
        """The rows not revoked and not expired at ``now`` (some may start later)."""
        yield from self.conn.execute(
            f"SELECT {_MATCHER_COLUMNS} FROM indicators WHERE revoked = 0 AND valid_until > ?",
            (format_time(now),),
        )

    def rows_after(self, rowid: int) -> list[tuple[Any, ...]]:
        """The rows above ``rowid``: every row written since ``top_rowid`` returned it."""
        q = f"SELECT {_MATCHER_COLUMNS} FROM indicators WHERE rowid > ?"
        return self.conn.execute(q, (rowid,)).fetchall()

    def rows_at(self, rowids: list[int]) -> list[tuple[Any, ...]]:
        out: list[tuple[Any, ...]] = []
        for start in range(0, len(rowids), 500):
            chunk = rowids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            q = f"SELECT {_MATCHER_COLUMNS} FROM indicators WHERE rowid IN ({marks})"
            out.extend(self.conn.execute(q, chunk))
        return out

    def expired_between(self, after: datetime, upto: datetime) -> list[tuple[Any, ...]]:
        """The rows whose ``valid_until`` lies in ``(after, upto]`` (by its index)."""
        q = f"SELECT {_MATCHER_COLUMNS} FROM indicators WHERE valid_until > ? AND valid_until <= ?"
        return self.conn.execute(q, (format_time(after), format_time(upto))).fetchall()

    def top_rowid(self) -> int:
        return int(self.conn.execute("SELECT max(rowid) FROM indicators").fetchone()[0] or 0)

    def last_change(self) -> int:
        """The number of the latest ``indicator_changes`` entry (0 for none): where a
        matcher built from every row stands in the change log."""
        return int(
            self.conn.execute("SELECT coalesce(max(n), 0) FROM indicator_changes").fetchone()[0]
        )

    def changes_after(self, n: int) -> tuple[int, int, list[tuple[Any, ...]]] | None:
        """(first kept entry, last entry, entries after ``n`` as (row, collab, key_epoch,
        form, value, canon, scheme)) of ``indicator_changes``; None if entries after ``n``
        were pruned."""
        first, last = self.conn.execute("SELECT min(n), max(n) FROM indicator_changes").fetchone()
        if last is None:
            return (0, n, []) if n == 0 else None
        if n < first - 1 or n > last:
            return None
        rows = self.conn.execute(
            "SELECT row, collab, key_epoch, form, value, canon, scheme FROM indicator_changes"
            " WHERE n > ?"
            " ORDER BY n",
            (n,),
        ).fetchall()
        return first, last, rows

    def by_rowid(self, rowid: int) -> StoredIndicator | None:
        r = self.conn.execute(
            f"SELECT {_STORED_COLUMNS} FROM indicators WHERE rowid = ? AND revoked = 0",
            (rowid,),
        ).fetchone()
        return None if r is None else _stored_row(r)

    def sweep_expired(self, now: datetime) -> int:
        with self.tx() as c:
            return c.execute(
                "DELETE FROM indicators WHERE valid_until <= ?", (format_time(now),)
            ).rowcount

    def status(self, now: datetime) -> dict[str, Any]:
        t = format_time(now)
        q = self.conn.execute
        # One pass over the indicators in force, counted by kind, collaboration and canon
        # version (while both canons are, the matcher scans every text under each: about
        # half the rate of one, so an operator sees how far the move has come).
        by_kind: Counter[str] = Counter()
        by_collab: Counter[str] = Counter()
        by_canon: Counter[str] = Counter()
        for kind, collab, canon, n in q(
            "SELECT kind, collab, canon, COUNT(*) FROM indicators"
            " WHERE revoked=0 AND valid_until > ? GROUP BY kind, collab, canon",
            (t,),
        ):
            by_kind[kind] += n
            by_collab[collab] += n
            by_canon[canon] += n
        return {
            "cursor": self.cursor,
            "last_sync": self.meta("last_sync", "never"),
            "active": sum(by_kind.values()),
            "by_kind": dict(sorted(by_kind.items())),
            "by_collaboration": dict(sorted(by_collab.items())),
            "by_canon": dict(sorted(by_canon.items())),
            "expired": q("SELECT COUNT(*) FROM indicators WHERE valid_until <= ?", (t,)).fetchone()[
                0
            ],
            "revoked": q("SELECT COUNT(*) FROM indicators WHERE revoked = 1").fetchone()[0],
            "refused_envelopes": q("SELECT COUNT(*) FROM refused").fetchone()[0],
        }
