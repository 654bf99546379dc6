"""The sync daemon: pulls the hub's log, verifies every envelope itself, applies it to the
local store.  A hub (or relay) that alters, forges or re-attributes an envelope is detected
by the publisher's signature and the key directory: the envelope is refused, loudly, and
nothing of it is applied."""

from __future__ import annotations

import hashlib
import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Final

from sighub.client._cosign import CosignSender
from sighub.client._errors import IntegrityAlarm, SighubError
from sighub.client._farkeys import far_recipients, far_unwrap
from sighub.client._farlog import check_relayed
from sighub.client._history import verified_page
from sighub.client._hops import HopError, HopRecord, decode_hops
from sighub.client._intake import CheckedBatch, Checker, Reader, change_args
from sighub.client._keys import MemberFiles
from sighub.client._local import LOCAL_DB, LocalStore, stored_row
from sighub.client._logcheck import DEFAULT_MAX_SKEW, AlarmKind, LogAlarm, hub_key
from sighub.client._logguard import DEFAULT_MAX_CHECKPOINT_AGE, LogGuard
from sighub.client._rpc import (
    CURSOR_AHEAD,
    PERMANENT,
    Change,
    Credential,
    HubClient,
    HubRejected,
    SyncBatch,
)
from sighub.client._steward import Rekeyed, own_keys, rekey, unwrap_all
from sighub.client._stix import format_time
from sighub.client._verify import UNKNOWN_KEY, Checked, Directory, Row, check_changes, paused_gc
from sighub.client._witness import WitnessPolicy, WitnessPolicyError, check_witnesses, load_cosigner
from sighub.client._workers import WorkerError
from sighub.client._wraps import WrapError

if TYPE_CHECKING:
    from sighub.client._sinks import Sink

__all__ = ["DEFAULT_MAX_CHECKPOINT_AGE", "LOCAL_DB", "SyncDaemon", "SyncReport", "default_workers"]

log = logging.getLogger("sighub.sync")
BACKOFF_START: Final = 0.5
BACKOFF_MAX: Final = 30.0
READ_AHEAD: Final = 6  # batches (each <= 8 MiB of envelopes) read ahead of the one written
COMMIT_SECONDS: Final = 2.0  # at most this long of batches share one transaction
_PUBLISHER: Final = 2  # LocalStore.row columns
_EPOCH: Final = 7
_MODIFIED: Final = 14
_REVOKED: Final = 15
WITNESS_CHECK_SECONDS: Final = 60.0  # a follow checks the witnesses at most this often
COSIGN_FLUSH_SECONDS: Final = 5.0  # a one-shot sync waits this long for its cosignature
NO_WITNESSES: Final = WitnessPolicy()  # K = 0: no witness checked, as before witnesses


REFUSED_KEPT: Final = 1000  # refusals a SyncReport lists; the store keeps every one


def default_workers() -> int:
    """Verification worker processes: one per core, at most four."""
    return min(4, os.cpu_count() or 1)


@dataclass
class SyncReport:
    """What a sync did: ``batches`` and ``envelopes`` received, indicator versions
    ``applied`` and ``stale`` ones skipped, envelopes ``refused`` (sequence, reason: not
    applied, logged and kept in the store; the latest ``REFUSED_KEPT`` of them, all
    ``refused_count``), the ``cursor`` reached and whether the last batch was
    ``caught_up`` with the hub's log."""

    batches: int = 0
    envelopes: int = 0
    applied: int = 0  # indicator versions written
    stale: int = 0  # older or equal versions skipped
    refused: list[tuple[int, str]] = field(default_factory=list)  # (sequence, reason)
    cursor: int = 0
    caught_up: bool = False  # the last batch reached the hub's head
    # The highest sequence the stream reads, as of the last batch (0 before the first):
    # head - cursor is what is left to read.
    head: int = 0
    # The hub's last signed checkpoint verified (its tree size and root, hex): every
    # change applied is in it.  0 and "" when the log is not checked.
    log_size: int = 0
    log_root: str = ""
    refused_count: int = 0  # every envelope refused (``refused`` keeps the latest)

    def add_refused(self, sequence: int, reason: str) -> None:
        """Count a refusal and keep it among the latest ``REFUSED_KEPT`` (a follow that
        runs for months must not grow without bound)."""
        self.refused_count += 1
        self.refused.append((sequence, reason))
        if len(self.refused) >= 2 * REFUSED_KEPT:  # trimmed in halves: amortized O(1)
            del self.refused[:REFUSED_KEPT]

    # Known witnesses that vouched for a tree consistent with this member's at the last
    # witness check (0 when no witness is required).
    witnesses: int = 0


