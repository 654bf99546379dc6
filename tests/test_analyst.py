"""Analyst files as hostile input: every bad file is an InputFileError naming file, line and
field, and every publish rule of the hub is applied offline (sighub.client._rules)."""

from __future__ import annotations

import csv
import io
import json
import os
import random
import shutil
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sighub import Form, Kind
from sighub.client._analyst import (
    MAX_FIELD_CHARS,
    MAX_FILE_BYTES,
    MAX_LINE_CHARS,
    check_envelope,
    read_rows,
    to_indicators,
)
from sighub.client._errors import EXIT_BAD_INPUT, InputFileError
from sighub.client._rules import DEFAULT_LIMITS, PublishLimits, ahead_problem, indicator_problem
from sighub.hub._cli import main as sighub
from sighub.hub._config import HubConfig
from tests.conftest import NOW, TEST_KEY, make_indicator, make_publisher


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _refused(path: Path, line: int, field: str, fragment: str) -> InputFileError:
    with pytest.raises(InputFileError) as info:
        read_rows(path, now=NOW)
    err = info.value
    assert (err.path, err.line, err.field) == (str(path), line, field), err
    assert fragment in str(err), err
    return err


# --- 1: oversized and hostile input -------------------------------------------------------


def test_one_megabyte_csv_field_is_an_input_error(tmp_path: Path) -> None:
    big = b"a" * (1 << 20)
    path = _write(tmp_path, "a.csv", b"kind,value,description\nkeyword,s3ller," + big + b"\n")
    _refused(path, 2, "description", f"1048576 characters; at most {MAX_FIELD_CHARS}")


def test_field_limit_is_exact(tmp_path: Path) -> None:
    head = b"kind,value,description\nkeyword,s3ller,"
    path = _write(tmp_path, "a.csv", head + b"d" * (MAX_FIELD_CHARS + 1) + b"\n")
    _refused(path, 2, "description", f"{MAX_FIELD_CHARS + 1} characters; at most")
    # at the bound, the field is read and meets the hub's description rule instead
    path.write_bytes(head + b"d" * MAX_FIELD_CHARS + b"\n")
    _refused(path, 2, "description", "received 65536 characters, expected at most 1024")


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        (b'{"kind": "keyword", "value": ' + b"[" * 3000 + b"]" * 3000 + b"}", "depth"),
        (b'{"kind": "keyword", "value": ' + b"1" * 5000 + b"}", "number length"),
        (b'{"kind": "keyword", "value": "s3ller", "confidence": NaN}', "JSON has no NaN"),
        (b'{"kind": "keyword", "value": "' + b"x" * 70000 + b'"}', "token length"),
        (b'{"kind": "keyword", "value": "ab\xed\xa0\x80cd"}', "invalid UTF-8"),
        (b'{"kind": "keyword", "value": "s3ller"', "syntax"),
    ],
)
def test_hostile_jsonl_line_names_file_and_line(tmp_path: Path, line: bytes, fragment: str) -> None:
    good = b'{"kind": "keyword", "value": "s3ller"}\n'
    path = _write(tmp_path, "a.jsonl", good + b"\n" + line + b"\n" + good)
    _refused(path, 3, "-", fragment)


def test_lone_surrogate_escape_in_jsonl_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "a.jsonl", b'{"kind": "keyword", "value": "ab\\ud800cd"}\n')
    _refused(path, 1, "value", "lone surrogate U+D800")
    path.write_bytes(b'{"kind": "keyword", "value": "s3ller", "labels": ["\\udfff"]}\n')
    _refused(path, 1, "labels", "lone surrogate U+DFFF")


@pytest.mark.parametrize(
    "data",
    [
        b"kind,value\nkeyword,s3ller\nkeyword,ab\xed\xa0\x80cd\n",  # surrogate, CESU-8 style
        b"kind,value\nkeyword,s3ller\nkeyword,\xc0\xafx\n",  # overlong
        b"kind,value\nkeyword,s3ller\nkeyword,caf\xe9\n",  # Latin-1
    ],
)
def test_invalid_utf8_csv_names_the_line(tmp_path: Path, data: bytes) -> None:
    _refused(_write(tmp_path, "a.csv", data), 3, "-", "not UTF-8")


