"""Hub storage on SQLite (WAL): an append-only envelope log, the current state of every
indicator, members and keys, collaborations and key epochs, the audit log, and the
transparency log over all of it (``leaves``, the Merkle tree ``tlog_nodes``, issued
``checkpoints``, witnesses' ``cosignatures``).

The transparency log's sequence is the sync cursor: leaf ``seq`` (its index + 1) is
appended in the same transaction as the envelope or event it records, and an envelope's
``envelopes.seq`` is its leaf's ``seq``.

Each ``Store`` owns one connection and is used from one thread at a time; the service
keeps one for writes (a single-thread executor) and opens more for readers.  Every write
method is one transaction: all of it or nothing.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import sqlite_utils

from sighub.client import _leaves
from sighub.client._local import transaction
from sighub.client._merkle import leaf_hash
from sighub.client._model import Tlp, holds_keys
from sighub.hub._errors import HubError
from sighub.hub._peering import Direction, Peering
from sighub.hub._tlog import Tlog

__all__ = ["TLOG", "EnvelopeRow", "IndicatorRow", "LogRange", "MemberRow", "Store"]

TLOG: Final = Tlog()  # the hub's one tree, in table tlog_nodes
# Leaves every member reads in full: the directory, and peerings, which clients verify.
_FULL_TYPES: Final = _leaves.DIRECTORY_TYPES | _leaves.PEER_TYPES
_MIGRATE_CHUNK: Final = 10_000  # leaves appended per statement batch when migrating


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

    @property
    def holds_keys(self) -> bool:
        return holds_keys(self.roles)


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
    n: int = 0  # its number within the collaboration; 0 before numbering


@dataclass(frozen=True, slots=True)
class LogRange:
    """A contiguous range (after, cursor] of the log as one reader may see it: the
    envelopes of its collaborations as ``changes``, every other sequence in ``leaves`` as
    (seq, bytes, full): the leaf's bytes when ``full``, else its 32-byte RFC 9162 hash."""

    changes: list[EnvelopeRow]
    leaves: list[tuple[int, bytes, bool]]
    cursor: int
    size: int  # bytes of envelopes and leaves


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


def _v3(db: sqlite_utils.Database) -> None:
    """The transparency log: leaves, the Merkle tree, issued checkpoints.  An existing
    hub's envelopes become leaves 1..N (their seqs must be exactly that), followed by a
    snapshot of the directory as it is now (``_snapshot``)."""
    conn = db.conn
    TLOG.create_tables(conn)
    conn.execute(
        "CREATE TABLE leaves (seq INTEGER PRIMARY KEY, type TEXT NOT NULL, collab TEXT,"
        " member TEXT, leaf BLOB NOT NULL)"
    )
    conn.execute(
        "CREATE TABLE checkpoints (id INTEGER PRIMARY KEY, size INTEGER NOT NULL,"
        " note BLOB NOT NULL, issued TEXT NOT NULL)"
    )
    count, low, high = conn.execute("SELECT COUNT(*), MIN(seq), MAX(seq) FROM envelopes").fetchone()
    if count and (low, high) != (1, count):
        raise RuntimeError(
            f"schema migration 3 (transparency log): envelopes hold {count} rows with seq"
            f" {low}..{high}; expected exactly 1..{count}, since each envelope's seq becomes"
            " its log sequence.  The envelope table was edited: restore it from a backup"
        )
    rows = conn.execute("SELECT seq, collab, raw FROM envelopes ORDER BY seq")
    while chunk := rows.fetchmany(_MIGRATE_CHUNK):
        _append_leaves(
            conn,
            [("envelope", r[1], None, _leaves.envelope_leaf(r[1], bytes(r[2]))) for r in chunk],
        )
    _append_leaves(conn, _snapshot(conn))
    name = conn.execute("SELECT value FROM meta WHERE key='hub_name'").fetchone()
    if name is not None:
        conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('log_origin', ?)",
            (log_origin(name[0]),),
        )


