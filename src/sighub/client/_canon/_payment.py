"""canon/1 for payment handles: ``service:handle``, case-folded.

Recognised in text: CashApp ``$cashtag`` and ``cash.app/$tag``, ``paypal.me/name`` (and
``paypal.com/paypalme/name``), Venmo ``venmo.com/u/name`` and ``venmo @name``.  Handles are
exact identifiers: they are case- and width-folded but never leet-folded.
"""

from __future__ import annotations

import re
from typing import Final

from sighub.client._errors import CanonError

SERVICES: Final = ("cashapp", "paypal", "venmo")
# (service, a literal every match contains, pattern); the literal skips most texts cheaply.
_PATTERNS: Final = (
    ("cashapp", "$", r"(?<![\w$/])\$(?=[a-z0-9_]*[a-z])([a-z0-9_]{1,20})(?![\w$])"),
    ("cashapp", "cash.app", r"(?<![\w.])(?:https?://)?cash\.app/\$([a-z0-9_]{1,20})(?![\w])"),
    ("paypal", "paypal.me", r"(?<![\w.])(?:https?://)?(?:www\.)?paypal\.me/([a-z0-9_\-]{1,64})"),
    (
        "paypal",
        "paypal.com",
        r"(?<![\w.])(?:https?://)?(?:www\.)?paypal\.com/paypalme/([\w\-]{1,64})",
    ),
    ("venmo", "venmo.com", r"(?<![\w.])(?:https?://)?(?:www\.)?venmo\.com/(?:u/)?([\w\-]{1,30})"),
    ("venmo", "venmo", r"(?<![\w])venmo\s{0,2}[:\-]?\s{0,2}@([a-z0-9_\-]{1,30})(?![\w\-])"),
)
_RES: Final = tuple((svc, lit, re.compile(p, re.ASCII)) for svc, lit, p in _PATTERNS)
_LITERALS: Final = ("$", "cash.app", "paypal", "venmo")
_PREFIX_MAX: Final = len("https://account.")
_EXPLICIT_RE: Final = re.compile(r"(cashapp|paypal|venmo)\s*:\s*[@$]?([a-z0-9_\-]{1,64})")


def may_contain(folded: str) -> bool:
    """Cheap test: could ``folded`` hold a payment handle at all?"""
    return any(literal in folded for literal in _LITERALS)


def candidates(folded: str, out: list[tuple[str, str, int, int]]) -> None:
    """Payment handles in already folded text, spans in ``folded``."""
    for svc, literal, rx in _RES:
        first = folded.find(literal)
        if first == -1:
            continue
        # A match holds its literal at most _PREFIX_MAX characters from its start.
        for m in rx.finditer(folded, max(0, first - _PREFIX_MAX)):
            out.append(("payment", f"{svc}:{m.group(1)}", m.start(), m.end()))


def canonicalize(folded: str, original: str) -> str:
    """Canonical handle of an analyst's value (``folded`` is its folded, stripped form)."""
    m = _EXPLICIT_RE.fullmatch(folded)
    if m is not None:
        return f"{m.group(1)}:{m.group(2)}"
    found: list[tuple[str, str, int, int]] = []
    candidates(folded, found)
    for _, value, start, end in found:
        if start == 0 and end == len(folded):
            return value
    raise CanonError(
        f"payment {original!r}: expected '$cashtag', 'cash.app/$tag', 'paypal.me/NAME', "
        "'venmo @NAME' or 'SERVICE:HANDLE' with SERVICE one of " + ", ".join(SERVICES)
    )
