"""canon/2's shipped code-point table (``fold-v2.json``), loaded once.  Imported only when
canon/2 is first used: its translate map costs about 5 MB."""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from typing import Final

from sighub.client._canon._table import _merge

TABLE_FILE: Final = "fold-v2.json"
_raw = resources.files("sighub.client._canon").joinpath(TABLE_FILE).read_bytes()
TABLE_SHA256: Final = hashlib.sha256(_raw).hexdigest()
_data = json.loads(_raw)

FOLD: Final[dict[int, str]] = {int(k): v for k, v in _data["fold"].items()}
FOLD_TRANSLATE: Final[dict[int, int | str]] = {
    cp: cp for cp in range(0x10000) if not 0xD800 <= cp <= 0xDFFF
}
FOLD_TRANSLATE.update(FOLD)
LETTERS: Final[list[list[int]]] = _data["letters"]
DIGITS: Final[list[list[int]]] = _data["digits"]
WORD: Final = _merge(LETTERS, DIGITS)
NON_UNIT: Final = frozenset(chr(cp) for cp, s in FOLD.items() if len(s) != 1)

_ascii = {cp: s for cp, s in FOLD.items() if cp < 0x80}
if _ascii != {cp: chr(cp + 32) for cp in range(0x41, 0x5B)}:  # pragma: no cover
    raise RuntimeError(f"{TABLE_FILE}: ASCII folding differs from str.lower()")
