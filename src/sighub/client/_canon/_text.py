"""canon/1 for words: folding with an offset map, tokens, leetspeak, repeats, spacing.

The pipeline works on a *folded* copy of the text (the shipped table: case, width,
diacritics, invisible characters, look-alike letters) and keeps, for every folded
character, the index of the original character it came from, so that every token can be
reported with its span in the ORIGINAL text.
"""

from __future__ import annotations

import bisect
import operator
import re
from collections.abc import Mapping
from typing import Final

from sighub.client._canon._table import (
    DIGITS,
    FOLD,
    FOLD_TRANSLATE,
    LETTERS,
    NON_UNIT,
    WORD,
    bmp_class,
    one_of,
    run_of,
)

SYMBOLS: Final = "$@!|"
_LETTER: Final = one_of(LETTERS)
TOKEN_RE: Final = re.compile(run_of(WORD, r"$@!|"))
# Texts without astral letters or digits (nearly all: emoji are not letters) take patterns
# whose classes are pure BMP bitmaps, several times faster than the full ones.
_BMP_UNIT: Final = bmp_class(WORD, r"$@!|")
_SPLIT_BMP_RE: Final = re.compile(f"({_BMP_UNIT}+)")
_SPLIT_RE: Final = re.compile(f"({TOKEN_RE.pattern})")
_ASTRAL_RE: Final = re.compile("[\U00010000-\U0010ffff]")
_ASTRAL_WORD_STARTS: Final = [lo for lo, hi in WORD if hi >= 0x10000]
_ASTRAL_WORD_ENDS: Final = [hi for lo, hi in WORD if hi >= 0x10000]


def _bmp_words_only(folded: str) -> bool:
    """True if no letter or digit of ``folded`` lies outside the BMP (emoji may)."""
    if folded.isascii():
        return True
    for ch in _ASTRAL_RE.findall(folded):
        k = bisect.bisect_right(_ASTRAL_WORD_STARTS, ord(ch)) - 1
        if k >= 0 and ord(ch) <= _ASTRAL_WORD_ENDS[k]:
            return False
    return True


# Letters spelled apart ("s e l l e r", "s.e.l.l.e.r", "s-e-l-l-e-r") are three or more
# tokens in a row whose canonical forms are one character each, at least two of them
# letters: they merge into one word.  Deciding on canonical tokens (not on separators or
# raw lengths) keeps canon/1 idempotent.
MIN_SPELLED: Final = 3
_RUN_OF_SINGLES: Final = b"\x01" * MIN_SPELLED
_RUNS_RE: Final = re.compile(b"\x01{%d,}" % MIN_SPELLED)
_IS_SINGLE: Final = operator.itemgetter(3)
_VALUE: Final = operator.itemgetter(0)
LETTER_RE: Final = re.compile(_LETTER)
_NON_DIGIT_RE: Final = re.compile(f"(?!{one_of(DIGITS)}).", re.DOTALL)
_NUM_UNIT_RE: Final = re.compile(
    f"({run_of(DIGITS)})({run_of(LETTERS)})|({run_of(LETTERS)})({run_of(DIGITS)})"
)
_REPEAT_RE: Final = re.compile(f"({_LETTER})\\1+")
_NON_ASCII_RE: Final = re.compile(r"[^\x00-\x7f]+")
# A phrase break in a word list (canon/2's; canon/1 words never hold a line break), so a
# phrase that contains one equals no indicator.
BREAK: Final = "\n"
LEET: Final = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g"}
    | {"@": "a", "$": "s", "!": "i", "|": "i"}
)

_CACHE_MAX: Final = 1 << 17
# Only short tokens are cached: words recur, a megabyte-long "word" does not, and a cache
# of long keys would grow with every text scanned.
CACHE_KEY_MAX: Final = 64
_Hit = tuple[str, int, int, bool]
_token_cache: dict[str, _Hit] = {}
_SURROGATE_RE: Final = re.compile("[\ud800-\udfff]")


