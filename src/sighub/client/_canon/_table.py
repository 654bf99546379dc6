"""canon/1's shipped code-point tables, loaded once and turned into translate maps and
regular-expression character classes.  Nothing here asks the running Python's Unicode
database, so results are the same on every Python and Unicode version."""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from typing import Final

TABLE_FILE: Final = "fold-v1.json"
_raw = resources.files(__package__).joinpath(TABLE_FILE).read_bytes()
TABLE_SHA256: Final = hashlib.sha256(_raw).hexdigest()
_data = json.loads(_raw)

FOLD: Final[dict[int, str]] = {int(k): v for k, v in _data["fold"].items()}
HOST_FOLD: Final[dict[int, str]] = {int(k): v for k, v in _data["host"].items()}
# FOLD plus an identity entry for every other BMP code point: str.translate pays for a
# lookup that misses with an exception, so a table that always hits folds twice as fast
# (about 5 MB, built once).
FOLD_TRANSLATE: Final[dict[int, int | str]] = {
    cp: cp for cp in range(0x10000) if not 0xD800 <= cp <= 0xDFFF
}
FOLD_TRANSLATE.update(FOLD)


def _esc(cp: int) -> str:
    return f"\\U{cp:08x}"


def _class(ranges: list[list[int]]) -> str:
    """The inside of a bracket class for the given code-point ranges."""
    return "".join(_esc(lo) if lo == hi else f"{_esc(lo)}-{_esc(hi)}" for lo, hi in ranges)


def one_of(ranges: list[list[int]], extra: str = "") -> str:
    """A pattern for one character of ``ranges`` (or ``extra``, a class fragment).

    ``re`` checks a class that is wholly in the BMP against a bitmap but scans a class with
    astral ranges range by range, so the astral part is split off behind a cheap guard.
    """
    bmp = [r for r in ranges if r[1] < 0x10000]
    astral = [r for r in ranges if r[1] >= 0x10000]
    head = f"[{_class(bmp)}{extra}]"
    if not astral:
        return head
    return f"(?:{head}|(?=[\U00010000-\U0010ffff])[{_class(astral)}])"


def bmp_class(ranges: list[list[int]], extra: str = "") -> str:
    """A bracket class for the BMP part of ``ranges`` (checked against a bitmap)."""
    return f"[{_class([r for r in ranges if r[1] < 0x10000])}{extra}]"


def run_of(ranges: list[list[int]], extra: str = "") -> str:
    """A pattern for a run of one or more characters of ``ranges`` (or ``extra``).

    Possessive (never backtracks into the run): a run of BMP and astral characters can be
    split between the loops many ways, and a failed match after it would try them all.
    Every use is followed by a character the run cannot take (or the end), so giving
    characters back could never help a match.
    """
    bmp = [r for r in ranges if r[1] < 0x10000]
    astral = [r for r in ranges if r[1] >= 0x10000]
    head = f"[{_class(bmp)}{extra}]"
    if not astral:
        return head + "+"
    tail = f"(?=[\\U00010000-\\U0010ffff])[{_class(astral)}]"
    return f"(?:{head}++|{tail})++"


def _merge(*lists: list[list[int]]) -> list[list[int]]:
    out: list[list[int]] = []
    for lo, hi in sorted(r for rs in lists for r in rs):
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return out


LETTERS: Final[list[list[int]]] = _data["letters"]
DIGITS: Final[list[list[int]]] = _data["digits"]
WORD: Final = _merge(LETTERS, DIGITS)
PICTO: Final[list[list[int]]] = _data["pictographic"]
REGIONAL: Final = _class([_data["regional"]])
SKIN: Final = _class([_data["skin"]])
# Characters whose fold is not exactly one character: only texts holding one of these need
# an explicit offset map back to the original.
NON_UNIT: Final = frozenset(chr(cp) for cp, s in FOLD.items() if len(s) != 1)
# Whitespace as canon/1 sees it, independent of the running Python's \s.
SPACE: Final = " \t\n\r\f\v\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"

# The ASCII fast path relies on the table folding ASCII exactly as str.lower() does.
_ascii = {cp: s for cp, s in FOLD.items() if cp < 0x80}
if _ascii != {cp: chr(cp + 32) for cp in range(0x41, 0x5B)}:  # pragma: no cover
    raise RuntimeError(f"{TABLE_FILE}: ASCII folding differs from str.lower()")
