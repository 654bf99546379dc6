"""canon/1 for URLs: host lowercased and IDNA-encoded, ``www.``, scheme, default ports,
fragments, trailing slashes and tracking parameters dropped; path case kept."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from encodings.punycode import generate_integers
from typing import Final

from sighub.client._canon._table import HOST_FOLD, LETTERS, SPACE, WORD, one_of
from sighub.client._errors import CanonError

_PATH: Final = "[^" + SPACE + "<>\"'`]*"


def _url_re(word: str, word_x: str, before: str, letter: str) -> re.Pattern[str]:
    return re.compile(
        f"(?<!{before})"
        r"((?:h(?:tt|xx)ps?)://)?"
        f"((?:{word}(?:{word_x}*{word})?\\.)+{letter}{{2,24}})(?!{word_x})"
        r"(?::([0-9]{1,5}))?"
        f"((?:[/?#]{_PATH})?)",
        re.IGNORECASE,
    )


URL_RE: Final = _url_re(one_of(WORD), one_of(WORD, r"\-_"), one_of(WORD, r"@.\-_/"),
                        one_of(LETTERS))  # fmt: skip
# The same for ASCII-only chunks, where the classes agree with the full ones.
_URL_ASCII_RE: Final = _url_re("[a-z0-9]", r"[a-z0-9\-_]", r"[a-z0-9@.\-_/]", "[a-z]")
# URLs hold no whitespace: only chunks with a dot are searched.
_CHUNK_RE: Final = re.compile(f"(?<![^{SPACE}])[^{SPACE}.]*\\.[^{SPACE}]*")
_TRAILING: Final = ".,;:!?)]}'\""
_PATH_END: Final = "/" + _TRAILING
_TRACKING: Final = frozenset(
    [
        "fbclid",
        "gclid",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "igshid",
        "igsh",
        "mc_cid",
        "mc_eid",
        "yclid",
        "twclid",
        "ttclid",
        "_ga",
        "_gl",
        "si",
        "ref_src",
        "ref_url",
        "s_cid",
    ]
)
_DEFAULT_PORTS: Final = frozenset({"80", "443"})
# Bounds of what canonicalize() can produce from a value of at most 512 characters (the
# analyst's limit): no more than 256 host labels or path segments (each needs a character
# and a separator), and no label whose folded, NFC form exceeds 512 x 18 code points (18:
# the longest NFD expansion of a folded letter or digit in the table, checked by a test).
# A candidate past them can equal no indicator, so it is not generated: without the bounds
# a text's host suffixes and path prefixes grow with the square of its length.
VALUE_CHARS: Final = 512
MAX_PARTS: Final = VALUE_CHARS // 2
MAX_LABEL_EXPANSION: Final = 18
MAX_LABEL_UNITS: Final = VALUE_CHARS * MAX_LABEL_EXPANSION
_CACHED_URL_CHARS: Final = 256  # links longer than this are rare: not worth a cache slot


@dataclass(frozen=True, slots=True)
class ParsedUrl:
    labels: tuple[str, ...]  # canonical host labels, www. dropped ("" past MAX_LABEL_UNITS)
    label_spans: tuple[tuple[int, int], ...]  # the same labels in the original text
    port: str  # "" or ":8080"
    segments: tuple[tuple[str, int], ...]  # path segments "/a" with end offset in text
    query: str  # "" or "?a=1&b=2" (sorted, tracking dropped)
    start: int
    end: int
    too_long: int  # index of the last label past MAX_LABEL_UNITS, -1 when none is

    @property
    def host(self) -> str:
        return ".".join(self.labels) + self.port

    def path(self, upto: int | None = None) -> str:
        """The canonical path of the first ``upto`` segments: trailing slashes and
        punctuation dropped."""
        return "".join(s for s, _ in self.segments[:upto]).rstrip(_PATH_END)

    def canonical(self) -> str:
        return self.host + self.path() + self.query


def _label(raw: str) -> str | None:
    """The canonical form of one host label; None when it is longer than any label of an
    analyst's value can become (``MAX_LABEL_UNITS``)."""
    if raw.isascii():
        return raw.lower() if len(raw) <= MAX_LABEL_UNITS else None
    label = unicodedata.normalize("NFC", raw.translate(HOST_FOLD))
    if len(label) > MAX_LABEL_UNITS:
        return None
    if label.isascii():
        return label.lower()
    return "xn--" + punycode(label)


