"""Analyst input: CSV or JSONL rows of ``kind, value`` plus optional ``form``, ``expires``
or ``ttl``, ``confidence``, ``description``, ``tlp`` and ``labels``.  Every error names the
file, the line and the field; a file with any bad row yields nothing.

The file is hostile input: at most ``MAX_FILE_BYTES``, UTF-8 (a BOM is accepted), at most
``MAX_FIELD_CHARS`` per field, each JSONL line parsed under ``sighub.client._json.ANALYST_LINE``.
Every publish rule the hub applies (``sighub.client._rules``) is applied here too, with the
default limits, so a file that bundles is not refused later for breaking one."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from sighub.client import _json
from sighub.client._blind import Blinder, CollabKey
from sighub.client._canon import CANON_VERSION, canonicalize
from sighub.client._errors import (
    CanonError,
    InputFileError,
    JsonBudgetError,
    ModelError,
    PatternRejected,
)
from sighub.client._model import Form, Indicator, Kind, Publisher, Tlp, now_ms
from sighub.client._patterns import gate
from sighub.client._rules import (
    DEFAULT_LIMITS,
    Problem,
    PublishLimits,
    count_problem,
    envelope_problem,
    expiry_problem,
    indicator_problem,
    lifetime_problem,
    string_problem,
)
from sighub.client._stix import new_indicator_id

__all__ = [
    "MAX_FIELD_CHARS",
    "MAX_FILE_BYTES",
    "AnalystRow",
    "check_envelope",
    "parse_ttl",
    "read_rows",
    "to_indicators",
]

FIELDS: Final = (
    "kind", "value", "form", "expires", "ttl", "confidence", "description", "tlp", "labels",
)  # fmt: skip
DEFAULT_TTL: Final = timedelta(days=90)
MAX_FILE_BYTES: Final = 64 << 20  # 64 MiB: over 6,000 bytes per row of a full bundle
MAX_FIELD_CHARS: Final = 64 << 10  # 64 KiB: far above any value a hub accepts
# Every field at its bound, quoted, with every quote doubled.
MAX_LINE_CHARS: Final = len(FIELDS) * (2 * MAX_FIELD_CHARS + 3)
_BOM: Final = b"\xef\xbb\xbf"
_SHOWN: Final = 60  # characters of a hostile value quoted back in an error
_TTL_RE: Final = re.compile(r"([0-9]{1,5})([mhdw])")
_CONFIDENCE_RE: Final = re.compile(r"[0-9]{1,3}")
_UNITS: Final = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

# csv's own field limit is process-wide and its error names no column; sighub bounds each
# field itself (MAX_FIELD_CHARS, naming the column), so csv's may be the file's bound.
csv.field_size_limit(max(csv.field_size_limit(), MAX_FILE_BYTES))


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
    until_field: str = "ttl"  # the field that set valid_until: expires or ttl (or default)


def parse_ttl(text: str) -> timedelta:
    m = _TTL_RE.fullmatch(text.strip())
    if m is None or int(m.group(1)) == 0:
        raise ValueError(f"{_clip(text)!r}: expected a duration such as 30d, 12h, 2w or 90m")
    return timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})


def _clip(text: str) -> str:
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."


def _expires(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{_clip(text)!r}: expected an ISO 8601 date or time") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        value = value.astimezone(UTC)
    except OverflowError:  # a time zone offset that leaves years 1-9999
        raise ValueError(f"{_clip(text)!r}: expected a time within the years 1-9999 UTC") from None
    return value.replace(microsecond=value.microsecond - value.microsecond % 1000)


def _enum_field(cls: type[Kind] | type[Form] | type[Tlp], text: str) -> Any:
    try:
        return cls(text.strip().lower())
    except ValueError:
        raise ValueError(f"{_clip(text)!r}: expected one of {[e.value for e in cls]}") from None


class _Row:
    """Reads one raw row, raising InputFileError that names the field."""

    def __init__(
        self,
        path: str,
        line: int,
        raw: dict[str, Any],
        now: datetime,
        limits: PublishLimits,
        canon: str = CANON_VERSION,
    ) -> None:
        self.path, self.line, self.raw, self.now, self.limits = path, line, raw, now, limits
        self.canon = canon

    def fail(self, field: str, message: str) -> InputFileError:
        return InputFileError(self.path, self.line, _clip(field), message)

    def text(self, field: str) -> str:
        value = self.raw.get(field)
        if value is None:
            return ""
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            raise self.fail(field, f"expected text, got {type(value).__name__}")
        return self.checked(field, str(value)).strip()

    def checked(self, field: str, text: str) -> str:
        """Bounded, and encodable: a JSON escape can make a lone surrogate."""
        if len(text) > MAX_FIELD_CHARS:
            raise self.fail(field, f"{len(text)} characters; at most {MAX_FIELD_CHARS}")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise self.fail(
                field, f"a lone surrogate U+{ord(text[exc.start]):04X} at character {exc.start}"
            ) from None
        return text

    def parse(self, default_ttl: timedelta) -> AnalystRow:
        unknown = set(self.raw) - set(FIELDS)
        if unknown:
            raise self.fail(sorted(unknown)[0], f"unknown field; expected {list(FIELDS)}")
        kind = self.field("kind", lambda t: _enum_field(Kind, t), required=True)
        form = self.field("form", lambda t: _enum_field(Form, t)) or Form.BLINDED
        value = self.value(kind, form)
        until, until_field = self.valid_until(default_ttl)
        return AnalystRow(
            source=self.path,
            line=self.line,
            kind=kind,
            form=form,
            value=value,
            valid_until=until,
            confidence=self.confidence(),
            description=self.description(),
            tlp=self.field("tlp", lambda t: _enum_field(Tlp, t)) or Tlp.AMBER,
            labels=self.labels(),
            until_field=until_field,
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
            return gate(text) if form is Form.PATTERN else canonicalize(kind, text, self.canon)
        except (CanonError, PatternRejected) as exc:
            raise self.fail("value", _clip_message(str(exc))) from None

    def valid_until(self, default_ttl: timedelta) -> tuple[datetime, str]:
        """valid_until and the field that set it, under the hub's expiry and TTL rules."""
        if self.text("expires") and self.text("ttl"):
            raise self.fail("ttl", "give expires or ttl, not both")
        until = self.field("expires", _expires)
        name = "expires" if until is not None else "ttl"
        if until is None:
            ttl = self.field("ttl", parse_ttl) or default_ttl
            try:
                until = self.now + ttl
            except OverflowError:
                raise self.fail("ttl", f"{ttl.days} days from now is past the year 9999") from None
        problem = expiry_problem(until, self.now) or lifetime_problem(self.now, until, self.limits)
        if problem is not None:
            raise self.fail(name, problem.detail)
        return until, name

    def confidence(self) -> int:
        text = self.text("confidence")
        if not text:
            return 50
        if not _CONFIDENCE_RE.fullmatch(text) or not 0 <= int(text) <= 100:
            raise self.fail("confidence", f"{_clip(text)!r}: expected an integer 0-100")
        return int(text)

    def description(self) -> str:
        text = self.text("description")
        problem = string_problem("description", text, self.limits)
        if problem is not None:
            raise self.fail("description", problem.detail)
        return text

    def labels(self) -> tuple[str, ...]:
        raw = self.raw.get("labels")
        if raw is None or raw == "":
            return ()
        if isinstance(raw, str):
            items = raw.split(";")
        elif isinstance(raw, list) and all(isinstance(i, str) for i in raw):
            items = raw
        else:
            raise self.fail("labels", "expected a list of strings or 'a;b;c'")
        return tuple(self.checked("labels", i).strip().lower() for i in items if i.strip())


