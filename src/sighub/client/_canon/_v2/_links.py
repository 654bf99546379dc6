"""canon/2 for URLs, payment handles and emoji runs.

Links are searched in a *refanged* copy of the text (defangs undone, IDNA full stops read
as ".", invisible characters dropped, markdown emphasis around a link blanked) with an
offset map back to the original.  Hosts are mapped by UTS #46 (the ``idna`` package),
path segments have their unreserved percent-escapes decoded.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import re
import unicodedata
from typing import Final

import idna

from sighub.client._canon import _emoji, _payment, _url
from sighub.client._canon._gen_table import _ranges
from sighub.client._canon._table import HOST_FOLD, SPACE, bmp_class
from sighub.client._canon._v2._text import Offsets
from sighub.client._errors import CanonError

# What canon/1 drops from hosts as invisible (format characters and blank fillers).
INVISIBLE: Final = frozenset(chr(cp) for cp, s in HOST_FOLD.items() if s == "")
_INVISIBLE_RANGES: Final = _ranges(sorted(ord(ch) for ch in INVISIBLE))
_STOPS: Final = "\u3002\uff0e\uff61"
# The refang patterns, each with substrings (of the lowercased text) one of which must
# occur before it is worth a search: first single characters or a short word (a fast
# search), then the longer hints.  Each is one class or starts with one, so ``re`` skips
# through the text by that class; they are searched apart and merged, as one alternation
# would try every branch at every position.
_PATTERNS: Final = (
    # an IDNA stop inside the brackets too ("carrd[\u3002]co"): one pass, so the stop is
    # not yet a dot when the brackets are read
    (("[", "(", "{"), tuple(b + d for b in "[({" for d in (".", "dot", *_STOPS)),
     re.compile(f"[\\[({{](?:[.{_STOPS}]|[dD][oO][tT])[\\])}}]")),
    # anchored at a run's start: a long run of spaces made it quadratic
    (("dot",), (" dot", "\tdot"), re.compile(r"(?<![ \t])[ \t]+[dD][oO][tT][ \t]+(?=\w)")),
    (("hxxp",), (), re.compile("[hH][xX][xX][pP]")),
    (("*", "_", "~", "`"), (), re.compile("[*_~`]+")),
)  # fmt: skip
_NON_ASCII_RE: Final = re.compile(f"{bmp_class(_INVISIBLE_RANGES, _STOPS)}+")
_ANY_ASTRAL_RE: Final = re.compile("[\U00010000-\U0010ffff]")
_EDGE_BEFORE: Final = frozenset(" \t\n\r\f\v\u00a0\u3000([<")
_EDGE_AFTER: Final = frozenset(" \t\n\r\f\v\u00a0\u3000)]>.,;:!?")
# A match of ``_PATTERNS`` that ``_refanged`` keeps, in a text without "dot" or stops,
# holds one of these: "[", "(" or "{"; hxxp; emphasis after an edge character or the
# text's start, or before one or the text's end.  One class first, so ``re`` skips through
# the text by that class (an alternation of branches would be tried at every position).
_WINDOW_HINT_RE: Final = re.compile(
    "[\\[({hH*_~`](?:(?<=[\\[({])|(?<=[hH])[xX][xX][pP]|(?<=[*_~`])"
    f"(?:(?<![^{re.escape(''.join(sorted(_EDGE_BEFORE)))}][*_~`])"
    f"|[{re.escape(''.join(sorted(_EDGE_AFTER)))}]|\\Z))"
)
_UNRESERVED: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PERCENT_RE: Final = re.compile("%([0-9A-Fa-f]{2})")
_HEX: Final = frozenset("0123456789ABCDEFabcdef")
_PAY_HINTS: Final = ("$", "cash", "paypal", "venmo")
# Emoji of one run may stand apart by any whitespace (no-break space, line break) or
# invisible character.
EMOJI_GAP: Final = re.compile(f"[{SPACE}\u200b\u200c\u2060\ufeff\ufe0e\ufe0f]*")


def _refanged(m: re.Match[str]) -> str | None:
    """The replacement of one match; None to keep it (no defang in its context)."""
    s = m.group()
    first = s[0]
    if first in "*_~`":  # blanked (same length: spans stay put) at a link's edge only
        text, start, end = m.string, m.start(), m.end()
        at_edge = (start == 0 or text[start - 1] in _EDGE_BEFORE) or (
            end == len(text) or text[end] in _EDGE_AFTER
        )
        return " " * len(s) if at_edge else None
    if first in "hH":
        return "http" if s.islower() else "HTTP"
    if first in " \t":  # " dot " between words
        start = m.start()
        return "." if start > 0 and m.string[start - 1].isalnum() else None
    if first in _STOPS or first in INVISIBLE:  # a run of IDNA full stops and invisibles
        return "".join("." for ch in s if ch in _STOPS)
    return "."  # "[.]" or "(dot)"


_Applied = list[tuple[int, int, str]]
_Windows = list[tuple[int, int]]


def _applied(
    text: str, folded: bool = False, low: str | None = None, patterns: bool = True
) -> _Applied:
    """The refang replacements of ``text``: (start, end, replacement), in order, none
    overlapping.  ``folded``: ``text`` is v2-folded, so ASCII is lowercase and no invisible
    is left (fold drops them; only U+3002, which U+FE12 folds to, remains of the non-ASCII
    rewrites).  ``low``: ``text.lower()`` when the caller has it.  ``patterns``: False
    when the caller knows no ``_PATTERNS`` match applies."""
    found: _Applied = []
    for first, hints, rx in _PATTERNS if patterns else ():
        if low is None:
            low = text if folded else text.lower()
        # C-level tests, no generator frame per hint
        if any(map(low.__contains__, first)) and (not hints or any(map(low.__contains__, hints))):
            found += [(m.start(), m.end(), r) for m in rx.finditer(text)
                      if (r := _refanged(m)) is not None]  # fmt: skip
    if not text.isascii() and (not folded or "\u3002" in text):
        found += [(*m.span(), _refanged(m) or "") for m in _NON_ASCII_RE.finditer(text)]
        # Astral invisibles (tags, variation selectors) among the astral characters only:
        # those are few (emoji), and a class of astral ranges is slow to scan.
        found += [(m.start(), m.end(), "") for m in _ANY_ASTRAL_RE.finditer(text)
                  if m.group() in INVISIBLE]  # fmt: skip
    if not found:
        return found
    found.sort()
    out: _Applied = []
    pos = 0
    for start, end, rep in found:
        if start >= pos:  # else it overlaps one already applied
            out.append((start, end, rep))
            pos = end
    return out


def _applied_in(text: str, windows: _Windows) -> _Applied:
    """``_applied(text)`` restricted to what can change a link, when ``text`` holds no
    "dot" and no IDNA stop and ``windows`` are its ``_dotted_regions``: the windows, each
    a maximal run without " ", tab or line break that holds a ".".

    Every match of a refang lies in one such run ("[.]" and emphasis hold none of those
    characters; " dot " and the stops are absent), so it is in a window or in a run with
    no "." that no rewrite gives one: there it is of the same length (hxxp, emphasis) or
    an invisible, and it cannot reach a link.  The windows' text, joined by line breaks,
    reads the same (each window's neighbours are whitespace or an end of ``text``, as a
    line break is for emphasis at an edge), so ``_applied`` of the joined text, moved
    back to ``text``'s positions, is that of the windows, at the cost of their length."""
    joined = "\n".join([text[lo:hi] for lo, hi in windows])
    # One search of the short joined text instead of a test per hint: what the patterns
    # can apply without " dot " and stops ("[." or "(d"...; hxxp; emphasis at an edge).
    found = _applied(joined, patterns=_WINDOW_HINT_RE.search(joined) is not None)
    if not found:
        return found
    starts = list(itertools.accumulate((hi - lo + 1 for lo, hi in windows), initial=0))
    out: _Applied = []
    for start, end, rep in found:
        k = bisect.bisect_right(starts, start) - 1
        shift = windows[k][0] - starts[k]
        out.append((start + shift, end + shift, rep))
    return out