class SyncDaemon:
    """Syncs one member's data directory.  Every batch is verified against the hub's
    signed log (``_logguard``) before it is applied: ``max_checkpoint_age`` is how old
    the newest checkpoint may be before the hub counts as freezing this member, and
    ``witnesses`` how many known witnesses must vouch for this member's tree
    (``_witness``; the default requires none).  A data directory holding ``witness.key``
    makes the daemon a witness: it co-signs each checkpoint it verified (``_cosign``).
    ``_check_log=False`` is for the benchmark only (the cost of the checks), never an
    option: a daemon that does not check the log is open to every attack it exists for."""

    def __init__(
        self,
        data: Path,
        insecure: bool = False,
        address: str | None = None,
        clock: Callable[[], datetime] | None = None,
        batch_size: int = 256,
        sinks: Sequence[Sink] = (),
        workers: int | None = None,
        max_checkpoint_age: timedelta = DEFAULT_MAX_CHECKPOINT_AGE,
        witnesses: WitnessPolicy = NO_WITNESSES,
        *,
        _check_log: bool = True,
    ) -> None:
        if witnesses.required and not _check_log:
            raise WitnessPolicyError("witnesses: required, but the log is not checked")
        self.data = data
        self.sinks = list(sinks)
        self.batch_size = batch_size
        workers = default_workers() if workers is None else workers
        self._checker = Checker(workers)
        self.depth = READ_AHEAD
        self.insecure = insecure
        cred = Credential.load(data)
        self.cred = cred if address is None else replace(cred, hub=address)
        self.store = LocalStore(data / LOCAL_DB)
        self.clock = clock or (lambda: datetime.now(UTC))
        self._guard = (
            LogGuard(self.store, self.cred, data, max_checkpoint_age, self.clock)
            if _check_log
            else None
        )
        self.witnesses = witnesses
        self._witnessed_at: float | None = None  # time.monotonic() of the last check
        cosigner = load_cosigner(data) if _check_log else None
        self._cosign = (
            None if cosigner is None else CosignSender(cosigner, self.connect, self.clock)
        )
        self._hub: HubClient | None = None
        self._keys: Directory | None = None
        self._epochs = {(collab, epoch) for collab, epoch, _ in self.store.collab_keys()}
        self._stewarded: set[str] = set()  # collaborations this member stewards, per GetWraps
        self._duties = True  # whether a sync does the steward's duties

    def interrupt(self) -> None:
        """End a blocking ``follow`` promptly (call after setting its stop event)."""
        hub = self._hub
        if hub is not None:
            hub.close()

    def close(self) -> None:
        if self._cosign is not None:
            self._cosign.close()
        self._checker.close()
        self.store.close()

    def connect(self) -> HubClient:
        return HubClient.connect(self.cred, self.insecure)

    # -- directory --------------------------------------------------------------------
    def refresh_directory(self, hub: HubClient) -> None:
        """The collaboration keys the hub holds (hub-made epochs) and the wraps; the
        signing keys from ``GetKeys`` only when the log is not checked (with it, they come
        from the verified log: the hub's directory is never read)."""
        keys = (
            None
            if self._guard is not None
            else [
                (k.key_id, k.member, k.identity, k.public_key, k.revoked_sequence)
                for k in hub.key_directory()
            ]
        )
        shared = [(k.collaboration, k.epoch, k.secret) for k in hub.collab_keys()]
        self.store.replace_directory(keys, shared)
        self._keys = None  # re-read on the next verification
        self.unwrap(hub)

    def unwrap(self, hub: HubClient) -> list[str]:
        """Fetch the wraps sealed to this member, open the new ones (checked against the
        verified log: ``_steward.unwrap_all``) and keep their secrets in ``local.db``;
        returns the reasons of the wraps refused."""
        try:
            wraps, missing = hub.wraps()
        except HubRejected as exc:
            if exc.code != "UNIMPLEMENTED":
                raise
            wraps, missing = [], []  # a hub from before member-held keys: none to unwrap
        for gap in missing:
            log.log(
                logging.INFO if self.cred.member in gap.stewards else logging.WARNING,
                "collaboration %r: %s; steward %s runs `sighub collab rekey %s`",
                gap.collab,
                "no key epoch yet" if gap.epoch < 0 else f"epoch {gap.epoch} has no wrap for us",
                " or ".join(gap.stewards),
                gap.collab,
            )
        held = {(c, e) for c, e, _ in self.store.collab_keys()}
        refused: list[str] = []
        found: list[tuple[str, int, bytes]] = []
        new = [w for w in wraps if (w.collab, w.epoch) not in held]
        if new and self._guard is not None:  # the key files are read only for a new wrap
            found, refused = unwrap_all(
                new, self.cred.member, own_keys(self.data), self._guard.ring, held,
                self._guard.logged_epochs,
            )  # fmt: skip
            held |= {(c, e) for c, e, _ in found}
        if self._guard is not None and self._guard.far.wraps:  # stewards of other hubs
            far_got, far_refused = far_unwrap(
                self._guard.far, self.cred.member, own_keys(self.data), held
            )
            found += far_got
            refused += far_refused
            held |= {(c, e) for c, e, _ in far_got}
        if found:
            self.store.put_collab_keys(found)
        self._epochs |= held  # keeps the epochs already asked for (``_known_keys``)
        # what this member stewards: per the verified log's designations (a hub saying
        # so, or wraps this member once made, do not make it one)
        if self._guard is not None:
            view = self._guard.stewards
            self._stewarded = {c for c in view.collabs if self.cred.member in view.stewards(c)}
        return refused

    def _after_batch(self, hub: HubClient) -> None:
        """Following: fetch wraps when a key epoch was logged, and do a steward's duties
        when membership changed (after the batch is applied, never inside its transaction)."""
        guard = self._guard
        if guard is None:
            return
        if guard.epochs_changed or guard.members_changed:
            guard.epochs_changed = False
            self.unwrap(hub)  # new epochs, and who stewards what as of now
        if guard.members_changed:
            guard.members_changed = False
            self.steward_duties(hub)

    def steward_duties(self, hub: HubClient) -> list[Rekeyed]:
        """For each collaboration this member stewards: a new epoch when a holder left or
        was removed or suspended, wraps of the current one for members that joined
        (``_steward.rekey``); what was done."""
        if self._guard is None or not self._stewarded or not self._duties:
            return []
        done = []
        held = {(c, e): s for c, e, s in self.store.collab_keys()}
        for collab in sorted(self._stewarded):
            try:
                result, secret = rekey(
                    hub, MemberFiles(self.data), self.cred.member, self._guard.ring,
                    self._guard.stewards, collab, held,
                    far=far_recipients(self._guard.far, collab),
                )  # fmt: skip
            except (HubRejected, WrapError) as exc:  # another steward was first, a key gap
                log.warning("steward duties for %r not done: %s", collab, exc)
                continue
            if secret is not None:
                self.store.put_collab_keys([(collab, result.epoch, secret)])
                self._epochs.add((collab, result.epoch))
            if result.recipients:
                log.info("steward: %r epoch %d wrapped to %s", collab, result.epoch,
                         ", ".join(result.recipients))  # fmt: skip
            for epoch, names in result.earlier:
                log.info("steward: %r earlier epoch %d wrapped to %s (the policy)", collab,
                         epoch, ", ".join(names))  # fmt: skip
            for problem in result.problems:
                log.warning("steward duties for %r: %s", collab, problem)
            if result.recipients or result.earlier:
                done.append(result)
        return done

    def rekey(self, collab: str, force_new: bool = False) -> Rekeyed:
        """As ``collab``'s steward: sync (the verified log gives the members' encryption
        keys), then make a new epoch or wrap the current one to members that lack it
        (``_steward.rekey``); the new secret is kept in ``local.db`` like an unwrapped one."""
        self._duties = False  # the rekey below is this run's duty
        try:
            self.sync_once()
        finally:
            self._duties = True
        if self._guard is None:
            raise SighubError("rekey: needs the verified log (the members' encryption keys)")
        held = {(c, e): s for c, e, s in self.store.collab_keys()}
        with self.connect() as hub:
            done, secret = rekey(
                hub, MemberFiles(self.data), self.cred.member, self._guard.ring,
                self._guard.stewards, collab, held, force_new,
                far=far_recipients(self._guard.far, collab),
            )  # fmt: skip
        if secret is not None:
            self.store.put_collab_keys([(collab, done.epoch, secret)])
            self._epochs.add((collab, done.epoch))
        return done

    def _directory(self) -> Directory:
        """The key directory, read once per refresh: every envelope of a sync is verified
        against it."""
        if self._guard is not None:
            return self._guard.directory()  # the keys of the verified log, never the hub's word
        keys = self._keys
        if keys is None:
            keys = self._keys = self.store.directory()
        return keys

    # -- one pass ---------------------------------------------------------------------
    def sync_once(self, on_batch: Callable[[SyncReport], None] | None = None) -> SyncReport:
        """Pull until caught up, then return what was applied."""
        self._refuse_if_alarmed()
        report = SyncReport(cursor=self.store.cursor)
        try:
            with self.connect() as hub:
                self.refresh_directory(hub)
                self._adopt_frontier(hub)
                stream = hub.sync(self.store.cursor, batch_size=self.batch_size)
                with Reader(stream, self._checker, self._directory, self.depth) as reader:
                    while self._apply_next(reader, report, hub):
                        if on_batch is not None:
                            on_batch(report)
                self.unwrap(hub)  # epochs wrapped by stewards whose keys this sync logged
                self.steward_duties(hub)
                if self._cosign is not None:  # a member that lists its own key sees it
                    self._cosign.flush(COSIGN_FLUSH_SECONDS)
                self._check_witnesses(hub, report)
        except HubRejected as exc:
            raise self._explained(exc) from None
        return report

    def _check_witnesses(self, hub: HubClient, report: SyncReport) -> None:
        """Require ``self.witnesses``: fetch the known witnesses' cosigned checkpoints and
        check them against the last checkpoint verified (``_witness.check_witnesses``);
        an alarm is recorded and raised."""
        policy, guard = self.witnesses, self._guard
        if not policy.required or guard is None:
            return
        state = guard.state
        now = format_time(self.clock())
        try:
            mine = state.checkpoint if state is not None else None
            if mine is None:
                raise LogAlarm(
                    AlarmKind.UNWITNESSED,
                    "no checkpoint verified yet to compare with the witnesses'",
                    {"required": policy.required},
                )
            found = check_witnesses(
                policy,
                hub_key(guard.origin, self.cred.hub_public_key),
                mine,
                hub.witnessed(policy.ids),
                hub.consistency_proof,
                self.clock().timestamp(),
                guard.max_age.total_seconds(),
                DEFAULT_MAX_SKEW.total_seconds(),
            )
        except LogAlarm as exc:
            guard.record(exc, now)
            raise
        for problem in found.problems:
            log.info("witness check: %s", problem)
        report.witnesses = len(found.vouched)
        self._witnessed_at = time.monotonic()

    def _witnesses_due(self) -> bool:
        last = self._witnessed_at
        return last is None or time.monotonic() - last >= WITNESS_CHECK_SECONDS

    def _explained(self, exc: HubRejected) -> SighubError:
        """The error to stop with: a hub whose log ends before this member's cursor is an
        integrity alarm with what to do (recorded as a rollback, as the log's alarms
        are); anything else as the hub said it."""
        if exc.code == "FAILED_PRECONDITION" and CURSOR_AHEAD in exc.hub_message:
            alarm = IntegrityAlarm(
                f"{self.data}: the hub answered {exc.hub_message!r}: its log is shorter than "
                "what this member already applied, so new changes would be skipped. If the "
                "hub was restored from a backup on purpose, run `sighub sync --data "
                f"{self.data} --resync --clear-alarm` to read its log again from the start "
                "(nothing applied is lost or doubled); otherwise the hub lost or hides "
                "changes: tell its operator."
            )
            if self._guard is not None:
                self._guard.record(alarm, format_time(self.clock()))
            return alarm
        return exc

    def _refuse_if_alarmed(self) -> None:
        if self._guard is not None:
            self._guard.refuse_if_alarmed()

    def _adopt_frontier(self, hub: HubClient) -> None:
        guard = self._guard
        if guard is None or not guard.needs_frontier():
            return
        try:
            guard.adopt_frontier(hub)
        except LogAlarm as exc:
            guard.record(exc, format_time(self.clock()))
            raise

    def clear_alarms(self) -> int:
        """Acknowledge the recorded alarms (the evidence stays in ``log_alarms``), so that
        syncing may go on; returns how many were open."""
        cleared = self.store.acknowledge_alarms(format_time(self.clock()))
        if cleared:
            log.warning("%d log alarm(s) acknowledged by the operator; evidence kept", cleared)
        return cleared

    def resync(self) -> None:
        """Read the hub's log again from the start on the next sync (after the hub was
        restored from an older backup): stored indicators stay, replayed ones are
        skipped as stale, nothing is doubled.  The log state goes too (the restored hub's
        tree is verified afresh), so it is refused while an alarm is not acknowledged:
        resyncing is the operator's word that the hub's new history is accepted."""
        self._refuse_if_alarmed()
        with self.store.tx():
            self.store.set_meta("cursor", "0")
            if self._guard is not None:
                self._guard.reset()
        if self._guard is not None:
            self._guard.reload()

    def follow(
        self, stop: threading.Event, on_batch: Callable[[SyncReport], None] | None = None
    ) -> None:
        """Apply changes as they are published until ``stop`` is set; reconnect with
        exponential backoff and jitter when the hub goes away or refuses."""
        self._refuse_if_alarmed()
        delay = BACKOFF_START
        report = SyncReport(cursor=self.store.cursor)
        while not stop.is_set():
            try:
                with self.connect() as hub:
                    self._hub = hub
                    self.refresh_directory(hub)
                    self._adopt_frontier(hub)
                    stream = hub.sync(self.store.cursor, follow=True, batch_size=self.batch_size)
                    with Reader(stream, self._checker, self._directory, self.depth) as reader:
                        while not stop.is_set() and self._apply_next(reader, report, hub):
                            delay = BACKOFF_START
                            self._after_batch(hub)
                            if self._witnesses_due():
                                self._check_witnesses(hub, report)
                            if on_batch is not None:
                                on_batch(report)
            except HubRejected as exc:
                if stop.is_set():
                    return
                final = self._explained(exc)
                if final is not exc or exc.code in PERMANENT:
                    log.error("sync stopped: %s", final)
                    raise final from None  # retrying cannot fix it: exit, loudly
                log.warning(
                    "sync interrupted code=%s message=%r retry_in=%.1fs",
                    exc.code,
                    exc.hub_message,
                    delay,
                )
            except WorkerError as exc:  # e.g. a worker killed for memory: start afresh
                log.error("verification worker failed: %s; retry_in=%.1fs", exc, delay)
                self._checker.close()
            if stop.wait(delay * random.uniform(0.5, 1.5)):
                return
            delay = min(delay * 2, BACKOFF_MAX)

    # -- applying ---------------------------------------------------------------------
    def _apply_next(self, reader: Reader, report: SyncReport, hub: HubClient) -> bool:
        """Wait for the next checked batch and apply it, with the batches already checked
        behind it (for up to COMMIT_SECONDS), in one transaction that also advances the
        cursor.  Batches are read and checked (in worker processes, when large) while this
        thread writes; one commit for many batches keeps a large sync from rewriting the
        same index pages batch after batch.  False at the end of the stream."""
        item = reader.next()
        if item is None:
            return False
        batch, checked, used = item[0], self._known_keys(item[0], item[1], hub), item[2]
        now = format_time(self.clock())
        applied: list[Row] | None = [] if self.sinks else None
        started = time.monotonic()
        guard = self._guard
        start = self.store.cursor
        try:
            with paused_gc(), self.store.tx() as c:
                while True:
                    if guard is not None:  # before anything of the batch is written
                        guard.check(start, batch)
                        start = batch.cursor
                        checked = self._recheck(batch, checked, used)
                    self._write(c, batch, checked, now, report, applied)
                    # More batches join while they are at hand: those already checked,
                    # and, while the hub says more follow at once, the next one (a live
                    # change at the tail is committed without waiting).
                    left = COMMIT_SECONDS - (time.monotonic() - started)
                    wait = 0.0 if batch.caught_up else left
                    if left <= 0 or not reader.ready(self._keys_known, wait):
                        break
                    following = reader.next()
                    if following is None:  # not reached: ready() said it is here
                        break
                    batch, checked, used = following
                self.store.set_meta("cursor", str(batch.cursor))
                self.store.set_meta("last_sync", now)
                if guard is not None:
                    guard.save()
        except LogAlarm as exc:  # rolled back: nothing of the transaction is applied
            if guard is not None:
                guard.reload()
                guard.record(exc, now)
            raise
        except BaseException:
            if guard is not None:
                guard.reload()  # the state stored is the one in step with the cursor
            raise
        self._committed(batch, report, applied, hub)
        return True

    def _committed(
        self, batch: SyncBatch, report: SyncReport, applied: list[Row] | None, hub: HubClient
    ) -> None:
        """After a batch's transaction: the report, the witness, the sinks, history."""
        guard = self._guard
        if guard is not None and guard.state is not None and guard.state.checkpoint:
            report.log_size = guard.state.checkpoint.size
            report.log_root = guard.state.checkpoint.root.hex()
            if self._cosign is not None:  # verified and applied: this witness vouches
                self._cosign.offer(guard.state.checkpoint.note)
        if applied:
            self._tell_sinks(applied)
        if guard is not None and guard.numbers.history:
            self._catch_up_history(hub, report)
        report.cursor = batch.cursor
        report.caught_up = batch.caught_up
        report.head = max(batch.head, batch.cursor)

    def _write(
        self,
        c: sqlite3.Connection,
        batch: SyncBatch,
        checked: list[Checked],
        now: str,
        report: SyncReport,
        applied: list[Row] | None,
    ) -> None:
        self._write_changes(c, batch.changes, checked, now, report, applied)
        report.batches += 1

    def _write_changes(
        self,
        c: sqlite3.Connection,
        changes: Sequence[Change],
        checked: list[Checked],
        now: str,
        report: SyncReport,
        applied: list[Row] | None,
    ) -> None:
        for change, checked_one in zip(changes, checked, strict=True):
            result, hops = self._relayed(change) if change.hop_records else (checked_one, ())
            if isinstance(result, str):
                self._refuse(c, change, result, now, report)
                continue
            conflict = self._apply_rows(c, result, report, applied)
            if conflict is not None:
                self._refuse(c, change, conflict, now, report)
            elif hops:
                relays = [h.relay for h in hops]
                self.store.record_relayed(c, change.sequence, hops[0].source, relays)
        report.envelopes += len(changes)

    def _relayed(self, change: Change) -> tuple[Checked, tuple[HopRecord, ...]]:
        """A change relayed from another hub, checked against the directories this log
        copied of the hubs it came through, and its hops (``_farlog.check_relayed``)."""
        if self._guard is None:
            return "relayed from another hub: verifying it needs the hub's log checked", ()
        try:
            hops = decode_hops(change.hop_records)
        except HopError as exc:
            return str(exc), ()
        return check_relayed(change, self._guard.far, hops), hops

    def _catch_up_history(self, hub: HubClient, report: SyncReport) -> None:
        """Fetch, check and apply the envelopes of collaborations this member joined after
        its cursor had passed them (``_numbers``), a page per transaction."""
        guard = self._guard
        assert guard is not None and guard.state is not None
        for collab in list(guard.numbers.history):
            while collab in guard.numbers.history:
                before, upto, have = guard.numbers.history[collab]
                checkpoint = guard.state.checkpoint
                assert checkpoint is not None  # a batch was verified: it came with one
                now = format_time(self.clock())
                try:
                    entries = hub.history(collab, have, before, checkpoint.size)
                    page = verified_page(collab, have, upto, before, checkpoint, entries)
                except LogAlarm as exc:
                    guard.record(exc, now)
                    raise
                checked = check_changes(self._directory(), [change_args(c) for c in page])
                applied: list[Row] | None = [] if self.sinks else None
                try:
                    with paused_gc(), self.store.tx() as c:
                        self._write_changes(c, page, checked, now, report, applied)
                        guard.numbers.fetched(collab, page[-1].n)
                        guard.save_numbers()
                except BaseException:
                    guard.reload()
                    raise
                log.info("history of %s: envelopes %d..%d of %d applied", collab, have + 1,
                         page[-1].n, upto)  # fmt: skip
                if applied:
                    self._tell_sinks(applied)

    def _keys_known(self, item: CheckedBatch) -> bool:
        """Whether every signing key and collaboration key epoch ``item`` uses is known."""
        return self._all_known(item[1], item[0].changes)

    def _all_known(self, checked: list[Checked], changes: Sequence[Change]) -> bool:
        """A relayed change counts as known: its publisher's key is the origin hub's, which
        this log's directory never holds (``_relayed`` checks it against the copies)."""
        pairs = zip(checked, changes, strict=True)
        unknown = any(_unknown_key(r) and not c.hop_records for r, c in pairs)
        return not unknown and _epochs(checked) <= self._epochs

    def _known_keys(
        self, batch: SyncBatch, checked: list[Checked], hub: HubClient
    ) -> list[Checked]:
        """``checked``, after a directory refresh if it uses a key not known yet (a
        collaboration key was rotated: without the new epoch's key its indicators could
        never match; or, when the log is not checked, a member enrolled or rotated its
        signing key), with the changes refused for an unknown signing key checked again.
        With the log checked, signing keys come from its leaves: see ``_recheck``."""
        if self._all_known(checked, batch.changes):
            return checked
        missing = _epochs(checked) - self._epochs
        if not missing and self._guard is not None:
            return checked
        self.refresh_directory(hub)
        missing = _epochs(checked) - self._epochs
        if missing:  # asked once: the hub has no such key for us
            log.warning("no collaboration key for %s after a refresh", sorted(missing))
            self._epochs |= missing
        return checked if self._guard is not None else self._recheck(batch, checked, None)

    def _recheck(
        self, batch: SyncBatch, checked: list[Checked], used: Directory | None
    ) -> list[Checked]:
        """``checked`` with some changes checked again against the directory as it stands
        (with the log checked: up to this batch's own leaves): those refused for an
        unknown signing key, and, when the directory changed since ``used`` was taken
        (a key revoked, rotated or chained in a batch between), every refused one and
        those of every publisher whose keys changed."""
        directory = self._directory()
        changed = _changed_identities(used, directory)
        again = [
            i
            for i, (r, c) in enumerate(zip(checked, batch.changes, strict=True))
            if not c.hop_records  # relayed: checked against the copies, not this directory
            and (_unknown_key(r) or (changed and (isinstance(r, str) or _publisher(r) in changed)))
        ]
        if not again:
            return checked
        redo = check_changes(directory, [change_args(batch.changes[i]) for i in again])
        out = list(checked)
        for i, result in zip(again, redo, strict=True):
            out[i] = result
        return out

    def _refuse(
        self, c: sqlite3.Connection, change: Change, reason: str, now: str, report: SyncReport
    ) -> None:
        envelope_id = hashlib.sha256(change.envelope).hexdigest()
        log.error(
            "REFUSED envelope seq=%d collab=%s id=%s reason=%r: nothing of it applied",
            change.sequence,
            change.collaboration,
            envelope_id[:16],
            reason,
        )
        self.store.refuse(c, envelope_id, change.sequence, change.collaboration, reason, now)
        report.add_refused(change.sequence, reason)

    def _tell_sinks(self, applied: list[Row]) -> None:
        live = [stored_row(r) for r in applied if not r[_REVOKED]]
        gone = [r[0] for r in applied if r[_REVOKED]]
        for sink in self.sinks:
            sink.upsert(live)
            sink.remove(gone)

    def _apply_rows(
        self,
        c: sqlite3.Connection,
        rows: list[Row],
        report: SyncReport,
        applied: list[Row] | None,
    ) -> str | None:
        """Write the rows of one envelope that are newer than what is stored; refuse the
        whole envelope if it revises another publisher's indicator."""
        if self.store.insert_new(c, rows):
            if applied is not None:
                applied.extend(rows)
            report.applied += len(rows)
            return None
        states = self.store.states([r[0] for r in rows])
        fresh = []
        for row in rows:
            old = states.get(row[0])
            if old is not None and old[0] != row[_PUBLISHER]:
                return (
                    f"indicator {row[0]} belongs to {old[0]}; {row[_PUBLISHER]} may not revise it"
                )
            if old is not None and (old[2] or row[_MODIFIED] <= old[1]):
                continue  # an older or equal version, or the indicator is already revoked
            fresh.append(row)
        self.store.upsert(c, fresh)
        if applied is not None:
            applied.extend(fresh)  # only once the whole envelope is accepted
        report.applied += len(fresh)
        report.stale += len(rows) - len(fresh)
        return None


def _changed_identities(used: Directory | None, now: Directory) -> set[str]:
    """The publisher identities whose key entries differ between ``used`` and ``now``."""
    if used is None or used is now:
        return set()
    return {
        entry[1]
        for kid in used.keys() | now.keys()
        if used.get(kid) != now.get(kid)
        for entry in (used.get(kid) or now[kid],)
    }


def _publisher(rows: list[Row]) -> str:
    return str(rows[0][_PUBLISHER]) if rows else ""


def _unknown_key(result: Checked) -> bool:
    return isinstance(result, str) and UNKNOWN_KEY in result


def _epochs(checked: list[Checked]) -> set[tuple[str, int]]:
    """The (collaboration, key epoch) pairs of the blinded indicators in ``checked``."""
    return {
        (row[1], row[_EPOCH])
        for rows in checked
        if not isinstance(rows, str)
        for row in rows
        if row[_EPOCH] is not None
    }
