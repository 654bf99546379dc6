"""Generate canon/1's code-point tables (run once; the output is committed and pinned).

canon/1 must not depend on the Unicode version of whichever Python runs it, so every
per-character decision (folding, word/letter/digit classes, pictographs) is computed here
once and shipped as ``fold-v1.json``.  A test pins the file's SHA-256: regenerating it with
a different result is a canon/2 change, never an edit.

Usage: ``python -m sighub.client._canon._gen_table [OUT]``.
"""

from __future__ import annotations

import json
import sys
import unicodedata
from collections.abc import Iterable
from pathlib import Path

OUT = Path(__file__).with_name("fold-v1.json")

# Combining marks that are diacritics on Latin/Greek/Cyrillic letters; other scripts keep
# their marks because they are part of the letters there.
_DIACRITIC_BLOCKS = [(0x0300, 0x036F), (0x1AB0, 0x1AFF), (0x1DC0, 0x1DFF), (0x20D0, 0x20FF),
                     (0xFE20, 0xFE2F)]  # fmt: skip

# Characters that render as nothing or as blank filler and are used to split words.
_INVISIBLE_EXTRA = [0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x3164, 0xFFA0, 0x2800]
_INVISIBLE_RANGES = [(0x180B, 0x180F), (0xFE00, 0xFE0F), (0xE0100, 0xE01EF)]

# Look-alike letters from Cyrillic, Greek and IPA, after case folding, to Latin.
_CONFUSABLES = {
    "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
    "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ј": "j", "ԛ": "q",
    "ԝ": "w", "һ": "h", "ӏ": "l", "ь": "b", "ү": "y", "ԁ": "d", "ɡ": "g", "ı": "i",
    "α": "a", "β": "b", "γ": "y", "ε": "e", "ζ": "z", "η": "n", "ι": "i", "κ": "k",
    "μ": "u", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w",
    "ϲ": "c", "ϳ": "j", "ѡ": "w", "ɑ": "a", "ɩ": "i", "ᴦ": "r", "ʏ": "y",
}  # fmt: skip

# Extended_Pictographic, approximated by symbol categories in the emoji blocks plus the
# BMP singles that have emoji presentation.
_PICTO_BLOCKS = [(0x1F000, 0x1FAFF), (0x2600, 0x27BF), (0x2300, 0x23FF), (0x2B00, 0x2BFF)]
_PICTO_SINGLES = [0xA9, 0xAE, 0x203C, 0x2049, 0x2122, 0x2139, 0x24C2, 0x2934, 0x2935,
                  0x3030, 0x303D, 0x3297, 0x3299, 0x25AA, 0x25AB, 0x25B6, 0x25C0]  # fmt: skip
_PICTO_SINGLES += [*range(0x2194, 0x219A), 0x21A9, 0x21AA, *range(0x25FB, 0x25FF)]
_REGIONAL = (0x1F1E6, 0x1F1FF)
_SKIN = (0x1F3FB, 0x1F3FF)


def _in(cp: int, ranges: Iterable[tuple[int, int]]) -> bool:
    return any(lo <= cp <= hi for lo, hi in ranges)


def _strip_diacritics(s: str) -> str:
    return "".join(ch for ch in s if not _in(ord(ch), _DIACRITIC_BLOCKS))


def _is_word(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "LMN" and unicodedata.category(ch) != "No"


def _fold_char(c: str) -> str:
    s = _strip_diacritics(unicodedata.normalize("NFKD", c)).casefold()
    s = unicodedata.normalize("NFC", _strip_diacritics(unicodedata.normalize("NFKD", s)))
    s = "".join(_CONFUSABLES.get(ch, ch) for ch in s)
    if len(s) > 1 and not all(_is_word(ch) for ch in s):
        # Keep word chars only when the rest is decoration around them: "⑴" -> "1"; a
        # compatibility form with inner punctuation ("½" = "1⁄2") stays itself.
        inner = "".join(ch for ch in s if _is_word(ch) or ch.isspace()).strip()
        trimmed = s.strip("".join(ch for ch in s if not _is_word(ch)))
        s = trimmed if trimmed and trimmed == inner and " " not in inner else c
    return s


def _host_char(c: str) -> str:
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", c).casefold())


def _is_invisible(cp: int, cat: str) -> bool:
    return cat == "Cf" or cp in _INVISIBLE_EXTRA or _in(cp, _INVISIBLE_RANGES)


def _ranges(cps: list[int]) -> list[list[int]]:
    out: list[list[int]] = []
    for cp in cps:
        if out and out[-1][1] == cp - 1:
            out[-1][1] = cp
        else:
            out.append([cp, cp])
    return out


def build() -> dict[str, object]:
    fold: dict[str, str] = {}
    host: dict[str, str] = {}
    letters: list[int] = []
    digits: list[int] = []
    picto: list[int] = []
    for cp in range(0x110000):
        c = chr(cp)
        cat = unicodedata.category(c)
        if cat in ("Cn", "Cs", "Co"):
            continue
        if _is_invisible(cp, cat):
            fold[str(cp)] = host[str(cp)] = ""
            continue
        if cat[0] in "LM" and not _in(cp, _DIACRITIC_BLOCKS):
            letters.append(cp)
        elif cat == "Nd":
            digits.append(cp)
        symbol = cat in ("So", "Sk", "Sm") and _in(cp, _PICTO_BLOCKS)
        if (symbol or cp in _PICTO_SINGLES) and not _in(cp, [_REGIONAL, _SKIN]):
            picto.append(cp)
        f = " " if cat == "Zs" else _fold_char(c)
        if f != c:
            fold[str(cp)] = f
        h = _host_char(c)
        if h != c:
            host[str(cp)] = h
    return {
        "canon": "canon/1",
        "generated_with_unicode": unicodedata.unidata_version,
        "fold": fold,
        "host": host,
        "letters": _ranges(letters),
        "digits": _ranges(digits),
        "pictographic": _ranges(picto),
        "regional": list(_REGIONAL),
        "skin": list(_SKIN),
    }


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else OUT
    data = json.dumps(build(), ensure_ascii=True, sort_keys=True, separators=(",", ":"))
    out.write_text(data + "\n", encoding="ascii")
    print(f"wrote {out} ({len(data)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
