"""Write tests/vectors/pattern-fold.jsonl: where a pattern indicator fires, per canon version.

A pattern runs over the text as its canon version folds it, and its spans index the
ORIGINAL text, so two matchers must fold alike and map spans back alike.  Each row gives a
canon version, a gated pattern, a text (``text``, or ``text_cp`` code points where it holds
marks or invisibles) and the spans, in the original text, of every match.  Look-alikes and
marks come from each canon's shipped table, not picked by hand.  Generated once, then
frozen: a failing vector is a new canon version's question, never a regeneration.
"""

from __future__ import annotations

import sys
import unicodedata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests.vectors
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from sighub.client._canon._table import FOLD as FOLD1
from sighub.client._canon._v2._table import FOLD as FOLD2
from sighub.client._local import stored
from sighub.client._matcher import Matcher
from sighub.client._model import Form, Indicator, Kind, Publisher, now_ms
from tests.vectors._codepoints import encoded, write_jsonl

OUT = Path(__file__).with_name("pattern-fold.jsonl")
PATTERN = "code[0-9]{4}"
VERSIONS = ("canon/1", "canon/2")


def spans(canon: str, pattern: str, text: str) -> list[list[int]]:
    """The spans, in ``text``, where ``pattern`` of ``canon`` fires (RE2, the reference)."""
    now = now_ms()
    ind = Indicator(
        id="indicator--00000000-0000-4000-8000-000000000000", kind=Kind.PAYMENT,
        form=Form.PATTERN, value=pattern, collaboration="sg-csam",
        publisher=Publisher("identity--00000000-0000-4000-8000-000000000001", "vectors"),
        valid_from=now, valid_until=now.replace(year=now.year + 1), created=now,
        modified=now, key_epoch=None, canon_version=canon, scheme=None,
    )  # fmt: skip
    return [[m.start, m.end] for m in Matcher([stored(ind)], {}, "re2").scan(text)]


def row(rule: str, text: str, pattern: str = PATTERN) -> list[dict[str, object]]:
    return [{"rule": rule, "canon": v, "pattern": pattern, **encoded(text, "text"),
             "spans": spans(v, pattern, text)} for v in VERSIONS]  # fmt: skip


def look_alikes() -> list[dict[str, object]]:
    """Every 6th look-alike of c, o, d or e in either table, spelling the code."""
    rows = []
    for table in (FOLD1, FOLD2):
        found = [chr(cp) for cp, s in sorted(table.items())
                 if cp >= 0x80 and s in ("c", "o", "d", "e")]  # fmt: skip
        for ch in found[::6]:
            k = "code".index(table[ord(ch)])
            rows += row("look-alike", f"pay {'code'[:k]}{ch}{'code'[k + 1 :]}1234 now")
    return rows


def marks() -> list[dict[str, object]]:
    """Every 40th mark either table strips, inside the code (the span keeps it)."""
    stripped = sorted({cp for t in (FOLD1, FOLD2) for cp, s in t.items() if s == ""
                       and unicodedata.category(chr(cp)) in ("Mn", "Me")})  # fmt: skip
    return [r for cp in stripped[::40] for r in row("marks", f"co{chr(cp)}de1234!")]


def shapes() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for rule, text in [
        ("ascii", "CODE1234 and code5678, code12"),
        ("width", "ＣＯＤＥ１２３４"),
        ("expands", "ﬁ code1234 ß code5678"),
        ("small-capital", "ᴄᴏᴅᴇ1234"),
        ("lunate-sigma", "ϲode1234"),
        ("invisible", "co\u200bde1234"),
        ("none", "cod e1234 c0de1234"),
    ]:
        rows += row(rule, text)
    rows += row("expands", "ﬁle-123 or ﬀ", "fi[a-z]{2}-[0-9]{3}")
    return rows


def main() -> None:
    lines = shapes() + look_alikes() + marks()
    write_jsonl(OUT, lines)


if __name__ == "__main__":
    main()
