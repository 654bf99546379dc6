"""``sighub match``: JSON lines ``{"id", "text"}`` in, one JSON line out for each, against
the member's local store.  Every input byte is hostile: lines are read bounded, decoded
strictly and parsed under a budget; a bad line gets an error line and the run goes on."""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from sighub.client._canon import scalar
from sighub.client._errors import EXIT_BAD_INPUT, JsonBudgetError, SighubError
from sighub.client._json import JsonBudget
from sighub.client._json import loads as json_loads
from sighub.client._local import LocalStore
from sighub.client._matcher import Match, Matcher, TextTooLong

__all__ = [
    "DEFAULT_MAX_TEXT_BYTES",
    "ENV_MAX_TEXT_BYTES",
    "MatchInputError",
    "StoreNotReady",
    "max_text_bytes_default",
    "open_matcher",
    "read_lines",
    "scan_lines",
    "text_limit",
]

DEFAULT_MAX_TEXT_BYTES = 1 << 20
ENV_MAX_TEXT_BYTES = "SIGHUB_MAX_TEXT_BYTES"


def max_text_bytes_default() -> str:
    """``--max-text-bytes``'s default: ``$SIGHUB_MAX_TEXT_BYTES``, else 1 MiB (a string:
    argparse checks it with ``text_limit`` like a value given on the command line)."""
    return os.environ.get(ENV_MAX_TEXT_BYTES, str(DEFAULT_MAX_TEXT_BYTES))


def text_limit(value: str) -> int:
    """An argparse type: a whole number of bytes, at least 1."""
    try:
        limit = int(value)
    except ValueError:
        limit = 0
    if limit < 1:
        raise argparse.ArgumentTypeError(f"received {value!r}, expected a whole number >= 1")
    return limit


_DISCARD_CHUNK = 1 << 16
_BLANK = b" \t\r\n"  # JSON's white space: a line of only these is skipped


class StoreNotReady(SighubError):
    """``sighub match`` has no rules to match with: the data directory or its local store
    is missing, unreadable, or has never synced."""

    exit_code = EXIT_BAD_INPUT


def open_matcher(data: Path, db_name: str) -> Matcher:
    """The matcher of the member store in ``data``; StoreNotReady (creating nothing) when
    the directory is missing or the store has never synced."""
    path = data / db_name
    if not data.is_dir():
        raise StoreNotReady(
            f"{data}: data directory: not found; expected the directory given to "
            f"`sighub sync --data`"
        )
    if not path.is_file():
        raise StoreNotReady(
            f"{data}: has never synced (no {db_name}); run `sighub sync --data {data}` first"
        )
    try:
        store = LocalStore(path)
        try:
            if not store.meta("last_sync"):
                raise StoreNotReady(
                    f"{data}: has never synced (no last sync in {db_name}); "
                    f"run `sighub sync --data {data}` first"
                )
            return Matcher.from_store(store)
        finally:
            store.close()
    except sqlite3.Error as exc:
        raise StoreNotReady(f"{path}: local store: cannot be read ({exc})") from None


def read_lines(source: BinaryIO, limit: int) -> Iterator[tuple[int, bytes | None]]:
    """(line number, line without its end) for each line of ``source``; None for a line of
    more than ``limit`` bytes, of which at most ``limit + 1`` bytes are held: the rest is
    read in chunks and dropped."""
    n = 0
    while line := source.readline(limit + 1):
        n += 1
        if line.endswith(b"\n"):
            yield n, line[:-1]
        elif len(line) <= limit:
            yield n, line  # the last line, without an end
        else:
            while (rest := source.readline(_DISCARD_CHUNK)) and not rest.endswith(b"\n"):
                pass
            yield n, None


def _request(line: bytes, n: int, budget: JsonBudget) -> tuple[str | int, str]:
    """The (id, text) of one input line; JsonBudgetError or MatchInputError."""
    what = f"stdin line {n}"
    doc = json_loads(line, budget, what)
    if not isinstance(doc, dict):
        raise MatchInputError(f"{what}: received {_json_type(doc)}, expected {_SHAPE}")
    ident, text = doc.get("id"), doc.get("text")
    if isinstance(ident, bool) or not isinstance(ident, str | int):
        got = "no id" if "id" not in doc else f"id of type {_json_type(ident)}"
        raise MatchInputError(f"{what}: received {got}, expected {_SHAPE}")
    if isinstance(ident, str) and scalar(ident) != ident:
        raise MatchInputError(f"{what}: id holds a lone surrogate; expected valid Unicode")
    if not isinstance(text, str):
        got = "no text" if "text" not in doc else f"text of type {_json_type(text)}"
        raise MatchInputError(f"{what}: received {got}, expected {_SHAPE}")
    return ident, text


_SHAPE = 'an object with "id" (a string or an integer) and "text" (a string)'


class MatchInputError(SighubError, ValueError):
    """One ``sighub match`` input line is not a request."""

    exit_code = EXIT_BAD_INPUT


def _json_type(value: object) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


def _found(m: Match) -> dict[str, Any]:
    """A match as JSON: the span's summary (see ``Match``), then every indicator behind
    it under ``hits``."""
    return {
        "indicator": m.indicator,
        "kind": m.kind.value,
        "collab": m.collaboration,
        "publisher": m.publisher,
        "confidence": m.confidence,
        "labels": list(m.labels),
        "tlp": m.tlp.value,
        "valid_until": m.valid_until,
        "span": [m.start, m.end],
        "text": scalar(m.text),  # a lone surrogate cannot be written as UTF-8
        "hits": [
            {
                "indicator": h.indicator,
                "kind": h.kind.value,
                "collab": h.collaboration,
                "publisher": h.publisher,
                "confidence": h.confidence,
                "labels": list(h.labels),
                "tlp": h.tlp.value,
                "valid_until": h.valid_until,
            }
            for h in m.hits
        ],
    }


def scan_lines(matcher: Matcher, source: BinaryIO, sink: BinaryIO, max_line_bytes: int) -> int:
    """``sighub match``: JSON lines ``{"id", "text"}`` from ``source`` to lines ``{"id",
    "matches": [...]}`` on ``sink``, one per non-blank line.  A line that cannot be read
    (over ``max_line_bytes``, not UTF-8, not JSON within budget, no string or integer id,
    no string text) gets ``{"line": n, "error": "..."}`` and the run goes on.  Returns the
    number of such lines.  Every line written is valid UTF-8 JSON."""
    budget = JsonBudget(
        max_line_bytes, max_depth=4, max_containers=64, max_token_bytes=max_line_bytes
    )
    refused = 0
    for n, line in read_lines(source, max_line_bytes):
        if line is not None and not line.strip(_BLANK):
            continue
        try:
            if line is None:
                raise MatchInputError(
                    f"stdin line {n}: size: received more than {max_line_bytes} bytes, "
                    f"expected at most {max_line_bytes} (--max-text-bytes)"
                )
            ident, text = _request(line, n, budget)
            out: dict[str, Any] = {
                "id": ident,
                "matches": [_found(m) for m in matcher.scan(text, max_line_bytes)],
            }
        except (MatchInputError, JsonBudgetError, TextTooLong) as exc:
            refused += 1
            out = {"line": n, "error": scalar(str(exc))}
        sink.write(json.dumps(out, ensure_ascii=False).encode("utf-8") + b"\n")
        sink.flush()  # a caller may wait for each answer before it sends the next text
    return refused
