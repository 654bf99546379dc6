from __future__ import annotations

import json
from pathlib import Path

import pytest

from client import Blinder, CollabKey, Kind, ModelError, blind, canonicalize, extract
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