def _replaced(text: str, applied: _Applied) -> str:
    parts: list[str] = []
    pos = 0
    for start, end, rep in applied:
        parts += (text[pos:start], rep)
        pos = end
    parts.append(text[pos:])
    return "".join(parts)


def refang(text: str) -> str:
    """``text`` with defangs undone (analyst values; scanned text maps spans back through
    ``_applied`` instead)."""
    applied = _applied(text)
    return _replaced(text, applied) if applied else text


def _refanged_spans(text: str, folded: bool = False) -> tuple[str, Offsets | None]:
    """``refang`` with a lazy span map (None: spans unchanged); ``folded`` as ``_applied``."""
    return _with_spans(text, _applied(text, folded))


def _with_spans(text: str, applied: _Applied) -> tuple[str, Offsets | None]:
    if not applied:
        return text, None
    work = _replaced(text, applied)
    if all(len(rep) == end - start for start, end, rep in applied):
        return work, None
    return work, Offsets(applied)


def _label(raw: str) -> str | None:
    if raw.isascii():
        return raw.lower() if len(raw) <= _url.MAX_LABEL_UNITS else None
    if len(raw) > _url.MAX_LABEL_UNITS:
        return None
    try:
        label = idna.uts46_remap(raw, std3_rules=False, transitional=False)
    except (idna.IDNAError, ValueError):
        label = raw.translate(HOST_FOLD)  # not mappable: canon/1's host fold
    label = unicodedata.normalize("NFC", label)
    return label.lower() if label.isascii() else "xn--" + _url.punycode(label)


