"""Synthetic posts for benchmarks: Zipf-distributed pseudo-words in several scripts, with
emoji codes, links, hashtags, handles and obfuscated spellings mixed in.  Nothing real."""

from __future__ import annotations

import itertools
import random

_LATIN = ["ka", "lo", "mi", "ne", "ra", "so", "tu", "vel", "den", "ar", "is", "on", "ber"]
_CYRILLIC = ["ка", "ло", "ми", "не", "ра", "со", "ту", "ве", "ден"]
_CJK = ["山", "川", "田", "日", "月", "火", "水", "木", "金", "土"]
_EMOJI = ["🧀", "🍕", "🗺️", "🌽", "🍪", "👍🏽", "👨‍👩‍👧", "🇺🇸", "1️⃣", "✨", "🔥"]
_EXTRAS = [
    "s3ll3r", "$eller", "m.e.n.u", "on chapter 14", "#s3llerlife", "🧀🍕",
    "x-menu.carrd.co/prices?utm_source=ig", "https://www.example-shop.carrd.co/",
    "$cashexample1", "paypal.me/example_handle", "venmo @example-name", "dm\u200bme",
    "ｓｅｌｌｅｒ", "sеller", "sellerrrr", "t.me/+abcdefgh123", "discord.gg/abcd1234",
]  # fmt: skip


_STANDARD = 20_000


def _vocab(rng: random.Random, size: int) -> list[str]:
    words: list[str] = []
    seen: set[str] = set()
    for i in range(size):
        pool = _CYRILLIC if i % 9 == 4 else _CJK if i % 23 == 7 else _LATIN
        n = 1 + min(rng.randrange(1, 5), 1 + i.bit_length() // 4)
        word = "".join(rng.choice(pool) for _ in range(n))
        # Past the 20,000 words of the standard corpus (kept as it was, repeats included),
        # a repeat grows by a syllable: a large vocabulary holds that many distinct words.
        while i >= _STANDARD and word in seen:
            word += rng.choice(pool)
        seen.add(word)
        words.append(word)
    return words


def vocabulary(size: int = 20_000, seed: int = 7) -> list[str]:
    """The words of ``posts(..., seed=seed, vocab=size)``, most frequent first."""
    return _vocab(random.Random(seed), size)


def posts(count: int, size_bytes: int, seed: int = 7, vocab: int = 20_000) -> list[str]:
    """``count`` posts of about ``size_bytes`` UTF-8 bytes each, words drawn (Zipf) from a
    vocabulary of ``vocab`` pseudo-words."""
    rng = random.Random(seed)
    words = _vocab(rng, vocab)
    cum = list(itertools.accumulate(1.0 / (r + 1) ** 1.05 for r in range(len(words))))
    out = []
    for _ in range(count):
        parts: list[str] = []
        size = 0
        while size < size_bytes:
            roll = rng.random()
            if roll < 0.03:
                piece = rng.choice(_EXTRAS)
            elif roll < 0.06:
                piece = "".join(rng.choices(_EMOJI, k=rng.randrange(1, 4)))
            else:
                piece = rng.choices(words, cum_weights=cum)[0]
                if rng.random() < 0.1:
                    piece = piece.capitalize() + rng.choice([",", ".", "!", ""])
            parts.append(piece)
            size += len(piece.encode()) + 1
        text = " ".join(parts)
        while len(text.encode()) > size_bytes:
            text = text[:-1]
        out.append(text)
    return out
