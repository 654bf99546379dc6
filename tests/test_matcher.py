"""The local rule engine on an obfuscation corpus: recall on disguised tells, precision on
benign text that shares words with them, identical results from both pattern engines."""

from __future__ import annotations

import gc
import importlib.util
import json
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sighub import Form, Kind
from sighub.client._local import StoredIndicator, stored
from sighub.client._matcher import Matcher, TextTooLong
from sighub.wire import Blinder
from tests.conftest import TEST_KEY, make_indicator

BLIND = Blinder(TEST_KEY)


def blinded(kind: Kind, value: str) -> StoredIndicator:
    return stored(make_indicator(kind=kind, value=BLIND.value(kind, value), description=value))


def pattern(kind: Kind, regex: str) -> StoredIndicator:
    return stored(
        make_indicator(
            kind=kind,
            form=Form.PATTERN,
            value=regex,
            key_epoch=None,
            scheme=None,
            description=regex,
        )
    )


RULES = [
    blinded(Kind.KEYWORD, "seller"),
    blinded(Kind.KEYWORD, "on chapter 14"),
    blinded(Kind.HASHTAG, "#sellerlife"),
    blinded(Kind.EMOJI, "🧀🍕"),
    blinded(Kind.URL, "menu-x.carrd.co"),
    blinded(Kind.URL, "files.example/menu"),
    blinded(Kind.PAYMENT, "$cashex01"),
    pattern(Kind.PAYMENT, r"[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}"),
    pattern(Kind.URL, r"t\.me/\+[a-z0-9_]{8,32}"),
]
KEYS = {(TEST_KEY.collaboration, TEST_KEY.epoch): TEST_KEY.secret}

# (text, {(rule description, matched text in the original)})
CORPUS = [
    ("S3LL3R here", {("seller", "S3LL3R")}),
    ("$eller and 5eller", {("seller", "$eller"), ("seller", "5eller")}),
    ("ｓｅｌｌｅｒ", {("seller", "ｓｅｌｌｅｒ")}),
    ("sеllеr (cyrillic e)", {("seller", "sеllеr")}),
    ("sel\u200bler\u00ad", {("seller", "sel\u200bler")}),
    ("s e l l e r", {("seller", "s e l l e r")}),
    ("s.e.l.l.e.r", {("seller", "s.e.l.l.e.r")}),
    ("sellllerrrr!!", {("seller", "sellllerrrr")}),
    ("im On Chapter １４ now", {("on chapter 14", "On Chapter １４")}),
    ("#S3llerLife vibes", {("#sellerlife", "#S3llerLife"), ("seller", "")}),
    ("snack 🧀 🍕 time", {("🧀🍕", "🧀 🍕")}),
    ("snack 🧀\ufe0f🍕", {("🧀🍕", "🧀\ufe0f🍕")}),
    (
        "https://www.Menu-X.carrd.co/?utm_source=ig&fbclid=1",
        {("menu-x.carrd.co", "Menu-X.carrd.co")},
    ),
    ("see files.example/menu/?igshid=x", {("files.example/menu", "files.example/menu")}),
    ("pay $CashEx01 today", {("$cashex01", "$CashEx01")}),
    ("code AB12-cd34-EF56-gh78 works", {(RULES[7].description, "AB12-cd34-EF56-gh78")}),
    ("join t.me/+abcdefgh12", {(RULES[8].description, "t.me/+abcdefgh12")}),
]
BENIGN = [
    "it's a sellers market for used bikes",
    "I read chapter 41 of the book, then chapter 14b",
    "the menu at the cafe had cheese 🧀 but no pizza",
    "pizza 🍕 then cheese 🧀 later",
    "carrd.co is a website builder",
    "files.example/menus is a different page",
    "paid $100 for $cashex02 lessons",
    "code AB12-CD34 is too short",
    "t.me/+abc is too short",
]


def _results(m: Matcher, text: str) -> set[tuple[str, str]]:
    return {(x.description, x.text) for x in m.scan(text)}


