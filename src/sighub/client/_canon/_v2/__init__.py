"""canon/2: the canonical forms of ``docs/canon-2.md``.

Same interface as canon/1 (``canonicalize``, ``extract``, ``scan_parts``, ``word_spans``,
``fold``, ``fold_fast``), plus ``explain`` for analysts.  Word lists carry ``BREAK``
between words that no phrase joins.
"""

from __future__ import annotations

from typing import Final

from sighub.client._canon import MAX_PHRASE_WORDS
from sighub.client._canon._text import BREAK
from sighub.client._canon._v2 import _links
from sighub.client._canon._v2._table import NON_UNIT, TABLE_SHA256
from sighub.client._canon._v2._text import (
    TOKEN_RE,
    fold,
    fold_fast,
    offsets,
    token_values,
    tokens,
)
from sighub.client._errors import CanonError
from sighub.client._model import Kind

__all__ = [
    "BREAK",
    "TABLE_SHA256",
    "VERSION",
    "canonicalize",
    "explain",
    "fold",
    "fold_fast",
    "scan_parts",
    "word_spans",
]

VERSION: Final = "canon/2"
_Rest = list[tuple[str, str, int, int]]


def _is_unit(ch: str) -> bool:
    return TOKEN_RE.match(ch) is not None


def _words(value: str) -> list[str]:
    return [t for t, _, _ in tokens(fold(value)[0])]


def _keyword(value: str) -> str:
    words = _words(value)
    if BREAK in words:
        raise CanonError(
            f"keyword {value!r}: holds a phrase break (. , ; : ! ? line break or #) that "
            "canon/2 never matches across; expected one phrase"
        )
    if not words:
        raise CanonError(f"keyword {value!r}: no letters or digits left after canon/2")
    if len(words) > MAX_PHRASE_WORDS:
        raise CanonError(
            f"keyword {value!r}: {len(words)} words; expected at most {MAX_PHRASE_WORDS}"
        )
    return " ".join(words)


def _hashtags(folded: str) -> list[tuple[str, int, int]]:
    """'#tag' values with spans in ``folded``; adjacent tags ('#a#b') are each a tag, and
    trailing '!' or '|' is punctuation ('#tag!')."""
    out: list[tuple[str, int, int]] = []
    start = folded.find("#")
    last_end = -1
    while start != -1:
        end = start + 1
        while end < len(folded) and (folded[end] == "_" or _is_unit(folded[end])):
            end += 1
        stop = end
        while stop > start + 1 and folded[stop - 1] in "!|":
            stop -= 1
        body = folded[start + 1 : stop].replace("_", "")
        if body and (start in (0, last_end) or not _is_unit(folded[start - 1])):
            words = tokens(body)
            if len(words) == 1 and words[0][1] == 0 and words[0][2] == len(body):
                out.append((words[0][0], start, stop))
                last_end = end
        start = folded.find("#", end)
    return out


def _hashtag(value: str) -> str:
    stripped = value.strip()
    folded = fold(stripped if stripped[:1] in ("#", "＃") else "#" + stripped)[0]
    found = _hashtags(folded)
    if len(found) != 1 or found[0][1] != 0 or found[0][2] != len(folded.rstrip("!|")):
        raise CanonError(f"hashtag {value!r}: expected one '#tag' of letters, digits or _")
    return found[0][0]


def canonicalize(kind: Kind, value: str) -> str:
    """The canon/2 form of an analyst's (scalar, length-checked) ``value``."""
    if kind is Kind.KEYWORD:
        return _keyword(value)
    if kind is Kind.HASHTAG:
        return _hashtag(value)
    if kind is Kind.EMOJI:
        return _links.canonicalize_emoji(value)
    if kind is Kind.URL:
        return _links.canonicalize_url(value)
    return _links.canonicalize_payment(fold(value.strip())[0], value)


def _spans(src: list[int] | None, start: int, end: int) -> tuple[int, int]:
    if src is None:
        return start, end
    if start == end:  # a break: an empty span
        return src[start], src[start]
    return src[start], src[end - 1] + 1


def scan_parts(text: str, folded: str | None = None) -> tuple[list[str], _Rest]:
    """As canon/1's ``scan_parts``: canonical words (with ``BREAK`` markers) and every
    other candidate with ORIGINAL spans."""
    folded = fold_fast(text) if folded is None else folded
    words = token_values(folded)
    rest: _Rest = []
    found = [("hashtag", v, s, e) for v, s, e in _hashtags(folded)] if "#" in folded else []
    _links.payment_candidates(folded, found)
    if found:  # spans are in folded text: map them back (an identity for most texts)
        src = None if text.isascii() or NON_UNIT.isdisjoint(text) else offsets(text)
        if src is None:
            rest.extend(found)
        else:
            rest.extend((k, v, *src.span(s, e)) for k, v, s, e in found)
    if not text.isascii():
        _links.emoji_candidates(text, rest)
    _links.url_candidates(text, rest, folded)
    return words, rest


def word_spans(text: str) -> list[tuple[str, int, int]]:
    """The canonical words of ``text`` (``BREAK`` markers included) with ORIGINAL spans."""
    folded, src = fold(text)
    words = tokens(folded)
    if src is not None:
        words = [(v, *_spans(src, s, e)) for v, s, e in words]
    return words


def phrases(words: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """Every phrase of 1..MAX_PHRASE_WORDS words that crosses no break."""
    out = []
    n = len(words)
    for i in range(n):
        if words[i][0] == BREAK:
            continue
        value = ""
        for j in range(i, min(i + MAX_PHRASE_WORDS, n)):
            if words[j][0] == BREAK:
                break
            value = words[j][0] if j == i else value + " " + words[j][0]
            out.append((value, words[i][1], words[j][2]))
    return out


def explain(kind: Kind, value: str) -> list[tuple[str, str]]:
    """The folding steps of ``value`` as (step, result), for an analyst."""
    steps = [("input", value)]
    folded = fold(value.strip())[0]
    steps.append(("fold: case, width, marks, invisibles, look-alikes (UTS #39)", folded))
    if kind in (Kind.KEYWORD, Kind.HASHTAG):
        words = tokens(folded)
        shown = " ".join("|" if v == BREAK else v for v, _, _ in words)
        steps.append(("words: leet and 1 ! | I l i as one class, repeats, spelled-apart", shown))
    elif kind in (Kind.URL, Kind.PAYMENT):
        src = value.strip() if kind is Kind.URL else folded
        steps.append(
            ("refang: [.] (.) [dot] ' dot ' hxxp, IDNA stops, invisibles", _links.refang(src))
        )
    steps.append(("canonical", canonicalize(kind, value)))
    return steps
