"""canon/1 and canon/2: canonical forms per kind and candidate extraction from free text.

``canon_for(version)`` gives one canon's operations; ``canonicalize`` and ``extract`` take a
``version`` (default canon/1, whose behaviour is frozen).  canon/2 lives in ``_v2`` and is
imported on first use (its table costs about 5 MB).

``canonicalize(kind, value)`` is what a publisher applies to an analyst's value;
``extract(text)`` is what a matcher applies to the text it scans.  Both sides must produce
byte-identical values, which the golden vectors in ``tests/vectors/canon-v1.jsonl`` freeze.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from sighub.client._canon import _emoji, _payment, _url
from sighub.client._canon._table import NON_UNIT, TABLE_SHA256
from sighub.client._canon._text import TOKEN_RE, fold, fold_fast, scalar, token_values, tokens
from sighub.client._errors import CanonError
from sighub.client._model import CANON_VERSION, CANON_VERSIONS, Kind

__all__ = [
    "CANON_VERSION",
    "CANON_VERSIONS",
    "MAX_PHRASE_WORDS",
    "TABLE_SHA256",
    "Candidate",
    "Canon",
    "canon_for",
    "canonicalize",
    "extract",
    "extract_parts",
    "fold",
    "scalar",
    "scan_parts",
    "word_spans",
]

MAX_PHRASE_WORDS: Final = 4
MAX_VALUE_CHARS: Final = 512
_KINDS: Final = {k.value: k for k in Kind}


@dataclass(frozen=True, slots=True)
class Candidate:
    """A canonical value found in a text, with its span in the ORIGINAL text."""

    kind: Kind
    value: str
    start: int
    end: int


def _spans(src: list[int] | None, start: int, end: int) -> tuple[int, int]:
    if src is None:
        return start, end
    return src[start], src[end - 1] + 1


def _keyword(value: str) -> str:
    words = [t for t, _, _ in tokens(fold(value)[0])]
    if not words:
        raise CanonError(f"keyword {value!r}: no letters or digits left after canon/1")
    if len(words) > MAX_PHRASE_WORDS:
        raise CanonError(
            f"keyword {value!r}: {len(words)} words; expected at most {MAX_PHRASE_WORDS}"
        )
    return " ".join(words)


def _hashtag(value: str) -> str:
    stripped = value.strip()
    folded = fold(stripped if stripped[:1] in ("#", "＃") else "#" + stripped)[0]
    found = _hashtags(folded)
    if len(found) != 1 or found[0][1] != 0 or found[0][2] != len(folded):
        raise CanonError(f"hashtag {value!r}: expected one '#tag' of letters, digits or _")
    return found[0][0]


def _hashtags(folded: str) -> list[tuple[str, int, int]]:
    out = []
    start = folded.find("#")
    while start != -1:
        end = start + 1
        while end < len(folded) and (folded[end] == "_" or _is_unit(folded[end])):
            end += 1
        body = folded[start + 1 : end].replace("_", "")
        if body and (start == 0 or not _is_unit(folded[start - 1])):
            words = tokens(body)
            if len(words) == 1 and words[0][1] == 0 and words[0][2] == len(body):
                out.append((words[0][0], start, end))
        start = folded.find("#", end)
    return out


def _is_unit(ch: str) -> bool:
    return TOKEN_RE.match(ch) is not None


def _checked(kind: Kind | str, value: str) -> tuple[Kind, str]:
    k = kind if isinstance(kind, Kind) else _KINDS.get(kind)
    if k is None:
        raise CanonError(f"kind {kind!r}: expected one of {sorted(_KINDS)}")
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_VALUE_CHARS:
        raise CanonError(f"{k.value} {value!r}: expected text of 1-{MAX_VALUE_CHARS} chars")
    return k, scalar(value)  # a lone surrogate reads as U+FFFD, as in scanned text


def canonicalize(kind: Kind | str, value: str, version: str = CANON_VERSION) -> str:
    """The form of an analyst's ``value`` for ``kind`` under canon ``version``; raises
    CanonError (also for an unknown version)."""
    if version != CANON_VERSION:
        return canon_for(version).canonicalize(kind, value)
    return _canonicalize1(kind, value)


def _canonicalize1(kind: Kind | str, value: str) -> str:
    k, value = _checked(kind, value)
    if k is Kind.KEYWORD:
        return _keyword(value)
    if k is Kind.HASHTAG:
        return _hashtag(value)
    if k is Kind.EMOJI:
        return _emoji.canonicalize(value)
    if k is Kind.URL:
        return _url.canonicalize(value)
    return _payment.canonicalize(fold(value.strip())[0], value)


def extract_parts(
    text: str,
) -> tuple[list[tuple[str, int, int]], list[tuple[str, str, int, int]]]:
    """The canonical words of ``text`` and every other candidate, all with ORIGINAL spans:
    ``(words, rest)`` with words as (value, start, end) and rest as (kind, value, start,
    end).  Phrases are left to the caller (``extract`` or a blinder) to expand."""
    return word_spans(text), scan_parts(text)[1]


def scan_parts(
    text: str, folded: str | None = None
) -> tuple[list[str], list[tuple[str, str, int, int]]]:
    """What a matcher needs of ``text``: its canonical words (no spans: ``word_spans`` gives
    them for the few texts that hit) and every other candidate with ORIGINAL spans.
    ``folded`` is ``fold_fast(text)`` when the caller has it already.  ``text`` holds no
    lone surrogate (``scalar`` replaces them): URL values are taken from it."""
    folded = fold_fast(text) if folded is None else folded
    words = token_values(folded)
    rest: list[tuple[str, str, int, int]] = []
    found = [("hashtag", v, s, e) for v, s, e in _hashtags(folded)] if "#" in folded else []
    if _payment.may_contain(folded):
        _payment.candidates(folded, found)
    if found:  # spans are in folded text: map them back (an identity for most texts)
        src = None if text.isascii() or NON_UNIT.isdisjoint(text) else fold(text)[1]
        rest.extend((k, v, *_spans(src, s, e)) for k, v, s, e in found)
    if not text.isascii():
        _emoji.candidates(text, rest)
    if "." in text:
        _url.candidates(text, rest)
    return words, rest


def word_spans(text: str) -> list[tuple[str, int, int]]:
    """The canonical words of ``text`` with their ORIGINAL spans."""
    folded, src = fold(text)
    words = tokens(folded)
    if src is not None:
        words = [(v, *_spans(src, s, e)) for v, s, e in words]
    return words


def extract(text: str, version: str = CANON_VERSION) -> list[Candidate]:
    """Every candidate of ``text`` under canon ``version`` (see ``_extract1`` for canon/1)."""
    if version != CANON_VERSION:
        return canon_for(version).extract(text)
    return _extract1(text)


def _extract1(text: str) -> list[Candidate]:
    """Every canon/1 candidate in ``text``: words and phrases of up to four words, hashtags,
    emoji sequences, URLs (host suffixes, path prefixes) and payment handles.  A lone
    surrogate reads as U+FFFD (see ``scalar``); spans index ``text`` all the same."""
    words, rest = extract_parts(scalar(text))
    out = []
    n = len(words)
    for i in range(n):
        value = ""
        for j in range(i, min(i + MAX_PHRASE_WORDS, n)):
            value = words[j][0] if j == i else value + " " + words[j][0]
            out.append(Candidate(Kind.KEYWORD, value, words[i][1], words[j][2]))
    out.extend(Candidate(_KINDS[k], v, s, e) for k, v, s, e in rest)
    return out


Rest = list[tuple[str, str, int, int]]


@dataclass(frozen=True, slots=True)
class Canon:
    """One canon version's operations, as the blinder and the matcher use them.

    ``scan_parts(text, folded)`` gives the words (with ``BREAK`` markers under canon/2;
    canon/1 emits none) and the other candidates; ``fold_fast`` is the folded text it
    takes (and patterns run over); ``word_spans`` gives the same words with spans, for the
    few texts that hit; ``fold`` gives the folded text with its offset map (None: the
    positions are unchanged), for the spans of the patterns that fire."""

    version: str
    canonicalize: Callable[[Kind | str, str], str]
    extract: Callable[[str], list[Candidate]]
    scan_parts: Callable[[str, str | None], tuple[list[str], Rest]]
    word_spans: Callable[[str], list[tuple[str, int, int]]]
    fold_fast: Callable[[str], str]
    fold: Callable[[str], tuple[str, list[int] | None]]
    explain: Callable[[Kind | str, str], list[tuple[str, str]]]
    table_sha256: str


_loaded: dict[str, Canon] = {}


def canon_for(version: str) -> Canon:
    """The operations of canon ``version``; CanonError naming the known ones otherwise."""
    found = _loaded.get(version)
    if found is not None:
        return found
    if version == "canon/1":
        found = Canon(version, _canonicalize1, _extract1, scan_parts, word_spans, fold_fast,
                      fold, _explain1, TABLE_SHA256)  # fmt: skip
    elif version == "canon/2":
        found = _load_v2()
    else:
        raise CanonError(f"canon version {version!r}: unknown; expected one of {CANON_VERSIONS}")
    _loaded[version] = found
    return found


def _explain1(kind: Kind | str, value: str) -> list[tuple[str, str]]:
    k, value = _checked(kind, value)
    folded = fold(value.strip())[0]
    return [
        ("input", value),
        ("fold: case, width, diacritics, invisibles, look-alikes (52)", folded),
        ("canonical", _canonicalize1(k, value)),
    ]


def _load_v2() -> Canon:
    from sighub.client._canon import _v2  # noqa: PLC0415  # 5 MB: only when asked for

    def canonicalize2(kind: Kind | str, value: str) -> str:
        return _v2.canonicalize(*_checked(kind, value))

    def explain2(kind: Kind | str, value: str) -> list[tuple[str, str]]:
        return _v2.explain(*_checked(kind, value))

    def extract2(text: str) -> list[Candidate]:
        work = scalar(text)
        out = [Candidate(Kind.KEYWORD, v, s, e) for v, s, e in _v2.phrases(_v2.word_spans(work))]
        out.extend(Candidate(_KINDS[k], v, s, e) for k, v, s, e in _v2.scan_parts(work)[1])
        return out

    return Canon("canon/2", canonicalize2, extract2, _v2.scan_parts, _v2.word_spans,
                 _v2.fold_fast, _v2.fold, explain2, _v2.TABLE_SHA256)  # fmt: skip
