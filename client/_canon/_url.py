"""canon/1 for URLs: host lowercased and IDNA-encoded, ``www.``, scheme, default ports,
fragments, trailing slashes and tracking parameters dropped; path case kept."""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from typing import Final

from client._canon._table import HOST_FOLD, LETTERS, SPACE, WORD, one_of
from client._errors import CanonError

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


@dataclass(frozen=True, slots=True)
class ParsedUrl:
    labels: tuple[str, ...]  # canonical host labels, www. dropped
    label_spans: tuple[tuple[int, int], ...]  # the same labels in the original text
    port: str  # "" or ":8080"
    segments: tuple[tuple[str, int], ...]  # path segments "/a" with end offset in text
    query: str  # "" or "?a=1&b=2" (sorted, tracking dropped)
    start: int
    end: int

    @property
    def host(self) -> str:
        return ".".join(self.labels) + self.port

    def path(self, upto: int | None = None) -> str:
        """The canonical path of the first ``upto`` segments: trailing slashes and
        punctuation dropped."""
        return "".join(s for s, _ in self.segments[:upto]).rstrip(_PATH_END)

    def canonical(self) -> str:
        return self.host + self.path() + self.query


def _label(raw: str) -> str:
    if raw.isascii():
        return raw.lower()
    label = unicodedata.normalize("NFC", raw.translate(HOST_FOLD))
    if label.isascii():
        return label.lower()
    return "xn--" + label.encode("punycode").decode("ascii")


def _query(raw: str) -> str:
    kept = []
    for part in raw.split("&"):
        key = part.split("=", 1)[0].lower()
        if part and key not in _TRACKING and not key.startswith("utm_"):
            kept.append(part)
    return "?" + "&".join(sorted(kept)) if kept else ""


def parse(text: str, m: re.Match[str]) -> ParsedUrl | None:
    """Build a ParsedUrl from a URL_RE match, trimming trailing punctuation."""
    end = m.end()
    while end > m.start(4) and text[end - 1] in _TRAILING:
        end -= 1
    host_start = m.start(2)
    raw_labels = m.group(2).split(".")
    spans, pos = [], host_start
    for raw in raw_labels:
        spans.append((pos, pos + len(raw)))
        pos += len(raw) + 1
    labels = [_label(raw) for raw in raw_labels]
    if len(labels) > 2 and labels[0] == "www":
        labels, spans = labels[1:], spans[1:]
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
            segments.append(("/" + seg, offset))
    if not labels:
        return None
    return ParsedUrl(tuple(labels), tuple(spans), port, tuple(segments), _query(query),
                     m.start(), end)  # fmt: skip


def canonicalize(value: str) -> str:
    stripped = value.strip()
    m = URL_RE.fullmatch(stripped)
    parsed = parse(stripped, m) if m else None
    if parsed is None:
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
    """
    regions = []
    dot = text.find(".")
    while dot != -1:
        left = max(text.rfind(" ", 0, dot), text.rfind("\n", 0, dot), text.rfind("\t", 0, dot))
        ends = [e for e in (text.find(" ", dot), text.find("\n", dot), text.find("\t", dot))
                if e != -1]  # fmt: skip
        right = min(ends) if ends else len(text)
        regions.append((left + 1, right))
        dot = text.find(".", right)
    return regions


@functools.lru_cache(maxsize=4096)
def _relative(url: str) -> tuple[tuple[str, int, int], ...]:
    """The candidates of one matched link, spans relative to it (links repeat a lot)."""
    m = URL_RE.fullmatch(url)
    p = parse(url, m) if m is not None else None
    if m is None or p is None:
        return ()
    out: list[tuple[str, int, int]] = []
    host_end = p.label_spans[-1][1]
    for k in range(len(p.labels) - 1):
        out.append((".".join(p.labels[k:]), p.label_spans[k][0], host_end))
    if p.port:
        out.append((p.host, p.start, m.end(3)))
    last = ""
    for k, (_, seg_end) in enumerate(p.segments, 1):
        path = p.path(k)
        if path and path != last:
            out.append((p.host + path, p.start, seg_end))
        last = path
    if p.query:
        out.append((p.canonical(), p.start, p.end))
    return tuple(out)