def _segment(seg: str) -> str:
    """``seg`` with its unreserved percent-escapes decoded until none is left, the others'
    hex digits in upper case.  A decoded hex digit can complete another escape ("%f%41" is
    "%fA", so "%FA"), and a canonical form must canonicalize to itself."""
    if "%" not in seg:
        return seg
    once = _PERCENT_RE.sub(_unescape, seg)
    if "%" in once and _PERCENT_RE.sub(_unescape, once) != once:  # rare: escapes nest
        return _PERCENT_RE.sub(_unescape, _decoded_nested(seg))
    return once


def _decoded_nested(seg: str) -> str:
    """Every unreserved escape of ``seg`` decoded, also those that decoding completes, in
    one pass: each character is pushed once and a decoding pops three, so a hostile nest
    ("%3%3%3...%30") costs linear time, where decoding again until nothing changed was
    quadratic.  Escapes never overlap ("%" is no hex digit), so the order of decoding does
    not change the result."""
    out: list[str] = []
    for ch in seg:
        out.append(ch)
        while len(out) >= 3 and out[-3] == "%" and out[-2] in _HEX and out[-1] in _HEX:
            decoded = chr(int(out[-2] + out[-1], 16))
            if decoded not in _UNRESERVED:
                break
            del out[-3:]
            out.append(decoded)
    return "".join(out)


def _unescape(m: re.Match[str]) -> str:
    ch = chr(int(m.group(1), 16))
    return ch if ch in _UNRESERVED else "%" + m.group(1).upper()


def parse(text: str, m: re.Match[str]) -> _url.ParsedUrl | None:
    return _url.parse(text, m, _label, _segment)


@functools.lru_cache(maxsize=4096)
def _relative(url: str) -> tuple[tuple[str, int, int], ...]:
    return _url._relative_parts(url, parse)


def url_candidates(
    text: str, out: list[tuple[str, str, int, int]], folded: str | None = None
) -> None:
    """Links in ``text``, spans in ``text``; ``folded``: ``fold_fast(text)`` when the caller
    has it (a cheaper test for "dot")."""
    # Where a refang can change a link.  A link lies in a run of non-space characters of
    # the refanged text that holds a ".".  Without IDNA stops or "dot" in the text, every
    # "." of the refanged text is a "." of the text, and no rewrite removes a " ", tab or
    # line break (blanked emphasis only splits a run): that run lies in the run of
    # ``text`` around a "." between those characters (``_dotted_regions``), and a rewrite
    # anywhere else cannot reach a link (see ``_applied_in``).  Otherwise: anywhere.
    # "dot" in any case: fold spells every ASCII letter in lowercase (the table is checked
    # on load) and no other character lowercases to an ASCII d, o or t, so a folded text
    # without "dot" has none in ``text.lower()``: one search instead of a lower() pass.
    low = None if folded is not None and "dot" not in folded else text.lower()
    if (low is None or "dot" not in low) and (
        text.isascii() or not any(map(text.__contains__, _STOPS))
    ):
        if "." not in text:
            return  # no link without a dot
        _links_in(text, low, _url._dotted_regions(text), out)
    else:
        _links_in(text, low, None, out)


