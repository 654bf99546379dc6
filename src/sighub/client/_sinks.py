"""Sinks: where applied changes go besides the local store.  A platform plugs its own rule
engine in by implementing ``Sink``; the built-in matcher and a JSONL export are two."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Protocol, runtime_checkable

from sighub.client._local import StoredIndicator
from sighub.client._matcher import LiveMatcher

__all__ = ["JsonlSink", "MatcherSink", "Sink"]


@runtime_checkable
class Sink(Protocol):
    """Where a platform's rule engine plugs in: receives every change the daemon applies,
    after it is committed locally.  ``upsert`` may see an id again (a new version), so key
    rules by id.  An exception from a sink ends the sync and reaches the caller; the
    change stays applied in the local store, from which a sink can rebuild."""

    def upsert(self, indicators: Sequence[StoredIndicator]) -> None:
        """New indicators or new versions of known ones, in force now."""

    def remove(self, ids: Sequence[str]) -> None:
        """Indicators revoked (or found expired) that must stop firing."""


class JsonlSink:
    """A sink that appends one JSON line per change to ``path``: ``{"op": "upsert",
    "indicator": {...}}`` or ``{"op": "remove", "id": ...}``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def _write(self, lines: list[str]) -> None:
        if lines:
            with self._lock, self.path.open("a", encoding="utf-8") as fh:
                fh.write("".join(lines))

    def upsert(self, indicators: Sequence[StoredIndicator]) -> None:
        """Append ``{"op": "upsert", "indicator": {...}}`` per indicator; raises
        ``OSError`` when the file cannot be written."""
        self._write(
            [
                json.dumps({"op": "upsert", "indicator": asdict(i)}, ensure_ascii=False) + "\n"
                for i in indicators
            ]
        )

    def remove(self, ids: Sequence[str]) -> None:
        """Append ``{"op": "remove", "id": ...}`` per id; raises ``OSError`` when the file
        cannot be written."""
        self._write([json.dumps({"op": "remove", "id": i}) + "\n" for i in ids])


class MatcherSink:
    """A sink that keeps ``matcher`` (a ``LiveMatcher``) current: it rebuilds aside and
    swaps on every change."""

    def __init__(self, matcher: LiveMatcher) -> None:
        self.matcher = matcher

    def upsert(self, indicators: Sequence[StoredIndicator]) -> None:
        """Rebuild the matcher aside and swap it in (scans never wait)."""
        if indicators:  # the cursor moved: a rebuild (remove of the same batch then skips)
            self.matcher.reload()

    def remove(self, ids: Sequence[str]) -> None:
        """Rebuild the matcher aside without the removed indicators and swap it in."""
        if ids:
            self.matcher.reload()
