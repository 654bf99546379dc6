"""Analyst input: CSV or JSONL rows of ``kind, value`` plus optional ``form``, ``expires``
or ``ttl``, ``confidence``, ``description``, ``tlp`` and ``labels``.  Every error names the
file, the line and the field; a file with any bad row yields nothing."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from client._blind import Blinder, CollabKey
from client._canon import canonicalize
from client._errors import CanonError, InputFileError, ModelError, PatternRejected
from client._model import BLIND_SCHEME, Form, Indicator, Kind, Publisher, Tlp, now_ms
from client._patterns import gate
from client._stix import new_indicator_id

__all__ = ["AnalystRow", "parse_ttl", "read_rows", "to_indicators"]

FIELDS: Final = (
    "kind", "value", "form", "expires", "ttl", "confidence", "description", "tlp", "labels",
)  # fmt: skip
DEFAULT_TTL: Final = timedelta(days=90)
_TTL_RE: Final = re.compile(r"(\d{1,5})([mhdw])")
_UNITS: Final = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclass(frozen=True, slots=True)
class AnalystRow:
    source: str
    line: int
    kind: Kind
    form: Form
    value: str  # canonical value (blinded form) or the gated pattern
    valid_until: datetime
    confidence: int
    description: str
    tlp: Tlp
    labels: tuple[str, ...]


def parse_ttl(text: str) -> timedelta:
    m = _TTL_RE.fullmatch(text.strip())
    if m is None or int(m.group(1)) == 0:
        raise ValueError(f"{text!r}: expected a duration such as 30d, 12h, 2w or 90m")
    return timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})


def _expires(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r}: expected an ISO 8601 date or time") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond - value.microsecond % 1000)


def _enum_field(cls: type[Kind] | type[Form] | type[Tlp], text: str) -> Any:
    try:
        return cls(text.strip().lower())
    except ValueError:
        raise ValueError(f"{text!r}: expected one of {[e.value for e in cls]}") from None


class _Row:
    """Reads one raw row, raising InputFileError that names the field."""

    def __init__(self, path: str, line: int, raw: dict[str, Any], now: datetime) -> None:
        self.path, self.line, self.raw, self.now = path, line, raw, now

    def fail(self, field: str, message: str) -> InputFileError:
        return InputFileError(self.path, self.line, field, message)

    def text(self, field: str) -> str:
        value = self.raw.get(field)
        if value is None:
            return ""
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            raise self.fail(field, f"expected text, got {type(value).__name__}")
        return str(value).strip()

    def parse(self, default_ttl: timedelta) -> AnalystRow:
        unknown = set(self.raw) - set(FIELDS)
        if unknown:
            raise self.fail(sorted(unknown)[0], f"unknown field; expected {list(FIELDS)}")
        kind = self.field("kind", lambda t: _enum_field(Kind, t), required=True)
        form = self.field("form", lambda t: _enum_field(Form, t)) or Form.BLINDED
        value = self.value(kind, form)
        return AnalystRow(
            source=self.path,
            line=self.line,
            kind=kind,
            form=form,
            value=value,
            valid_until=self.valid_until(default_ttl),
            confidence=self.confidence(),
            description=self.text("description"),
            tlp=self.field("tlp", lambda t: _enum_field(Tlp, t)) or Tlp.AMBER,
            labels=self.labels(),
        )

    def field(self, name: str, conv: Any, required: bool = False) -> Any:
        text = self.text(name)
        if not text:
            if required:
                raise self.fail(name, "missing; it is required")
            return None
        try:
            return conv(text)
        except ValueError as exc:
            raise self.fail(name, str(exc)) from None

    def value(self, kind: Kind, form: Form) -> str:
        text = self.text("value")
        if not text:
            raise self.fail("value", "missing; it is required")
        try:
            return gate(text) if form is Form.PATTERN else canonicalize(kind, text)
        except (CanonError, PatternRejected) as exc:
            raise self.fail("value", str(exc)) from None

    def valid_until(self, default_ttl: timedelta) -> datetime:
        expires, ttl = self.text("expires"), self.text("ttl")
        if expires and ttl:
            raise self.fail("ttl", "give expires or ttl, not both")
        until = self.field("expires", _expires) or self.now + (
            self.field("ttl", parse_ttl) or default_ttl
        )
        if until <= self.now:
            raise self.fail("expires", f"{until.isoformat()} is not in the future")
        return until

    def confidence(self) -> int:
        text = self.text("confidence")
        if not text:
            return 50
        if not text.isdigit() or not 0 <= int(text) <= 100:
            raise self.fail("confidence", f"{text!r}: expected an integer 0-100")
        return int(text)

    def labels(self) -> tuple[str, ...]:
        raw = self.raw.get("labels")
        if raw is None or raw == "":
            return ()
        items = raw if isinstance(raw, list) else str(raw).split(";")
        if not all(isinstance(i, str) for i in items):
            raise self.fail("labels", "expected a list of strings or 'a;b;c'")
        return tuple(i.strip().lower() for i in items if i.strip())


def _raw_rows(path: Path, text: str) -> Iterable[tuple[int, dict[str, Any]]]:
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputFileError(str(path), n, "-", f"not JSON ({exc.msg})") from None
            if not isinstance(doc, dict):
                raise InputFileError(str(path), n, "-", "expected a JSON object per line")
            yield n, doc
        return
    if path.suffix.lower() != ".csv":
        raise InputFileError(str(path), 0, "-", "expected a .csv or .jsonl file")
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "kind" not in reader.fieldnames:
        raise InputFileError(str(path), 1, "kind", "the CSV header must name kind and value")
    for row in reader:
        if None in row:
            raise InputFileError(str(path), reader.line_num, "-", "more cells than header")
        yield reader.line_num, {k: v for k, v in row.items() if v not in (None, "")}


def read_rows(
    path: Path, now: datetime | None = None, default_ttl: timedelta = DEFAULT_TTL
) -> list[AnalystRow]:
    """Parse an analyst file; raise InputFileError at the first bad row."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(str(path), 0, "-", f"cannot read: {exc}") from None
    at = now or now_ms()
    rows = [_Row(str(path), n, raw, at).parse(default_ttl) for n, raw in _raw_rows(path, text)]
    if not rows:
        raise InputFileError(str(path), 0, "-", "no indicators in the file")
    return rows


def to_indicators(
    rows: list[AnalystRow], publisher: Publisher, key: CollabKey, now: datetime | None = None
) -> list[Indicator]:
    """Blind each row under ``key`` and build its Indicator."""
    at = now or now_ms()
    blinder = Blinder(key)
    out = []
    for row in rows:
        try:
            out.append(_indicator(row, publisher, key, blinder, at))
        except ModelError as exc:
            raise InputFileError(row.source, row.line, exc.field, str(exc)) from None
    return out


def _indicator(
    row: AnalystRow, publisher: Publisher, key: CollabKey, blinder: Blinder, at: datetime
) -> Indicator:
    blinded = row.form is Form.BLINDED
    return Indicator(
        id=new_indicator_id(),
        kind=row.kind,
        form=row.form,
        value=blinder.canonical(row.kind, row.value).hex() if blinded else row.value,
        collaboration=key.collaboration,
        publisher=publisher,
        valid_from=at,
        valid_until=row.valid_until,
        created=at,
        modified=at,
        key_epoch=key.epoch if blinded else None,
        scheme=BLIND_SCHEME if blinded else None,
        confidence=row.confidence,
        labels=row.labels,
        description=row.description,
        tlp=row.tlp,
    )
