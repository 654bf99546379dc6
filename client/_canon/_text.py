"""canon/1 for words: folding with an offset map, tokens, leetspeak, repeats, spacing.

The pipeline works on a *folded* copy of the text (the shipped table: case, width,
diacritics, invisible characters, look-alike letters) and keeps, for every folded
character, the index of the original character it came from, so that every token can be
reported with its span in the ORIGINAL text.
"""

from __future__ import annotations

import re
from typing import Final

from client._canon._table import (
    DIGITS,
    FOLD,
    LETTERS,
    NON_UNIT,
    WORD,
    bmp_class,
    has_astral,
    one_of,
    run_of,
)

SYMBOLS: Final = "$@!|"
_LETTER: Final = one_of(LETTERS)
TOKEN_RE: Final = re.compile(run_of(WORD, r"$@!|"))
# Texts without astral letters or digits (nearly all: emoji are not letters) take patterns
# whose classes are pure BMP bitmaps, several times faster than the full ones.
_BMP_UNIT: Final = bmp_class(WORD, r"$@!|")
_TOKEN_BMP_RE: Final = re.compile(_BMP_UNIT + "+")
_ASTRAL_WORD_RE: Final = re.compile(has_astral(WORD))
# Letters spelled apart ("s e l l e r", "s.e.l.l.e.r", "s-e-l-l-e-r") are three or more
# one-character tokens in a row, at least two of them letters: they merge into one word.
# Deciding on tokens rather than separators keeps canon/1 idempotent.
MIN_SPELLED: Final = 3
LETTER_RE: Final = re.compile(_LETTER)
_NON_DIGIT_RE: Final = re.compile(f"(?!{one_of(DIGITS)}).", re.DOTALL)
_NUM_UNIT_RE: Final = re.compile(
    f"({run_of(DIGITS)})({run_of(LETTERS)})|({run_of(LETTERS)})({run_of(DIGITS)})"
)
_REPEAT_RE: Final = re.compile(f"({_LETTER})\\1+")
_NON_ASCII_RE: Final = re.compile(r"[^\x00-\x7f]+")
LEET: Final = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g"}
    | {"@": "a", "$": "s", "!": "i", "|": "i"}
)

_CACHE_MAX: Final = 1 << 17
_token_cache: dict[str, str] = {}


def fold(text: str) -> tuple[str, list[int] | None]:
    """Fold ``text`` with the table; return the folded text and, unless folding kept every
    character in place, ``src`` with ``src[j]`` = original index of folded char ``j`` (plus a
    final entry ``len(text)``)."""
    if text.isascii():
        return text.lower(), None
    parts: list[str] = []
    odd: list[tuple[int, int]] = []  # non-ASCII runs whose fold changes lengths
    pos = 0
    for m in _NON_ASCII_RE.finditer(text):
        start, end = m.span()
        parts.append(text[pos:start].lower())
        run = m.group()
        parts.append(run.translate(FOLD))
        if not NON_UNIT.isdisjoint(run):
            odd.append((start, end))
        pos = end
    parts.append(text[pos:].lower())
    folded = "".join(parts)
    return folded, (_offsets(text, odd) if odd else None)


def _offsets(text: str, odd: list[tuple[int, int]]) -> list[int]:
    src: list[int] = []
    pos = 0
    for start, end in odd:
        src.extend(range(pos, start))
        for i in range(start, end):
            src.extend([i] * len(FOLD.get(ord(text[i]), text[i])))
        pos = end
    src.extend(range(pos, len(text) + 1))
    return src


def fold_token(raw: str) -> str:
    """The canonical form of one token (already folded, symbols trimmed)."""
    out = _token_cache.get(raw)
    if out is None:
        out = _fold_token(raw)
        if len(_token_cache) >= _CACHE_MAX:
            _token_cache.clear()
        _token_cache[raw] = out
    return out


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
    while i < j and raw[i] in SYMBOLS:
        if raw[i] == "$" and LETTER_RE.search(raw, i + 1):
            break  # "$eller", "$3ll3r": leetspeak; "$100": a price
        i += 1
    while j > i and raw[j - 1] in SYMBOLS:
        j -= 1
    return i, j


def _plain_tokens(
    token_re: re.Pattern[str], folded: str, pos: int, end: int, out: list[tuple[str, int, int]]
) -> None:
    """Append every token of ``folded[pos:end]``, punctuation-like symbols trimmed."""
    cache = _token_cache
    for m in token_re.finditer(folded, pos, end):
        raw = m.group()
        value = cache.get(raw)
        if value is not None and raw.isalnum():
            out.append((value, m.start(), m.end()))
            continue
        i, j = _trim(raw)
        if i < j:
            value = fold_token(raw[i:j])
            if value:
                out.append((value, m.start() + i, m.start() + j))


def tokens(folded: str) -> list[tuple[str, int, int]]:
    """Canonical tokens with their spans in ``folded``."""
    out: list[tuple[str, int, int]] = []
    bmp = folded.isascii() or _ASTRAL_WORD_RE.search(folded) is None
    _plain_tokens(_TOKEN_BMP_RE if bmp else TOKEN_RE, folded, 0, len(folded), out)
    singles = [k for k, (_, start, end) in enumerate(out) if end - start == 1]
    if len(singles) >= MIN_SPELLED:
        out = _merge_spelled(folded, out, singles)
    return out


def _merge_spelled(
    folded: str, toks: list[tuple[str, int, int]], singles: list[int]
) -> list[tuple[str, int, int]]:
    runs: list[list[int]] = []
    for k in singles:
        if runs and runs[-1][-1] == k - 1:
            runs[-1].append(k)
        else:
            runs.append([k])
    merged: dict[int, tuple[int, tuple[str, int, int]]] = {}
    for run in runs:
        chars = "".join(folded[toks[k][1]] for k in run)
        if len(run) >= MIN_SPELLED and len(LETTER_RE.findall(chars)) >= 2:
            merged[run[0]] = (run[-1], (fold_token(chars), toks[run[0]][1], toks[run[-1]][2]))
    if not merged:
        return toks
    out = []
    k = 0
    while k < len(toks):
        if k in merged:
            last, token = merged[k]
            out.append(token)
            k = last + 1
        else:
            out.append(toks[k])
            k += 1
    return out