def _clip_message(message: str) -> str:
    """An error from canon or the pattern gate quotes the value: keep it short."""
    return message if len(message) <= 4 * _SHOWN else message[: 4 * _SHOWN] + "..."


def _read(path: Path) -> bytes:
    """The file's bytes without a BOM, at most MAX_FILE_BYTES of them."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise InputFileError(str(path), 0, "-", f"cannot read: {exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise InputFileError(str(path), 0, "-", f"more than {MAX_FILE_BYTES} bytes; split the file")
    return data.removeprefix(_BOM)


def _jsonl_rows(path: Path, data: bytes) -> Iterable[tuple[int, dict[str, Any]]]:
    for n, line in enumerate(io.BytesIO(data), 1):  # lazily: a file of blank lines is cheap
        if not line.strip():
            continue
        try:
            doc = _json.loads(line, _json.ANALYST_LINE, f"{path}:{n}")
        except JsonBudgetError as exc:
            message = f"{exc.rule}: received {exc.received}, expected {exc.expected}"
            raise InputFileError(str(path), n, "-", message) from None
        if not isinstance(doc, dict):
            raise InputFileError(str(path), n, "-", "expected a JSON object per line")
        yield n, doc


def _csv_rows(path: Path, data: bytes) -> Iterable[tuple[int, dict[str, Any]]]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        bad = data[exc.start : exc.end].hex()
        raise InputFileError(
            str(path), line, "-", f"not UTF-8 ({exc.reason}: bytes {bad}); expected UTF-8"
        ) from None
    reader = csv.DictReader(_csv_lines(path, text))
    try:
        if not reader.fieldnames or "kind" not in reader.fieldnames:
            raise InputFileError(str(path), 1, "kind", "the CSV header must name kind and value")
        for row in reader:
            yield reader.line_num, _csv_cells(path, reader.line_num, row)
    except csv.Error as exc:
        raise InputFileError(str(path), reader.line_num, "-", f"not CSV: {exc}") from None


def _csv_lines(path: Path, text: str) -> Iterator[str]:
    """Physical lines, each short enough that csv's list of a row's cells stays small (a
    line of commas is a cell per byte); a full row, every field at its bound, fits."""
    for n, line in enumerate(io.StringIO(text, newline=""), 1):
        if len(line) > MAX_LINE_CHARS:
            message = f"a line of {len(line)} characters; at most {MAX_LINE_CHARS}"
            raise InputFileError(str(path), n, "-", message)
        yield line


def _csv_cells(path: Path, line: int, row: dict[Any, Any]) -> dict[str, Any]:
    if None in row:
        raise InputFileError(str(path), line, "-", "more cells than header")
    for name, value in row.items():
        if value is not None and len(value) > MAX_FIELD_CHARS:
            message = f"{len(value)} characters; at most {MAX_FIELD_CHARS}"
            raise InputFileError(str(path), line, _clip(name), message)
    return {k: v for k, v in row.items() if v not in (None, "")}


def _raw_rows(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return _jsonl_rows(path, _read(path))
    if suffix == ".csv":
        return _csv_rows(path, _read(path))
    raise InputFileError(str(path), 0, "-", "expected a .csv or .jsonl file")


def read_rows(
    path: Path,
    now: datetime | None = None,
    default_ttl: timedelta = DEFAULT_TTL,
    limits: PublishLimits = DEFAULT_LIMITS,
    canon: str = CANON_VERSION,
) -> list[AnalystRow]:
    """Parse an analyst file, values canonicalized under ``canon``; raise InputFileError
    at the first bad row.  ``limits`` are the hub's publish limits (its defaults unless
    the hub is known to be stricter)."""
    at = now or now_ms()
    rows: list[AnalystRow] = []
    for n, raw in _raw_rows(path):
        rows.append(_Row(str(path), n, raw, at, limits, canon).parse(default_ttl))
        too_many = count_problem(len(rows), limits)
        if too_many is not None:  # one file is one bundle
            raise InputFileError(str(path), n, "-", f"{too_many.detail}; split the file")
    if not rows:
        raise InputFileError(str(path), 0, "-", "no indicators in the file")
    return rows


def check_envelope(path: Path, raw: bytes, limits: PublishLimits = DEFAULT_LIMITS) -> None:
    """The hub's envelope size limit, for the envelope sealed from the file at ``path``."""
    problem = envelope_problem(len(raw), limits)
    if problem is not None:
        message = f"its signed envelope: {problem.detail}; split the file"
        raise InputFileError(str(path), 0, "-", message)


