"""The pattern gate: what a pattern indicator may be.

Pattern indicators run on linear-time engines (Hyperscan where it installs, RE2
otherwise), over canon/1-folded text (lowercase, width- and diacritic-folded).  The gate
accepts only a small syntax that both engines read the same way, and refuses anything that
could match the empty string, reference back, look around, nest unbounded repetition (the
classic ReDoS shapes, meaningless on a linear engine but a sign of a mistake) or compile
large.  It is a hand-written parser rather than ``re``'s private one so that the accepted
language does not change with the Python version.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Final

import re2

from sighub.client._errors import PatternRejected

__all__ = ["MAX_PATTERN_CHARS", "MAX_PROGRAM_SIZE", "MAX_REPEAT", "gate"]

MAX_PATTERN_CHARS: Final = 256
MAX_REPEAT: Final = 100
MAX_PROGRAM_SIZE: Final = 2000
_CLASS_ESCAPES: Final = frozenset("dDwWsS")
_META: Final = frozenset(".^$|?*+()[]{}\\/-#&~ \"'%,:;<=>@!`_")
_CONTROL: Final = {"n": "\n", "t": "\t", "r": "\r"}


@dataclass(frozen=True, slots=True)
class _Node:
    minlen: int
    unbounded: bool  # holds a *, + or {n,} somewhere


class _Parser:
    def __init__(self, pattern: str) -> None:
        self.p = pattern
        self.i = 0

    def fail(self, rule: str) -> PatternRejected:
        return PatternRejected(self.p, f"{rule} (at offset {self.i})")

    def peek(self) -> str:
        return self.p[self.i] if self.i < len(self.p) else ""

    def take(self) -> str:
        ch = self.peek()
        self.i += 1
        return ch

    def parse(self) -> _Node:
        node = self.alternation()
        if self.i != len(self.p):
            raise self.fail(f"unexpected {self.peek()!r}")
        return node

    def alternation(self) -> _Node:
        branches = [self.concat()]
        while self.peek() == "|":
            self.take()
            branches.append(self.concat())
        return _Node(min(b.minlen for b in branches), any(b.unbounded for b in branches))

    def concat(self) -> _Node:
        minlen, unbounded = 0, False
        while self.peek() not in ("", "|", ")"):
            node = self.repeat()
            minlen += node.minlen
            unbounded |= node.unbounded
        return _Node(minlen, unbounded)

    def repeat(self) -> _Node:
        start = self.i
        atom = self.atom()
        q = self.quantifier()
        if q is None:
            return atom
        lo, hi = q
        if self.peek() in ("?", "+"):
            raise self.fail("lazy or possessive quantifiers are not in the RE2/Hyperscan subset")
        body = self.p[start : self.i]
        if atom.minlen == 0:
            raise self.fail(f"quantified {body!r} can match the empty string")
        if atom.unbounded and (hi is None or hi > 1):
            raise self.fail(f"nested unbounded repetition {body!r} (the (a+)+ shape)")
        return _Node(atom.minlen * lo, atom.unbounded or hi is None)

    def quantifier(self) -> tuple[int, int | None] | None:
        ch = self.peek()
        if ch in ("*", "+", "?"):
            self.take()
            return {"*": (0, None), "+": (1, None), "?": (0, 1)}[ch]
        if ch != "{":
            return None
        close = self.p.find("}", self.i)
        spec = self.p[self.i + 1 : close] if close != -1 else ""
        lo_s, comma, hi_s = spec.partition(",")
        if not lo_s.isdigit() or (hi_s and not hi_s.isdigit()) or not lo_s.isascii():
            raise self.fail("a counted repetition must be {n}, {n,} or {n,m}")
        lo = int(lo_s)
        hi = (int(hi_s) if hi_s else None) if comma else lo
        if lo > MAX_REPEAT or (hi is not None and (hi > MAX_REPEAT or hi < lo)) or hi == 0:
            raise self.fail(f"counted repetition {{{spec}}} outside 1..{MAX_REPEAT}")
        self.i = close + 1
        return lo, hi

    def atom(self) -> _Node:
        ch = self.take()
        if ch == "(":
            return self.group()
        if ch == "[":
            self.char_class()
            return _Node(1, False)
        if ch in ("^", "$"):
            raise self.fail(f"anchor {ch!r}: engines differ at line ends; use \\b")
        if ch == "\\":
            return self.escape()
        if ch in ("*", "+", "?", "{"):
            raise self.fail(f"{ch!r} has nothing to repeat")
        if ch in (")", "]", "}"):
            raise self.fail(f"unbalanced {ch!r}")
        self.literal(ch)
        return _Node(1, False)

    def literal(self, ch: str) -> None:
        if "A" <= ch <= "Z":
            raise self.fail(f"uppercase {ch!r}: canonical text is lowercase")
        if ch < " " and ch not in "\t\n":
            raise self.fail("control characters are not allowed")

    def group(self) -> _Node:
        if self.peek() == "?":
            if self.p[self.i : self.i + 2] != "?:":
                raise self.fail(
                    "only (...) and (?:...) groups: no lookaround, named groups, flags "
                    "or atomic groups"
                )
            self.i += 2
        node = self.alternation()
        if self.take() != ")":
            raise self.fail("missing ')'")
        return node

    def escape(self) -> _Node:
        ch = self.take()
        if ch in ("b", "B"):
            return _Node(0, False)
        if ch in _CLASS_ESCAPES or ch in _CONTROL or ch in _META:
            return _Node(1, False)
        if ch == "x":
            self.hex_escape()
            return _Node(1, False)
        if ch.isdigit():
            raise self.fail(f"backreference \\{ch}")
        if ch == "":
            raise self.fail("trailing backslash")
        raise self.fail(f"escape \\{ch} is not in the RE2/Hyperscan subset")

    def hex_escape(self) -> str:
        digits = self.p[self.i : self.i + 2]
        if len(digits) != 2 or any(c not in "0123456789abcdefABCDEF" for c in digits):
            raise self.fail("\\x needs two hex digits")
        self.i += 2
        return chr(int(digits, 16))

    def class_char(self) -> str | None:
        """One class member; None for a class escape such as \\d."""
        ch = self.take()
        if ch == "":
            raise self.fail("missing ']'")
        if ch == "[":
            raise self.fail("'[' inside a class must be escaped (no POSIX classes)")
        if ch != "\\":
            self.literal(ch)
            return ch
        esc = self.take()
        if esc in _CLASS_ESCAPES:
            return None
        if esc == "x":
            return self.hex_escape()
        if esc in _CONTROL:
            return _CONTROL[esc]
        if esc in _META:
            return esc
        raise self.fail(f"escape \\{esc} is not allowed in a class")

    def char_class(self) -> None:
        if self.peek() == "^":
            self.take()
        first = True
        while first or self.peek() != "]":
            first = False
            lo = self.class_char()
            if self.peek() == "-" and self.p[self.i + 1 : self.i + 2] not in ("]", ""):
                self.take()
                hi = self.class_char()
                if lo is None or hi is None or hi < lo:
                    raise self.fail("bad range in class")
        self.take()


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False
    options.max_mem = 8 << 20
    return options


@functools.lru_cache(maxsize=8192)
def gate(pattern: str) -> str:
    """Return ``pattern`` if it may be a pattern indicator; raise PatternRejected."""
    if not isinstance(pattern, str) or not pattern:
        raise PatternRejected(str(pattern), "a pattern must be a non-empty string")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise PatternRejected(
            pattern[:40] + "...", f"{len(pattern)} chars; at most {MAX_PATTERN_CHARS}"
        )
    node = _Parser(pattern).parse()
    if node.minlen == 0:
        raise PatternRejected(pattern, "it can match the empty string")
    try:
        size = re2.compile(pattern, _options()).programsize
    except re2.error as exc:
        raise PatternRejected(pattern, f"RE2 cannot compile it: {exc}") from None
    if size > MAX_PROGRAM_SIZE:
        raise PatternRejected(pattern, f"compiled size {size} exceeds {MAX_PROGRAM_SIZE}")
    return pattern