def scalar(text: str) -> str:
    """``text`` with every lone surrogate (a ``str`` that is not valid Unicode, e.g. from a
    JSON ``"\\ud800"`` escape) read as U+FFFD, one code point for one, so every index into
    the result is an index into ``text``.  canon/1 treats both alike (neither is a letter,
    a digit, a space or part of an emoji); only values that keep such a character (URL
    paths) differ, and they become encodable."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE_RE.sub("\ufffd", text)
    return text


def fold(text: str) -> tuple[str, list[int] | None]:
    """Fold ``text`` with the table; return the folded text and, unless folding kept every
    character in place, ``src`` with ``src[j]`` = original index of folded char ``j`` (plus a
    final entry ``len(text)``)."""
    return fold_with(text, FOLD_TRANSLATE, NON_UNIT, FOLD)


def fold_with(
    text: str,
    translate: Mapping[int, int | str],
    non_unit: frozenset[str],
    table: Mapping[int, str],
) -> tuple[str, list[int] | None]:
    """``fold`` with a canon's own tables (canon/2 passes its own): ASCII lowered, each
    non-ASCII run translated, offsets built only for runs whose fold changes lengths."""
    if text.isascii():
        return text.lower(), None
    parts: list[str] = []
    odd: list[tuple[int, int]] = []  # non-ASCII runs whose fold changes lengths
    pos = 0
    for m in _NON_ASCII_RE.finditer(text):
        start, end = m.span()
        parts.append(text[pos:start].lower())
        run = m.group()
        parts.append(run.translate(translate))
        if not non_unit.isdisjoint(run):
            odd.append((start, end))
        pos = end
    parts.append(text[pos:].lower())
    folded = "".join(parts)
    return folded, (_offsets(text, odd, table) if odd else None)


def fold_fast(text: str) -> str:
    """``fold(text)[0]`` without the offset map (the matcher's hot path)."""
    if text.isascii():
        return text.lower()
    return text.translate(FOLD_TRANSLATE)


def _offsets(text: str, odd: list[tuple[int, int]], table: Mapping[int, str]) -> list[int]:
    src: list[int] = []
    pos = 0
    for start, end in odd:
        src.extend(range(pos, start))
        for i in range(start, end):
            src.extend([i] * len(table.get(ord(text[i]), text[i])))
        pos = end
    src.extend(range(pos, len(text) + 1))
    return src


def fold_token(raw: str) -> str:
    """The canonical form of one token (already folded, symbols trimmed)."""
    return _token(raw)[0] if raw else ""


def _token(raw: str) -> _Hit:
    """(canonical value, leading chars trimmed, trailing chars trimmed, is one char) of a
    raw token; the value is "" when nothing is left.  Cached: words recur across texts."""
    hit = _token_cache.get(raw)
    if hit is None:
        i, j = _trim(raw)
        value = _fold_token(raw[i:j]) if i < j else ""
        hit = (value, i, len(raw) - j, len(value) == 1)
        if len(raw) <= CACHE_KEY_MAX:
            if len(_token_cache) >= _CACHE_MAX:
                _token_cache.clear()
            _token_cache[raw] = hit
    return hit


def _fold_token(raw: str) -> str:
    if LETTER_RE.search(raw) is None:
        return _NON_DIGIT_RE.sub("", raw)  # a number: never leet-folded, never collapsed
    m = _NUM_UNIT_RE.fullmatch(raw)
    if m is not None:
        digits = m.group(1) or m.group(4)
        letters = m.group(2) or m.group(3)
        if len(digits) >= 2 or len(letters) <= 2:
            return _REPEAT_RE.sub(r"\1", raw)  # a number with a unit: "14yo", "5ft"
    return _REPEAT_RE.sub(r"\1", raw.translate(LEET))


def _trim(raw: str) -> tuple[int, int]:
    """Leading/trailing symbols that are punctuation, not leetspeak: '@name', 'wow!'."""
    i, j = 0, len(raw)
    letter_follows: bool | None = None  # searched once: raw[:i] holds symbols only
    while i < j and raw[i] in SYMBOLS:
        if raw[i] == "$":
            if letter_follows is None:
                letter_follows = LETTER_RE.search(raw, i + 1) is not None
            if letter_follows:
                break  # "$eller", "$3ll3r": leetspeak; "$100": a price
        i += 1
    while j > i and raw[j - 1] in SYMBOLS:
        j -= 1
    return i, j


def token_values(folded: str) -> list[str]:
    """``[value for value, _, _ in tokens(folded)]``, computed without spans."""
    raws = (_SPLIT_BMP_RE if _bmp_words_only(folded) else _SPLIT_RE).findall(folded)
    cached = list(map(_token_cache.get, raws))
    found: list[_Hit] = (
        cached  # type: ignore[assignment]  # no None in it
        if None not in cached
        else [h or _token(r) for h, r in zip(cached, raws, strict=True)]
    )
    hits = [h for h in found if h[0]]
    values = list(map(_VALUE, hits))
    for a, b, merged in _spelled_runs(values, bytes(map(_IS_SINGLE, hits))):
        values[a:b] = [merged]
    return values


def tokens(folded: str) -> list[tuple[str, int, int]]:
    """Canonical tokens with their spans in ``folded``."""
    bmp = _bmp_words_only(folded)
    # split() with a capturing group alternates separator, token, separator...: cheaper
    # than one match object per token.
    parts = (_SPLIT_BMP_RE if bmp else _SPLIT_RE).split(folded)
    out: list[tuple[str, int, int]] = []
    append, cache = out.append, _token_cache
    pos = len(parts[0])
    for k in range(1, len(parts), 2):
        raw = parts[k]
        end = pos + len(raw)
        hit = cache.get(raw) or _token(raw)
        if hit[0]:
            append((hit[0], pos + hit[1], end - hit[2]))
        pos = end + len(parts[k + 1])
    values = [v for v, _, _ in out]
    for a, b, merged in _spelled_runs(values, bytes(len(v) == 1 for v in values)):
        out[a:b] = [(merged, out[a][1], out[b - 1][2])]
    return out


def _spelled_runs(values: list[str], singles: bytes) -> list[tuple[int, int, str]]:
    """The runs of one-character tokens that merge (letters spelled apart), as
    (start, end, merged value), last run first so callers can splice in order.
    ``singles`` has a 1 for each token whose canonical form is one character."""
    if _RUN_OF_SINGLES not in singles:
        return []
    out = []
    for m in reversed(list(_RUNS_RE.finditer(singles))):
        a, b = m.span()
        chars = "".join(values[a:b])
        if len(LETTER_RE.findall(chars)) >= 2:
            out.append((a, b, fold_token(chars)))
    return out