def punycode(text: str) -> str:
    """RFC 3492 Punycode of ``text``, identical to ``text.encode("punycode")`` but in
    O(n log n): the codec's insertion-unsort step rescans the whole label once per distinct
    code point, quadratic for a long label of distinct letters.  Here a Fenwick tree over
    positions counts, for each occurrence, the smaller-or-equal code points before it."""
    codes = [ord(c) for c in text]
    basic = "".join(c for c in text if ord(c) < 0x80)
    by_code: dict[int, list[int]] = {}
    tree = [0] * (len(codes) + 1)  # 1-based; a position is added once its code is done
    done = 0
    for pos, cp in enumerate(codes):
        if cp < 0x80:
            _add(tree, pos + 1)
            done += 1
        else:
            by_code.setdefault(cp, []).append(pos)
    deltas: list[int] = []
    old_code, old_index = 0x80, -1
    for cp in sorted(by_code):
        delta = (done + 1) * (cp - old_code)
        for pos in by_code[cp]:  # in text order: earlier ones are counted for later ones
            index = _count(tree, pos)
            delta += index - old_index
            deltas.append(delta - 1)
            old_index, delta = index, 0
            _add(tree, pos + 1)
            done += 1
        old_code = cp
    tail = generate_integers(len(basic), deltas).decode("ascii")
    return basic + "-" + tail if basic else tail


def _add(tree: list[int], i: int) -> None:
    while i < len(tree):
        tree[i] += 1
        i += i & -i


def _count(tree: list[int], i: int) -> int:
    """How many positions before ``i`` (0-based) were added."""
    total = 0
    while i > 0:
        total += tree[i]
        i -= i & -i
    return total


def _query(raw: str) -> str:
    kept = []
    for part in raw.split("&"):
        key = part.split("=", 1)[0].lower()
        if part and key not in _TRACKING and not key.startswith("utm_"):
            kept.append(part)
    return "?" + "&".join(sorted(kept)) if kept else ""


def parse(
    text: str,
    m: re.Match[str],
    label: Callable[[str], str | None] | None = None,
    segment: Callable[[str], str] | None = None,
) -> ParsedUrl | None:
    """Build a ParsedUrl from a URL_RE match, trimming trailing punctuation.  ``label`` and
    ``segment`` replace canon/1's host-label and path-segment forms (canon/2 passes its
    own)."""
    label = label or _label
    end = m.end()
    while end > m.start(4) and text[end - 1] in _TRAILING:
        end -= 1
    host_start = m.start(2)
    raw_labels = m.group(2).split(".")
    spans, pos = [], host_start
    for raw in raw_labels:
        spans.append((pos, pos + len(raw)))
        pos += len(raw) + 1
    found = [label(raw) for raw in raw_labels]
    if len(found) > 2 and found[0] == "www":
        found, spans = found[1:], spans[1:]
    too_long = max((k for k, label in enumerate(found) if label is None), default=-1)
    labels = [label or "" for label in found]
    port = m.group(3) or ""
    port = "" if not port or port in _DEFAULT_PORTS else ":" + port
    rest_start = m.start(4)
    rest = text[rest_start:end]
    path, _, query = rest.split("#", 1)[0].partition("?")
    segments: list[tuple[str, int]] = []
    offset = rest_start
    for seg in path.split("/")[1:]:
        offset += len(seg) + 1
        if seg:
            segments.append(("/" + (segment(seg) if segment else seg), offset))
    if not labels:
        return None
    return ParsedUrl(tuple(labels), tuple(spans), port, tuple(segments), _query(query),
                     m.start(), end, too_long)  # fmt: skip


_ACE_RE: Final = re.compile(r"(?i)(?<![^./:@])xn--([a-z0-9\-]+)(?=$|[./:?#])")


def unpunycode(value: str) -> str | None:
    """``value`` with its ``xn--`` labels read back as Unicode; None when there are none or
    one does not decode.  A canonical URL whose top-level label is not ASCII letters ends
    in such a label, which URL_RE (letters only) does not take: this lets a canonical form
    be canonicalized again, to itself."""
    if "xn--" not in value.lower():
        return None
    try:
        return _ACE_RE.sub(lambda m: m.group(1).encode("ascii").decode("punycode"), value)
    except (UnicodeError, ValueError):
        return None


