"""The SDK's entry point for a platform: one object over a member data directory."""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from sighub.client._analyst import DEFAULT_TTL, read_rows, to_indicators
from sighub.client._blind import CollabKey
from sighub.client._daemon import LOCAL_DB, SyncDaemon, SyncReport
from sighub.client._envelope import seal
from sighub.client._errors import SighubError
from sighub.client._keys import MemberFiles
from sighub.client._local import LocalStore
from sighub.client._matcher import LiveMatcher, Matcher
from sighub.client._model import Form, Indicator, Kind, Publisher, Tlp, now_ms
from sighub.client._rpc import Credential, HubClient, PublishResult
from sighub.client._sinks import MatcherSink, Sink
from sighub.client._stix import build_bundle, parse_time, revoke

__all__ = ["Member"]


class Member:
    """A platform's view of its hub: publish, revoke, sync, match.

    >>> m = Member(Path("./platform-a"))            # after `sighub member enroll`
    >>> m.publish_file(Path("indicators.csv"), "sg-csam")
    >>> m.sync_once()
    >>> [x.text for x in m.matcher().scan("s3ll3r menu in bio")]
    """

    def __init__(self, data: Path, insecure: bool = False, address: str | None = None) -> None:
        self.data, self.insecure, self.address = data, insecure, address
        self.files = MemberFiles(data)
        cred = Credential.load(data)
        self.cred = cred if address is None else replace(cred, hub=address)

    def _hub(self) -> HubClient:
        return HubClient.connect(self.cred, self.insecure)

    def _key(self, hub: HubClient, collab: str) -> CollabKey:
        epochs = [k for k in hub.collab_keys() if k.collaboration == collab]
        if not epochs:
            raise SighubError(f"collaboration {collab!r}: no key; is {self.cred.member!r} in it?")
        k = max(epochs, key=lambda k: k.epoch)
        return CollabKey(k.collaboration, k.epoch, k.secret)

    def publish_file(
        self, path: Path, collab: str, default_ttl: timedelta = DEFAULT_TTL
    ) -> PublishResult:
        """Analyst CSV/JSONL -> canon/1 -> blind -> STIX bundle -> sign -> publish."""
        rows = read_rows(path, default_ttl=default_ttl)
        with self._hub() as hub:
            indicators = to_indicators(
                rows, self.files.identity().publisher, self._key(hub, collab)
            )
            return self._publish(hub, collab, indicators)

    def publish(self, indicators: Sequence[Indicator], collab: str) -> PublishResult:
        with self._hub() as hub:
            return self._publish(hub, collab, indicators)

    def _publish(
        self, hub: HubClient, collab: str, indicators: Sequence[Indicator]
    ) -> PublishResult:
        bundle = build_bundle(self.files.identity().publisher, list(indicators))
        return hub.publish(collab, seal(bundle, self.files.signing_key()))

    def revoke(self, ids: Sequence[str]) -> list[PublishResult]:
        """Publish revoked versions of this member's own indicators (read from the local
        store, so sync first); one bundle per collaboration."""
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
        with self._hub() as hub:
            return [self._publish(hub, c, inds) for c, inds in sorted(by_collab.items())]

    def sync_once(self, sinks: Sequence[Sink] = ()) -> SyncReport:
        daemon = SyncDaemon(self.data, self.insecure, self.cred.hub, sinks=sinks)
        try:
            return daemon.sync_once()
        finally:
            daemon.close()

    def follow(self, stop: threading.Event, sinks: Sequence[Sink] = ()) -> None:
        daemon = SyncDaemon(self.data, self.insecure, self.cred.hub, sinks=sinks)
        try:
            daemon.follow(stop)
        finally:
            daemon.close()

    def matcher(self) -> Matcher:
        store = LocalStore(self.data / LOCAL_DB)
        try:
            return Matcher.from_store(store)
        finally:
            store.close()

    def live_matcher(self) -> tuple[LiveMatcher, MatcherSink]:
        """A matcher that stays current when passed (as the sink) to ``follow``."""
        live = LiveMatcher(LocalStore(self.data / LOCAL_DB))
        return live, MatcherSink(live)


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
        scheme="blake2b-128" if form == "blinded" else None,
        confidence=int(str(confidence)),
        labels=tuple(json.loads(str(labels))),
        description=str(description),
        tlp=Tlp(str(tlp)),
        revoked=bool(revoked),
    )
