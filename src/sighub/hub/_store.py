"""Hub storage on SQLite (WAL): an append-only envelope log, the current state of every
indicator, members and keys, collaborations and key epochs, the audit log.

Each ``Store`` owns one connection and is used from one thread at a time; the service
keeps one for writes (a single-thread executor) and opens more for readers.  Every write
method is one transaction: all of it or nothing.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import sqlite_utils

from sighub.client._local import transaction

__all__ = ["EnvelopeRow", "IndicatorRow", "MemberRow", "Store"]


@dataclass(frozen=True, slots=True)
class MemberRow:
    name: str
    identity: str
    roles: tuple[str, ...]
    status: str
    created: str
    cert_serial: str | None

    @property
    def active(self) -> bool:
        return self.status == "active"


@dataclass(frozen=True, slots=True)
class IndicatorRow:
    id: str
    collab: str
    publisher: str
    kind: str
    modified: str
    valid_until: str
    revoked: bool
    seq: int


@dataclass(frozen=True, slots=True)
class EnvelopeRow:
    seq: int
    id: str
    collab: str
    raw: bytes
    hops: str


def _v1(db: sqlite_utils.Database) -> None:
    db.table("meta").create({"key": str, "value": str}, pk="key")
    db.table("members").create(
        {
            "name": str,
            "identity": str,
            "roles": str,
            "status": str,
            "created": str,
            "token_hash": str,
            "cert_serial": str,
        },
        pk="name",
        not_null={"identity", "roles", "status", "created"},
    )
    db.table("members").create_index(["identity"], unique=True)
    db.table("bearer_tokens").create(
        {"token_hash": str, "member": str, "created": str}, pk="token_hash"
    )
    db.table("member_keys").create(
        {"key_id": str, "member": str, "public_key": bytes, "added": str, "revoked_at": str},
        pk="key_id",
        not_null={"member", "public_key", "added"},
    )
    db.table("member_keys").create_index(["member"])
    db.table("collabs").create({"name": str, "created": str}, pk="name")
    db.table("memberships").create({"collab": str, "member": str}, pk=("collab", "member"))
    db.table("memberships").create_index(["member"])
    db.table("collab_keys").create(
        {"collab": str, "epoch": int, "secret": bytes, "created": str}, pk=("collab", "epoch")
    )
    # The append-only log: the exact envelope bytes, in commit order.
    db.execute(
        "CREATE TABLE envelopes (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,"
        " collab TEXT NOT NULL, publisher TEXT NOT NULL, key_id TEXT NOT NULL,"
        " received TEXT NOT NULL, n_indicators INTEGER NOT NULL, hops TEXT NOT NULL,"
        " raw BLOB NOT NULL)"
    )
    db.execute("CREATE INDEX envelopes_collab_seq ON envelopes (collab, seq)")
    db.table("indicators").create(
        {
            "id": str,
            "collab": str,
            "publisher": str,
            "kind": str,
            "modified": str,
            "valid_until": str,
            "revoked": int,
            "seq": int,
        },
        pk="id",
    )
    db.table("indicators").create_index(["valid_until"])
    db.execute(
        "CREATE TABLE audit (seq INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL,"
        " actor TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL, detail TEXT NOT NULL)"
    )
    db.execute("CREATE INDEX audit_at ON audit (at)")


def _v2(db: sqlite_utils.Database) -> None:
    """Key revocation takes effect at a log sequence (envelopes at or before it stay valid),
    and the directory remembers who published in a collaboration after they leave it."""
    db.execute("ALTER TABLE member_keys ADD COLUMN revoked_seq INTEGER")
    db.execute(
        "UPDATE member_keys SET revoked_seq = (SELECT COALESCE(MAX(seq), 0) FROM envelopes"
        " WHERE received <= member_keys.revoked_at) WHERE revoked_at IS NOT NULL"
    )
    db.execute(
        "CREATE TABLE collab_publishers (collab TEXT NOT NULL, member TEXT NOT NULL,"
        " PRIMARY KEY (collab, member)) WITHOUT ROWID"
    )
    db.execute("INSERT INTO collab_publishers SELECT DISTINCT collab, publisher FROM envelopes")


MIGRATIONS: Final[list[Callable[[sqlite_utils.Database], None]]] = [_v1, _v2]


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")  # an acknowledged publish survives power loss
        self.conn.execute("PRAGMA busy_timeout=10000")
        # Fewer, larger checkpoints: a publish writes ~1 MB, the default (1000 pages)
        # would checkpoint after almost every one.
        self.conn.execute("PRAGMA wal_autocheckpoint=10000")
        self.db = sqlite_utils.Database(self.conn)

    def migrate(self) -> int:
        """Apply pending migrations; return the schema version."""
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise RuntimeError(f"{self.path}: schema {version} is newer than this hub")
        for i in range(version, len(MIGRATIONS)):
            with self.tx():
                MIGRATIONS[i](self.db)
                self.conn.execute(f"PRAGMA user_version={i + 1}")
        return len(MIGRATIONS)

    def close(self) -> None:
        self.conn.close()

    def tx(self) -> AbstractContextManager[sqlite3.Connection]:
        return transaction(self.conn)

    def one(self, sql: str, *args: Any) -> Any:
        return self.conn.execute(sql, args).fetchone()

    def all(self, sql: str, *args: Any) -> list[Any]:
        return self.conn.execute(sql, args).fetchall()

    # -- meta, audit ------------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        row = self.one("SELECT value FROM meta WHERE key=?", key)
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def audit(self, at: str, actor: str, action: str, target: str, **detail: Any) -> None:
        self.conn.execute(
            "INSERT INTO audit (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
            (at, actor, action, target, json.dumps(detail, sort_keys=True)),
        )

    def audit_log(
        self, member: str, since: str, limit: int, before: int | None = None
    ) -> list[tuple[Any, ...]]:
        """(seq, at, actor, action, target, detail JSON) of up to ``limit`` entries at or
        after ``since``, with seq below ``before`` when given, newest first."""
        sql = "SELECT seq, at, actor, action, target, detail FROM audit WHERE at >= ?"
        args: list[Any] = [since]
        if member:
            sql += " AND (actor = ? OR target = ?)"
            args += [member, member]
        if before is not None:
            sql += " AND seq < ?"
            args.append(before)
        return self.all(sql + " ORDER BY seq DESC LIMIT ?", *args, limit)

    # -- members ----------------------------------------------------------------------
    def member(self, name: str) -> MemberRow | None:
        row = self.one(
            "SELECT name, identity, roles, status, created, cert_serial FROM members WHERE name=?",
            name,
        )
        if row is None:
            return None
        return MemberRow(
            row[0], row[1], tuple(filter(None, row[2].split(","))), row[3], row[4], row[5]
        )

    def members(self, after: str = "", limit: int = -1) -> list[MemberRow]:
        """Members named after ``after``, by name, at most ``limit`` (-1: all)."""
        names = [
            r[0]
            for r in self.all(
                "SELECT name FROM members WHERE name > ? ORDER BY name LIMIT ?", after, limit
            )
        ]
        return [m for m in map(self.member, names) if m is not None]

    def member_by_token(self, token_hash: str) -> str | None:
        row = self.one("SELECT member FROM bearer_tokens WHERE token_hash=?", token_hash)
        return None if row is None else str(row[0])

    def member_keys(self, member: str) -> list[tuple[str, bytes, str, str | None, int | None]]:
        """(key id, public key, added, revoked_at, revoked_seq) of ``member``'s keys."""
        return [
            (r[0], bytes(r[1]), r[2], r[3], r[4])
            for r in self.all(
                "SELECT key_id, public_key, added, revoked_at, revoked_seq FROM member_keys"
                " WHERE member=? ORDER BY added, key_id",
                member,
            )
        ]

    def revoke_keys(self, now: str, member: str, key_id: str | None = None) -> None:
        """Revoke ``key_id`` (or every valid key of ``member``) at ``now`` and at the
        current log head: envelopes it signed up to the head stay valid.  Runs inside the
        caller's transaction."""
        sql = (
            "UPDATE member_keys SET revoked_at = ?, revoked_seq = ? WHERE member = ?"
            " AND revoked_at IS NULL"
        )
        args: list[Any] = [now, self.head(), member]
        if key_id is not None:
            sql += " AND key_id = ?"
            args.append(key_id)
        self.conn.execute(sql, args)

    def collab_publishers(self, collabs: Iterable[str]) -> list[str]:
        """Members that ever published in ``collabs`` (members now or not)."""
        names = list(collabs)
        marks = ",".join("?" * len(names))
        return [
            r[0]
            for r in self.all(
                f"SELECT DISTINCT member FROM collab_publishers WHERE collab IN ({marks})", *names
            )
        ]

    def key_owner(self, key_id: str) -> tuple[str, bytes, str | None] | None:
        row = self.one(
            "SELECT member, public_key, revoked_at FROM member_keys WHERE key_id=?", key_id
        )
        return None if row is None else (row[0], bytes(row[1]), row[2])

    # -- collaborations ---------------------------------------------------------------
    def collab_exists(self, name: str) -> bool:
        return self.one("SELECT 1 FROM collabs WHERE name=?", name) is not None

    def collab_members(self, name: str) -> list[str]:
        return [
            r[0]
            for r in self.all("SELECT member FROM memberships WHERE collab=? ORDER BY member", name)
        ]

    def member_collabs(self, member: str) -> list[str]:
        return [
            r[0]
            for r in self.all(
                "SELECT collab FROM memberships WHERE member=? ORDER BY collab", member
            )
        ]

    def collab_keys(self, collabs: Iterable[str]) -> list[tuple[str, int, bytes, str]]:
        names = list(collabs)
        if not names:
            return []
        marks = ",".join("?" * len(names))
        return [
            (r[0], r[1], bytes(r[2]), r[3])
            for r in self.all(
                f"SELECT collab, epoch, secret, created FROM collab_keys WHERE collab IN ({marks})"
                " ORDER BY collab, epoch",
                *names,
            )
        ]

    def collab_epoch(self, name: str) -> int | None:
        row = self.one("SELECT MAX(epoch) FROM collab_keys WHERE collab=?", name)
        return None if row is None or row[0] is None else int(row[0])

    # -- the log ----------------------------------------------------------------------
    def envelope_seq(self, envelope_id: str) -> tuple[int, int] | None:
        row = self.one("SELECT seq, n_indicators FROM envelopes WHERE id=?", envelope_id)
        return None if row is None else (int(row[0]), int(row[1]))

    def indicator_states(self, ids: list[str]) -> dict[str, IndicatorRow]:
        out: dict[str, IndicatorRow] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for r in self.all(
                "SELECT id, collab, publisher, kind, modified, valid_until, revoked, seq"
                f" FROM indicators WHERE id IN ({marks})",
                *chunk,
            ):
                out[r[0]] = IndicatorRow(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6]), r[7])
        return out

    def append_envelope(
        self,
        envelope_id: str,
        collab: str,
        publisher: str,
        key_id: str,
        received: str,
        hops: str,
        raw: bytes,
        indicators: list[tuple[str, str, str, str, str, int]],
    ) -> int:
        """Append one envelope and upsert its indicators' current state; returns the
        sequence.  Must run inside ``tx()`` together with the checks that allowed it."""
        cur = self.conn.execute(
            "INSERT INTO envelopes (id, collab, publisher, key_id, received, n_indicators, hops,"
            " raw) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (envelope_id, collab, publisher, key_id, received, len(indicators), hops, raw),
        )
        seq = int(cur.lastrowid or 0)
        self.conn.execute(
            "INSERT OR IGNORE INTO collab_publishers (collab, member) VALUES (?, ?)",
            (collab, publisher),
        )
        self.conn.executemany(
            "INSERT OR REPLACE INTO indicators (id, collab, publisher, kind, modified,"
            " valid_until, revoked, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(i, collab, publisher, k, m, v, r, seq) for i, k, m, v, _, r in indicators],
        )
        return seq

    def head(self) -> int:
        row = self.one("SELECT MAX(seq) FROM envelopes")
        return int(row[0] or 0)

    def visible_head(self, collabs: list[str]) -> int:
        """The highest sequence in ``collabs`` (0 for none): what a stream reading them
        has left to reach."""
        if not collabs:
            return 0
        marks = ",".join("?" * len(collabs))
        row = self.one(f"SELECT MAX(seq) FROM envelopes WHERE collab IN ({marks})", *collabs)
        return int(row[0] or 0)

    def read_batch(
        self, after: int, collabs: list[str], limit: int, max_bytes: int
    ) -> tuple[list[EnvelopeRow], int]:
        """``read_log``, and then ``visible_head``: read after the rows, the head is never
        below the last of them."""
        rows = self.read_log(after, collabs, limit, max_bytes)
        return rows, self.visible_head(collabs)

    def read_log(
        self, after: int, collabs: list[str], limit: int, max_bytes: int
    ) -> list[EnvelopeRow]:
        """Envelopes with seq > ``after`` in ``collabs``, oldest first, at most ``limit``
        of them and about ``max_bytes`` (always at least one)."""
        if not collabs:
            return []
        marks = ",".join("?" * len(collabs))
        rows: list[EnvelopeRow] = []
        size = 0
        for r in self.conn.execute(
            "SELECT seq, id, collab, raw, hops FROM envelopes"
            f" WHERE seq > ? AND collab IN ({marks})"
            " ORDER BY seq LIMIT ?",
            (after, *collabs, limit),
        ):
            raw = bytes(r[3])
            if rows and size + len(raw) > max_bytes:
                break
            rows.append(EnvelopeRow(r[0], r[1], r[2], raw, r[4]))
            size += len(raw)
        return rows

    def sweep_expired(self, now: str) -> int:
        """Drop expired indicators from the current state (the log keeps them)."""
        return self.conn.execute("DELETE FROM indicators WHERE valid_until <= ?", (now,)).rowcount