def _v4(db: sqlite_utils.Database) -> None:
    """Witness cosignatures (``_witness``): the latest one per witness key, bound to the
    member that sent the key first.  ``checkpoint`` is the hub-signed note and
    ``cosignature`` the witness's signature line, together a note with both."""
    db.conn.execute(
        "CREATE TABLE cosignatures (key_name TEXT NOT NULL, key_id INTEGER NOT NULL,"
        " public_key BLOB NOT NULL, member TEXT NOT NULL, size INTEGER NOT NULL,"
        " signed_at INTEGER NOT NULL, checkpoint BLOB NOT NULL, cosignature BLOB NOT NULL,"
        " received TEXT NOT NULL, PRIMARY KEY (key_name, key_id)) WITHOUT ROWID"
    )
    db.conn.execute("CREATE INDEX cosignatures_member ON cosignatures (member)")


def _snapshot(conn: sqlite3.Connection) -> list[tuple[str, str | None, str | None, bytes]]:
    """The directory as it is, as leaves, for a hub that had no log: per member (by name)
    one ``member.enroll`` per signing key in the order they were added (the proofs of
    past rotations were never stored), ``key.revoke`` for each revoked one and
    ``member.status`` unless active; then per collaboration ``collab.add``, a
    ``collab.join`` per member and a ``collab.epoch`` per key epoch."""
    out: list[tuple[str, str | None, str | None, bytes]] = []
    members = conn.execute(
        "SELECT name, identity, roles, status FROM members WHERE status != 'pending' ORDER BY name"
    ).fetchall()
    for name, identity, roles, status in members:
        keys = conn.execute(
            "SELECT key_id, public_key, revoked_at FROM member_keys WHERE member=?"
            " ORDER BY added, key_id",
            (name,),
        ).fetchall()
        role_list = [r for r in roles.split(",") if r]
        for kid, public, _ in keys:
            leaf = _leaves.member_enroll(name, identity, role_list, kid, bytes(public))
            out.append(("member.enroll", None, name, leaf))
        for kid, _, revoked in keys:
            if revoked is not None:
                out.append(("key.revoke", None, name, _leaves.key_revoke(name, kid)))
        if status != "active":
            out.append(("member.status", None, name, _leaves.member_status(name, status)))
    for (collab,) in conn.execute("SELECT name FROM collabs ORDER BY name").fetchall():
        out.append(("collab.add", collab, None, _leaves.collab_add(collab)))
        for (member,) in conn.execute(
            "SELECT member FROM memberships WHERE collab=? ORDER BY member", (collab,)
        ).fetchall():
            out.append(
                ("collab.join", collab, member, _leaves.collab_membership(collab, member, True))
            )
        for epoch, secret in conn.execute(
            "SELECT epoch, secret FROM collab_keys WHERE collab=? ORDER BY epoch", (collab,)
        ).fetchall():
            out.append(
                ("collab.epoch", collab, None, _leaves.collab_epoch(collab, epoch, bytes(secret)))
            )
    return out


def _append_leaves(
    conn: sqlite3.Connection, leaves: list[tuple[str, str | None, str | None, bytes]]
) -> int:
    """Append (type, collab, member, leaf bytes) to the log in the caller's transaction;
    returns the sequence of the first (the next one when there are none)."""
    first = TLOG.size(conn) + 1
    conn.executemany(
        "INSERT INTO leaves (seq, type, collab, member, leaf) VALUES (?, ?, ?, ?, ?)",
        [(first + i, *leaf) for i, leaf in enumerate(leaves)],
    )
    TLOG.append(conn, [leaf_hash(leaf[3]) for leaf in leaves])
    return first


_ORIGIN_FORBIDDEN: Final = re.compile(r"[\s+\x00-\x1f\x7f]")


def log_origin(hub_name: str) -> str:
    """The checkpoint origin (and note key name) of a hub's log: ``sighub/<hub name>``,
    with each character a key name cannot hold (space, ``+``, control) as ``-``."""
    return "sighub/" + _ORIGIN_FORBIDDEN.sub("-", hub_name)


def _v5(db: sqlite_utils.Database) -> None:
    """Envelopes numbered within their collaboration (``collab_n``, in their log leaf
    from now on; NULL for those logged before), the last number kept per collaboration."""
    db.conn.execute("ALTER TABLE envelopes ADD COLUMN collab_n INTEGER")
    db.conn.execute("ALTER TABLE collabs ADD COLUMN last_n INTEGER NOT NULL DEFAULT 0")
    # GetHistory reads a collaboration's envelopes by number
    db.conn.execute("CREATE INDEX envelopes_collab_n ON envelopes (collab, collab_n)")


