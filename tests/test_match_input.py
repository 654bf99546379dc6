"""`sighub match` against hostile input: every line gets one valid JSON answer, bad lines
get error lines and the run goes on, long lines are never held whole, and a store that
has never synced is refused before anything is read."""

from __future__ import annotations

import io
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sighub import Form, Kind
from sighub.client._json import JsonBudget
from sighub.client._json import loads as json_loads
from sighub.client._local import LocalStore
from sighub.client._match_lines import open_matcher, read_lines, scan_lines
from sighub.client._matcher import Matcher
from sighub.hub._cli import main
from sighub.wire import Blinder
from tests.conftest import TEST_KEY, make_indicator

LOCAL_DB = "local.db"
NOW = datetime.now(UTC).replace(microsecond=0)
# Reads back what `sighub match` wrote: strict UTF-8, no NaN, bounded.
OUT_BUDGET = JsonBudget(1 << 22, max_depth=6, max_containers=4096, max_token_bytes=1 << 22)


def _rules() -> list[tuple[Kind, Form, str]]:
    blind = Blinder(TEST_KEY)
    return [
        (Kind.KEYWORD, Form.BLINDED, blind.value(Kind.KEYWORD, "seller")),
        (Kind.EMOJI, Form.BLINDED, blind.value(Kind.EMOJI, "🧀🍕")),
        (Kind.URL, Form.BLINDED, blind.value(Kind.URL, "menu-x.carrd.co")),
        (Kind.PAYMENT, Form.PATTERN, r"[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}"),
    ]


def fill_store(data: Path, synced: bool = True) -> Path:
    """A member directory whose local store holds a few active rules (as a sync leaves
    it); ``hub.json`` stands for the enrollment `sighub match` checks for."""
    data.mkdir(parents=True, exist_ok=True)
    (data / "hub.json").write_text("{}")
    store = LocalStore(data / LOCAL_DB)
    rows = []
    for kind, form, value in _rules():
        pattern = form is Form.PATTERN
        ind = make_indicator(
            kind=kind,
            form=form,
            value=value,
            key_epoch=None if pattern else 0,
            scheme=None if pattern else "blake2b-128",
            valid_from=NOW - timedelta(days=1),
            created=NOW - timedelta(days=1),
            modified=NOW - timedelta(days=1),
            valid_until=NOW + timedelta(days=30),
        )
        rows.append(store.row(ind, 1))
    with store.tx() as c:
        store.upsert(c, rows)
        if synced:
            store.set_meta("cursor", "1")
            store.set_meta("last_sync", "2026-11-01T12:00:00.000Z")
    store.replace_directory([], [(TEST_KEY.collaboration, TEST_KEY.epoch, TEST_KEY.secret)])
    store.close()
    return data