def test_file_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    with path.open("wb") as f:  # sparse: costs no disk
        f.write(b"kind,value\n")
        f.truncate(MAX_FILE_BYTES + 1)
    _refused(path, 0, "-", f"more than {MAX_FILE_BYTES} bytes")


def test_unknown_header_of_a_megabyte_is_quoted_short(tmp_path: Path) -> None:
    name = "z" * 60000
    path = _write(tmp_path, "a.csv", f"kind,value,{name}\nkeyword,s3ller,1\n".encode())
    err = _refused(path, 2, "z" * 60 + "...", "unknown field")
    assert len(str(err)) < 400


def test_a_line_of_commas_is_refused_before_csv_splits_it(tmp_path: Path) -> None:
    commas = b"," * (MAX_LINE_CHARS + 1)
    path = _write(tmp_path, "a.csv", b"kind,value\nkeyword,s3ller\n" + commas + b"\n")
    _refused(path, 3, "-", f"a line of {MAX_LINE_CHARS + 2} characters; at most {MAX_LINE_CHARS}")


@pytest.mark.parametrize("eol", [b"\n", b"\r\n"])
def test_blank_lines_and_line_ends_keep_line_numbers(tmp_path: Path, eol: bytes) -> None:
    row = b'{"kind": "keyword", "value": "s3ller"}'
    path = _write(tmp_path, "a.jsonl", eol * 100_000 + row + eol + b"[1]" + eol)
    _refused(path, 100_002, "-", "expected a JSON object per line")
    path = _write(tmp_path, "a.csv", eol.join([b"kind,value", b"", b"keyword,s3ller", b"x,y", b""]))
    _refused(path, 4, "kind", "'x': expected one of")


# --- 2: byte order mark ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("a.csv", "kind,value\nkeyword,s3ller\nemoji,🧀🍕\n"),
        ("a.jsonl", '{"kind": "keyword", "value": "s3ller"}\n{"kind": "emoji", "value": "🧀🍕"}\n'),
    ],
)
def test_utf8_bom_is_accepted(tmp_path: Path, name: str, body: str) -> None:
    path = _write(tmp_path, name, body.encode("utf-8-sig"))
    rows = read_rows(path, now=NOW)
    assert [(r.kind, r.line) for r in rows] == [
        (Kind.KEYWORD, 1 + (name == "a.csv")),
        (Kind.EMOJI, 2 + (name == "a.csv")),
    ]
    assert rows[0].value == "seler"


# --- 3: the hub's rules, offline ---------------------------------------------------------


def test_default_limits_are_the_hubs() -> None:
    hub = HubConfig.defaults()
    for name in PublishLimits.__dataclass_fields__:
        assert getattr(DEFAULT_LIMITS, name) == getattr(hub, name), name


@pytest.mark.parametrize(
    ("header", "cell", "field", "fragment"),
    [
        ("ttl", "400d", "ttl", "a lifetime of 400 days"),
        ("ttl", "99999w", "ttl", "a lifetime of 699993 days"),
        ("expires", "9999-01-01", "expires", "expected at most 365 days"),
        ("expires", "9999-12-31T23:00:00-05:00", "expires", "within the years 1-9999"),
        ("expires", "2001-01-01", "expires", "in the past"),
        ("description", "d" * 1025, "description", "received 1025 characters"),
        ("confidence", "²", "confidence", "an integer 0-100"),
    ],
)
def test_hub_rules_are_checked_offline(
    tmp_path: Path, header: str, cell: str, field: str, fragment: str
) -> None:
    body = f"kind,value,{header}\nkeyword,s3ller,\nkeyword,s3ller,{cell}\n"
    _refused(_write(tmp_path, "a.csv", body.encode()), 3, field, fragment)