def _v6(db: sqlite_utils.Database) -> None:
    """Members' HPKE encryption keys (``_hpke``): each with its suite, the proof of the
    signing key that vouched for it and the log sequence of its leaf; ``replaced_seq`` is
    that of the leaf of the key that replaced it (NULL: the member's current key)."""
    db.conn.execute(
        "CREATE TABLE encryption_keys (key_id TEXT PRIMARY KEY, member TEXT NOT NULL,"
        " suite TEXT NOT NULL, public_key BLOB NOT NULL, proof BLOB NOT NULL,"
        " signing_key_id TEXT NOT NULL, added TEXT NOT NULL, seq INTEGER NOT NULL,"
        " replaced_seq INTEGER)"
    )
    db.conn.execute("CREATE INDEX encryption_keys_member ON encryption_keys (member, seq)")


def _v7(db: sqlite_utils.Database) -> None:
    """Member-held collaboration keys (``_wraps``): a collaboration's stewards, the epochs
    they made (the commitment only) and the wraps of each epoch's secret, one per member.
    ``collab_keys`` keeps the secrets the hub made before, until a steward's first epoch."""
    db.conn.execute(
        "CREATE TABLE collab_stewards (collab TEXT NOT NULL, member TEXT NOT NULL,"
        " PRIMARY KEY (collab, member)) WITHOUT ROWID"
    )
    db.conn.execute(
        "CREATE TABLE collab_epochs (collab TEXT NOT NULL, epoch INTEGER NOT NULL,"
        " commitment TEXT NOT NULL, steward TEXT NOT NULL, created TEXT NOT NULL,"
        " seq INTEGER NOT NULL, PRIMARY KEY (collab, epoch)) WITHOUT ROWID"
    )
    db.conn.execute(
        "CREATE TABLE epoch_wraps (collab TEXT NOT NULL, epoch INTEGER NOT NULL,"
        " recipient TEXT NOT NULL, recipient_key_id TEXT NOT NULL, suite TEXT NOT NULL,"
        " sealed BLOB NOT NULL, steward TEXT NOT NULL, signing_key_id TEXT NOT NULL,"
        " signature BLOB NOT NULL, seq INTEGER NOT NULL,"
        " PRIMARY KEY (collab, epoch, recipient)) WITHOUT ROWID"
    )
    db.conn.execute("CREATE INDEX epoch_wraps_recipient ON epoch_wraps (recipient)")


def _v8(db: sqlite_utils.Database) -> None:
    """Stewards in the log: each designation's admin signature (base64) and the sequence of
    its ``collab.steward`` leaf (NULL: a steward named before designations were logged,
    whom members do not take epochs from until the admin designates it again)."""
    db.conn.execute("ALTER TABLE collab_stewards ADD COLUMN signature TEXT NOT NULL DEFAULT ''")
    db.conn.execute("ALTER TABLE collab_stewards ADD COLUMN seq INTEGER")
    # how many key epochs before the current one a joiner is wrapped
    db.conn.execute("ALTER TABLE collabs ADD COLUMN earlier_epochs INTEGER NOT NULL DEFAULT 0")


def _v9(db: sqlite_utils.Database) -> None:
    """Peering records (``_peering``): one row per peer, kept after removal (its name
    stays taken, as a removed member's does); ``seq`` is its ``peer.add`` leaf's sequence.
    One live peering per origin: a removed one does not block peering with that hub
    again."""
    db.conn.execute(
        "CREATE TABLE peerings (name TEXT PRIMARY KEY, origin TEXT NOT NULL,"
        " log_key BLOB NOT NULL, address TEXT NOT NULL, collabs TEXT NOT NULL,"
        " direction TEXT NOT NULL, max_hops INTEGER NOT NULL, tlp_ceiling TEXT NOT NULL,"
        " status TEXT NOT NULL, signature BLOB NOT NULL, seq INTEGER NOT NULL,"
        " created TEXT NOT NULL)"
    )
    db.conn.execute(
        "CREATE UNIQUE INDEX peerings_live_origin ON peerings (origin) WHERE status != 'removed'"
    )


