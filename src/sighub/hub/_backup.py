"""A hub data directory's lifecycle on disk: the lock one serving hub holds on it, and
the backup and restore of its database.

``hub.db`` is copied with SQLite's online backup API: a consistent snapshot, taken while
the hub serves (a WAL reader does not stop the writer), without the lock.  A restore
takes the lock (no hub may serve the directory meanwhile) and refuses to move the log
backwards unless told to, because every member's cursor then points past its end.

The backup holds ``hub.db`` only; ``pki/``, ``hub-signing.key`` and ``hub.toml`` change
rarely and are backed up as files (a restore needs them in place)."""

from __future__ import annotations

import base64
import dataclasses
import fcntl
import os
import shutil
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
)

from sighub.client._errors import EXIT_BAD_INPUT, SighubError
from sighub.client._keys import fsync_path, read_secret
from sighub.hub._store import MIGRATIONS

__all__ = [
    "LOCK_FILE",
    "BackupError",
    "BackupInfo",
    "DataLock",
    "DataLocked",
    "Restored",
    "backup",
    "inspect_database",
    "restore",
]

LOCK_FILE: Final = "hub.lock"
DB_FILE: Final = "hub.db"
_TABLES: Final = frozenset(
    {"meta", "members", "member_keys", "collabs", "collab_keys", "envelopes", "audit"}
)


class DataLocked(SighubError):
    """Another process holds the data directory's lock."""


class BackupError(SighubError):
    """A backup file that is not a sound sighub hub database, or a restore refused."""

    exit_code = EXIT_BAD_INPUT


class DataLock:
    """An exclusive ``flock`` on ``DATA/hub.lock``, held as long as the process keeps it
    (the kernel drops it when the process dies, even by kill -9).  The file records the
    holder's PID and purpose so a refused process can say who holds it."""

    def __init__(self, fd: int, path: Path) -> None:
        self.fd, self.path = fd, path

    @classmethod
    def acquire(cls, root: Path, purpose: str) -> DataLock:
        path = root / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)  # not inherited by children
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "unknown"
            os.close(fd)
            raise DataLocked(
                f"{root}: the data directory is in use by another process (holder: "
                f"{holder}; lock {path}); one hub per data directory: stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} ({purpose})\n".encode(), 0)
        return cls(fd, path)

    def release(self) -> None:
        """Drop the lock.  The file stays: removing it would let a waiter lock a file
        that is no longer the one the next process opens."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


@dataclass(frozen=True, slots=True)
class BackupInfo:
    """What a hub database holds, as a backup or restore reports it."""

    path: Path
    head: int  # the log's last sequence (0: empty)
    envelopes: int
    members: int
    schema: int
    hub_name: str
    hub_public_key: str
    size: int


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


def inspect_database(conn: sqlite3.Connection, path: Path, what: str) -> BackupInfo:
    """Check that ``conn`` is a sound sighub hub database and say what it holds."""
    try:
        problems = [str(r[0]) for r in conn.execute("PRAGMA integrity_check(5)")]
        if problems != ["ok"]:
            raise BackupError(f"{what}: integrity_check failed: {'; '.join(problems)}")
        schema = int(conn.execute("PRAGMA user_version").fetchone()[0])
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not 1 <= schema <= len(MIGRATIONS) or not tables >= _TABLES:
            raise BackupError(
                f"{what}: not a sighub hub database: schema version {schema} (expected 1 to "
                f"{len(MIGRATIONS)}), missing tables {sorted(_TABLES - tables) or 'none'}"
            )
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        head = _log_head(conn)
        envelopes = conn.execute("SELECT COUNT(*) FROM envelopes").fetchone()[0]
        members = conn.execute("SELECT COUNT(*) FROM members").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{what}: not a readable SQLite database ({exc})") from None
    return BackupInfo(
        path,
        int(head),
        int(envelopes),
        int(members),
        schema,
        str(meta.get("hub_name", "")),
        str(meta.get("hub_public_key", "")),
        path.stat().st_size,
    )


def _new_private(path: Path) -> None:
    """Create ``path`` empty with mode 0600 (hub.db holds collaboration keys)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def backup(root: Path, to: Path) -> BackupInfo:
    """Copy ``root``'s hub.db to ``to``: a consistent snapshot (one read transaction of
    SQLite's backup API) that a serving hub keeps writing beside, then made a single
    self-contained file (rollback journal, not WAL), checked, and renamed into place."""
    db = root / DB_FILE
    if not db.is_file():
        raise BackupError(f"{root}: no {DB_FILE} here; expected a hub data directory")
    if to.is_dir():
        raise BackupError(f"--to {to}: is a directory; expected a file name")
    if to.exists() and to.resolve() == db.resolve():
        raise BackupError(f"--to {to}: is the live database; expected another file")
    tmp = to.with_name(f".{to.name}.{os.getpid()}.tmp")
    _new_private(tmp)
    try:
        src = _connect(db)
        try:
            src.execute("PRAGMA query_only=1")
            dst = _connect(tmp)
            try:
                src.backup(dst)
                dst.execute("PRAGMA journal_mode=DELETE")
                info = inspect_database(dst, tmp, f"backup of {db}")
            finally:
                dst.close()
        finally:
            src.close()
        fsync_path(tmp)
        os.replace(tmp, to)
        fsync_path(to.parent)
    finally:
        tmp.unlink(missing_ok=True)
    return dataclasses.replace(info, path=to)