@pytest.mark.parametrize(("text", "expected"), CORPUS)
def test_disguised_tells_fire_with_original_spans(
    text: str, expected: set[tuple[str, str]]
) -> None:
    found = _results(Matcher(RULES, KEYS), text)
    for desc, piece in expected:
        if piece:
            assert (desc, piece) in found, found
    for match in Matcher(RULES, KEYS).scan(text):
        assert text[match.start : match.end] == match.text
        assert match.publisher == "platform-a" and match.collaboration == "sg-csam"


@pytest.mark.parametrize("text", BENIGN)
def test_benign_text_does_not_fire(text: str) -> None:
    assert Matcher(RULES, KEYS).scan(text) == []


def test_match_carries_provenance() -> None:
    (m,) = Matcher(RULES, KEYS).scan("on chapter 14")
    assert m.kind is Kind.KEYWORD and m.confidence == 80 and m.labels == ("seller-term",)
    assert (m.start, m.end) == (0, 13) and m.indicator == RULES[1].id


needs_hyperscan = pytest.mark.skipif(
    importlib.util.find_spec("hyperscan") is None, reason="hyperscan does not install here"
)


@needs_hyperscan
@pytest.mark.parametrize("text", [t for t, _ in CORPUS] + BENIGN)
def test_hyperscan_and_re2_agree_on_the_corpus(text: str) -> None:
    assert Matcher(RULES, KEYS, "hyperscan").scan(text) == Matcher(RULES, KEYS, "re2").scan(text)


@needs_hyperscan
@settings(deadline=None)
@given(st.text(alphabet="abcdefgh0123456789-+./ tme\u200bＡ", max_size=60))
def test_hyperscan_and_re2_agree_on_random_text(text: str) -> None:
    assert Matcher(RULES, KEYS, "hyperscan").scan(text) == Matcher(RULES, KEYS, "re2").scan(text)


def test_missing_key_epoch_is_reported_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    m = Matcher(RULES, {})
    assert m.scan("s3ll3r") == [] and "no key" in caplog.text
    assert json.dumps(m.size) == str(len(RULES))


def test_sinks_receive_changes(tmp_path: Path) -> None:
    from sighub import JsonlSink, Sink

    sink = JsonlSink(tmp_path / "out.jsonl")
    assert isinstance(sink, Sink)
    sink.upsert(RULES[:2])
    sink.remove([RULES[0].id])
    lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [x["op"] for x in lines] == ["upsert", "upsert", "remove"]
    assert lines[0]["indicator"]["id"] == RULES[0].id and lines[2]["id"] == RULES[0].id


def test_rules_of_every_key_epoch_fire() -> None:
    from sighub.wire import CollabKey

    rotated = CollabKey("sg-csam", 1, bytes(range(1, 33)))
    old_rule = blinded(Kind.KEYWORD, "seller")
    new_rule = stored(
        make_indicator(
            value=Blinder(rotated).value(Kind.KEYWORD, "menu in bio"),
            key_epoch=1,
            description="menu in bio",
        )
    )
    keys = {**KEYS, ("sg-csam", 1): rotated.secret}
    found = _results(Matcher([old_rule, new_rule], keys), "s3ll3r, menu in bio")
    assert found == {("seller", "s3ll3r"), ("menu in bio", "menu in bio")}


# -- any str, linear time ------------------------------------------------------------------
MATCHER = Matcher(RULES, KEYS)


@settings(max_examples=2000, deadline=None)
@given(st.text())  # lone surrogates included
def test_scan_accepts_any_str_and_spans_index_it(text: str) -> None:
    for m in MATCHER.scan(text):
        assert text[m.start : m.end] == m.text


def test_lone_surrogates_read_as_replacement_characters() -> None:
    text = "\ud800s3ll3r\udfff pay $CashEx01 join t.me/+abcdefgh12/\udc80"
    found = {(m.description, m.start, m.end) for m in MATCHER.scan(text)}
    assert found == {("seller", 1, 7), ("$cashex01", 13, 22), (RULES[8].description, 28, 44)}
    replaced = "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)
    assert MATCHER.scan(text) == MATCHER.scan(replaced)  # no span holds a surrogate here