def _v10(db: sqlite_utils.Database) -> None:
    """Relaying (federation step 2): each publisher identity of a relayed envelope is bound
    to the first origin hub it came from (an identity of this hub's own members is never
    taken from a peer), and each peering's relay counts what it skipped, by reason."""
    db.conn.execute(
        "CREATE TABLE relayed_identities (identity TEXT PRIMARY KEY, origin TEXT NOT NULL,"
        " peer TEXT NOT NULL, seq INTEGER NOT NULL)"
    )
    db.conn.execute(
        "CREATE TABLE relay_counts (peer TEXT NOT NULL, outcome TEXT NOT NULL,"
        " count INTEGER NOT NULL, PRIMARY KEY (peer, outcome))"
    )
    # the copies of other hubs' leaves this log holds ("leaf ORIGIN SEQ", "checkpoint
    # ORIGIN SHA256"): each once, whichever peer brings it first
    db.conn.execute("CREATE TABLE relayed_leaves (key TEXT PRIMARY KEY)")


def _v11(db: sqlite_utils.Database) -> None:
    """Peerings whose peer dials in (``_tunnel``): how to connect, kept beside the signed
    record, not in it."""
    db.conn.execute("ALTER TABLE peerings ADD COLUMN dial_in INTEGER NOT NULL DEFAULT 0")


MIGRATIONS: Final[list[Callable[[sqlite_utils.Database], None]]] = [
    _v1, _v2, _v3, _v4, _v5, _v6, _v7, _v8, _v9, _v10, _v11,
]  # fmt: skip

