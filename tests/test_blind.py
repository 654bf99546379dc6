from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sighub import Kind, ModelError
from sighub.client._canon import fold
from sighub.client._canon._text import fold_fast, token_values, tokens
from sighub.wire import Blinder, CollabKey, blind, canonicalize, extract
from tests.conftest import TEST_KEY

VECTORS = Path(__file__).parent / "vectors" / "blind-v1.jsonl"


def test_blinding_vectors() -> None:
    rows = [json.loads(x) for x in VECTORS.read_text().splitlines()]
    assert len(rows) >= 10
    for row in rows:
        key = CollabKey(row["collaboration"], row["epoch"], bytes.fromhex(row["key_hex"]))
        canonical = canonicalize(row["kind"], row["input"])
        assert canonical == row["canonical"]
        assert blind(key, Kind(row["kind"]), canonical) == row["digest"]
        assert Blinder(key).value(Kind(row["kind"]), row["input"]) == row["digest"]


def test_digest_separates_kind_key_and_epoch() -> None:
    digest = blind(TEST_KEY, Kind.KEYWORD, "seler")
    assert blind(TEST_KEY, Kind.HASHTAG, "seler") != digest
    assert blind(CollabKey("sg-csam", 1, TEST_KEY.secret), Kind.KEYWORD, "seler") == digest
    assert blind(CollabKey("sg-csam", 0, bytes(32)), Kind.KEYWORD, "seler") != digest


def test_text_digests_match_published_values_with_spans() -> None:
    blinder = Blinder(TEST_KEY)
    wanted = {
        blinder.value(Kind.KEYWORD, "on chapter 14"): "keyword",
        blinder.value(Kind.EMOJI, "🧀🍕"): "emoji",
        blinder.value(Kind.URL, "menu-x.carrd.co"): "url",
    }
    text = "ON CHAPTER １４ 🧀🍕 see https://www.menu-x.carrd.co/?utm_source=a"
    scanned = blinder.text(text)
    hits = {}
    for k, digest in enumerate(scanned.digests):
        if digest.hex() in wanted:
            kind, start, end = scanned.candidate(k)
            hits[kind] = text[start:end]
    assert hits == {"keyword": "ON CHAPTER １４", "emoji": "🧀🍕", "url": "menu-x.carrd.co"}
    assert len(scanned.digests) == len(extract(text))


def test_collab_key_validation_never_prints_the_secret() -> None:
    with pytest.raises(ModelError, match="32 bytes"):
        CollabKey("sg-csam", 0, b"short")
    assert "secret" not in repr(TEST_KEY) or TEST_KEY.secret.hex() not in repr(TEST_KEY)
    assert TEST_KEY.secret.hex() not in repr(TEST_KEY)


_TEXT = st.lists(
    st.sampled_from(["s3ll3r", "on", "chapter", "14", " ", ", ", "s e l", "🧀", "🍕", "\ufe0f",
                     "#tag", "x.carrd.co/a?utm_source=1", "$cash", "ｍｅｎｕ", "е", "\u200b",
                     "paypal.me/ab", "m.e.n.u", "a", "𐐀", "ß", "!"]),
    max_size=25,
).map("".join) | st.text(max_size=40)  # fmt: skip


@settings(deadline=None)
@given(_TEXT)
def test_fast_scan_equals_extract_then_blind(text: str) -> None:
    blinder = Blinder(TEST_KEY)
    scanned = blinder.text(text)
    fast = sorted((scanned.candidate(k), d.hex()) for k, d in enumerate(scanned.digests))
    slow = sorted(
        ((c.kind.value, c.start, c.end), blind(TEST_KEY, c.kind, c.value)) for c in extract(text)
    )
    assert fast == slow


@settings(deadline=None)
@given(_TEXT)
def test_token_values_equal_tokens(text: str) -> None:
    folded = fold_fast(text)
    assert folded == fold(text)[0]
    assert token_values(folded) == [v for v, _, _ in tokens(folded)]