def test_a_year_is_the_longest_ttl(tmp_path: Path) -> None:
    path = _write(tmp_path, "a.csv", b"kind,value,ttl\nkeyword,s3ller,365d\nkeyword,x,52w\n")
    rows = read_rows(path, now=NOW)
    assert rows[0].valid_until == NOW + timedelta(days=365)


def test_default_ttl_over_the_limit_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "a.csv", b"kind,value\nkeyword,s3ller\n")
    with pytest.raises(InputFileError) as info:
        read_rows(path, now=NOW, default_ttl=timedelta(days=400))
    assert (info.value.line, info.value.field) == (2, "ttl")


def test_more_rows_than_a_bundle_holds_are_refused(tmp_path: Path) -> None:
    n = DEFAULT_LIMITS.max_indicators
    body = "kind,value\n" + "".join(f"keyword,s3ller {i}\n" for i in range(n + 1))
    path = _write(tmp_path, "a.csv", body.encode())
    _refused(path, n + 2, "-", f"received {n + 1} indicators, expected at most {n}")
    path.write_text("kind,value\n" + "".join(f"keyword,s3ller {i}\n" for i in range(n)))
    assert len(read_rows(path, now=NOW)) == n


def test_a_stricter_hub_limit_applies_when_given(tmp_path: Path) -> None:
    path = _write(tmp_path, "a.csv", b"kind,value,ttl\nkeyword,s3ller,30d\nkeyword,x,60d\n")
    strict = PublishLimits(max_ttl_days=45, max_indicators=5)
    with pytest.raises(InputFileError) as info:
        read_rows(path, now=NOW, limits=strict)
    assert (info.value.line, info.value.field) == (3, "ttl")
    rows = read_rows(path, now=NOW)
    with pytest.raises(InputFileError) as info:
        to_indicators(
            rows, make_publisher(), TEST_KEY, now=NOW, limits=PublishLimits(max_indicators=1)
        )
    assert "received 2 indicators" in str(info.value)


def test_to_indicators_applies_the_rules_at_its_own_time(tmp_path: Path) -> None:
    """Rows read now but built as of a day earlier live a day longer: refused, on the
    field that set the expiry."""
    path = _write(tmp_path, "a.csv", b"kind,value,expires\nkeyword,s3ller,2027-11-01T00:00:00Z\n")
    rows = read_rows(path, now=NOW)
    with pytest.raises(InputFileError) as info:
        to_indicators(rows, make_publisher(), TEST_KEY, now=NOW - timedelta(days=1))
    err = info.value
    assert (err.line, err.field) == (2, "expires") and "at most 365 days" in str(err)
    assert len(to_indicators(rows, make_publisher(), TEST_KEY, now=NOW)) == 1