# Benchmark only (``bench/bench_hub.py --log-ratio``): publish without the transparency log,
# the baseline issue 10's publish target is a ratio against.  Such a hub serves members
# nothing they can verify, so their daemons refuse it; the hub warns at start.
BENCH_NO_LOG: Final = os.environ.get("SIGHUB_BENCH_NO_LOG") == "1"


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
    def all_column(self, sql: str, *args: Any) -> list[Any]:
        """The first column of every row."""
        return [r[0] for r in self.all(sql, *args)]

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

    def revoke_keys(
        self, now: str, member: str, key_id: str | None = None, at_seq: int | None = None
    ) -> list[str]:
        """Revoke ``key_id`` (or every valid key of ``member``) at ``now``; returns the key
        ids revoked.  Each revocation is a ``key.revoke`` leaf, and the key's
        ``revoked_seq`` is that leaf's sequence: envelopes before it stay valid.  With
        ``at_seq`` (a rotation, whose ``key.rotate`` leaf supersedes the old key) no leaf
        is added and ``revoked_seq`` is ``at_seq``.  Runs inside the caller's
        transaction."""
        sql = "SELECT key_id FROM member_keys WHERE member = ? AND revoked_at IS NULL"
        args: list[Any] = [member]
        if key_id is not None:
            sql += " AND key_id = ?"
            args.append(key_id)
        kids = [r[0] for r in self.all(sql + " ORDER BY added, key_id", *args)]
        for kid in kids:
            seq = at_seq
            if seq is None:
                seq = self.append_leaf("key.revoke", _leaves.key_revoke(member, kid), member=member)
            self.conn.execute(
                "UPDATE member_keys SET revoked_at = ?, revoked_seq = ? WHERE key_id = ?",
                (now, seq, kid),
            )
        return kids

    def encryption_key(self, member: str) -> tuple[str, str, bytes] | None:
        """(key id, suite, public key) of ``member``'s current encryption key, or None."""
        row = self.one(
            "SELECT key_id, suite, public_key FROM encryption_keys WHERE member = ?"
            " AND replaced_seq IS NULL",
            member,
        )
        return None if row is None else (row[0], row[1], bytes(row[2]))

    def encryption_key_owner(self, key_id: str) -> str | None:
        row = self.one("SELECT member FROM encryption_keys WHERE key_id = ?", key_id)
        return None if row is None else str(row[0])

    def add_encryption_key(
        self,
        key_id: str,
        member: str,
        suite: str,
        public: bytes,
        proof: bytes,
        signing_key_id: str,
        added: str,
        seq: int,
    ) -> None:
        """Make this ``member``'s current encryption key, logged at ``seq``; the one before
        is replaced at that sequence.  Runs inside the caller's transaction."""
        self.conn.execute(
            "UPDATE encryption_keys SET replaced_seq = ? WHERE member = ? AND replaced_seq IS NULL",
            (seq, member),
        )
        self.conn.execute(
            "INSERT INTO encryption_keys (key_id, member, suite, public_key, proof,"
            " signing_key_id, added, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (key_id, member, suite, public, proof, signing_key_id, added, seq),
        )

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
        """The current key epoch (hub-made or a steward's); None before the first."""
        row = self.one(
            "SELECT MAX(e) FROM (SELECT MAX(epoch) AS e FROM collab_keys WHERE collab=?"
            " UNION ALL SELECT MAX(epoch) FROM collab_epochs WHERE collab=?)",
            name,
            name,
        )
        return None if row is None or row[0] is None else int(row[0])

    def collab_epochs(self, name: str) -> list[int]:
        """Every key epoch a publish may name: the hub's (until deleted) and stewards'."""
        return [
            int(r[0])
            for r in self.all(
                "SELECT epoch FROM collab_keys WHERE collab=? UNION"
                " SELECT epoch FROM collab_epochs WHERE collab=? ORDER BY 1",
                name,
                name,
            )
        ]

    def stewards(self, collab: str) -> list[str]:
        """The stewards of ``collab`` that are still in it and active: one that left, or
        was suspended or removed, makes no key for those it was meant to shut out."""
        return self.all_column(
            "SELECT s.member FROM collab_stewards s JOIN memberships m ON m.collab = s.collab"
            " AND m.member = s.member JOIN members x ON x.name = s.member"
            " WHERE s.collab=? AND x.status='active' ORDER BY s.member",
            collab,
        )

    def designations(self, collab: str) -> list[tuple[str, str]]:
        """(steward, base64 admin signature) of ``collab``'s stewards whose designation is
        logged: what a join leaf lists for the joiner."""
        return [
            (str(r[0]), str(r[1]))
            for r in self.all(
                "SELECT member, signature FROM collab_stewards WHERE collab=? AND seq IS NOT"
                " NULL ORDER BY member",
                collab,
            )
        ]

    def earlier_epochs(self, collab: str) -> int:
        row = self.one("SELECT earlier_epochs FROM collabs WHERE name=?", collab)
        return 0 if row is None else int(row[0])

    def join_leaf(self, collab: str, member: str, n: int) -> bytes:
        """The ``collab.join`` leaf of ``member``, listing the designated stewards."""
        return _leaves.collab_membership(collab, member, True, n, self.designations(collab))

    # -- peerings -----------------------------------------------------------------------
    _PEERING: Final = (
        "SELECT name, origin, log_key, address, collabs, direction, max_hops, tlp_ceiling,"
        " status, signature, seq, dial_in FROM peerings"
    )

    @staticmethod
    def _peering(row: Any) -> Peering:
        return Peering(
            row[0], row[1], bytes(row[2]), row[3],
            tuple((str(r), str(loc)) for r, loc in json.loads(row[4])),
            Direction(row[5]), int(row[6]), Tlp(row[7]), row[8], bytes(row[9]), int(row[10]),
            bool(row[11]),
        )  # fmt: skip

    def peering(self, name: str) -> Peering | None:
        row = self.one(self._PEERING + " WHERE name=?", name)
        return None if row is None else self._peering(row)

    def peerings(self) -> list[Peering]:
        """Every peering, removed ones too, by name."""
        return [self._peering(r) for r in self.all(self._PEERING + " ORDER BY name")]

    def live_peering_by_origin(self, origin: str) -> str | None:
        """The name of the peering (not removed) with the hub of log ``origin``."""
        row = self.one("SELECT name FROM peerings WHERE origin=? AND status != 'removed'", origin)
        return None if row is None else str(row[0])

    def add_peering(self, p: Peering, created: str) -> None:
        """Insert ``p`` (its ``since`` is its leaf's sequence), in the caller's
        transaction."""
        self.conn.execute(
            "INSERT INTO peerings (name, origin, log_key, address, collabs, direction,"
            " max_hops, tlp_ceiling, status, signature, seq, created, dial_in)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (p.name, p.origin, p.log_key, p.address, json.dumps([list(x) for x in p.collabs]),
             p.direction.value, p.max_hops, p.tlp_ceiling.value, p.status, p.signature,
             p.since, created, int(p.dial_in)),
        )  # fmt: skip

    def set_peering_status(self, name: str, status: str) -> None:
        """In the caller's transaction."""
        self.conn.execute("UPDATE peerings SET status=? WHERE name=?", (status, name))

    # -- relaying ----------------------------------------------------------------------
    def identity_origin(self, identity: str) -> str | None:
        """The origin hub ``identity`` is bound to: this hub's own origin for a member's
        identity, else the one it was first relayed from, else None."""
        if self.one("SELECT 1 FROM members WHERE identity=?", identity) is not None:
            return self.meta("log_origin")
        row = self.one("SELECT origin FROM relayed_identities WHERE identity=?", identity)
        return None if row is None else str(row[0])

    def bind_identity(self, identity: str, origin: str, peer: str, seq: int) -> None:
        """In the caller's transaction."""
        self.conn.execute(
            "INSERT INTO relayed_identities (identity, origin, peer, seq) VALUES (?, ?, ?, ?)",
            (identity, origin, peer, seq),
        )

    def count_relayed(self, peer: str, counts: dict[str, int]) -> None:
        """Add ``counts`` (outcome -> how many) to ``peer``'s, in the caller's transaction."""
        self.conn.executemany(
            "INSERT INTO relay_counts (peer, outcome, count) VALUES (?, ?, ?)"
            " ON CONFLICT (peer, outcome) DO UPDATE SET count = count + excluded.count",
            [(peer, k, v) for k, v in counts.items() if v],
        )

    def take_copy(self, key: str) -> bool:
        """Whether the copy named ``key`` is new (it is recorded), in the caller's
        transaction."""
        done = self.conn.execute("INSERT OR IGNORE INTO relayed_leaves (key) VALUES (?)", (key,))
        return done.rowcount == 1

    def relay_counts(self, peer: str) -> dict[str, int]:
        rows = self.all("SELECT outcome, count FROM relay_counts WHERE peer=?", peer)
        return {str(r[0]): int(r[1]) for r in rows}

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

    def append_leaf(
        self, kind: str, leaf: bytes, collab: str | None = None, member: str | None = None
    ) -> int:
        """Append one leaf (its ``_leaves`` bytes) to the log; returns its sequence.  Must
        run inside ``tx()`` with the change it records."""
        limit = _leaves.leaf_limit(kind)
        if len(leaf) > limit:  # every member would refuse it: its log stops
            raise HubError.invalid(
                f"a {kind} leaf of {len(leaf)} bytes; members read at most {limit}"
            )
        return _append_leaves(self.conn, [(kind, collab, member, leaf)])

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
        current: list[tuple[str, str, str, str, str, int]] | None = None,
    ) -> int:
        """Append one envelope, its log leaf at the same sequence, and upsert its
        indicators' current state (``current`` of them: a relayed envelope's rows that are
        newer than this hub's; all by default); returns the sequence.  Must run inside
        ``tx()`` together with the checks that allowed it."""
        # Two statements, not UPDATE ... RETURNING: that needs SQLite 3.35, and the hub
        # runs on the system's.
        self.conn.execute("UPDATE collabs SET last_n = last_n + 1 WHERE name = ?", (collab,))
        (n,) = self.conn.execute("SELECT last_n FROM collabs WHERE name = ?", (collab,)).fetchone()
        if BENCH_NO_LOG:
            row = self.conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM envelopes").fetchone()
            seq = int(row[0])
        else:
            leaf = _leaves.envelope_leaf(collab, raw, n, hops.encode())
            seq = self.append_leaf("envelope", leaf, collab, publisher)
        self.conn.execute(
            "INSERT INTO envelopes (seq, id, collab, publisher, key_id, received, n_indicators,"
            " hops, raw, collab_n) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (seq, envelope_id, collab, publisher, key_id, received, len(indicators), hops, raw, n),
        )
        self.conn.execute(
            "INSERT OR IGNORE INTO collab_publishers (collab, member) VALUES (?, ?)",
            (collab, publisher),
        )
        self.conn.executemany(
            "INSERT OR REPLACE INTO indicators (id, collab, publisher, kind, modified,"
            " valid_until, revoked, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (i, collab, publisher, k, m, v, r, seq)
                for i, k, m, v, _, r in (indicators if current is None else current)
            ],
        )
        return seq

    def head(self) -> int:
        """The log's size: its last sequence (0 when empty)."""
        row = self.one("SELECT MAX(seq) FROM leaves")
        return int(row[0] or 0)

    # -- the transparency log -----------------------------------------------------------
    def checkpoint(self) -> tuple[int, bytes] | None:
        """(tree size, signed note) of the latest issued checkpoint, or None."""
        row = self.one("SELECT size, note FROM checkpoints ORDER BY id DESC LIMIT 1")
        return None if row is None else (int(row[0]), bytes(row[1]))

    def add_checkpoint(self, size: int, note: bytes, issued: str) -> None:
        self.conn.execute(
            "INSERT INTO checkpoints (size, note, issued) VALUES (?, ?, ?)", (size, note, issued)
        )

    def leaf_rows(
        self, start: int, end: int, limit: int
    ) -> list[tuple[int, str, str | None, bytes]]:
        """(seq, type, collab, leaf) of sequences start..end (inclusive), at most
        ``limit``, in order."""
        return [
            (int(r[0]), r[1], r[2], bytes(r[3]))
            for r in self.all(
                "SELECT seq, type, collab, leaf FROM leaves WHERE seq >= ? AND seq <= ?"
                " ORDER BY seq LIMIT ?",
                start,
                end,
                limit,
            )
        ]

    def read_range(
        self,
        after: int,
        end: int,
        collabs: list[str],
        visible: frozenset[str],
        limit: int,
        max_bytes: int,
        max_sequences: int,
    ) -> LogRange:
        """The log after ``after`` up to ``end`` as one reader sees it: the envelopes of
        ``collabs`` as changes (at most ``limit``), every other sequence as a leaf, full
        when it is a directory leaf or one of a collaboration in ``visible``, else its
        hash.  Stops at ``max_sequences`` sequences or about ``max_bytes`` (always at least
        one sequence when any is due), and never splits: the range is (after, cursor]."""
        rows = self.leaf_rows(after + 1, end, max_sequences)
        changes: list[EnvelopeRow] = []
        leaves: list[tuple[int, bytes, bool]] = []
        cursor, size = after, 0
        if not rows:
            return LogRange(changes, leaves, cursor, size)
        marks = ",".join("?" * len(collabs))
        envelopes = self.conn.execute(
            "SELECT seq, id, collab, raw, hops, collab_n FROM envelopes"
            f" WHERE seq > ? AND seq <= ? AND collab IN ({marks}) ORDER BY seq",
            (after, rows[-1][0], *collabs),
        )
        try:
            pending = envelopes.fetchone()
            for seq, kind, collab, leaf in rows:
                if pending is not None and pending[0] == seq:
                    raw = bytes(pending[3])
                    if cursor > after and size + len(raw) > max_bytes:
                        break
                    changes.append(
                        EnvelopeRow(seq, pending[1], pending[2], raw, pending[4], pending[5] or 0)
                    )
                    size += len(raw)
                    pending = envelopes.fetchone()
                else:
                    full = kind in _FULL_TYPES or collab in visible
                    item = leaf if full else leaf_hash(leaf)
                    if cursor > after and size + len(item) > max_bytes:
                        break
                    leaves.append((seq, item, full))
                    size += len(item)
                cursor = seq
                if len(changes) >= limit:
                    break
        finally:
            envelopes.close()
        return LogRange(changes, leaves, cursor, size)

    def history_rows(
        self, collab: str, after_n: int, before_seq: int, limit: int, max_bytes: int
    ) -> list[EnvelopeRow]:
        """``collab``'s envelopes numbered after ``after_n`` and logged before
        ``before_seq``, in number order: at most ``limit``, and about ``max_bytes`` (always
        one when any is due)."""
        out: list[EnvelopeRow] = []
        size = 0
        rows = self.conn.execute(
            "SELECT seq, id, collab, raw, hops, collab_n FROM envelopes WHERE collab = ?"
            " AND collab_n > ? AND seq < ? ORDER BY collab_n LIMIT ?",
            (collab, after_n, before_seq, limit),
        )
        for seq, eid, c, raw, hops, n in rows:
            if out and size + len(raw) > max_bytes:
                break
            out.append(EnvelopeRow(seq, eid, c, bytes(raw), hops, n))
            size += len(raw)
        return out

    def sweep_expired(self, now: str) -> int:
        """Drop expired indicators from the current state (the log keeps them)."""
        return self.conn.execute("DELETE FROM indicators WHERE valid_until <= ?", (now,)).rowcount
