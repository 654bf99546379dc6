"""canon/2 for words: the v2 table, ambiguous leet as one class, phrase breaks.

Same pipeline as canon/1 (fold with an offset map, tokens, leet, repeats, letters spelled
apart) with the rules of ``docs/canon-2.md``.  Word lists carry ``BREAK`` between words
that no phrase may join (sentence punctuation, a line break, a hashtag boundary).
"""

from __future__ import annotations

import bisect
import operator
import re
from typing import Final

from sighub.client._canon._gen_table import _ranges
from sighub.client._canon._table import bmp_class, one_of, run_of
from sighub.client._canon._text import BREAK, fold_with
from sighub.client._canon._v2._table import (
    DIGITS,
    FOLD,
    FOLD_TRANSLATE,
    LETTERS,
    NON_UNIT,
    WORD,
)

SYMBOLS: Final = "$@!|"
_LETTER: Final = one_of(LETTERS)
LETTER_RE: Final = re.compile(_LETTER)
TOKEN_RE: Final = re.compile(run_of(WORD, r"$@!|"))
_BMP_UNIT: Final = bmp_class(WORD, r"$@!|")
# A MARK ("\x01") alone or a run of units, as "(unit+|\x01)" finds them; one class first,
# so ``re`` skips through the text by that class (a group of branches is tried at every
# position).  Possessive: the run ends where no unit follows.
_SPLIT_BMP_RE: Final = re.compile(f"{bmp_class(WORD, r'$@!|' + chr(1))}(?:(?<=\x01)|{_BMP_UNIT}*+)")
_SPLIT_RE: Final = re.compile(f"({TOKEN_RE.pattern}|\x01)")
_ASTRAL_RE: Final = re.compile("[\U00010000-\U0010ffff]")
_ASTRAL_WORD_STARTS: Final = [lo for lo, hi in WORD if hi >= 0x10000]
_ASTRAL_WORD_ENDS: Final = [hi for lo, hi in WORD if hi >= 0x10000]
MIN_SPELLED: Final = 3
_RUN_OF_SINGLES: Final = b"\x01" * MIN_SPELLED
_RUNS_RE: Final = re.compile(b"\x01{%d,}" % MIN_SPELLED)
_NON_DIGIT_RE: Final = re.compile(f"(?!{one_of(DIGITS)}).", re.DOTALL)
_NUM_UNIT_RE: Final = re.compile(
    f"({run_of(DIGITS)})({run_of(LETTERS)})|({run_of(LETTERS)})({run_of(DIGITS)})"
)
_REPEAT_RE: Final = re.compile(f"({_LETTER})\\1+")
# "s|e|l|l|e|r": single characters joined by "|" are letters spelled apart.
_PIPED_RE: Final = re.compile(r"(?:[^|]\|){2,}[^|]\|?")
# The ambiguous readings of 1 ! | I l i are one class, written "l" (UTS #39's prototype of
# 1, | and I; "I" is "i" after fold): every reading of "se11er" meets every one of "seller".
LEET: Final = str.maketrans(
    {"0": "o", "1": "l", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g"}
    | {"@": "a", "$": "s", "!": "l", "|": "l", "i": "l"}
)
_CLASS_ONLY: Final = str.maketrans({"i": "l"})
_LEET_DIGITS: Final = frozenset("0134579")
# Phrase breaks, marked in folded text before words are read: a line break or other control
# character; sentence punctuation followed by whitespace (closing quotes or brackets may
# stand between); both ends of a hashtag.  Each break character becomes MARK (a token of
# its own, read as BREAK) in place, so spans in the marked text are spans in the folded
# text.  Punctuation with no space after it ("s.e.l.l.e.r", "1,000") breaks nothing.
MARK: Final = "\x01"
_TAG_RE: Final = re.compile("#([^\\s#]*)(\\s?)")
_CONTROL: Final = "\x00-\x08\x0a-\x1f\x85\u2028\u2029"  # a class: tab is whitespace
_SOFT: Final = ".,;:!?"
# After fold, whitespace is " " or a tab (other spaces fold to " ", line breaks are breaks).
# One scan marks every control character and every soft mark before whitespace (no control
# character is whitespace here, and replacing a mark creates or removes no other pair);
# one class first, so ``re`` skips through the text by that class.
_CONTROL_OR_SOFT_RE: Final = re.compile(
    f"[{_CONTROL}{re.escape(_SOFT)}](?:(?<=[{_CONTROL}])|(?=[ \t]))"
)
_CLOSER_HINT_RE: Final = re.compile("[.,;:!?][\"'\u2019\u201d)\\]}\u00bb*_~]")
# Possessive and anchored at a run's start: a backtracking "[.,;:!?]+" retried at every
# position of a long run ("." * 20000 + "'x") made the scan quadratic.
_CLOSED_RE: Final = re.compile("(?<![.,;:!?])[.,;:!?]++[\"'\u2019\u201d)\\]}\u00bb*_~]++(?=\\s)")

_CACHE_MAX: Final = 1 << 17
CACHE_KEY_MAX: Final = 64
# (value, leading trimmed, trailing trimmed, kind): the kind is _KIND_SINGLE for a word of
# one character, _KIND_BREAK for BREAK, else 0
_Hit = tuple[str, int, int, int]
_token_cache: dict[str, _Hit] = {}
_KIND: Final = operator.itemgetter(3)
_KIND_SINGLE: Final = 1
_KIND_BREAK: Final = 2
_ADJACENT_BREAKS: Final = bytes([_KIND_BREAK, _KIND_BREAK])


def _bmp_words_only(folded: str) -> bool:
    if folded.isascii():
        return True
    for ch in _ASTRAL_RE.findall(folded):
        k = bisect.bisect_right(_ASTRAL_WORD_STARTS, ord(ch)) - 1
        if k >= 0 and ord(ch) <= _ASTRAL_WORD_ENDS[k]:
            return False
    return True


def fold(text: str) -> tuple[str, list[int] | None]:
    """Fold ``text`` with the v2 table: (folded, src) as canon/1's ``fold``."""
    return fold_with(text, FOLD_TRANSLATE, NON_UNIT, FOLD)


class Offsets:
    """Positions in a rewritten text (folded, refanged) mapped back to the original, as the
    ``src`` lists of ``fold`` and ``refang`` map them, without building ``src``: a text has
    few rewrites that change lengths and fewer candidates to map, so a bisect per position
    is cheaper than a list as long as the text.  ``applied`` lists the rewrites as (start,
    end, replacement) in the original, in order, none overlapping."""

    __slots__ = ("_applied", "_starts")

    def __init__(self, applied: list[tuple[int, int, str]]) -> None:
        self._applied = applied
        starts = []
        shift = 0
        for start, end, rep in applied:  # where each replacement starts in refanged text
            starts.append(start + shift)
            shift += len(rep) - (end - start)
        self._starts = starts

    def _last(self, p: int) -> tuple[int, int, int, str] | None:
        """(where it starts in the rewritten text, start, end, replacement) of the last
        rewrite that starts at or before ``p`` there; None before the first."""
        k = bisect.bisect_right(self._starts, p) - 1
        return None if k < 0 else (self._starts[k], *self._applied[k])

    def at(self, p: int) -> int:
        """``src[p]``."""
        last = self._last(p)
        if last is None:
            return p
        w0, start, end, rep = last
        if p < w0 + len(rep):
            return start + (p - w0) if len(rep) == end - start else start
        return end + (p - w0 - len(rep))

    def span(self, s: int, e: int) -> tuple[int, int]:
        """``(src[s], src[e - 1] + 1)``, except that a span ending inside a replacement
        ends where its original does: a link ending at the "." of "[.]" spans all of
        "[.]", not "[" (fold replaces single characters, where both agree).  An empty
        span (a break) stays empty."""
        if s == e:
            return self.at(s), self.at(s)
        last = self._last(e - 1)
        if last is not None:
            w0, start, end, rep = last
            if e - 1 < w0 + len(rep) and len(rep) != end - start:
                return self.at(s), end
        return self.at(s), self.at(e - 1) + 1


_ODD_BMP_RE: Final = re.compile(bmp_class(_ranges(sorted(map(ord, NON_UNIT)))) + "+")
_ODD_ASTRAL: Final = frozenset(ch for ch in NON_UNIT if ord(ch) >= 0x10000)


def offsets(text: str) -> Offsets | None:
    """``fold(text)[1]`` as an ``Offsets`` map (None: positions unchanged), for the few
    candidates a text holds: only the characters that fold to other than one character
    are visited."""
    if text.isascii():
        return None
    applied = [
        (i, i + 1, FOLD[ord(text[i])])
        for m in _ODD_BMP_RE.finditer(text)
        for i in range(m.start(), m.end())
    ]
    if _ODD_ASTRAL and _ASTRAL_RE.search(text) is not None:
        astral = [(m.start(), m.end(), FOLD[ord(m.group())]) for m in _ASTRAL_RE.finditer(text)
                  if m.group() in _ODD_ASTRAL]  # fmt: skip
        if astral:
            applied = sorted(applied + astral)
    return Offsets(applied) if applied else None


def fold_fast(text: str) -> str:
    """``fold(text)[0]`` without the offset map (the matcher's hot path)."""
    if text.isascii():
        return text.lower()
    return text.translate(FOLD_TRANSLATE)


def fold_token(raw: str) -> str:
    return _token(raw)[0] if raw else ""


def _token(raw: str) -> _Hit:
    hit = _token_cache.get(raw)
    if hit is None:
        if raw == MARK:
            hit = (BREAK, 0, 0, _KIND_BREAK)
        else:
            i, j = _trim(raw)
            if i < j and "|" in raw and _PIPED_RE.fullmatch(raw, i, j):
                value = _fold_token(raw[i:j].replace("|", ""))
            else:
                value = _fold_token(raw[i:j]) if i < j else ""
            hit = (value, i, len(raw) - j, _KIND_SINGLE if len(value) == 1 else 0)
        if len(raw) <= CACHE_KEY_MAX:
            if len(_token_cache) >= _CACHE_MAX:
                _token_cache.clear()
            _token_cache[raw] = hit
    return hit


def _fold_token(raw: str) -> str:
    if LETTER_RE.search(raw) is None:
        return _NON_DIGIT_RE.sub("", raw)  # a number: never leet-folded
    m = _NUM_UNIT_RE.fullmatch(raw)
    if m is not None:
        if m.group(1) is not None:
            unit = len(m.group(1)) >= 2  # "14yo", "10pm"; but "0n", "1n", "4am" are leet
        else:
            unit = not _LEET_DIGITS.issuperset(m.group(4))  # "h264"; but "b10", "m3"
        if unit:
            return _REPEAT_RE.sub(r"\1", raw.translate(_CLASS_ONLY))
    return _REPEAT_RE.sub(r"\1", raw.translate(LEET))


def _trim(raw: str) -> tuple[int, int]:
    """Leading symbols as in canon/1 ('@name', '$100' vs '$eller'); trailing ``!`` and ``|``
    are punctuation ('seller!!'), a trailing ``@`` or ``$`` after a letter is leet
    ('pizz@', 'bo$$')."""
    i, j = 0, len(raw)
    letter_follows: bool | None = None
    while i < j and raw[i] in SYMBOLS:
        if raw[i] == "$":
            if letter_follows is None:
                letter_follows = LETTER_RE.search(raw, i + 1) is not None
            if letter_follows:
                break
        i += 1
    while True:
        while j > i and raw[j - 1] in "!|":
            j -= 1
        k = j
        while k > i and raw[k - 1] in "@$":
            k -= 1
        if k == j or (k > i and LETTER_RE.match(raw, k - 1) is not None):
            return i, j
        # "100$": not after a letter, so punctuation; a "!" or "|" it leaves at the end is
        # trailing too ("n!$" is "n", as its span "n!" reads)
        j = k


def _mark_tag(m: re.Match[str]) -> str:
    # "#tag ": a break before the tag and one after it, in place of "#" and the space
    return MARK + m.group(1) + (MARK if m.group(2) else "")


def _mark_closed(m: re.Match[str]) -> str:
    return MARK * len(m.group())


def marked(folded: str) -> str:
    """``folded`` with every phrase-break character replaced by MARK, in place (same
    length): C-level replaces for the common forms, a regex only where one is needed."""
    # Tags first: a tag ends at the first whitespace, a line break included (marked
    # first, a line break would no longer be whitespace, and the tag's end mark would fall
    # on the next space: "#tag\nnext word" would break "next word").
    f = _TAG_RE.sub(_mark_tag, folded) if "#" in folded else folded
    f = _CONTROL_OR_SOFT_RE.sub(MARK, f)
    if _CLOSER_HINT_RE.search(f) is not None:
        f = _CLOSED_RE.sub(_mark_closed, f)
    return f


def _split_re(folded: str) -> re.Pattern[str]:
    return _SPLIT_BMP_RE if _bmp_words_only(folded) else _SPLIT_RE


def token_values(folded: str) -> list[str]:
    """``[value for value, _, _ in tokens(folded)]``, computed without spans: C-level maps
    over cached tokens, as in canon/1 (the matcher's hot path)."""
    raws = _split_re(folded).findall(marked(folded))
    cached = list(map(_token_cache.get, raws))
    found: list[_Hit] = (
        cached  # type: ignore[assignment]  # no None in it
        if None not in cached
        else [h or _token(r) for h, r in zip(cached, raws, strict=True)]
    )
    hits = [h for h in found if h[0]]
    values = list(map(_VALUE, hits))
    kinds = bytes(map(_KIND, hits))
    for a, b, merged in _spelled_runs(values, kinds):
        values[a:b] = [merged]
    # One break between words, none at the ends.  ``kinds`` tells it without joining the
    # words: merging a run of single letters (no break among them) into one word changes
    # no break's neighbours.
    if _KIND_BREAK not in kinds or (
        kinds[0] != _KIND_BREAK and kinds[-1] != _KIND_BREAK and _ADJACENT_BREAKS not in kinds
    ):
        return values  # the usual case: already so
    # No word holds a space or a line break.
    joined = " ".join(values).strip("\n ")
    while "\n \n" in joined:
        joined = joined.replace("\n \n", "\n")
    return joined.split(" ") if joined else []


def tokens(folded: str) -> list[tuple[str, int, int]]:
    """Canonical words with spans in ``folded``, ``(BREAK, pos, pos)`` between words no
    phrase may join."""
    text = marked(folded)
    out: list[tuple[str, int, int]] = []
    for m in _split_re(folded).finditer(text):
        hit = _token_cache.get(m.group()) or _token(m.group())
        if hit[0]:
            out.append((hit[0], m.start() + hit[1], m.end() - hit[2]))
    values = [v for v, _, _ in out]
    for a, b, merged in _spelled_runs(values, bytes(len(v) == 1 and v != BREAK for v in values)):
        out[a:b] = [(merged, out[a][1], out[b - 1][2])]
    tidy: list[tuple[str, int, int]] = []
    for word in out:
        if word[0] != BREAK:
            tidy.append(word)
        elif tidy and tidy[-1][0] != BREAK:
            tidy.append((BREAK, word[1], word[1]))
    if tidy and tidy[-1][0] == BREAK:
        tidy.pop()
    return tidy


_VALUE: Final = operator.itemgetter(0)


def _spelled_runs(values: list[str], singles: bytes) -> list[tuple[int, int, str]]:
    """Runs of one-character words that merge (letters spelled apart), last run first;
    ``singles`` has a 1 (_KIND_SINGLE) for each one-character word, never for BREAK, and no 1
    elsewhere."""
    if _RUN_OF_SINGLES not in singles:
        return []
    out = []
    for m in reversed(list(_RUNS_RE.finditer(singles))):
        a, b = m.span()
        chars = "".join(values[a:b])
        if len(LETTER_RE.findall(chars)) >= 2:
            out.append((a, b, fold_token(chars)))
    return out