def _links_in(
    text: str, low: str | None, windows: _Windows | None, out: list[tuple[str, str, int, int]]
) -> None:
    """The links of ``text`` into ``out``; refangs only inside ``windows`` unless None
    (``low``: ``text.lower()`` when the caller has it)."""
    applied = _applied(text, low=low) if windows is None else _applied_in(text, windows)
    work, spans = _with_spans(text, applied)
    # Regions around each dot, as canon/1 (memchr, not a regex scan): the windows already
    # are those of ``work`` when nothing was rewritten.
    regions = windows if windows is not None and not applied else _url._dotted_regions(work)
    found: list[tuple[str, str, int, int]] = []
    for left, right in regions:
        for chunk in _url._CHUNK_RE.finditer(work, left, right):
            url_re = _url._URL_ASCII_RE if chunk.group().isascii() else _url.URL_RE
            for m in url_re.finditer(work, chunk.start(), chunk.end()):
                base = m.start()
                url = m.group()
                rel = _relative(url) if len(url) <= 256 else _url._relative_parts(url, parse)
                for value, start, end in rel:
                    found.append(("url", value, base + start, base + end))
    if spans is None:
        out.extend(found)
    else:
        out.extend((k, v, *spans.span(s, e)) for k, v, s, e in found)


def canonicalize_url(value: str) -> str:
    work = refang(value.strip()).strip().strip("<>*_~`\"'").strip()  # wrappers
    m = _url.URL_RE.fullmatch(work)
    parsed = parse(work, m) if m else None
    if parsed is None and (unicode := _unpunycode(work)) is not None:
        m = _url.URL_RE.fullmatch(unicode)  # a canonical form with a non-ASCII TLD
        parsed = parse(unicode, m) if m else None
    if parsed is None or parsed.too_long >= 0:
        raise CanonError(
            f"url {value!r}: expected a link such as 'name.carrd.co' or "
            "'https://host/path' (host with a dot and an alphabetic top-level label)"
        )
    return parsed.canonical()


def _unpunycode(value: str) -> str | None:
    """``value`` with its top-level ``xn--`` label read back as Unicode (URL_RE takes only
    letters there), or None.  canon/1's ``unpunycode`` decodes every label and gives up
    when one fails; but the matcher never decodes the ASCII labels of scanned text, where
    "xn--c" (no punycode) or "xn--a" (U+0080) can stand beside a label canon/2 encodes, so
    they stay as they are."""
    for m in _url._ACE_RE.finditer(value):
        if value[m.end() : m.end() + 1] == ".":
            continue  # not the top-level label
        try:
            tld = m.group(1).encode("ascii").decode("punycode")
        except (UnicodeError, ValueError):
            return None
        return value[: m.start()] + tld + value[m.end() :]
    return None


def _decode_percent(work: str) -> tuple[str, list[int], list[int]]:
    """``work`` with its unreserved percent-escapes decoded (folded: lowercase), and where
    each character of the result starts and ends in ``work``: a handle spelled ``ma%64eup``
    is ``madeup``."""
    parts: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    pos = 0
    for m in _PERCENT_RE.finditer(work):
        ch = chr(int(m.group(1), 16))
        if ch not in _UNRESERVED:
            continue
        parts += [work[pos : m.start()], ch.lower()]
        starts += [*range(pos, m.start()), m.start()]
        ends += [*range(pos + 1, m.start() + 1), m.end()]
        pos = m.end()
    parts.append(work[pos:])
    starts += range(pos, len(work))
    ends += range(pos + 1, len(work) + 1)
    return "".join(parts), starts, ends


def payment_candidates(folded: str, out: list[tuple[str, str, int, int]]) -> None:
    """Payment handles in v2-folded text, spans in ``folded``."""
    if not any(map(folded.__contains__, _PAY_HINTS)):
        return
    work, spans = _refanged_spans(folded, folded=True)
    found: list[tuple[str, str, int, int]] = []
    if "%" not in work:
        _payment.candidates(work, found)
    else:  # spans back through the escapes, then through the refang
        decoded, starts, ends = _decode_percent(work)
        _payment.candidates(decoded, found)
        found = [(k, v, starts[s], ends[e - 1]) for k, v, s, e in found]
    if spans is None:
        out.extend(found)
    else:
        out.extend((k, v, *spans.span(s, e)) for k, v, s, e in found)


def canonicalize_payment(folded: str, original: str) -> str:
    work = refang(folded)
    if "%" in work:
        work = _decode_percent(work)[0]
    return _payment.canonicalize(work.strip(), original)


def emoji_candidates(text: str, out: list[tuple[str, str, int, int]]) -> None:
    _emoji.candidates(text, out, EMOJI_GAP)


def canonicalize_emoji(value: str) -> str:
    return _emoji.canonicalize(value, EMOJI_GAP)