def canonicalize(value: str) -> str:
    stripped = value.strip()
    m = URL_RE.fullmatch(stripped)
    parsed = parse(stripped, m) if m else None
    if parsed is None and (unicode := unpunycode(stripped)) is not None:
        m = URL_RE.fullmatch(unicode)
        parsed = parse(unicode, m) if m else None
    if parsed is None or parsed.too_long >= 0:  # too_long: not within 512 chars
        raise CanonError(
            f"url {value!r}: expected a link such as 'name.carrd.co' or "
            "'https://host/path' (host with a dot and an alphabetic top-level label)"
        )
    return parsed.canonical()


def candidates(text: str, out: list[tuple[str, str, int, int]]) -> None:
    """Hosts at every label suffix, host plus each path prefix, and the full link."""
    for left, right in _dotted_regions(text):
        for chunk in _CHUNK_RE.finditer(text, left, right):
            url_re = _URL_ASCII_RE if chunk.group().isascii() else URL_RE
            for m in url_re.finditer(text, chunk.start(), chunk.end()):
                base = m.start()
                for value, start, end in _relative(m.group()):
                    out.append(("url", value, base + start, base + end))


def _dotted_regions(text: str) -> list[tuple[int, int]]:
    """Regions around each dot, bounded by the common whitespace characters.

    Each region contains every whole chunk (run without any SPACE character) that holds
    its dot, so searching chunks inside the regions finds exactly what searching the whole
    text would, while the text is scanned by ``str.find`` (memchr) instead of a regex.
    Every search starts where the last one stopped (the previous region's end looking
    back, the next known whitespace looking ahead), so the text is scanned a bounded
    number of times whatever its shape.
    """
    regions = []
    size = len(text)
    ahead = dict.fromkeys(" \n\t", -1)  # next occurrence at or after the dot (size: none)
    right = 0
    dot = text.find(".")
    while dot != -1:
        left = max(text.rfind(ws, right, dot) for ws in ahead)  # right: a whitespace, or 0
        for ws, at in ahead.items():
            if at < dot:
                found = text.find(ws, dot)
                ahead[ws] = size if found == -1 else found
        right = min(ahead.values())
        regions.append((left + 1, right))
        dot = text.find(".", right)
    return regions


def _relative(url: str) -> tuple[tuple[str, int, int], ...]:
    """The candidates of one matched link, spans relative to it."""
    return _relative_cached(url) if len(url) <= _CACHED_URL_CHARS else _relative_parts(url)


@functools.lru_cache(maxsize=4096)
def _relative_cached(url: str) -> tuple[tuple[str, int, int], ...]:
    return _relative_parts(url)  # links repeat a lot


def _relative_parts(
    url: str, parser: Callable[[str, re.Match[str]], ParsedUrl | None] = parse
) -> tuple[tuple[str, int, int], ...]:
    m = URL_RE.fullmatch(url)
    p = parser(url, m) if m is not None else None
    if m is None or p is None:
        return ()
    out: list[tuple[str, int, int]] = []
    host_end = p.label_spans[-1][1]
    # Host suffixes of at most MAX_PARTS labels, none of them too long.
    first = max(0, len(p.labels) - MAX_PARTS, p.too_long + 1)
    for k in range(first, len(p.labels) - 1):
        out.append((".".join(p.labels[k:]), p.label_spans[k][0], host_end))
    if p.too_long >= 0 or len(p.labels) > MAX_PARTS:
        return tuple(out)  # the whole host is in every other candidate
    if p.port:
        out.append((p.host, p.start, m.end(3)))
    last = ""
    for k, (_, seg_end) in enumerate(p.segments[:MAX_PARTS], 1):
        # A path that changes at segment k holds at least k slashes.
        path = p.path(k)
        if path and path != last:
            out.append((p.host + path, p.start, seg_end))
        last = path
    if p.query and p.path().count("/") <= MAX_PARTS:
        out.append((p.canonical(), p.start, p.end))
    return tuple(out)