def test_envelope_size_is_checked_before_writing(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    check_envelope(path, b"x" * 10, PublishLimits(max_envelope_bytes=10))
    with pytest.raises(InputFileError) as info:
        check_envelope(path, b"x" * 11, PublishLimits(max_envelope_bytes=10))
    assert "received 11 bytes, expected at most 10 bytes" in str(info.value)


def test_clock_skew_rule() -> None:
    skew = timedelta(seconds=DEFAULT_LIMITS.max_clock_skew_seconds)
    assert ahead_problem("created", NOW + skew, NOW, DEFAULT_LIMITS) is None
    late = ahead_problem("created", NOW + skew + timedelta(milliseconds=1), NOW, DEFAULT_LIMITS)
    assert late is not None and late.field == "created"
    ind = make_indicator(modified=NOW.replace(year=9999), valid_until=NOW + timedelta(days=30))
    problem = indicator_problem(ind, DEFAULT_LIMITS, NOW)
    assert problem is not None and str(problem).startswith("modified: received 9999-11-01")


def test_bundle_command_refuses_with_file_line_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "m"
    assert sighub(["keygen", "--data", str(data), "--name", "p"]) == 0
    assert sighub(["keygen", "--data", str(data), "--collab", "sg-csam"]) == 0
    body = b"\xef\xbb\xbfkind,value,ttl\nkeyword,s3ller,30d\nurl,x.carrd.co,400d\n"
    path = _write(tmp_path, "a.csv", body)
    out = tmp_path / "out.json"
    capsys.readouterr()
    code = sighub(
        ["bundle", str(path), "--collab", "sg-csam", "--data", str(data), "--out", str(out)]
    )
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT, err
    assert f"{path}:3: field 'ttl': received a lifetime of 400 days" in err
    assert not out.exists()


# --- 5: fuzz -----------------------------------------------------------------------------

# Plausible cells per field, good and bad, so that many rows reach to_indicators and the
# hub's rules; hostile text replaces some of them.
_PLAUSIBLE: dict[str, list[str]] = {
    "kind": ["keyword", "hashtag", "emoji", "url", "payment", "KEYWORD", "phone"],
    "value": ["s3ller", "on chapter 14", "#s3llerlife", "🧀🍕", "x.carrd.co", "$cashtag01",
              "https://www.menus-demo.carrd.co/p?utm_source=ig", "(s3l+er|menu)", "ａ", ""],
    "form": ["blinded", "pattern", "Pattern", ""],
    "expires": ["2027-01-01", "2027-06-01T00:00:00+02:00", "9999-01-01", "2001-01-01",
                "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "2027-13-01", ""],
    "ttl": ["30d", "12h", "90m", "2w", "365d", "366d", "400d", "99999w", "0d", "1e9d", "٣d"],
    "confidence": ["0", "80", "100", "101", "-1", "²", "１２", ""],
    "description": ["synthetic", "d" * 1024, "d" * 1025, "\u2028\x85\r", ""],
    "tlp": ["amber", "red", "clear", "AMBER+STRICT", "white", ""],
    "labels": ["seller-term", "a;b;c", "Bad Label", "x" * 65, ";".join("l" * 17), ""],
}  # fmt: skip
_PAIRS = [("keyword", "s3ller"), ("keyword", "on chapter 14"), ("hashtag", "#s3llerlife"),
          ("emoji", "🧀🍕"), ("url", "x.carrd.co"), ("payment", "$cashtag01")]  # fmt: skip
_FIELDS = [*_PLAUSIBLE, "color", ""]
_HOSTILE = ["\ud800", "\udfff", "\x00", "\ufeff", '"', "'", "\\", ",", "\n", "{", "[1]"]
_JSON_ATOMS = ["1e400", "-0", "NaN", "Infinity", "true", "null", "1.5", "[]", "{}",
               '["a", 1]', '{"a": "b"}', '"\\ud800"', '"\\udfff"', '"\\u0000"', '"']  # fmt: skip
_ENCODINGS = ["utf-8"] * 14 + ["utf-8-sig", "utf-8-sig", "utf-16", "latin-1", "surrogatepass"]
_BOUNDS = [1024, 1025, MAX_FIELD_CHARS, MAX_FIELD_CHARS + 1]


class _Hostile:
    """Builds one hostile analyst file from a seed.  Hypothesis draws only the seed and the
    format: a few draws per example instead of hundreds keeps 5,000 examples fast, and a
    failure still reports the exact bytes."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def text(self, field: str) -> str:
        r = self.rng
        pick = r.random()
        if pick < 0.85:
            return r.choice(_PLAUSIBLE.get(field) or [""])
        if pick < 0.9:
            return r.choice(_PLAUSIBLE[r.choice(list(_PLAUSIBLE))]) + r.choice(_HOSTILE)
        if pick < 0.97:
            top = r.choice((0x80, 0x3000, 0x110000))
            return "".join(chr(r.randrange(top)) for _ in range(r.randrange(9)))
        return r.choice("a1[{\"'\\") * r.choice(_BOUNDS)  # around every bound

    def json_value(self, field: str) -> str:
        r = self.rng
        pick = r.randrange(40)
        if pick == 0:
            return r.choice(_JSON_ATOMS)
        if pick == 1:
            return r.choice((str(r.randrange(-(10**30), 10**30)), "1" * r.randrange(1, 6000)))
        if pick == 2:
            n = r.randrange(1, 3000)
            return r.choice(("[" * n + "]" * n, '{"a":' * n + "0" + "}" * n, "[" * n))
        if pick == 3:
            return json.dumps([self.text(field) for _ in range(r.randrange(5))])
        return json.dumps(self.text(field))

    def keys(self) -> list[str]:
        r = self.rng
        keys = r.sample(_FIELDS if r.random() < 0.2 else list(_PLAUSIBLE), k=r.randrange(5))
        return ["kind", "value", *keys] if r.random() < 0.8 else keys

    def pair(self, keys: list[str], values: list[str], as_json: bool) -> None:
        """Mostly a kind with a value of that kind, as an analyst writes them."""
        if keys[:2] == ["kind", "value"] and self.rng.random() < 0.7:
            pair = self.rng.choice(_PAIRS)
            values[:2] = [json.dumps(v) for v in pair] if as_json else list(pair)

    def csv(self) -> str:
        r = self.rng
        header = self.keys() or ["kind"]
        rows = []
        for _ in range(r.randrange(1, 4)):
            row = [self.text(f) for f in header]
            self.pair(header, row, as_json=False)
            if r.random() < 0.1:  # ragged
                row = row[: r.randrange(len(row) + 1)] + [self.text("")] * r.randrange(2)
            rows.append(row)
        if r.random() < 0.7:
            buf = io.StringIO()
            csv.writer(buf).writerows([header, *rows])
            return buf.getvalue()
        return "\n".join(",".join(row) for row in [header, *rows])  # unquoted, carelessly

    def jsonl(self) -> str:
        r = self.rng
        lines = []
        for _ in range(r.randrange(1, 4)):
            keys = self.keys()
            values = [self.json_value(k) for k in keys]
            self.pair(keys, values, as_json=True)
            pairs = [f"{json.dumps(k)}: {v}" for k, v in zip(keys, values, strict=True)]
            lines.append("{" + ", ".join(pairs) + "}")
        if r.random() < 0.1:
            lines.insert(r.randrange(len(lines) + 1), self.json_value(""))
        return r.choice(("\n", "\r\n", "\n\n")).join(lines)

    def encode(self, text: str) -> bytes:
        encoding = self.rng.choice(_ENCODINGS)
        if encoding == "surrogatepass":
            return text.encode("utf-8", "surrogatepass")
        return text.encode(encoding, "replace")


@st.composite
def _hostile_file(draw: st.DrawFn) -> tuple[str, bytes]:
    name = draw(st.sampled_from(["a.csv", "a.jsonl"]))
    h = _Hostile(draw(st.integers(0, 2**64)))
    return name, h.encode(h.csv() if name == "a.csv" else h.jsonl())


_FILES = st.one_of(
    st.tuples(st.sampled_from(["a.csv", "a.jsonl"]), st.binary(max_size=200)),
    _hostile_file(),
    _hostile_file(),
    _hostile_file(),
)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A memory file system where there is one: rewriting a file on a disk-backed /tmp
    costs milliseconds, which 5,000 examples would multiply."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path_factory.mktemp("fuzz")
        return
    path = Path(tempfile.mkdtemp(prefix="sighub-fuzz-", dir=shm))
    try:
        yield path
    finally:
        shutil.rmtree(path)


@settings(max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=_FILES)
def test_fuzz_analyst_files_raise_only_input_errors(
    fuzz_dir: Path, case: tuple[str, bytes]
) -> None:
    name, data = case
    path = fuzz_dir / name
    path.write_bytes(data)
    try:
        rows = read_rows(path, now=NOW)
    except InputFileError as exc:
        assert str(exc).startswith(f"{path}:{exc.line}: field ") and exc.line >= 0
        return
    assert rows
    try:
        indicators = to_indicators(rows, make_publisher(), TEST_KEY, now=NOW)
    except InputFileError:
        return
    assert len(indicators) == len(rows)
    assert all(i.form in (Form.BLINDED, Form.PATTERN) for i in indicators)
