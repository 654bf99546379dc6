"""The daemon's watch over the hub's transparency log: each Sync batch is verified
(``_logcheck.LogVerifier``) before anything of it is written, and every directory leaf
under this member's own name must be a key this member made.

``LogGuard`` holds the verifier for one ``SyncDaemon``.  The state it returns is stored
in ``local.db`` (meta ``log_state``) in the transaction that writes the batch and advances
the cursor, so the two never get out of step.  An alarm is kept as evidence (table
``log_alarms``), logged at ERROR and raised; while one is not acknowledged
(``sync --clear-alarm``) the daemon does not sync.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from sighub.client import _farlog, _json
from sighub.client._checkpoint import parse_checkpoint
from sighub.client._enckey import own_encryption_keys
from sighub.client._envelope import key_id
from sighub.client._errors import IntegrityAlarm, JsonBudgetError, NoteError, SighubError
from sighub.client._farlog import FarLog
from sighub.client._grant import decode_public
from sighub.client._keyring import KeyRing, LoggedEncryptionKey, LoggedKey
from sighub.client._keys import ENCRYPTION_KEY_ID, MEMBER_FILE, read_secret
from sighub.client._leaves import (
    COLLAB_TYPES,
    DIRECTORY_TYPES,
    FAR_TYPES,
    PEER_TYPES,
    LeafError,
    parse_leaf,
)
from sighub.client._local import LocalStore, StoredAlarm
from sighub.client._logcheck import (
    AlarmKind,
    BatchChange,
    BatchLeaf,
    LogAlarm,
    LogState,
    LogVerifier,
    leaf_hashes_for_batch,
    own_name_alarm,
)
from sighub.client._merkle import Frontier
from sighub.client._note import MAX_NOTE_BYTES, parse_note
from sighub.client._numbers import EnvelopeNumbers
from sighub.client._peerlog import LoggedPeer, PeerLog
from sighub.client._rpc import Credential, HubClient, SyncBatch
from sighub.client._stewardlog import CollabState, LoggedEpoch, StewardLog

__all__ = [
    "DEFAULT_MAX_CHECKPOINT_AGE",
    "STATE_KEY",
    "AlarmRecorded",
    "LogGuard",
    "alarm_text",
    "own_keys",
]

log = logging.getLogger("sighub.sync")
# A hub signs a checkpoint at least every checkpoint_interval_seconds (60 s by default)
# while idle; a day leaves room for a hub's maintenance without letting a freeze last.
DEFAULT_MAX_CHECKPOINT_AGE: Final = timedelta(hours=24)
STATE_KEY: Final = "log_state"
ORIGIN_KEY: Final = "log_origin"
# KEYS_VERSION once log_keys, log_encryption_keys, log_collabs, log_epochs and log_peers
# hold every leaf of theirs up to the cursor ("1": signing keys only, from before
# encryption keys; "2": before logged stewards; "3": before logged peerings: those leaves
# are read again).
KEYS_KEY: Final = "log_keys"
KEYS_VERSION: Final = "4"
NUMBERS_KEY: Final = "collab_numbers"  # _numbers.EnvelopeNumbers.to_json


class AlarmRecorded(IntegrityAlarm):
    """A sync refused because an alarm is recorded and not acknowledged."""


def own_keys(data: Path) -> tuple[frozenset[str], frozenset[str]]:
    """(the key ids this member made, those it rotated away from): every private signing
    key in ``data`` (``signing.key``, ``signing.*.retired.key``, and ``signing.*.pending
    .key``, written before a rotation reaches the hub) and ``member.json``'s key id, and
    likewise every encryption key (``_enckey.own_encryption_keys`` and the one
    ``member.json`` names).  A key whose private
    half is here is this member's, whatever the hub says of it."""
    enc_mine, enc_retired = own_encryption_keys(data)
    mine: set[str] = set(enc_mine)
    retired: set[str] = set(enc_retired)
    for path in sorted(data.glob("signing*.key")):
        try:
            key = load_pem_private_key(read_secret(path), password=None)
        except (SighubError, ValueError, TypeError, OSError) as exc:
            log.warning(
                "%s: not read as a signing key (%s); not counted as this member's", path, exc
            )
            continue
        if isinstance(key, Ed25519PrivateKey):
            kid = key_id(key.public_key())
            mine.add(kid)
            if path.name.endswith(".retired.key"):
                retired.add(kid)
    try:
        doc = _json.loads((data / MEMBER_FILE).read_bytes(), _json.DOCUMENT, MEMBER_FILE)
        for field in ("key_id", ENCRYPTION_KEY_ID):
            if isinstance(doc, dict) and isinstance(doc.get(field), str):
                mine.add(doc[field])
    except (OSError, JsonBudgetError):
        pass  # no identity file: the keys above are all this member has
    return frozenset(mine), frozenset(retired)