@dataclass(frozen=True, slots=True)
class Restored:
    info: BackupInfo  # what is now the hub's database
    previous_head: int | None  # the replaced database's head (None: none, or unreadable)
    kept: list[Path]  # where the replaced database's files were moved
    rollback: bool  # the log went backwards


def restore(root: Path, source: Path, allow_rollback: bool = False) -> Restored:
    """Make ``source`` (a backup) the hub database of ``root``.  Refused while a hub
    serves ``root``, for a file that is not a sound sighub hub database or belongs to
    another hub, and, without ``allow_rollback``, when it would move the log backwards.
    The replaced database is kept beside it, renamed, not deleted."""
    _require_hub_dir(root)
    if not source.is_file():
        raise BackupError(f"--from {source}: no such file")
    try:
        lock = DataLock.acquire(root, "restore")
    except DataLocked as exc:
        raise DataLocked(f"refusing to restore while a hub serves it: {exc}") from None
    tmp = root / f".{DB_FILE}.restore.{os.getpid()}.tmp"
    try:
        _new_private(tmp)
        with source.open("rb") as fin, tmp.open("wb") as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
        conn = _connect(tmp)
        try:
            info = inspect_database(conn, source, f"--from {source}")
        finally:
            conn.close()
        _same_hub(root, info)
        previous = _previous_head(root)
        rollback = previous is not None and previous > info.head
        if (rollback or previous == -1) and not allow_rollback:
            raise BackupError(_rollback_refusal(root, source, previous, info.head))
        fsync_path(tmp)
        kept = _set_aside(root)
        os.replace(tmp, root / DB_FILE)
        fsync_path(root)
    finally:
        tmp.unlink(missing_ok=True)
        lock.release()
    restored = dataclasses.replace(info, path=root / DB_FILE)
    return Restored(restored, None if previous == -1 else previous, kept, rollback)


def _require_hub_dir(root: Path) -> None:
    needed = [root / "pki" / "ca.key", root / "pki" / "server.key", root / "hub-signing.key"]
    missing = [str(p) for p in needed if not p.exists()]
    if missing:
        raise BackupError(
            f"{root}: not a hub data directory (missing {', '.join(missing)}); restore into "
            "the original directory, or one holding its pki/, hub-signing.key and hub.toml"
        )


def _same_hub(root: Path, info: BackupInfo) -> None:
    """The backup must be of the hub whose signing key is in ``root``."""
    key = load_pem_private_key(read_secret(root / "hub-signing.key"), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise BackupError(f"{root / 'hub-signing.key'}: expected an Ed25519 key")
    mine = base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    if info.hub_public_key != mine.decode():
        raise BackupError(
            f"--from {info.path}: a backup of hub {info.hub_name!r} with public key "
            f"{info.hub_public_key[:16]}...; this directory's hub key is {mine.decode()[:16]}..."
        )


def _log_head(conn: sqlite3.Connection) -> int:
    """The log's last sequence: of the transparency log (schema 3 on), else of the
    envelopes (whose sequences become the first leaves when the hub migrates)."""
    logged = conn.execute("SELECT 1 FROM sqlite_master WHERE name='leaves'").fetchone()
    table = "leaves" if logged else "envelopes"
    return int(conn.execute(f"SELECT COALESCE(MAX(seq), 0) FROM {table}").fetchone()[0])


def _previous_head(root: Path) -> int | None:
    """The current database's log head; None without one, -1 when it cannot be read."""
    db = root / DB_FILE
    if not db.exists():
        return None
    try:
        conn = _connect(db)
        try:
            return _log_head(conn)
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        return -1


def _rollback_refusal(root: Path, source: Path, previous: int | None, head: int) -> str:
    if previous == -1:
        return (
            f"{root / DB_FILE}: exists but cannot be read, so its log head is unknown; "
            f"the backup {source} ends at sequence {head}. Pass --allow-rollback to replace "
            "it (the old file is kept beside it)"
        )
    return (
        f"refusing to move the log backwards: {root / DB_FILE} ends at sequence {previous}, "
        f"the backup {source} at {head} ({(previous or 0) - head} envelopes would be lost). "
        "Pass --allow-rollback to restore anyway"
    )


def _set_aside(root: Path) -> list[Path]:
    """Rename the current database and its WAL files (together, so they stay a pair) to
    ``hub.db.before-restore-<UTC time>``.  Left in place, an old WAL would be replayed
    into the restored file."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    kept = []
    for suffix in ("", "-wal", "-shm"):
        path = root / (DB_FILE + suffix)
        if path.exists():
            target = root / f"{DB_FILE}.before-restore-{stamp}{suffix}"
            os.replace(path, target)
            kept.append(target)
    return kept
