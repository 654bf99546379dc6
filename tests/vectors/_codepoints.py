"""How golden vectors hold a text with marks, controls or invisibles: as its code points
(``"U+0301"``) under ``<field>_cp`` instead of ``<field>``, so a row stays readable and no
editor or tool normalizes it.  Generators write rows with ``encoded`` and ``write_jsonl``;
tests read them back with ``decoded``."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path


def encoded(text: str, field: str) -> dict[str, object]:
    """``{field: text}``, or ``{field + "_cp": [...]}`` when ``text`` holds a character that
    is not printable or is a mark or control (general categories M* and C*)."""
    if all(ch.isprintable() and unicodedata.category(ch)[0] not in "MC" for ch in text):
        return {field: text}
    return {f"{field}_cp": [f"U+{ord(ch):04X}" for ch in text]}


def decoded(row: Mapping[str, object], field: str) -> str:
    """The text ``encoded`` wrote under ``field``, from either form."""
    cps = row.get(f"{field}_cp")
    if isinstance(cps, list):
        return "".join(chr(int(cp[2:], 16)) for cp in cps)
    return str(row[field])


def write_jsonl(path: Path, rows: Sequence[Mapping[str, object]]) -> None:
    """``rows`` as JSON lines (UTF-8, not escaped) into ``path``."""
    path.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in rows))
    print(f"wrote {len(rows)} vectors to {path}")
