"""The SDK's entry point for a platform: one object over a member data directory."""

from __future__ import annotations

import json
import logging
import threading
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sighub.client._analyst import DEFAULT_TTL, held_value, read_rows, to_indicators
from sighub.client._blind import Blinder, CollabKey
from sighub.client._canon import CANON_VERSION, canon_for
from sighub.client._daemon import (
    DEFAULT_MAX_CHECKPOINT_AGE,
    LOCAL_DB,
    NO_WITNESSES,
    SyncDaemon,
    SyncReport,
)
from sighub.client._envelope import seal
from sighub.client._errors import InputFileError, SighubError
from sighub.client._keys import MemberFiles
from sighub.client._local import LocalStore
from sighub.client._matcher import LiveMatcher, Matcher
from sighub.client._model import Form, Indicator, Kind, Publisher, Tlp, now_ms
from sighub.client._rpc import PLAINTEXT, Credential, HubClient, HubUnreachable, PublishResult
from sighub.client._sinks import MatcherSink, Sink
from sighub.client._stix import build_bundle, parse_time, revoke
from sighub.client._witness import WitnessPolicy

__all__ = ["Following", "Member"]

log = logging.getLogger("sighub.member")

# What to pass when the transport tried does not reach the hub.
_OTHER = {
    True: "it may serve mTLS: pass insecure=False (the CLI without --insecure)",
    False: "it may serve plaintext on loopback (`sighub hub serve --insecure`): pass "
    "insecure=True (the CLI's --insecure)",
}


@dataclass(frozen=True, slots=True)
class Republished:
    """What ``Member.republish`` did: the new versions' publish result (None when every
    row is in force under the canon already: ``kept`` of them), and the revocation of the
    ``replaced`` indicators (None when there was nothing to revoke)."""

    published: PublishResult | None
    revoked: PublishResult | None
    replaced: int
    kept: int = 0