@pytest.fixture(scope="module")
def member(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fill_store(tmp_path_factory.mktemp("member"))


@pytest.fixture(scope="module")
def matcher(member: Path) -> Matcher:
    return open_matcher(member, LOCAL_DB)


def run(argv: list[str], stdin: bytes) -> tuple[int, bytes, str]:
    """``sighub ARGV`` in this process, with byte streams for stdin and stdout."""
    saved = sys.stdin, sys.stdout, sys.stderr
    out, err = io.BytesIO(), io.StringIO()
    text_in = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")
    text_out = io.TextIOWrapper(out, encoding="utf-8")
    sys.stdin, sys.stdout, sys.stderr = text_in, text_out, err
    try:
        code = main(argv)
        text_out.flush()
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved
        text_in.detach()  # the wrappers must not close the byte streams
        text_out.detach()
    return code, out.getvalue(), err.getvalue()


def answers(out: bytes) -> list[dict[str, object]]:
    """Every output line, parsed strictly (UTF-8, JSON, no NaN); one object each."""
    docs = [json_loads(line, OUT_BUDGET, "output") for line in out.split(b"\n")[:-1]]
    assert out.endswith(b"\n") or not out
    assert all(isinstance(d, dict) for d in docs)
    return docs


def line(doc: object) -> bytes:
    return json.dumps(doc).encode()  # ASCII: lone surrogates stay as \ud800 escapes


HOSTILE = [
    (b'{"id": 1, "text": "ab\\ud800cd s3ll3r"}', None),  # a lone surrogate: scanned
    (b'{"id": 2, "text": "\xed\xa0\x80 s3ll3r"}', "invalid UTF-8"),  # CESU-8 surrogate
    (b'{"id": 3, "text": "\xc0\xaf s3ll3r"}', "invalid UTF-8"),  # overlong "/"
    (b"[" * 5000 + b"]" * 5000, "depth"),
    (b'{"id": ' + b"[" * 3000 + b"]" * 3000 + b', "text": "x"}', "depth"),
    (b'{"id": NaN, "text": "s3ll3r"}', "NaN"),
    (b'{"id": Infinity, "text": "s3ll3r"}', "Infinity"),
    (b'{"id": 1.5, "text": "s3ll3r"}', "a string or an integer"),
    (b'{"id": true, "text": "s3ll3r"}', "a string or an integer"),
    (b'{"id": ' + b"9" * 5000 + b', "text": "s3ll3r"}', "number length"),
    (b'{"id": "a\\udc80", "text": "s3ll3r"}', "lone surrogate"),
    (b'{"id": 4}', "no text"),
    (b'{"text": "s3ll3r"}', "no id"),
    (b'["id", "text"]', "an array"),
    (b"not json", "syntax"),
]


def test_hostile_lines_get_error_lines_and_every_later_line_is_answered(member: Path) -> None:
    good = line({"id": "last", "text": "S3LL3R 🧀🍕 at menu-x.carrd.co"})
    stdin = b"\n".join([line for line, _ in HOSTILE] + [b"", b"  \t", good]) + b"\n"
    code, out, err = run(["match", "--data", str(member)], stdin)
    docs = answers(out)
    assert code == 2 and err == ""  # EXIT_BAD_INPUT: some lines were refused
    assert len(docs) == len(HOSTILE) + 1  # blank lines get no answer
    for n, ((_, error), doc) in enumerate(zip(HOSTILE, docs, strict=False), 1):
        if error is None:
            assert doc["id"] == n and "error" not in doc
        else:
            assert doc["line"] == n and error in str(doc["error"]), doc
    assert docs[0]["matches"] and docs[0]["matches"][0]["text"] == "s3ll3r"  # type: ignore[index]
    last = docs[-1]
    assert last["id"] == "last"
    found = {(m["kind"], m["text"], tuple(m["span"])) for m in last["matches"]}  # type: ignore[attr-defined]
    assert found == {
        ("keyword", "S3LL3R", (0, 6)),
        ("emoji", "🧀🍕", (7, 9)),
        ("url", "menu-x.carrd.co", (13, 28)),
    }


def test_lone_surrogates_in_a_text_keep_spans_and_are_written_as_valid_utf8(
    member: Path,
) -> None:
    text = "\udf55\ud83c s3ll3r\udc80 at menu-x.carrd.co/\ud800"  # no pair: two lone ones
    code, out, _ = run(["match", "--data", str(member)], line({"id": 7, "text": text}) + b"\n")
    (doc,) = answers(out)
    assert code == 0
    spans = {m["kind"]: m["span"] for m in doc["matches"]}  # type: ignore[attr-defined]
    assert spans == {"keyword": [3, 9], "url": [14, 29]}  # indices of the caller's text
    assert text[3:9] == "s3ll3r"


def test_all_good_lines_exit_zero(member: Path) -> None:
    stdin = line({"id": "a", "text": "nothing here"}) + b"\r\n" + line({"id": 2, "text": ""})
    code, out, _ = run(["match", "--data", str(member)], stdin)  # no final newline
    assert code == 0
    assert answers(out) == [{"id": "a", "matches": []}, {"id": 2, "matches": []}]


def test_a_line_over_the_limit_gets_an_error_line_and_the_run_goes_on(
    member: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    long = line({"id": "big", "text": "s3ll3r " * 300})
    short = line({"id": "small", "text": "s3ll3r"})
    stdin = long + b"\n" + short + b"\n"
    code, out, _ = run(["match", "--data", str(member), "--max-text-bytes", "1000"], stdin)
    docs = answers(out)
    assert code == 2 and docs[0]["line"] == 1 and "at most 1000" in str(docs[0]["error"])
    assert docs[1]["id"] == "small" and len(docs[1]["matches"]) == 1  # type: ignore[arg-type]
    monkeypatch.setenv("SIGHUB_MAX_TEXT_BYTES", "100")  # the flag's default
    code, out, _ = run(["match", "--data", str(member)], line({"id": 1, "text": "x" * 100}))
    assert code == 2 and "at most 100 " in str(answers(out)[0]["error"])
    monkeypatch.setenv("SIGHUB_MAX_TEXT_BYTES", "lots")
    with pytest.raises(SystemExit) as exc:  # argparse: usage error, exit 2
        run(["match", "--data", str(member)], b"")
    assert exc.value.code == 2


class _Reads(io.BytesIO):
    """Records the largest piece the reader asked for and got."""

    largest = 0

    def readline(self, size: int | None = -1) -> bytes:
        piece = super().readline(size)
        self.largest = max(self.largest, len(piece))
        return piece


def test_a_long_line_is_never_held_whole() -> None:
    source = _Reads(b"a" * (8 << 20) + b"\nshort\n" + b"b" * 5000)
    lines = list(read_lines(source, 1024))
    assert lines == [(1, None), (2, b"short"), (3, None)]
    assert source.largest <= 1 << 16  # the limit + 1, or one discard chunk


def test_a_store_that_never_synced_is_refused_and_nothing_is_created(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "hub.json").write_text("{}")  # enrolled, never synced
    code, out, err = run(["match", "--data", str(fresh)], line({"id": 1, "text": "x"}))
    assert code == 2 and out == b""
    assert "has never synced" in err and f"sighub sync --data {fresh}" in err
    assert "Traceback" not in err and sorted(p.name for p in fresh.iterdir()) == ["hub.json"]
    empty = fill_store(tmp_path / "empty", synced=False)  # a store without a last sync
    before = (empty / LOCAL_DB).read_bytes()
    code, out, err = run(["match", "--data", str(empty)], line({"id": 1, "text": "x"}))
    assert code == 2 and out == b"" and "has never synced" in err
    assert (empty / LOCAL_DB).read_bytes() == before
    missing = tmp_path / "nowhere"
    code, out, err = run(["match", "--data", str(missing)], b"")
    assert code == 2 and out == b"" and err.startswith("error: ") and "Traceback" not in err
    assert not missing.exists()


def test_a_store_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    data = tmp_path / "broken"
    data.mkdir()
    (data / "hub.json").write_text("{}")
    (data / LOCAL_DB).write_bytes(b"not a database" * 100)
    code, out, err = run(["match", "--data", str(data)], b"")
    assert code == 2 and out == b"" and "cannot be read" in err and "Traceback" not in err


# -- fuzz ----------------------------------------------------------------------------------
_TEXTS = st.text(max_size=40) | st.sampled_from(["s3ll3r", "🧀🍕", "menu-x.carrd.co", "ab12-"])
_IDS = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.text(max_size=10),
    st.floats(allow_nan=True, allow_infinity=True),
    st.none(),
    st.booleans(),
)
_REQUESTS = st.fixed_dictionaries({"id": _IDS, "text": _TEXTS}).map(
    lambda d: json.dumps(d).encode()  # NaN/Infinity and \udxxx escapes included
)
_ODD = st.sampled_from(
    [
        b"",
        b"   ",
        b"\xed\xa0\x80",
        b"\xc0\xaf",
        b"\xff\xfe",
        b"[" * 100,
        b"{" * 50 + b"}" * 50,
        b"1" * 400,
        b"NaN",
        b'{"id": -Infinity, "text": ""}',
        b'{"id": "x", "text": "\\ud800"}',
        b'{"id": 1, "text": "' + b"\\u00e9" * 50 + b'"}',
        "s3ll3r\udcff".encode("utf-8", "surrogateescape"),
        "\udc80\udcc0".encode("utf-8", "surrogatepass"),
    ]
)
_LINES = st.lists(st.one_of(_REQUESTS, _ODD, st.binary(max_size=30)), max_size=6)


def _expected_answers(data: bytes) -> int:
    parts = data.split(b"\n")
    if parts and parts[-1] == b"":
        parts.pop()
    return sum(1 for p in parts if p.strip(b" \t\r\n"))


@settings(max_examples=5000, deadline=None)
@given(_LINES, st.booleans())
def test_fuzz_match_lines_never_raise_and_answer_every_line(
    matcher: Matcher, lines: list[bytes], final_newline: bool
) -> None:
    data = b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    sink = io.BytesIO()
    refused = scan_lines(matcher, io.BytesIO(data), sink, 300)
    docs = answers(sink.getvalue())
    assert len(docs) == _expected_answers(data)
    assert refused == sum(1 for d in docs if "error" in d)
    for d in docs:
        assert set(d) in ({"line", "error"}, {"id", "matches"}), d


@settings(max_examples=60, deadline=None)
@given(_LINES)
def test_fuzz_the_match_command_in_process(member: Path, lines: list[bytes]) -> None:
    data = b"\n".join(lines)
    code, out, err = run(["match", "--data", str(member), "--max-text-bytes", "300"], data)
    docs = answers(out)
    assert len(docs) == _expected_answers(data) and err == ""
    assert code == (2 if any("error" in d for d in docs) else 0)
