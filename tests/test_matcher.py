"""The local rule engine on an obfuscation corpus: recall on disguised tells, precision on
benign text that shares words with them, identical results from both pattern engines."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client import Blinder, Form, Kind
from client._local import StoredIndicator, stored
from client._matcher import Matcher
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
    from client import JsonlSink, Sink

    sink = JsonlSink(tmp_path / "out.jsonl")
    assert isinstance(sink, Sink)
    sink.upsert(RULES[:2])
    sink.remove([RULES[0].id])
    lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [x["op"] for x in lines] == ["upsert", "upsert", "remove"]
    assert lines[0]["indicator"]["id"] == RULES[0].id and lines[2]["id"] == RULES[0].id


def test_rules_of_every_key_epoch_fire() -> None:
    from client import CollabKey

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
