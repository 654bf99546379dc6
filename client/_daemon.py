"""The sync daemon: pulls the hub's log, verifies every envelope itself, applies it to the
local store.  A hub (or relay) that alters, forges or re-attributes an envelope is detected
by the publisher's signature and the key directory: the envelope is refused, loudly, and
nothing of it is applied."""

from __future__ import annotations

import hashlib
import logging
import random
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from client._envelope import decode_payload, open_envelope
from client._errors import EnvelopeError, StixError
from client._local import LocalStore, stored
from client._model import Indicator
from client._rpc import Change, Credential, HubClient, HubRejected, SyncBatch
from client._stix import Bundle, format_time, parse_bundle

if TYPE_CHECKING:
    from client._sinks import Sink

__all__ = ["SyncDaemon", "SyncReport"]

log = logging.getLogger("sighub.sync")
_Directory = dict[
    str, tuple[str, str, bytes, str | None]
]  # key id -> member, identity, key, revoked
LOCAL_DB: Final = "local.db"
BACKOFF_START: Final = 0.5
BACKOFF_MAX: Final = 30.0


@dataclass
class SyncReport:
    batches: int = 0
    envelopes: int = 0
    applied: int = 0  # indicator versions written
    stale: int = 0  # older or equal versions skipped
    refused: list[tuple[int, str]] = field(default_factory=list)  # (sequence, reason)
    cursor: int = 0