class Member:
    """A platform's view of its hub, over the data directory `sighub member enroll`
    wrote: publish, revoke, sync, follow and match.

    ``Member(path)`` dials the address and the transport named in the enrollment (mTLS,
    or plaintext with the bearer token when it was enrolled with ``--insecure`` on
    loopback); ``insecure`` and ``address`` override them.  Syncing verifies the hub's
    signed log, and a checkpoint older than ``max_checkpoint_age`` is an alarm (a hub
    freezing this member on an old tree); ``witnesses`` requires known witnesses to vouch
    for this member's tree (``WitnessPolicy.from_vkeys(k, vkeys)``, none by default).
    Raises ``KeyFileError`` when ``path`` holds no enrolled member.  Every method that
    reaches the hub raises ``HubUnreachable`` when no answer comes (its message names the
    transport tried and what to pass instead) and ``HubRejected`` when the hub refuses.

    >>> m = Member(Path("./platform-a"))
    >>> m.publish_file(Path("indicators.csv"), "sg-csam")
    >>> m.sync_once()
    >>> [x.text for x in m.matcher().scan("s3ll3r menu in bio")]
    """

    def __init__(
        self,
        data: Path,
        insecure: bool | None = None,
        address: str | None = None,
        max_checkpoint_age: timedelta = DEFAULT_MAX_CHECKPOINT_AGE,
        witnesses: WitnessPolicy = NO_WITNESSES,
    ) -> None:
        self.data, self.address = data, address
        self.max_checkpoint_age = max_checkpoint_age
        self.witnesses = witnesses
        self.files = MemberFiles(data)
        cred = Credential.load(data)
        self.cred = cred if address is None else replace(cred, hub=address)
        self.insecure = cred.transport == PLAINTEXT if insecure is None else insecure
        self._named = insecure is None  # the transport came from the enrollment

    @contextmanager
    def _reaching(self) -> Iterator[None]:
        """Name the transport tried, and the other one, when the hub does not answer."""
        try:
            yield
        except HubUnreachable as exc:
            tried = "plaintext" if self.insecure else "mTLS"
            source = "named in the enrollment" if self._named else "as passed"
            raise HubUnreachable(
                exc.code,
                exc.hub_message,
                self.cred.hub,
                f"member {self.cred.member!r}: no answer from hub {self.cred.hub} over "
                f"{tried} ({source}): {exc.hub_message}; check that the hub is serving "
                f"there, and {_OTHER[self.insecure]}",
            ) from None

    def _hub(self) -> HubClient:
        return HubClient.connect(self.cred, self.insecure)

    def _key(self, hub: HubClient, collab: str) -> CollabKey:
        """The latest epoch: the hub's (a collaboration without stewards) or one this
        member unwrapped when it synced (``local.db``)."""
        epochs = {k.epoch: k.secret for k in hub.collab_keys() if k.collaboration == collab}
        if (self.data / LOCAL_DB).exists():
            store = LocalStore(self.data / LOCAL_DB)
            try:
                epochs.update((e, s) for c, e, s in store.collab_keys() if c == collab)
            finally:
                store.close()
        if not epochs:
            raise SighubError(
                f"collaboration {collab!r}: no key; is {self.cred.member!r} in it? (a key its"
                f" stewards wrapped is unwrapped by `sighub sync --data {self.data}`)"
            )
        epoch = max(epochs)
        return CollabKey(collab, epoch, epochs[epoch])

    def publish_file(
        self,
        path: Path,
        collab: str,
        default_ttl: timedelta = DEFAULT_TTL,
        canon: str = CANON_VERSION,
    ) -> PublishResult:
        """Publish an analyst CSV or JSONL file to ``collab``: each row is folded by
        ``canon`` (canon/1 unless told), blinded with the collaboration's current key (or
        gated, for a pattern), and the whole file goes out as one signed STIX bundle.
        Rows without an expiry get ``default_ttl``.  Returns the hub's ``PublishResult``;
        raises ``InputFileError`` (naming file, line and field) before anything is sent."""
        rows = read_rows(path, default_ttl=default_ttl, canon=canon)
        with self._reaching(), self._hub() as hub:
            indicators = to_indicators(
                rows, self.files.identity().publisher, self._key(hub, collab), canon=canon
            )
            return self._publish(hub, collab, indicators)

    def republish(
        self,
        path: Path,
        collab: str,
        canon: str = "canon/2",
        default_ttl: timedelta = DEFAULT_TTL,
    ) -> Republished:
        """Move an analyst file to ``canon``: publish its blinded rows blinded under
        ``canon`` with the current key and its pattern rows to run over text folded by
        ``canon``, then revoke this member's indicators in force in the local store (sync
        first) that blind the same rows (or hold the same patterns) under another canon
        version, with any key epoch held.  Raises ``InputFileError`` before anything is
        sent."""
        canon_for(canon)  # CanonError naming the known versions
        rows = read_rows(path, default_ttl=default_ttl, canon=canon)
        me = self.files.identity().publisher
        mine = self._mine(collab, me.id)
        old = self._replaced(path, collab, canon, mine, default_ttl)
        with self._reaching(), self._hub() as hub:
            key = self._key(hub, collab)
            # Rows in force under ``canon`` with this key already (a run repeated, or one
            # whose revocation failed) are not published again: a repeat moves nothing.
            blinder = Blinder(key, canon)
            live = {(i.key_epoch, i.value) for i in mine if i.canon_version == canon}
            todo = [r for r in rows if held_value(r, key.epoch, blinder) not in live]
            fresh = to_indicators(todo, me, key, canon=canon) if todo else []
            published = self._publish(hub, collab, fresh) if fresh else None
            at = now_ms()
            gone = [revoke(i, max(at, i.modified + timedelta(milliseconds=1))) for i in old]
            revoked = self._publish(hub, collab, gone) if gone else None
        return Republished(published, revoked, len(gone), len(rows) - len(todo))

    def _mine(self, collab: str, me: str) -> list[Indicator]:
        """This member's indicators in force in ``collab`` as the local store holds them."""
        store = LocalStore(self.data / LOCAL_DB)
        try:
            return [_indicator(r) for r in store.own_rows(me, collab, datetime.now(UTC))]
        finally:
            store.close()

    def _replaced(
        self,
        path: Path,
        collab: str,
        canon: str,
        mine: list[Indicator],
        default_ttl: timedelta,
    ) -> list[Indicator]:
        """Of ``mine`` (this member's indicators in force in ``collab``), those under
        another canon version whose digest is one of the file's blinded rows under that
        version, with any key held."""
        store = LocalStore(self.data / LOCAL_DB)
        try:
            keys = {e: s for c, e, s in store.collab_keys() if c == collab}
        finally:
            store.close()
        out = []
        for version in sorted({i.canon_version for i in mine} - {canon}):
            try:
                rows = read_rows(path, default_ttl=default_ttl, canon=version)
            except InputFileError:  # a row that version refuses: it was never published so
                continue
            wanted = set()
            for epoch, secret in keys.items():
                blinder = Blinder(CollabKey(collab, epoch, secret), version)
                wanted |= {held_value(r, epoch, blinder) for r in rows}
            out += [
                i for i in mine if i.canon_version == version and (i.key_epoch, i.value) in wanted
            ]
        return out

    def publish(self, indicators: Sequence[Indicator], collab: str) -> PublishResult:
        """Sign ``indicators`` (already blinded or gated, all by this member) as one
        bundle and publish it to ``collab``.  Returns the hub's ``PublishResult``; raises
        ``StixError`` for indicators that cannot form a bundle."""
        with self._reaching(), self._hub() as hub:
            return self._publish(hub, collab, indicators)

    def _publish(
        self, hub: HubClient, collab: str, indicators: Sequence[Indicator]
    ) -> PublishResult:
        bundle = build_bundle(self.files.identity().publisher, list(indicators))
        return hub.publish(collab, seal(bundle, self.files.signing_key()))

    def revoke(self, ids: Sequence[str]) -> list[PublishResult]:
        """Publish revoked versions of this member's own indicators ``ids``, one bundle
        per collaboration, and return the results in collaboration order.  The
        indicators are read from the local store, so sync first; raises ``SighubError``
        for an id the store does not hold or that another member published."""
        me = self.files.identity().publisher
        store = LocalStore(self.data / LOCAL_DB)
        try:
            found = store.get(list(ids))
        finally:
            store.close()
        missing = [i for i in ids if i not in found]
        if missing:
            raise SighubError(f"revoke: {missing} not in the local store; run 'sighub sync' first")
        by_collab: dict[str, list[Indicator]] = defaultdict(list)
        for row in found.values():
            ind = _indicator(row)
            if ind.publisher.id != me.id:
                raise SighubError(f"revoke: {ind.id} was published by {row[3]!r}, not by you")
            by_collab[ind.collaboration].append(
                revoke(ind, max(now_ms(), ind.modified + timedelta(milliseconds=1)))
            )
        with self._reaching(), self._hub() as hub:
            return [self._publish(hub, c, inds) for c, inds in sorted(by_collab.items())]

    def _daemon(self, sinks: Sequence[Sink]) -> SyncDaemon:
        return SyncDaemon(
            self.data,
            self.insecure,
            self.cred.hub,
            sinks=sinks,
            max_checkpoint_age=self.max_checkpoint_age,
            witnesses=self.witnesses,
        )

    def sync_once(self, sinks: Sequence[Sink] = ()) -> SyncReport:
        """Apply every change up to the hub's head to the local store (each envelope's
        signature and bundle checked first) and pass them to ``sinks``; returns what was
        done.  Raises ``IntegrityAlarm`` when the hub's log ends before this member's
        cursor (a hub restored from an old backup, or one hiding changes)."""
        daemon = self._daemon(sinks)
        try:
            with self._reaching():
                return daemon.sync_once()
        finally:
            daemon.close()

    def follow(self, stop: threading.Event, sinks: Sequence[Sink] = ()) -> None:
        """Apply changes as the hub pushes them, until ``stop`` is set; reconnects with
        backoff when the hub goes away.  Blocks: see ``follow_in_background`` for a
        handle.  Raises ``HubRejected`` when retrying cannot help (this member suspended
        or removed) and ``IntegrityAlarm`` as ``sync_once`` does."""
        daemon = self._daemon(sinks)
        try:
            daemon.follow(stop)
        finally:
            daemon.close()

    def follow_in_background(self, sinks: Sequence[Sink] = ()) -> Following:
        """Start ``follow`` in a background thread and return its handle: ``stop()`` ends
        it, ``wait()`` blocks until it ends, and ``with member.follow_in_background(...)``
        stops it on leaving the block.  Raises ``KeyFileError`` at once when the data
        directory is unusable; errors of the follow itself come out of ``wait``/``stop``."""
        return Following(self._daemon(sinks))

    def provenance(self, indicator_id: str) -> tuple[str, tuple[str, ...]]:
        """Where the stored version of ``indicator_id`` came from, as its verified hop
        records say (federation): (the log origin of the hub its publisher published it
        to, the hubs that relayed it in order, this member's hub last); ``(this hub's
        origin, ())`` for an indicator published here."""
        store = LocalStore(self.data / LOCAL_DB)
        try:
            found = store.provenance(indicator_id)
        finally:
            store.close()
        return (self.cred.log_origin, ()) if found is None else found

    def matcher(self) -> Matcher:
        """A ``Matcher`` over the indicators in force now in the local store (a snapshot:
        see ``live_matcher`` for one that follows changes)."""
        store = LocalStore(self.data / LOCAL_DB)
        try:
            return Matcher.from_store(store)
        finally:
            store.close()

    def live_matcher(self) -> tuple[LiveMatcher, MatcherSink]:
        """A ``LiveMatcher`` over the local store and the sink that keeps it current: pass
        the sink to ``follow`` or ``follow_in_background``."""
        live = LiveMatcher(self.data)
        return live, MatcherSink(live)