def to_indicators(
    rows: list[AnalystRow],
    publisher: Publisher,
    key: CollabKey,
    now: datetime | None = None,
    limits: PublishLimits = DEFAULT_LIMITS,
    canon: str = CANON_VERSION,
) -> list[Indicator]:
    """Blind each row under ``key`` and build its Indicator, checked against the hub's
    publish rules at ``now`` (the indicators' creation time).  ``canon`` is the version
    the rows' values were canonicalized under (``read_rows``), and the one patterns run
    under (over the text it folds)."""
    at = now or now_ms()
    too_many = count_problem(len(rows), limits)
    if too_many is not None:
        last = rows[-1]
        raise InputFileError(last.source, last.line, "-", f"{too_many.detail}; split the file")
    blinder = Blinder(key, canon)
    out = []
    for row in rows:
        try:
            ind = _indicator(row, publisher, key, blinder, at)
        except ModelError as exc:
            message = f"received {_clip(repr(exc.received))}, expected {exc.expected}"
            raise InputFileError(
                row.source, row.line, _row_field(row, exc.field), message
            ) from None
        problem: Problem | None = indicator_problem(ind, limits, at)
        if problem is not None:
            raise InputFileError(
                row.source, row.line, _row_field(row, problem.field), problem.detail
            )
        out.append(ind)
    return out


# Indicator fields that no analyst field sets (the file cannot fix them) are reported as "-".
_NOT_IN_FILE: Final = frozenset(
    {"id", "collaboration", "publisher", "valid_from", "created", "modified", "key_epoch",
     "scheme", "canon_version", "revoked"}
)  # fmt: skip


def _row_field(row: AnalystRow, field: str) -> str:
    """The analyst field behind an Indicator field."""
    if field == "valid_until":
        return row.until_field
    return "-" if field in _NOT_IN_FILE else field


def held_value(row: AnalystRow, epoch: int, blinder: Blinder) -> tuple[int | None, str]:
    """(key epoch, value) of the indicator ``row`` makes with ``blinder`` (its canon version,
    under the key of ``epoch``): a pattern keeps its source and has no epoch."""
    if row.form is Form.PATTERN:
        return None, row.value
    return epoch, blinder.canonical(row.kind, row.value).hex()


def _indicator(
    row: AnalystRow, publisher: Publisher, key: CollabKey, blinder: Blinder, at: datetime
) -> Indicator:
    blinded = row.form is Form.BLINDED
    epoch, value = held_value(row, key.epoch, blinder)
    return Indicator(
        id=new_indicator_id(),
        kind=row.kind,
        form=row.form,
        value=value,
        collaboration=key.collaboration,
        publisher=publisher,
        valid_from=at,
        valid_until=row.valid_until,
        created=at,
        modified=at,
        key_epoch=epoch,
        canon_version=blinder.canon.version,
        scheme=blinder.scheme if blinded else None,
        confidence=row.confidence,
        labels=row.labels,
        description=row.description,
        tlp=row.tlp,
    )