class SyncDaemon:
    def __init__(
        self,
        data: Path,
        insecure: bool = False,
        address: str | None = None,
        clock: Callable[[], datetime] | None = None,
        batch_size: int = 256,
        sinks: Sequence[Sink] = (),
    ) -> None:
        self.data = data
        self.sinks = list(sinks)
        self.batch_size = batch_size
        self.insecure = insecure
        cred = Credential.load(data)
        self.cred = (
            cred
            if address is None
            else Credential(
                cred.folder, address, cred.member, cred.bearer_token, cred.hub_public_key
            )
        )
        self.store = LocalStore(data / LOCAL_DB)
        self.clock = clock or (lambda: datetime.now(UTC))
        self._hub: HubClient | None = None
        self._keys: tuple[_Directory, dict[str, Ed25519PublicKey]] | None = None

    def interrupt(self) -> None:
        """End a blocking ``follow`` promptly (call after setting its stop event)."""
        hub = self._hub
        if hub is not None:
            hub.close()

    def close(self) -> None:
        self.store.close()

    def connect(self) -> HubClient:
        return HubClient.connect(self.cred, self.insecure)

    # -- directory --------------------------------------------------------------------
    def refresh_directory(self, hub: HubClient) -> None:
        keys = [
            (k.key_id, k.member, k.identity, k.public_key, k.revoked_at)
            for k in hub.key_directory()
        ]
        shared = [(k.collaboration, k.epoch, k.secret) for k in hub.collab_keys()]
        self.store.replace_directory(keys, shared)
        self._keys = None  # re-read on the next verification

    def _directory(self) -> tuple[_Directory, dict[str, Ed25519PublicKey]]:
        """The key directory and its parsed public keys, read once per refresh: every
        envelope of a sync is verified against them."""
        if self._keys is None:
            directory = self.store.directory()
            parsed = {k: Ed25519PublicKey.from_public_bytes(e[2]) for k, e in directory.items()}
            self._keys = (directory, parsed)
        return self._keys

    # -- one pass ---------------------------------------------------------------------
    def sync_once(self, on_batch: Callable[[SyncReport], None] | None = None) -> SyncReport:
        """Pull until caught up, then return what was applied."""
        report = SyncReport(cursor=self.store.cursor)
        with self.connect() as hub:
            self.refresh_directory(hub)
            for batch in hub.sync(self.store.cursor, batch_size=self.batch_size):
                self.apply(batch, report, hub)
                if on_batch is not None:
                    on_batch(report)
        return report

    def follow(
        self, stop: threading.Event, on_batch: Callable[[SyncReport], None] | None = None
    ) -> None:
        """Apply changes as they are published until ``stop`` is set; reconnect with
        exponential backoff and jitter when the hub goes away or refuses."""
        delay = BACKOFF_START
        report = SyncReport(cursor=self.store.cursor)
        while not stop.is_set():
            try:
                with self.connect() as hub:
                    self._hub = hub
                    self.refresh_directory(hub)
                    for batch in _until(
                        stop, hub.sync(self.store.cursor, follow=True, batch_size=self.batch_size)
                    ):
                        self.apply(batch, report, hub)
                        delay = BACKOFF_START
                        if on_batch is not None:
                            on_batch(report)
            except HubRejected as exc:
                if stop.is_set():
                    return
                log.warning(
                    "sync interrupted code=%s message=%r retry_in=%.1fs",
                    exc.code,
                    exc.hub_message,
                    delay,
                )
            if stop.wait(delay * random.uniform(0.5, 1.5)):
                return
            delay = min(delay * 2, BACKOFF_MAX)

    # -- applying ---------------------------------------------------------------------
    def apply(self, batch: SyncBatch, report: SyncReport, hub: HubClient | None = None) -> None:
        """Verify every change of ``batch``, then apply the good ones and advance the cursor
        in one transaction."""
        verified: list[tuple[Change, Bundle | str]] = [(c, self.verify(c)) for c in batch.changes]
        if hub is not None and any(isinstance(v, str) and "unknown key" in v for _, v in verified):
            self.refresh_directory(hub)  # a member enrolled or rotated since we last looked
            verified = [(c, self.verify(c)) for c in batch.changes]
        now = format_time(self.clock())
        applied: list[Indicator] = []
        with self.store.tx() as c:
            for change, result in verified:
                if isinstance(result, str):
                    self._refuse(c, change, result, now, report)
                    continue
                conflict = self._apply_bundle(c, change.sequence, result, report, applied)
                if conflict is not None:
                    self._refuse(c, change, conflict, now, report)
            self.store.set_meta("cursor", str(batch.cursor))
            self.store.set_meta("last_sync", now)
        self._tell_sinks(applied)
        report.batches += 1
        report.envelopes += len(batch.changes)
        report.cursor = batch.cursor

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
        report.refused.append((change.sequence, reason))

    def verify(self, change: Change) -> Bundle | str:
        """The bundle, if the publisher's signature and attribution hold; else why not."""
        directory, keys = self._directory()
        try:
            envelope = open_envelope(change.envelope, keys)
            bundle = parse_bundle(decode_payload(envelope))
        except (EnvelopeError, StixError) as exc:
            return str(exc)
        member, identity, _, revoked_at = directory[envelope.key_id]
        if bundle.publisher.id != identity:
            return (
                f"bundle names publisher {bundle.publisher.id} but is signed by "
                f"{envelope.key_id} of {member!r} ({identity})"
            )
        if bundle.collaboration != change.collaboration:
            return f"bundle is for {bundle.collaboration!r}, relayed as {change.collaboration!r}"
        if (
            revoked_at is not None
            and max(format_time(i.modified) for i in bundle.indicators) >= revoked_at
        ):
            return f"signed with key {envelope.key_id}, revoked at {revoked_at}"
        return bundle

    def _tell_sinks(self, applied: list[Indicator]) -> None:
        if not self.sinks or not applied:
            return
        live = [stored(i) for i in applied if not i.revoked]
        gone = [i.id for i in applied if i.revoked]
        for sink in self.sinks:
            sink.upsert(live)
            sink.remove(gone)

    def _apply_bundle(
        self,
        c: sqlite3.Connection,
        seq: int,
        bundle: Bundle,
        report: SyncReport,
        applied: list[Indicator],
    ) -> str | None:
        states = self.store.states([i.id for i in bundle.indicators])
        rows = []
        fresh: list[Indicator] = []
        stale = 0
        for ind in bundle.indicators:
            old = states.get(ind.id)
            if old is not None and old[0] != ind.publisher.id:
                return (
                    f"indicator {ind.id} belongs to {old[0]}; {ind.publisher.id} may not revise it"
                )
            if old is not None and (old[2] or format_time(ind.modified) <= old[1]):
                stale += 1  # an older or equal version, or the indicator is already revoked
                continue
            rows.append(self.store.row(ind, seq))
            fresh.append(ind)
        self.store.upsert(c, rows)
        applied.extend(fresh)  # only once the whole envelope is accepted
        report.applied += len(rows)
        report.stale += stale
        return None


def _until(stop: threading.Event, batches: Iterator[SyncBatch]) -> Iterator[SyncBatch]:
    for batch in batches:
        yield batch
        if stop.is_set():
            return