def _batch_items(batch: SyncBatch) -> tuple[list[BatchChange], list[BatchLeaf]]:
    changes = [
        BatchChange(c.sequence, c.collaboration, c.envelope, c.n, c.hop_records)
        for c in batch.changes
    ]
    leaves = [BatchLeaf(x.sequence, x.leaf, x.leaf_hash) for x in batch.leaves]
    return changes, leaves


def _origin_of(note: bytes) -> str:
    """The origin a checkpoint names, read without verifying it (trust on first use)."""
    try:
        return parse_checkpoint(parse_note(note).text).origin
    except NoteError as exc:
        raise LogAlarm(
            AlarmKind.BAD_SIGNATURE,
            f"the first checkpoint is not a signed checkpoint note: {exc}",
            {"checkpoint": base64.b64encode(note[:MAX_NOTE_BYTES]).decode()},
        ) from None


class LogGuard:
    """Verifies the hub's log for ``SyncDaemon``: ``check`` each batch, ``save`` the state
    in the transaction that applies it, ``reload`` after a transaction that failed.  What
    the verified leaves show is kept in ``ring`` (keys), ``stewards`` (collaborations'
    stewards and epochs) and ``peers`` (the hub's peerings with other hubs)."""

    def __init__(
        self,
        store: LocalStore,
        cred: Credential,
        data: Path,
        max_age: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self.store, self.cred, self.data = store, cred, data
        self.max_age, self.clock = max_age, clock
        self.member = cred.member
        self._keys = own_keys(data)
        self._admin = (
            decode_public(cred.admin_public_key, f"{data}/hub.json: admin_public_key")
            if cred.admin_public_key
            else None
        )
        self._pin = ""  # an origin taken on first use, stored with the next state
        # Set by the leaves checked, cleared by the daemon once it acted on them: a key
        # epoch was logged (wraps to fetch), membership changed (a steward's rekey due).
        self.epochs_changed = False
        self.members_changed = False
        self._verifier: LogVerifier | None = None
        self.ring = KeyRing("", None)
        self.stewards = StewardLog("", None)
        self.peers = PeerLog("", None)
        self.far = FarLog("", b"", self.peers)
        self.reload()

    @property
    def _hub_key(self) -> bytes:
        """The log key the credential pins (raw)."""
        return base64.b64decode(self.cred.hub_public_key)

    @property
    def origin(self) -> str:
        return self.cred.log_origin or self.store.meta(ORIGIN_KEY)

    def reload(self) -> None:
        """The verifier from the state stored (drops what a failed transaction held)."""
        self._pin = ""
        origin = self.origin
        stored = self.store.meta(STATE_KEY)
        state = LogState.from_dict(json.loads(stored)) if stored else None
        if state is not None and state.size != self.store.cursor:
            # Only a daemon from before the log advances the cursor alone: rebuild.
            log.warning(
                "log state of size %d beside cursor %d: rebuilt from the hub's leaves",
                state.size,
                self.store.cursor,
            )
            state = None
        self._verifier = self._make(origin, state) if origin else None
        self._state = state
        keys = (LoggedKey(*row) for row in self.store.log_keys())
        encryption = (LoggedEncryptionKey(*row) for row in self.store.log_encryption_keys())
        self.ring = KeyRing(origin, self._admin, keys, encryption)
        epochs = {k: LoggedEpoch.from_row(v) for k, v in self.store.log_epochs().items()}
        collabs = {c: CollabState.from_json(t) for c, t in self.store.log_collabs().items()}
        self.stewards = StewardLog(origin, self._admin, collabs, epochs)
        peers = (LoggedPeer.from_row(r) for r in self.store.log_peers())
        self.peers = PeerLog(origin, self._admin, peers)
        self.far = FarLog.load(self.store.conn, origin, self._hub_key, self.peers)
        numbers = self.store.meta(NUMBERS_KEY)
        self.numbers = EnvelopeNumbers(self.member, json.loads(numbers) if numbers else None)

    @property
    def chain_required(self) -> bool:
        """Whether keys need the admin-signed chain (the credential pins the admin key)."""
        return self._admin is not None

    def _make(self, origin: str, state: LogState | None) -> LogVerifier:
        return LogVerifier(origin, self.cred.hub_public_key, state, self.max_age, self.clock)

    @property
    def state(self) -> LogState | None:
        """The state as of the last batch checked (None: nothing stored yet)."""
        return self._state

    def needs_frontier(self) -> bool:
        """A member synced before the log (cursor > 0, no state), or before its keys (or
        its encryption keys) were read from the log: see ``adopt_frontier``."""
        if self.store.cursor == 0:
            return False
        return self._state is None or self.store.meta(KEYS_KEY) != KEYS_VERSION

    def adopt_frontier(self, hub: HubClient) -> None:
        """Rebuild the frontier of the sequences already applied from the hub's leaves,
        trusting them on first use (the next checkpoint proves them a prefix of the signed
        tree), and check the directory leaves among them under this member's name."""
        cursor = self.store.cursor
        log.warning(
            "no log state or no key ring for cursor %d (synced before the hub's log was"
            " verified, or before its keys, stewards or peerings were read from it): reading"
            " leaves 1..%d"
            " from the hub%s",
            cursor,
            cursor,
            "" if self._state is not None else " and trusting them on first use",
        )
        frontier = Frontier()
        self.ring = KeyRing(self.origin, self._admin)
        self.stewards = StewardLog(self.origin, self._admin)
        self.peers = PeerLog(self.origin, self._admin)
        self.far = FarLog(self.origin, self._hub_key, self.peers)
        while frontier.size < cursor:
            got = hub.leaves(frontier.size, cursor)
            if not got:
                raise SighubError(f"hub answered no leaves from index {frontier.size}")
            leaves = [BatchLeaf(x.sequence, x.leaf, x.leaf_hash) for x in got]
            start = frontier.size
            end = start + len(leaves)
            if end > cursor:
                raise LogAlarm(
                    AlarmKind.GAP,
                    f"GetLeaves from index {start} up to {cursor} answered {len(leaves)}"
                    f" leaves, past {cursor}",
                    {"start": start, "end": cursor, "received": len(leaves)},
                )
            frontier.extend(leaf_hashes_for_batch(start, end, [], leaves))
            self._watch_directory([], leaves)
        stored = self._state
        if stored is not None and (stored.size, stored.hashes) != (frontier.size, frontier.hashes):
            raise LogAlarm(
                AlarmKind.ALTERED,
                f"the leaves 1..{cursor} the hub serves now do not make the tree this member"
                " verified at that size",
                {"verified": stored.to_dict(), "served": LogState(frontier.size,
                 frontier.hashes).to_dict()},
            )  # fmt: skip
        state = stored or LogState(frontier.size, frontier.hashes)
        with self.store.tx():
            self.store.set_meta(STATE_KEY, json.dumps(state.to_dict()))
            self.store.clear_log_keys()  # all read again above
            _farlog.clear(self.store.conn)
            self._save_keys()
        self.reload()

    def check(self, start: int, batch: SyncBatch) -> LogState:
        """The state after ``batch`` (sequences ``(start, batch.cursor]``), verified against
        its checkpoint and all seen before; raises ``LogAlarm`` and changes nothing stored."""
        changes, leaves = _batch_items(batch)
        items = leaf_hashes_for_batch(start, batch.cursor, changes, leaves)
        verifier = self._verifier
        if verifier is None:
            self._pin = _origin_of(batch.checkpoint)
            log.warning(
                "the credential names no log origin (enrolled before the log): pinning %r,"
                " the origin of the hub's first checkpoint (trust on first use)",
                self._pin,
            )
            verifier = self._verifier = self._make(self._pin, self._state)
            self.ring.origin = self.stewards.origin = self.peers.origin = self._pin
            self.far.here = self._pin
        state = verifier.verify_batch(
            start, batch.cursor, items, batch.checkpoint, batch.consistency
        )
        self._watch_directory(changes, leaves)
        self.numbers.check(changes, leaves)
        self._state = state
        return state

    @property
    def logged_epochs(self) -> dict[tuple[str, int], LoggedEpoch]:
        """The stewards' epochs as the verified log shows them (``_stewardlog``)."""
        return self.stewards.epochs

    def directory(self) -> dict[str, tuple[str, str, bytes, int | None, int, str]]:
        """The signing keys as the verified log shows them (``KeyRing.directory``)."""
        return self.ring.directory()

    def save(self) -> None:
        """Store the state reached, inside the caller's transaction."""
        if self._state is None:
            return
        self.store.set_meta(STATE_KEY, json.dumps(self._state.to_dict()))
        if self._pin:
            self.store.set_meta(ORIGIN_KEY, self._pin)
        self._save_keys()
        self.save_numbers()

    def save_numbers(self) -> None:
        """Store the numbering state, inside the caller's transaction."""
        self.store.set_meta(NUMBERS_KEY, json.dumps(self.numbers.to_json(), sort_keys=True))

    def _save_keys(self) -> None:
        self.store.put_log_keys(k.row() for k in self.ring.changed())
        self.store.put_log_encryption_keys(e.row() for e in self.ring.changed_encryption())
        self.store.put_log_epochs(self.stewards.changed_epochs())
        self.store.put_log_collabs(self.stewards.changed_collabs())
        self.store.put_log_peers(self.peers.changed())
        self.far.save(self.store.conn)
        self.store.set_meta(KEYS_KEY, KEYS_VERSION)
        self.ring.saved()
        self.stewards.saved()
        self.peers.saved()

    def reset(self) -> None:
        """Forget the log state (``sync --resync``): the next sync starts from the empty
        tree, in the caller's transaction."""
        self.store.conn.execute(
            "DELETE FROM meta WHERE key IN (?, ?, ?)", (STATE_KEY, KEYS_KEY, NUMBERS_KEY)
        )
        self.store.clear_log_keys()
        _farlog.clear(self.store.conn)

    # -- key transparency ----------------------------------------------------------------
    def _watch_directory(self, changes: Sequence[BatchChange], leaves: Sequence[BatchLeaf]) -> None:
        """Take every directory leaf into the key ring, alarm at a key event under this
        member's name it did not make, and at an envelope withheld from this member."""
        delivered = {c.collab for c in changes}
        left: set[str] = set()
        withheld: list[tuple[int, str]] = []
        for x in leaves:
            if x.leaf is None:
                continue
            try:
                doc = parse_leaf(x.leaf)
            except LeafError as exc:
                raise LogAlarm(
                    AlarmKind.MALFORMED,
                    f"sequence {x.sequence}: {exc}",
                    {"sequence": x.sequence, "leaf": base64.b64encode(x.leaf[:4096]).decode()},
                ) from None
            kind = doc["type"]
            if kind in COLLAB_TYPES:
                self.stewards.apply(x.sequence, doc, self.ring.valid_keys)
            elif kind in FAR_TYPES:
                self.far.apply(x.sequence, doc, x.leaf)
                if self.far.collabs_changed:  # a collaboration that spans hubs: its
                    self.far.collabs_changed = False  # epochs, wraps, members
                    self.epochs_changed = self.members_changed = True
            elif kind in PEER_TYPES:
                self.peers.apply(x.sequence, doc)
            if kind in ("collab.epoch", "collab.steward"):
                self.epochs_changed = True  # wraps to fetch, or who stewards what
            elif kind in ("collab.join", "collab.leave", "member.status", "collab.policy"):
                self.members_changed = True  # a steward's rekey (or joiners' earlier epochs)
            if kind == "envelope":
                withheld.append((x.sequence, str(doc.get("collab"))))
            elif kind == "collab.leave" and doc.get("member") == self.member:
                left.add(str(doc.get("collab")))
            elif kind in DIRECTORY_TYPES:
                if doc.get("member") == self.member:
                    self._check_own(doc, x.sequence)
                self.ring.apply(x.sequence, doc)
        # An envelope of a collaboration whose envelopes this batch delivers, sent only as
        # its leaf: the hub kept it from this member (after a leave, a re-join mid-stream
        # is the hub's honest exception).
        for seq, collab in withheld:
            if collab in delivered and collab not in left:
                raise LogAlarm(
                    AlarmKind.WITHHELD,
                    f"sequence {seq} is an envelope of {collab!r}, sent as a log leaf while the"
                    f" same batch delivers {collab!r}'s envelopes: the hub withheld it",
                    {"sequence": seq, "collab": collab},
                )

    def _check_own(self, doc: dict[str, object], sequence: int) -> None:
        mine, retired = self._keys
        alarm = own_name_alarm(self.member, doc, mine, retired)
        if alarm is not None:
            # A rotation in progress writes its pending key before the hub logs it: read
            # the key files again before deciding.
            self._keys = own_keys(self.data)
            alarm = own_name_alarm(self.member, doc, *self._keys)
        if alarm is not None:
            alarm.evidence["sequence"] = sequence
            raise alarm

    # -- alarms --------------------------------------------------------------------------
    def record(self, alarm: IntegrityAlarm, at: str) -> None:
        """Keep ``alarm``'s evidence in ``local.db`` and log it at ERROR."""
        if isinstance(alarm, LogAlarm):
            kind, evidence = alarm.kind.value, alarm.evidence
        else:
            kind, evidence = AlarmKind.ROLLBACK.value, {"alarm": AlarmKind.ROLLBACK.value}
        evidence = {**evidence, "cursor": self.store.cursor}
        self.store.add_alarm(at, kind, str(alarm), evidence)
        log.error(
            "LOG ALARM (%s) at cursor %d: %s; nothing of it applied, evidence kept in %s"
            " (table log_alarms)",
            kind,
            self.store.cursor,
            alarm,
            self.store.path,
        )

    def refuse_if_alarmed(self) -> None:
        """Raise ``AlarmRecorded`` while an alarm is not acknowledged."""
        open_alarms = self.store.alarms()
        if open_alarms:
            raise AlarmRecorded(alarm_text(self.data, open_alarms[-1], len(open_alarms)))


def alarm_text(data: Path, alarm: StoredAlarm, count: int = 1) -> str:
    """What ``sync`` and ``status`` say of a recorded alarm: what the hub did, when, and
    what the operator can do."""
    more = f" ({count} alarms recorded, this is the latest)" if count > 1 else ""
    return (
        f"{data}: the hub's log alarm at {alarm.at}: {alarm.kind}{more}: {alarm.message}."
        f" Nothing of it was applied; the evidence is in {data / 'local.db'} (table"
        " log_alarms). Tell the hub's operator. Sync stays stopped until you run `sighub sync"
        f" --data {data} --clear-alarm` (with --resync as well if the hub was deliberately"
        " restored from a backup)"
    )
