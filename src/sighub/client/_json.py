"""JSON from untrusted bytes, parsed under a budget.

Python's ``json`` recurses once per nesting level (a 2,000-deep document raises
RecursionError), turns a 5,000-digit integer into a ValueError, accepts ``NaN`` and lets a
document of tiny containers cost far more memory than its size.  ``loads`` checks the
budget (size, depth, containers, token length) before parsing, with C-speed byte
operations on the common path, and bounds numbers while parsing; every violation is a
``JsonBudgetError`` naming what was read, the rule, what was received and what was expected.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass
from typing import Any, Final

from sighub.client._errors import JsonBudgetError

__all__ = [
    "ANALYST_LINE",
    "DOCUMENT",
    "ENVELOPE",
    "PAYLOAD",
    "JsonBudget",
    "check",
    "loads",
    "loads_checked",
]


@dataclass(frozen=True, slots=True)
class JsonBudget:
    """The most a document may hold.  ``max_token_bytes`` bounds every string and every
    run of bytes between two quotes, so also numbers and runs of white space."""

    max_bytes: int
    max_depth: int
    max_containers: int
    max_number_chars: int = 24
    max_token_bytes: int = 65536


# A sighub bundle is 5 levels deep; 10,000 indicators need about 60,000 containers.
PAYLOAD: Final = JsonBudget(4 << 20, max_depth=10, max_containers=131072)
# An envelope: three keys around one long base64 string.
ENVELOPE: Final = JsonBudget(
    (4 << 20) + 4096, max_depth=4, max_containers=16, max_token_bytes=(4 << 20) + 4096
)
# Key files, credentials, enrollment files: small, flat documents.
DOCUMENT: Final = JsonBudget(1 << 20, max_depth=6, max_containers=1024)
# One analyst JSONL row or one ``sighub match`` input line.
ANALYST_LINE: Final = JsonBudget(1 << 20, max_depth=4, max_containers=64)

_BRACKETS: Final = b"[]{}"
_NOT_BRACKETS: Final = bytes(b for b in range(256) if b not in _BRACKETS)
# A whole JSON string (each consumed once: linear), and the brackets as depth steps.
_STRING: Final = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
_STEPS: Final = bytes.maketrans(b"[]{}", b"\x01\xff\x01\xff")


def loads(data: bytes, budget: JsonBudget, what: str) -> Any:
    """Parse ``data`` as JSON within ``budget``; ``what`` names it in errors.

    Raises JsonBudgetError for a document over budget or not JSON (including NaN and
    Infinity, which JSON does not have, and invalid UTF-8)."""
    check(data, budget, what)
    return loads_checked(data, budget, what)


def loads_checked(data: bytes, budget: JsonBudget, what: str) -> Any:
    """``loads`` for ``data`` that already passed ``check`` under ``budget``: parses it,
    bounding numbers, without scanning it again."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JsonBudgetError(
            what, "encoding", f"invalid UTF-8 at byte {exc.start}", "UTF-8"
        ) from None
    hooks = _Hooks(budget, what)
    try:
        return json.loads(
            text, parse_int=hooks.integer, parse_float=hooks.real, parse_constant=hooks.constant
        )
    except json.JSONDecodeError as exc:
        raise JsonBudgetError(what, "syntax", exc.msg, f"JSON (line {exc.lineno})") from None


def check(data: bytes, budget: JsonBudget, what: str) -> None:
    """Everything of ``budget`` that can be checked before parsing: size, depth,
    containers and token length (numbers are checked by ``loads`` while it parses)."""
    if len(data) > budget.max_bytes:
        raise JsonBudgetError(what, "size", f"{len(data)} bytes", f"at most {budget.max_bytes}")
    _check_nesting(data, budget, what)
    _check_tokens(data, budget, what)


class _Hooks:
    def __init__(self, budget: JsonBudget, what: str) -> None:
        self.max, self.what = budget.max_number_chars, what

    def _length(self, text: str) -> None:
        if len(text) > self.max:
            raise JsonBudgetError(
                self.what, "number length", f"{len(text)} characters", f"at most {self.max}"
            )

    def integer(self, text: str) -> int:
        self._length(text)
        return int(text)

    def real(self, text: str) -> float:
        self._length(text)
        return float(text)

    def constant(self, text: str) -> Any:
        raise JsonBudgetError(self.what, "number", text, "a finite number (JSON has no NaN)")


def _check_tokens(data: bytes, budget: JsonBudget, what: str) -> None:
    """No run of more than ``max_token_bytes`` without a quote: every window of half that
    size must hold one (a longer run would contain a whole window)."""
    half = max(1, budget.max_token_bytes // 2)
    for start in range(0, len(data) - half + 1, half):
        if data.find(b'"', start, start + half) < 0:
            left = data.rfind(b'"', 0, start) + 1
            right = data.find(b'"', start + half)
            run = (len(data) if right < 0 else right) - left
            if run > budget.max_token_bytes:
                raise JsonBudgetError(
                    what,
                    "token length",
                    f"a string or token of {run} bytes at byte {left}",
                    f"at most {budget.max_token_bytes}",
                )


def _check_nesting(data: bytes, budget: JsonBudget, what: str) -> None:
    """Depth and container count.  The common path looks only at the brackets (a few
    C-speed passes); brackets inside strings that do not pair up, or a count over budget,
    send the document to the exact check: the brackets outside strings, counted and
    summed at C speed too (a per-bracket loop in Python let a 63 KB document of nested
    arrays cost 100 ms)."""
    brackets = data.translate(None, _NOT_BRACKETS)
    if len(brackets) // 2 <= budget.max_containers and _pairs_within(brackets, budget.max_depth):
        return
    # A string that never ends stays, brackets and all: the parser refuses it anyway.
    outside = _STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    steps = memoryview(outside.translate(_STEPS)).cast("b")  # +1 for [ {, -1 for ] }
    if max(itertools.accumulate(steps), default=0) > budget.max_depth:
        raise JsonBudgetError(
            what, "depth", f"nesting deeper than {budget.max_depth}",
            f"at most {budget.max_depth} levels",
        )  # fmt: skip
    if outside.count(b"[") + outside.count(b"{") > budget.max_containers:
        raise JsonBudgetError(
            what, "containers", f"more than {budget.max_containers} objects and arrays",
            f"at most {budget.max_containers}",
        )  # fmt: skip


def _pairs_within(brackets: bytes, depth: int) -> bool:
    """Whether removing innermost ``[]`` and ``{}`` pairs leaves nothing within
    ``ceil(depth / 2)`` passes: then the brackets are balanced and nested at most ``depth``
    deep (a pass removes one level, or two where an array holds an object, never more).
    Deeper or odd shapes take the exact scan."""
    for _ in range((depth + 1) // 2):
        if not brackets:
            return True
        brackets = brackets.replace(b"[]", b"").replace(b"{}", b"")
    return not brackets