class Following:
    """A ``Member.follow`` running in a background thread.

    ``report`` is what it has applied so far.  ``stop()`` ends it promptly (the open
    stream is cancelled, not waited out); ``wait()`` blocks until it ends.  Both raise
    the error the follow stopped with, if it stopped on its own (``HubRejected``,
    ``IntegrityAlarm``).  As a context manager it stops on leaving the block."""

    def __init__(self, daemon: SyncDaemon) -> None:
        self._daemon = daemon
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self.report = SyncReport(cursor=daemon.store.cursor)
        self._thread = threading.Thread(target=self._run, name="sighub-follow", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._daemon.follow(self._stop, on_batch=self._batch)
        except BaseException as exc:  # handed to the caller by wait() or stop()
            if not self._stop.is_set():  # after stop(), an error is the cancelled stream
                log.error("follow stopped: %s", exc)
                self._error = exc
        finally:
            self._daemon.close()

    def _batch(self, report: SyncReport) -> None:
        self.report = replace(report, refused=list(report.refused))

    @property
    def running(self) -> bool:
        """Whether the follow is still running."""
        return self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the follow ends or ``timeout`` seconds pass; True if it ended.
        Raises the error it stopped with, if any."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            return False
        if self._error is not None:
            raise self._error
        return True

    def stop(self, timeout: float | None = 30.0) -> SyncReport:
        """End the follow and wait up to ``timeout`` seconds for it; returns what it
        applied.  Raises the error it had already stopped with, if any, and
        ``TimeoutError`` if it did not end in time."""
        self._stop.set()
        self._daemon.interrupt()
        if not self.wait(timeout):
            raise TimeoutError(f"follow of {self._daemon.data}: still running after {timeout}s")
        return self.report

    def __enter__(self) -> Following:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is None:
            self.stop()
            return
        try:  # the block's own exception is the one to propagate
            self.stop()
        except Exception as exc:
            log.error("follow of %s ended with: %s", self._daemon.data, exc)


def _indicator(row: tuple[object, ...]) -> Indicator:
    (
        id_,
        collab,
        publisher,
        name,
        kind,
        form,
        value,
        epoch,
        confidence,
        labels,
        description,
        tlp,
        valid_from,
        valid_until,
        modified,
        revoked,
        _,
        created,
        canon,
        scheme,
    ) = row
    return Indicator(
        id=str(id_),
        kind=Kind(str(kind)),
        form=Form(str(form)),
        value=str(value),
        collaboration=str(collab),
        publisher=Publisher(str(publisher), str(name)),
        valid_from=parse_time(valid_from, "valid_from"),
        valid_until=parse_time(valid_until, "valid_until"),
        created=parse_time(created, "created"),
        modified=parse_time(modified, "modified"),
        key_epoch=epoch if epoch is None else int(str(epoch)),
        canon_version=str(canon),
        scheme=str(scheme) if form == "blinded" else None,
        confidence=int(str(confidence)),
        labels=tuple(json.loads(str(labels))),
        description=str(description),
        tlp=Tlp(str(tlp)),
        revoked=bool(revoked),
    )
