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
    """Receives every change the daemon applies, after it is committed locally."""

    def upsert(self, indicators: Sequence[StoredIndicator]) -> None:
        """New indicators or new versions of known ones, in force now."""

    def remove(self, ids: Sequence[str]) -> None:
        """Indicators revoked (or found expired) that must stop firing."""


class JsonlSink:
    """Appends one JSON line per change: ``{"op": "upsert"|"remove", ...}``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def _write(self, lines: list[str]) -> None:
        if lines:
            with self._lock, self.path.open("a", encoding="utf-8") as fh:
                fh.write("".join(lines))

    def upsert(self, indicators: Sequence[StoredIndicator]) -> None:
        self._write(
            [
                json.dumps({"op": "upsert", "indicator": asdict(i)}, ensure_ascii=False) + "\n"
                for i in indicators
            ]
        )

    def remove(self, ids: Sequence[str]) -> None:
        self._write([json.dumps({"op": "remove", "id": i}) + "\n" for i in ids])


class MatcherSink:
    """Keeps a LiveMatcher current: rebuilds aside and swaps on every change."""

    def __init__(self, matcher: LiveMatcher) -> None:
        self.matcher = matcher

    def upsert(self, indicators: Sequence[StoredIndicator]) -> None:
        if indicators:
            self.matcher.reload(force=True)

    def remove(self, ids: Sequence[str]) -> None:
        if ids:
            self.matcher.reload(force=True)