def test_a_text_over_the_limit_is_refused() -> None:
    with pytest.raises(TextTooLong, match="received 11 characters, expected at most 10"):
        MATCHER.scan("s3ll3r s3ll", max_chars=10)
    assert MATCHER.scan("s3ll3r", max_chars=10) and MATCHER.scan("x" * 20, max_chars=None) == []


def _realistic(n: int) -> str:
    words = ["ka", "lomi", "S3LL3R", "🧀🍕", "x-menu.carrd.co/p?utm_source=ig", "$cashex01",
             "#tag", "ｓｅｌｌｅｒ", "山川", "dm\u200bme", "t.me/+abcdefgh12", "14yo,"]  # fmt: skip
    out: list[str] = []
    size = k = 0
    while size < n:
        out.append(words[(k * 7 + k // 3) % len(words)])
        size += len(out[-1]) + 1
        k += 1
    return " ".join(out)[:n]


def _idn_labels(n: int) -> str:
    """Host labels of 2,000 distinct CJK letters each (Punycode was quadratic in those)."""
    labels = ["".join(chr(0x4E00 + (j * 2000 + i) % 20000) for i in range(2000)) for j in range(10)]
    return (".".join(labels * (n // 20_000 + 1)))[: n - 3] + ".co"


# Adversarial shapes: each was (or could be) superlinear somewhere in canon/extract/blinding.
SHAPES = {
    "realistic": _realistic,
    "one long word": lambda n: ("s3llr" * n)[:n],
    "spaced letters": lambda n: ("s e l l e r " * n)[:n],
    "dots": lambda n: "." * n,
    "dots and spaces": lambda n: ". " * (n // 2),
    "emoji": lambda n: "🧀🍕" * (n // 2),
    "digits": lambda n: "1" * n,
    "dollars": lambda n: "$" * n,
    "dotted labels": lambda n: ("ab." * n)[:n],
    "path segments": lambda n: "x.co/" + "a/" * (n // 2),
    "distinct idn letters": _idn_labels,
}


def _seconds(text: str) -> float:
    """CPU seconds of a scan (the best of three): other processes on the machine take
    wall-clock time from it, not CPU time.  The garbage collector is off meanwhile: its
    passes over a heap that earlier tests filled grow with that heap, not with the text."""
    runs = []
    gc.collect()
    gc.disable()
    try:
        for _ in range(3):
            start = time.process_time()
            MATCHER.scan(text, max_chars=None)
            runs.append(time.process_time() - start)
    finally:
        gc.enable()
    return min(runs)


@pytest.mark.parametrize("shape", SHAPES)
def test_scan_time_is_linear_in_text_length(shape: str) -> None:
    """8x the text may take at most 16x the time (quadratic would take 64x); a floor on the
    small time keeps timer noise out of the ratio."""
    make = SHAPES[shape]
    MATCHER.scan(make(1000), max_chars=None)  # warm the caches
    small, large = _seconds(make(8_000)), _seconds(make(64_000))
    assert large < 16 * max(small, 0.002), (shape, small, large)


def test_punycode_is_the_codecs() -> None:
    from sighub.client._canon._url import punycode

    samples = ["bücher", "例え", "ｓｅｌｌｅｒ", "a-ü-b", "ü" * 50, "абв" * 3 + "ab"]
    samples.append("".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(1000)))
    for s in samples:
        assert punycode(s) == s.encode("punycode").decode("ascii")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=0x20), min_size=1, max_size=40))
def test_punycode_agrees_with_the_codec_on_random_labels(text: str) -> None:
    from sighub.client._canon._url import punycode

    assert punycode(text) == text.encode("punycode").decode("ascii")


def test_label_expansion_bound_holds_for_the_table() -> None:
    import unicodedata

    from sighub.client._canon._table import HOST_FOLD, WORD
    from sighub.client._canon._url import MAX_LABEL_EXPANSION

    longest = max(
        len(unicodedata.normalize("NFD", HOST_FOLD.get(cp, chr(cp))))
        for lo, hi in WORD
        for cp in range(lo, hi + 1)
    )
    assert longest == MAX_LABEL_EXPANSION


def test_url_bounds_keep_every_publishable_value() -> None:
    """The longest host and path a 512-character value can hold still fire inside longer
    ones; past the bounds nothing publishable could match."""
    host = "x." * 254 + "co"  # 256 labels, 510 characters
    path = "x.co" + "/a" * 254  # 254 segments
    rules = [blinded(Kind.URL, host), blinded(Kind.URL, path)]
    m = Matcher(rules, KEYS)
    text = "see y." * 1 + "z." * 40 + host + " and " + path + "/b/c?q=1 ok"
    assert {x.description for x in m.scan(text)} == {host, path}


def test_indicators_on_the_same_span_are_one_match_that_keeps_them_all() -> None:
    """A blinded keyword from one publisher and a pattern from another fire on the same
    span: one Match, both hits, summarised under the strictest terms."""
    from datetime import timedelta

    from sighub import Tlp
    from tests.conftest import NOW, make_publisher

    word = stored(
        make_indicator(
            value=BLIND.value(Kind.KEYWORD, "seller"),
            confidence=60,
            labels=("seller-term",),
            tlp=Tlp.GREEN,
            valid_until=NOW + timedelta(days=400),
        )
    )
    regex = stored(
        make_indicator(
            kind=Kind.KEYWORD,
            form=Form.PATTERN,
            value=r"seller",
            key_epoch=None,
            scheme=None,
            publisher=make_publisher("platform-c"),
            confidence=90,
            labels=("menu", "seller-term"),
            tlp=Tlp.RED,
            valid_until=NOW + timedelta(days=300),
        )
    )
    other = blinded(Kind.KEYWORD, "menu")
    matcher = Matcher([word, regex, other], KEYS, engine="re2")
    found = matcher.scan("new Seller menu")
    assert [(m.start, m.end, m.text) for m in found] == [(4, 10, "Seller"), (11, 15, "menu")]
    both = found[0]
    assert both.indicators == (regex.id, word.id)  # highest confidence first
    assert [h.publisher for h in both.hits] == ["platform-c", "platform-a"]
    assert both.indicator == regex.id and both.publisher == "platform-c"
    assert both.confidence == 90
    assert both.labels == ("menu", "seller-term")
    assert both.tlp is Tlp.RED  # the strictest of green and red
    assert both.valid_until == word.valid_until  # the latest expiry
    assert found[1].indicators == (other.id,) and found[1].tlp is Tlp.AMBER


def test_an_indicator_is_listed_once_per_span() -> None:
    """Two rules holding the same digest (two versions in two epochs would too) never
    repeat an indicator within a Match."""
    rule = blinded(Kind.KEYWORD, "seller")
    matcher = Matcher([rule, rule], KEYS, engine="re2")
    (m,) = matcher.scan("seller")
    assert m.hits == (m.hits[0],) and m.indicator == rule.id


@pytest.mark.parametrize("engine", ["re2", "hyperscan"])
def test_a_pattern_firing_everywhere_reports_a_bounded_number_of_spans(engine: str) -> None:
    """A short pattern over a 1 MiB text would be a million matches for one scan: each
    pattern reports at most MAX_SPANS spans, the first ones, in order."""
    from sighub.client._matcher import MAX_SPANS

    if engine == "hyperscan":
        pytest.importorskip("hyperscan")
    gift = pattern(Kind.PAYMENT, r"[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}")
    text = "abcd-efgh-ijkl-mnop " * 50_000  # 1,000,000 characters, 50,000 codes
    found = Matcher([gift], KEYS, engine=engine).scan(text)
    assert len(found) == MAX_SPANS
    assert [(m.start, m.end) for m in found[:2]] == [(0, 19), (20, 39)]
