"""The hub's rules, independent of gRPC: who may do what, enrollment, the key directory,
publish validation.  Every method either changes the store in one transaction or raises
HubError and changes nothing; each change is logged as transparency-log leaves
(``sighub.client._leaves``) in that same transaction."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import grpc
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sighub.client import _leaves
from sighub.client._checkpoint import Checkpoint, sign_checkpoint
from sighub.client._envelope import key_id
from sighub.client._errors import SighubError
from sighub.client._grant import (
    ROTATE_CONTEXT,
    Chain,
    KeyChainError,
    check_attestation,
    check_chain,
    check_designation,
    decode_public,
)
from sighub.client._hpke import HpkeError, ProvedKey, check_proof, check_public
from sighub.client._keys import identity_for
from sighub.client._note import Ed25519Signer
from sighub.client._rpc import PublishResult
from sighub.client._rules import envelope_problem
from sighub.client._stix import format_time
from sighub.client._wraps import split_recipient
from sighub.hub._config import HubConfig
from sighub.hub._errors import HubError
from sighub.hub._peers import PeerBook
from sighub.hub._pki import csr_common_names, issue_client
from sighub.hub._store import TLOG, MemberRow, Store
from sighub.hub._validate import Checked, Plan, Rejection

__all__ = ["ROLES", "DirectoryRow", "Hub", "PublishResult", "hash_token"]

ROLES: Final = ("publisher", "subscriber", "admin", "peer")
_NAME_RE: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _now_text(now: datetime) -> str:
    return format_time(now)


class _RateLimiter:
    """A token bucket per member."""

    def __init__(self, per_minute: float, burst: int) -> None:
        self.rate, self.burst = per_minute / 60.0, float(burst)
        self.buckets: dict[str, tuple[float, float]] = {}
        self.lock = threading.Lock()

    def take(self, member: str) -> bool:
        with self.lock:
            now = time.monotonic()
            level, last = self.buckets.get(member, (self.burst, now))
            level = min(self.burst, level + (now - last) * self.rate)
            if level < 1.0:
                self.buckets[member] = (level, now)
                return False
            self.buckets[member] = (level - 1.0, now)
            return True


@dataclass(frozen=True, slots=True)
class DirectoryRow:
    member: str
    identity: str
    key_id: str
    public_key: bytes
    added: str
    revoked_at: str | None
    revoked_seq: int | None
    status: str


class Hub:
    def __init__(
        self,
        store: Store,
        config: HubConfig,
        ca_key: ec.EllipticCurvePrivateKey,
        ca_pem: bytes,
        clock: Callable[[], datetime] | None = None,
        log_signer: Ed25519Signer | None = None,
    ) -> None:
        self.store, self.config, self.ca_key, self.ca_pem = store, config, ca_key, ca_pem
        self.log_signer = log_signer  # signs checkpoints; None: this hub issues none
        self.clock = clock or (lambda: datetime.now(UTC))
        self.limiter = _RateLimiter(config.publishes_per_minute, config.burst)
        self.peers = PeerBook(self)  # peerings with other hubs (federation)

    def now(self) -> str:
        return _now_text(self.clock())

    # -- checkpoints ------------------------------------------------------------------
    def issue_checkpoint(self, force: bool = False) -> tuple[int, bytes] | None:
        """Sign and store a checkpoint of the whole log, if it grew since the last one
        (or ``force``: the idle interval passed); returns (size, note) or None."""
        if self.log_signer is None:
            raise RuntimeError("issue_checkpoint: this Hub was made without a log signer")
        with self.store.tx() as c:
            size = self.store.head()
            last = self.store.checkpoint()
            if not force and last is not None and last[0] == size:
                return None
            when = self.clock()
            body = Checkpoint(self.log_signer.name, size, TLOG.root(c, size))
            note = sign_checkpoint(body.with_time(int(when.timestamp())), self.log_signer)
            self.store.add_checkpoint(size, note, _now_text(when))
        return size, note

    # -- identities -------------------------------------------------------------------
    def by_cert(self, common_name: str, serial: str) -> MemberRow:
        m = self.store.member(common_name)
        if m is None or m.cert_serial != serial:
            raise HubError.unauthenticated(
                f"client certificate for {common_name!r} (serial {serial}) is not current"
            )
        return self._usable(m)

    def by_token(self, token: str) -> MemberRow:
        name = self.store.member_by_token(hash_token(token))
        m = self.store.member(name) if name else None
        if m is None:
            raise HubError.unauthenticated("bearer token is not valid")
        return self._usable(m)

    @staticmethod
    def _usable(m: MemberRow) -> MemberRow:
        if m.status in ("suspended", "removed"):
            raise HubError.denied(f"member {m.name!r} is {m.status}")
        if m.status != "active":
            raise HubError.denied(f"member {m.name!r} is {m.status}; expected active")
        return m

    def require(self, m: MemberRow, *roles: str) -> None:
        if not any(r in m.roles for r in roles):
            raise HubError.denied(
                f"member {m.name!r} has roles {list(m.roles)}; this needs one of {list(roles)}"
            )

    def require_member_of(self, m: MemberRow, collab: str) -> None:
        if collab not in self.store.member_collabs(m.name):
            raise HubError.denied(f"member {m.name!r} is not in collaboration {collab!r}")

    # -- administration ---------------------------------------------------------------
    def _name(self, what: str, name: str) -> str:
        if not _NAME_RE.fullmatch(name or ""):
            raise HubError.invalid(f"{what} name {name!r}: expected [a-z0-9-], 1-63 chars")
        return name

    def _member(self, name: str) -> MemberRow:
        m = self.store.member(name)
        if m is None:
            raise HubError.not_found(f"member {name!r} does not exist")
        return m

    def _collab(self, name: str) -> str:
        if not self.store.collab_exists(name):
            raise HubError.not_found(f"collaboration {name!r} does not exist")
        return name

    def add_member(self, actor: str, name: str, roles: list[str]) -> tuple[MemberRow, str]:
        self._name("member", name)
        bad = [r for r in roles if r not in ROLES]
        if not roles or bad:
            raise HubError.invalid(
                f"member {name!r}: roles {roles}; expected some of {list(ROLES)}"
            )
        if self.store.member(name) is not None:
            raise HubError.exists(f"member {name!r} already exists")
        token = secrets.token_urlsafe(32)
        with self.store.tx() as c:
            c.execute(
                "INSERT INTO members (name, identity, roles, status, created, token_hash)"
                " VALUES (?, ?, ?, 'pending', ?, ?)",
                (
                    name,
                    identity_for(name),
                    ",".join(sorted(set(roles))),
                    self.now(),
                    hash_token(token),
                ),
            )
            self.store.audit(self.now(), actor, "member.add", name, roles=sorted(set(roles)))
        return self._member(name), token

    def set_status(self, actor: str, name: str, status: str) -> MemberRow:
        m = self._member(name)
        allowed = {"suspended": ("active",), "active": ("suspended",)}[status]
        if m.status not in allowed:
            raise HubError.precondition(
                f"member {name!r} is {m.status}; can only {status[:-2] or status} from {allowed}"
            )
        with self.store.tx() as c:
            c.execute("UPDATE members SET status=? WHERE name=?", (status, name))
            self.store.append_leaf(
                "member.status", _leaves.member_status(name, status), member=name
            )
            self.store.audit(
                self.now(),
                actor,
                f"member.{'suspend' if status == 'suspended' else 'resume'}",
                name,
            )
        return self._member(name)

    def remove_member(self, actor: str, name: str) -> MemberRow:
        m = self._member(name)
        if m.status == "removed":
            raise HubError.precondition(f"member {name!r} is already removed")
        now = self.now()
        with self.store.tx() as c:
            c.execute(
                "UPDATE members SET status='removed', cert_serial=NULL, token_hash=NULL"
                " WHERE name=?",
                (name,),
            )
            self.store.revoke_keys(now, name)  # a key.revoke leaf each
            for collab in self.store.member_collabs(name):
                self.store.append_leaf(
                    "collab.leave", _leaves.collab_membership(collab, name, False), collab, name
                )
            c.execute("DELETE FROM memberships WHERE member=?", (name,))
            c.execute("DELETE FROM collab_stewards WHERE member=?", (name,))
            c.execute("DELETE FROM bearer_tokens WHERE member=?", (name,))
            self.store.append_leaf(
                "member.status", _leaves.member_status(name, "removed"), member=name
            )
            self.store.audit(now, actor, "member.remove", name)
        return self._member(name)

    def revoke_key(self, actor: str, member: str, kid: str) -> MemberRow:
        self._member(member)
        owner = self.store.key_owner(kid)
        if owner is None or owner[0] != member:
            raise HubError.not_found(f"key {kid!r} is not a key of member {member!r}")
        if owner[2] is not None:
            raise HubError.precondition(f"key {kid!r} was already revoked at {owner[2]}")
        now = self.now()
        with self.store.tx():
            self.store.revoke_keys(now, member, kid)
            self.store.audit(now, actor, "key.revoke", member, key_id=kid)
        return self._member(member)

    def add_collab(
        self,
        actor: str,
        name: str,
        stewards: list[str] | None = None,
        signatures: list[bytes] | None = None,
        earlier_epochs: int = 0,
        keys_from_peer: bool = False,
    ) -> str:
        """Create ``name``.  With ``stewards`` (active members, each joined to it, each
        designated by the admin's signature in ``signatures``) the stewards make its key
        epochs and the hub never draws one; with ``keys_from_peer``, a steward of a peer hub
        does (the relay records the epochs it copies); else the hub makes epoch 0 as
        before stewards."""
        self._name("collaboration", name)
        if keys_from_peer and stewards:
            raise HubError.invalid(
                f"collaboration {name!r}: keys from a peer hub and stewards {stewards}; its"
                " key epochs come from one or the other"
            )
        if self.store.collab_exists(name):
            raise HubError.exists(f"collaboration {name!r} already exists")
        self._check_policy(name, earlier_epochs)
        names, sigs = list(stewards or ()), list(signatures or ())
        if sigs and len(sigs) != len(names):
            raise HubError.invalid(
                f"collaboration {name!r}: {len(sigs)} steward signatures for {len(names)}"
                " stewards; expected one each, in order"
            )
        chosen = dict(sorted(zip(names, sigs or [b""] * len(names), strict=True)))
        if len(chosen) > _leaves.MAX_STEWARDS:
            raise HubError.invalid(
                f"collaboration {name!r}: {len(chosen)} stewards; at most {_leaves.MAX_STEWARDS}"
            )
        designations = {}
        for steward, signature in chosen.items():
            self._check_steward(name, steward)
            designations[steward] = self._designation(name, steward, signature)
        now = self.now()
        with self.store.tx() as c:
            c.execute("INSERT INTO collabs (name, created) VALUES (?, ?)", (name, now))
            self.store.append_leaf("collab.add", _leaves.collab_add(name), name)
            if earlier_epochs:
                self._log_policy(c, name, earlier_epochs)
            for steward, sig in designations.items():
                self._log_designation(c, name, steward, sig)
            for steward in designations:
                c.execute("INSERT INTO memberships (collab, member) VALUES (?, ?)", (name, steward))
                leaf = self.store.join_leaf(name, steward, 0)
                self.store.append_leaf("collab.join", leaf, name, steward)
            if not designations and not keys_from_peer:
                secret = secrets.token_bytes(32)
                c.execute(
                    "INSERT INTO collab_keys (collab, epoch, secret, created) VALUES (?, 0, ?, ?)",
                    (name, secret, now),
                )
                leaf = _leaves.collab_epoch(name, 0, secret)
                self.store.append_leaf("collab.epoch", leaf, name)
            self.store.audit(now, actor, "collab.add", name, stewards=list(designations))
        return name

    def record_far_epoch(
        self, collab: str, epoch: int, commitment: str, steward: str, seq: int
    ) -> bool:
        """A key epoch of ``collab`` made by a steward of a peer hub (``steward`` as
        ``member@origin``), as the relay copied its leaf at ``seq``: recorded once, for a
        collaboration whose keys come from a peer (no stewards, no key of this hub), so
        that its members publish under it, from one hub only (the first whose epoch came).
        False: not recorded (the caller's transaction)."""
        store = self.store
        if store.stewards(collab) or store.one(
            "SELECT 1 FROM collab_keys WHERE collab=? LIMIT 1", collab
        ):
            return False
        origin = split_recipient(steward)[1]
        first = store.one("SELECT steward FROM collab_epochs WHERE collab=? LIMIT 1", collab)
        if first is not None and split_recipient(str(first[0]))[1] != origin:
            return False  # its keys come from the hub whose epoch came first
        store.conn.execute(
            "INSERT OR IGNORE INTO collab_epochs (collab, epoch, commitment, steward, created,"
            " seq) VALUES (?, ?, ?, ?, ?, ?)",
            (collab, epoch, commitment, steward, self.now(), seq),
        )
        return True

    @staticmethod
    def _check_policy(collab: str, earlier_epochs: int) -> None:
        if not 0 <= earlier_epochs <= _leaves.MAX_EARLIER_EPOCHS:
            raise HubError.invalid(
                f"collaboration {collab!r}: earlier_epochs {earlier_epochs}; expected 0 (the"
                f" current epoch only) to {_leaves.MAX_EARLIER_EPOCHS}"
            )

    def _log_policy(self, c: sqlite3.Connection, collab: str, earlier_epochs: int) -> None:
        c.execute("UPDATE collabs SET earlier_epochs=? WHERE name=?", (earlier_epochs, collab))
        leaf = _leaves.collab_policy(collab, earlier_epochs)
        self.store.append_leaf("collab.policy", leaf, collab)

    def set_collab_policy(self, actor: str, collab: str, earlier_epochs: int) -> str:
        """How many key epochs before the current one a joiner of ``collab`` is wrapped by
        the stewards that made them (each steward's client does it at its next rekey)."""
        self._collab(collab)
        self._check_policy(collab, earlier_epochs)
        if not self.store.stewards(collab):
            raise HubError.precondition(
                f"collaboration {collab!r} has no stewards: its keys come from the hub, and a"
                " policy for stewards' wraps would do nothing"
            )
        if self.store.earlier_epochs(collab) == earlier_epochs:
            raise HubError.exists(
                f"collaboration {collab!r}: earlier_epochs is already {earlier_epochs}"
            )
        now = self.now()
        with self.store.tx() as c:
            self._log_policy(c, collab, earlier_epochs)
            self.store.audit(now, actor, "collab.policy", collab, earlier_epochs=earlier_epochs)
        return collab

    def _designation(self, collab: str, member: str, signature: bytes) -> str:
        """The admin's designation of ``member`` as ``collab``'s steward, base64; refused
        unless it verifies under the admin key this hub pins (members would refuse every
        epoch of the steward).  A hub without an admin key logs an empty one."""
        admin = self.admin_key()
        if admin is None:
            return ""
        if not signature:
            raise HubError.precondition(
                f"collaboration {collab!r}: steward {member!r} has no admin designation; this"
                " hub requires one (`sighub admin collab` signs it with the admin key)"
            )
        try:
            check_designation(admin, self.log_origin(), collab, member, signature)
        except KeyChainError as exc:
            raise HubError.denied(str(exc)) from None
        return base64.b64encode(signature).decode("ascii")

    def _log_designation(self, c: sqlite3.Connection, collab: str, member: str, sig: str) -> None:
        seq = self.store.append_leaf(
            "collab.steward", _leaves.collab_steward(collab, member, sig), collab, member
        )
        c.execute(
            "INSERT INTO collab_stewards (collab, member, signature, seq) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (collab, member) DO UPDATE SET signature=excluded.signature,"
            " seq=excluded.seq",
            (collab, member, sig, seq),
        )

    def _check_steward(self, collab: str, steward: str) -> None:
        m = self._member(steward)
        if m.status != "active":
            raise HubError.precondition(
                f"collaboration {collab!r}: steward {steward!r} is {m.status}; expected an"
                " active member"
            )
        if not {"subscriber", "peer"} & set(m.roles):  # a steward syncs before it rekeys
            raise HubError.precondition(
                f"collaboration {collab!r}: steward {steward!r} has roles {sorted(m.roles)};"
                " expected subscriber or peer"
            )
        self._check_encryption_key(collab, steward)

    def _check_encryption_key(self, collab: str, member: str) -> None:
        """A member of a stewarded collaboration must have an encryption key: without one
        no epoch can be wrapped to it, so no steward could ever rekey."""
        if self.store.encryption_key(member) is None:
            raise HubError.precondition(
                f"collaboration {collab!r}: member {member!r} has no encryption key"
                " (enrolled before encryption keys: `sighub member rotate-encryption-key`)"
            )

    def add_steward(self, actor: str, collab: str, member: str, signature: bytes = b"") -> str:
        """Make ``member`` a steward of ``collab`` (joining it if needed), designated by
        the admin's ``signature``.  The hub makes no key for it from now on; its hub-made
        epochs stay served until the steward's first epoch, which deletes them
        (``_epochs.put_epoch``).  A steward named before designations were logged is
        designated again."""
        self._collab(collab)
        self._check_steward(collab, member)
        for other in self.store.collab_members(collab):
            self._check_encryption_key(collab, other)
        logged = dict(self.store.designations(collab))
        if member in logged and member in self.store.stewards(collab):
            raise HubError.exists(f"{member!r} is already a steward of {collab!r}")
        if len(set(logged) | {member}) > _leaves.MAX_STEWARDS:
            raise HubError.precondition(
                f"collaboration {collab!r} has {len(logged)} stewards; at most"
                f" {_leaves.MAX_STEWARDS}"
            )
        sig = self._designation(collab, member, signature)
        now = self.now()
        with self.store.tx() as c:
            self._log_designation(c, collab, member, sig)
            if member not in self.store.collab_members(collab):
                c.execute(
                    "INSERT INTO memberships (collab, member) VALUES (?, ?)", (collab, member)
                )
                (n,) = c.execute("SELECT last_n FROM collabs WHERE name = ?", (collab,)).fetchone()
                leaf = self.store.join_leaf(collab, member, n)
                self.store.append_leaf("collab.join", leaf, collab, member)
            self.store.audit(now, actor, "collab.steward", member, collab=collab)
        return collab

    def join(self, actor: str, collab: str, member: str) -> str:
        self._collab(collab)
        m = self._member(member)
        if m.status == "removed":
            raise HubError.precondition(f"member {member!r} is removed")
        if member in self.store.collab_members(collab):
            raise HubError.exists(f"member {member!r} is already in {collab!r}")
        if self.store.stewards(collab) and m.holds_keys:
            self._check_encryption_key(collab, member)
        with self.store.tx() as c:
            c.execute("INSERT INTO memberships (collab, member) VALUES (?, ?)", (collab, member))
            (n,) = c.execute("SELECT last_n FROM collabs WHERE name = ?", (collab,)).fetchone()
            leaf = self.store.join_leaf(collab, member, n)
            self.store.append_leaf("collab.join", leaf, collab, member)
            self.store.audit(self.now(), actor, "collab.join", member, collab=collab)
        return collab

    def leave(self, actor: str, collab: str, member: str) -> str:
        self._collab(collab)
        if member not in self.store.collab_members(collab):
            raise HubError.not_found(f"member {member!r} is not in {collab!r}")
        with self.store.tx() as c:
            c.execute("DELETE FROM memberships WHERE collab=? AND member=?", (collab, member))
            # a steward that leaves is no steward if it joins again (members see it leave)
            c.execute("DELETE FROM collab_stewards WHERE collab=? AND member=?", (collab, member))
            self.store.append_leaf(
                "collab.leave", _leaves.collab_membership(collab, member, False), collab, member
            )
            self.store.audit(self.now(), actor, "collab.leave", member, collab=collab)
        return collab

    def rotate_collab_key(self, actor: str, collab: str) -> int:
        self._collab(collab)
        stewards = self.store.stewards(collab)
        if stewards:  # never a hub-made key for a collaboration with stewards
            raise HubError.precondition(
                f"collaboration {collab!r}: its stewards make its keys; steward"
                f" {' or '.join(stewards)} runs `sighub collab rekey {collab}`"
            )
        epoch = (self.store.collab_epoch(collab) or 0) + 1
        now = self.now()
        secret = secrets.token_bytes(32)
        with self.store.tx() as c:
            c.execute(
                "INSERT INTO collab_keys (collab, epoch, secret, created) VALUES (?, ?, ?, ?)",
                (collab, epoch, secret, now),
            )
            self.store.append_leaf(
                "collab.epoch", _leaves.collab_epoch(collab, epoch, secret), collab
            )
            self.store.audit(now, actor, "collab.rotate-key", collab, epoch=epoch)
        return epoch

    # -- enrollment and keys ----------------------------------------------------------
    def enroll(
        self,
        name: str,
        token: str,
        csr_pem: bytes,
        signing_key: bytes,
        chain: Chain | None = None,
        encryption: ProvedKey | None = None,
    ) -> tuple[str, str, str, str]:
        """Returns (certificate PEM, identity, key id, bearer token).  A hub that pins an
        admin key requires ``chain``, the admin-signed grant binding ``signing_key``.
        ``encryption``, the member's HPKE key proved by ``signing_key``, is registered and
        logged with it (a client from before encryption keys sends none)."""
        m = self.store.member(name)
        stored = self.store.one("SELECT token_hash FROM members WHERE name=?", name)
        if (
            m is None
            or stored is None
            or stored[0] is None
            or not secrets.compare_digest(stored[0], hash_token(token))
        ):
            raise HubError.unauthenticated(
                f"enrollment of {name!r}: token not valid or already used"
            )
        if m.status != "pending":
            raise HubError.precondition(f"member {name!r} is {m.status}; expected pending")
        try:
            public = Ed25519PublicKey.from_public_bytes(signing_key)
            issued = issue_client(self.ca_key, self.ca_pem, csr_pem, name)
        except (ValueError, SighubError) as exc:
            raise HubError.invalid(f"enrollment of {name!r}: {exc}") from None
        kid = key_id(public)
        if self.store.key_owner(kid) is not None:
            raise HubError.exists(f"enrollment of {name!r}: key {kid} is already registered")
        self._check_chain(name, list(m.roles), signing_key, chain)
        if encryption is not None:
            self._check_encryption(f"enrollment of {name!r}", encryption, [(kid, signing_key)])
        bearer = secrets.token_urlsafe(32)
        now = self.now()
        with self.store.tx() as c:
            c.execute(
                "UPDATE members SET status='active', token_hash=NULL, cert_serial=? WHERE name=?",
                (issued.serial, name),
            )
            c.execute(
                "INSERT INTO member_keys (key_id, member, public_key, added) VALUES (?, ?, ?, ?)",
                (kid, name, signing_key, now),
            )
            leaf = _leaves.member_enroll(
                name, m.identity, list(m.roles), kid, signing_key, chain, encryption
            )
            seq = self.store.append_leaf("member.enroll", leaf, member=name)
            if encryption is not None:
                self.store.add_encryption_key(
                    encryption.key_id, name, encryption.suite, encryption.public,
                    encryption.proof, kid, now, seq,
                )  # fmt: skip
            c.execute(
                "INSERT INTO bearer_tokens (token_hash, member, created) VALUES (?, ?, ?)",
                (hash_token(bearer), name, now),
            )
            self.store.audit(
                now, name, "member.enroll", name, key_id=kid, cert_serial=issued.serial
            )
        return issued.cert_pem.decode(), m.identity, kid, bearer

    def admin_key(self) -> bytes | None:
        """The admin key this hub pins (raw), None for a hub created before key chains."""
        text = self.store.meta("admin_public_key")
        return None if not text else decode_public(text, "hub meta admin_public_key")

    def _check_chain(
        self, name: str, roles: list[str], signing_key: bytes, chain: Chain | None
    ) -> None:
        """Refuse an enrollment whose chain members would refuse: a hub that logged it
        would only alarm them."""
        admin = self.admin_key()
        if admin is None:
            return
        if chain is None:
            raise HubError.precondition(
                f"enrollment of {name!r}: no admin-signed grant; this hub requires one (use"
                " an enrollment file from `sighub admin member add` with an admin key)"
            )
        try:
            check_chain(admin, self.log_origin(), name, roles, signing_key, chain)
        except KeyChainError as exc:
            raise HubError.denied(str(exc)) from None

    def log_origin(self) -> str:
        return self.store.meta("log_origin") or ""

    def attest_key(
        self, actor: str, member: str, attestation: bytes, signature: bytes
    ) -> MemberRow:
        """Log the admin's attestation of one current key of ``member``."""
        admin = self.admin_key()
        if admin is None:
            raise HubError.precondition("this hub pins no admin key: nothing can be attested")
        self._member(member)
        current = [k for k in self.store.member_keys(member) if k[3] is None]
        if not current:
            raise HubError.precondition(f"member {member!r} has no current signing key")
        last = KeyChainError("no key checked")
        for kid, public, *_ in current:
            try:
                check_attestation(admin, self.log_origin(), member, public, attestation, signature)
            except KeyChainError as exc:
                last = exc
                continue
            now = self.now()
            with self.store.tx():
                leaf = _leaves.key_attest(member, kid, public, attestation, signature)
                self.store.append_leaf("key.attest", leaf, member=member)
                self.store.audit(now, actor, "key.attest", member, key_id=kid)
            return self._member(member)
        raise HubError.denied(f"attestation for {member!r}: {last}")

    def rotate_signing_key(self, m: MemberRow, new_key: bytes, proof: bytes) -> tuple[str, str]:
        current = [k for k in self.store.member_keys(m.name) if k[3] is None]
        if not current:
            raise HubError.precondition(f"member {m.name!r} has no valid signing key to rotate")
        try:
            new_public = Ed25519PublicKey.from_public_bytes(new_key)
        except ValueError:
            raise HubError.invalid(
                "new_public_key: expected 32 bytes of Ed25519 public key"
            ) from None
        kid_old, pub_old = current[-1][0], current[-1][1]
        try:
            Ed25519PublicKey.from_public_bytes(pub_old).verify(proof, ROTATE_CONTEXT + new_key)
        except InvalidSignature:
            raise HubError.unauthenticated(
                f"rotation proof does not verify under {kid_old}"
            ) from None
        kid = key_id(new_public)
        if self.store.key_owner(kid) is not None:
            raise HubError.exists(f"key {kid} is already registered")
        now = self.now()
        with self.store.tx() as c:
            c.execute(
                "INSERT INTO member_keys (key_id, member, public_key, added) VALUES (?, ?, ?, ?)",
                (kid, m.name, new_key, now),
            )
            leaf = _leaves.key_rotate(m.name, kid, new_key, kid_old, proof)
            seq = self.store.append_leaf("key.rotate", leaf, member=m.name)
            # the key.rotate leaf supersedes the old key: it is revoked at that sequence
            self.store.revoke_keys(now, m.name, kid_old, at_seq=seq)
            self.store.audit(now, m.name, "key.rotate", m.name, key_id=kid, previous_key_id=kid_old)
        return kid, kid_old

    def _check_encryption(
        self, what: str, encryption: ProvedKey, signers: list[tuple[str, bytes]]
    ) -> str:
        """The id of the signing key among ``signers`` (key id, public key) whose proof
        ``encryption`` carries.  Refuses what members would alarm at or could not use: an
        unknown suite or a malformed key (INVALID_ARGUMENT), a proof none of them made
        (UNAUTHENTICATED), a key already registered (ALREADY_EXISTS)."""
        try:
            check_public(encryption.suite, encryption.public, f"{what}: encryption key")
        except HpkeError as exc:
            raise HubError.invalid(str(exc)) from None
        for kid, public in signers:
            try:
                check_proof(public, encryption.suite, encryption.public, encryption.proof)
            except HpkeError:
                continue
            if self.store.encryption_key_owner(encryption.key_id) is not None:
                raise HubError.exists(
                    f"{what}: encryption key {encryption.key_id} is already registered"
                )
            return kid
        raise HubError.unauthenticated(
            f"{what}: the proof of encryption key {encryption.key_id} does not verify under"
            f" {' or '.join(kid for kid, _ in signers)}"
        )

    def rotate_encryption_key(
        self, m: MemberRow, encryption: ProvedKey
    ) -> tuple[str, str, str, int]:
        """Register ``m``'s new encryption key, proved by one of its current signing keys,
        and log it.  Returns (key id, signing key id, previous key id or "", sequence)."""
        current = [(k[0], k[1]) for k in self.store.member_keys(m.name) if k[3] is None]
        if not current:
            raise HubError.precondition(f"member {m.name!r} has no current signing key")
        signer = self._check_encryption(f"encryption key of {m.name!r}", encryption, current)
        previous = self.store.encryption_key(m.name)
        old = previous[0] if previous else ""
        now = self.now()
        with self.store.tx():
            leaf = _leaves.key_encryption(m.name, encryption, signer)
            seq = self.store.append_leaf("key.encryption", leaf, member=m.name)
            self.store.add_encryption_key(
                encryption.key_id, m.name, encryption.suite, encryption.public,
                encryption.proof, signer, now, seq,
            )  # fmt: skip
            self.store.audit(now, m.name, "key.encryption", m.name, key_id=encryption.key_id,
                             suite=encryption.suite, signing_key_id=signer,
                             previous_key_id=old or None)  # fmt: skip
        return encryption.key_id, signer, old, seq

    def renew_certificate(self, m: MemberRow, csr_pem: bytes) -> tuple[bytes, str]:
        """A new client certificate for active member ``m`` from a CSR naming ``m``; its
        serial becomes the current one, so the old certificate is refused from now on.
        Returns (certificate PEM, not-after)."""
        try:
            names = csr_common_names(csr_pem)
        except SighubError as exc:
            raise HubError.invalid(f"certificate renewal for {m.name!r}: {exc}") from None
        if names != [m.name]:
            raise HubError.denied(
                f"certificate renewal: the CSR names {names}; member {m.name!r} may only "
                f"renew its own certificate (CN {m.name!r})"
            )
        issued = issue_client(self.ca_key, self.ca_pem, csr_pem, m.name)
        now, not_after = self.now(), _now_text(issued.not_after)
        with self.store.tx() as c:
            changed = c.execute(
                "UPDATE members SET cert_serial=? WHERE name=? AND status='active'"
                " AND cert_serial IS ?",
                (issued.serial, m.name, m.cert_serial),
            ).rowcount
            if changed != 1:  # suspended, removed or renewed since the caller was identified
                raise HubError.precondition(
                    f"certificate renewal for {m.name!r}: the member changed meanwhile; retry"
                )
            self.store.audit(now, m.name, "member.renew-cert", m.name, cert_serial=issued.serial,
                             previous_cert_serial=m.cert_serial, not_after=not_after)  # fmt: skip
        return issued.cert_pem, not_after

    # -- publish ----------------------------------------------------------------------
    def publish_plan(
        self, m: MemberRow, collab: str, raw: bytes
    ) -> tuple[Plan, PublishResult | None]:
        """Authorize and read what validation needs; a stored duplicate short-cuts."""
        limits = self.config.publish_limits
        too_big = envelope_problem(len(raw), limits)
        if too_big is not None:
            raise HubError.exhausted(str(too_big))
        self.require(m, "publisher")
        if not self.store.collab_exists(collab):
            raise HubError.not_found(f"collaboration {collab!r} does not exist")
        self.require_member_of(m, collab)
        if not self.limiter.take(m.name):
            raise HubError.exhausted(f"member {m.name!r}: publish rate limit reached; retry later")
        keys = self.store.member_keys(m.name)
        plan = Plan(
            envelope_id=hashlib.sha256(raw).hexdigest(),
            member=m.name,
            identity=m.identity,
            collab=collab,
            keys={k[0]: k[1] for k in keys if k[3] is None},
            revoked={k[0]: k[3] for k in keys if k[3] is not None},
            epochs=tuple(self.store.collab_epochs(collab)),
            limits=limits,
            now=self.clock(),
        )
        seen = self.store.envelope_seq(plan.envelope_id)
        if seen is not None:  # the exact bytes are stored: verified when they were
            return plan, PublishResult(seen[0], plan.envelope_id, seen[1], True)
        return plan, None

    def publish_commit(self, plan: Plan, raw: bytes, checked: Checked | Rejection) -> PublishResult:
        """Store a validated envelope: one transaction, with the version checks inside."""
        if isinstance(checked, Rejection):
            raise HubError(grpc.StatusCode[checked.status], checked.message)
        now = self.now()
        with self.store.tx():
            seen = self.store.envelope_seq(plan.envelope_id)
            if seen is not None:  # a concurrent publish of the same bytes won
                return PublishResult(seen[0], plan.envelope_id, seen[1], True)
            self._check_versions(plan.member, checked)
            seq = self.store.append_envelope(
                plan.envelope_id, plan.collab, plan.member, checked.key_id, now, "[]", raw,
                checked.rows,
            )  # fmt: skip
            self.store.audit(now, plan.member, "publish", plan.collab, envelope=plan.envelope_id,
                             seq=seq, indicators=len(checked.rows),
                             revoked=sum(r[5] for r in checked.rows))  # fmt: skip
        return PublishResult(seq, plan.envelope_id, len(checked.rows), False)

    def _check_versions(self, member: str, checked: Checked) -> None:
        states = self.store.indicator_states(checked.ids)
        for ind_id, _, modified, _, _, _ in checked.rows:
            old = states.get(ind_id)
            if old is None:
                continue
            if old.publisher != member:
                raise HubError.denied(
                    f"indicator {ind_id}: created by {old.publisher!r}; only the creator may "
                    "revise or revoke it"
                )
            if old.revoked:
                raise HubError.precondition(f"indicator {ind_id}: already revoked")
            if modified <= old.modified:
                raise HubError.precondition(
                    f"indicator {ind_id}: modified {modified} must be later than the stored "
                    f"{old.modified}"
                )

    # -- directory --------------------------------------------------------------------
    def key_directory(self, m: MemberRow) -> list[DirectoryRow]:
        """The keys a member needs to verify its collaborations' log: of the caller, of
        every member of its collaborations, and of every member that ever published in
        them (removed or not: what they signed before revocation stays valid, so a fresh
        member verifies the same history as one that synced before the removal).  An
        admin, who attests keys, gets every member's."""
        collabs = self.store.member_collabs(m.name)
        names = {m.name, *self.store.collab_publishers(collabs)}
        for collab in collabs:
            names.update(self.store.collab_members(collab))
        if "admin" in m.roles:
            names.update(r[0] for r in self.store.all("SELECT name FROM members"))
        out = []
        for name in sorted(names):
            member = self.store.member(name)
            if member is None:
                continue
            for kid, pub, added, revoked, revoked_seq in self.store.member_keys(name):
                out.append(
                    DirectoryRow(
                        name, member.identity, kid, pub, added, revoked, revoked_seq, member.status
                    )
                )
        return out

    def collab_keys(self, m: MemberRow) -> list[tuple[str, int, bytes, str]]:
        return self.store.collab_keys(self.store.member_collabs(m.name))

    def audit_log(
        self, member: str, since: str, limit: int, before: int | None = None
    ) -> list[tuple[Any, ...]]:
        return self.store.audit_log(member, since, limit, before)
