"""canon/1: golden vectors, rule invariants, spans and hypothesis properties."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sighub import Kind
from sighub.client._canon import TABLE_SHA256, fold
from sighub.client._canon._table import TABLE_FILE
from sighub.wire import CanonError, canonicalize, extract
from tests.vectors._codepoints import decoded

VECTORS = Path(__file__).parent / "vectors"
CANON_LINES = [json.loads(x) for x in (VECTORS / "canon-v1.jsonl").read_text().splitlines()]
# Pinned: any change to the shipped folding table is a canon/2 change, not an edit.
PINNED_TABLE_SHA256 = "83e341b28c9edb63e1d36e04daac12933af3ce2cb216da5b5b6882fe0c06eaae"


def test_table_is_pinned() -> None:
    raw = (
        Path(__file__).parents[1] / "src" / "sighub" / "client" / "_canon" / TABLE_FILE
    ).read_bytes()
    assert hashlib.sha256(raw).hexdigest() == TABLE_SHA256 == PINNED_TABLE_SHA256


def test_vector_file_covers_every_rule_both_ways() -> None:
    assert len(CANON_LINES) >= 200
    rules = {r["rule"] for r in CANON_LINES}
    positive = {r["rule"] for r in CANON_LINES if "same_as" in r}
    negative = {r["rule"] for r in CANON_LINES if "differs_from" in r}
    for rule in ("case-width", "diacritics", "invisible", "look-alike-cyrillic",
                 "look-alike-greek", "leet", "repeats", "spelled-apart", "emoji", "url",
                 "payment", "hashtag"):  # fmt: skip
        assert rule in positive, rule
    for rule in ("numbers", "words", "emoji-zwj", "emoji-keycap", "emoji-flag", "leet"):
        assert rule in negative, rule
    assert rules >= positive | negative


@pytest.mark.parametrize("row", CANON_LINES, ids=lambda r: f"{r['rule']}:{decoded(r, 'input')!r}")
def test_golden_vector(row: dict[str, str]) -> None:
    assert canonicalize(row["kind"], decoded(row, "input")) == row["canonical"]
    if "same_as" in row:
        assert canonicalize(row["kind"], row["same_as"]) == row["canonical"]
    if "differs_from" in row:
        assert canonicalize(row["kind"], row["differs_from"]) != row["canonical"]


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        ("keyword", "   ", "1-512"),
        ("keyword", "!!! ???", "no letters or digits"),
        ("keyword", "one two three four five", "at most 4"),
        ("hashtag", "#a b", "one '#tag'"),
        ("emoji", "🧀 cheese", "not an emoji"),
        ("emoji", "🧀🍕🌽🍪✨", "at most 4"),
        ("url", "not a link", "expected a link"),
        ("url", "localhost/x", "expected a link"),
        ("payment", "@someone", "expected '.cashtag'"),
        ("color", "x", "expected one of"),
    ],
)
def test_rejections_name_kind_and_value(kind: str, value: str, message: str) -> None:
    with pytest.raises(CanonError, match=message):
        canonicalize(kind, value)


def test_candidates_and_original_spans() -> None:
    text = (
        "Ｓ3ＬＬ3Ｒ here 🧀\u200b🍕 https://www.X-Menu.carrd.co/p?utm_source=a "
        "pay $Cash_01 #S3llerLife"
    )
    found = {(c.kind.value, c.value): text[c.start : c.end] for c in extract(text)}
    assert found[("keyword", "seler")] == "Ｓ3ＬＬ3Ｒ"
    assert found[("keyword", "seler here")] == "Ｓ3ＬＬ3Ｒ here"
    assert found[("emoji", "🧀🍕")] == "🧀\u200b🍕"
    assert found[("url", "carrd.co")] == "carrd.co"
    assert found[("url", "x-menu.carrd.co")] == "X-Menu.carrd.co"
    assert found[("url", "x-menu.carrd.co/p")] == "https://www.X-Menu.carrd.co/p"
    assert found[("payment", "cashapp:cash_01")] == "$Cash_01"
    assert found[("hashtag", "selerlife")] == "#S3llerLife"


def test_phrases_stop_at_four_words_and_zwj_is_never_split() -> None:
    words = {c.value for c in extract("a1 b2 c3 d4 e5") if c.kind is Kind.KEYWORD}
    assert "a1 b2 c3 d4" in words and "a1 b2 c3 d4 e5" not in words
    emoji = {c.value for c in extract("👨‍👩‍👧 ok") if c.kind is Kind.EMOJI}
    assert emoji == {"👨\u200d👩\u200d👧"}


def test_benign_text_sharing_words_does_not_produce_indicator_forms() -> None:
    text = "chapter 41 of the menu book; 61 sellers; menus"
    values = {c.value for c in extract(text)}
    assert "on chapter 14" not in values and "14" not in values and "menu in bio" not in values
    assert {"41", "61", "menus", "menu", "selers"} <= values


_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60
) | st.lists(
    st.sampled_from(["s3ll3r", "$eller", " ", "e", ".", "🧀", "\u200b", "\ufe0f", "ａ", "е",
                     "#tag", "x.carrd.co/a?utm_source=1", "$cash", "👍🏽", "14", "ß", "ﬁ", "①",
                     "\u0301", "s e l", "paypal.me/ab", "@", "!", "|", "_", "𝐒", "𐐀"]),
    max_size=12,
).map("".join)  # fmt: skip


@settings(deadline=None)
@given(_TEXT)
def test_candidate_spans_lie_inside_and_recanonicalize(text: str) -> None:
    for c in extract(text):
        assert 0 <= c.start < c.end <= len(text)
        piece = text[c.start : c.end]
        assert canonicalize(c.kind, piece) == c.value, (c, piece)


@settings(deadline=None)
@given(_TEXT, st.sampled_from(list(Kind)))
@example("0.AÀ", Kind.URL)  # a non-ASCII top-level label: its canonical form ends in xn--
def test_canonicalization_is_idempotent(text: str, kind: Kind) -> None:
    try:
        once = canonicalize(kind, text)
    except CanonError:
        return
    assert canonicalize(kind, once) == once


@settings(deadline=None)
@given(_TEXT)
def test_fold_offsets_point_into_the_original(text: str) -> None:
    folded, src = fold(text)
    if src is None:
        assert len(folded) == len(text)
        return
    assert len(src) == len(folded) + 1 and src[-1] == len(text)
    assert src == sorted(src)
