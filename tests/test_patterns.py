from __future__ import annotations

import importlib.util
import re

import pytest
import re2

from sighub.wire import PatternRejected, gate

ACCEPTED = [
    r"\$[a-z][a-z0-9_]{2,19}",  # cashtag format
    r"paypal\.me/[a-z0-9_]{3,30}",
    r"venmo\.com/(?:u/)?[a-z0-9_-]{5,30}",
    r"[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}",  # gift-card code format
    r"\b[a-z]{3}[0-9]{6}\b",
    r"t\.me/\+[a-z0-9_]{8,32}",  # private invite link
    r"discord\.gg/[a-z0-9]{6,10}",
    r"[a-z0-9-]+\.carrd\.co",
    r"on chapter 1[0-7]\b",
    r"(?:menu|m3nu)\s+in\s+bio",
    r"[^\s]{2,5}@[a-z]+\.[a-z]{2,6}",
    r"\x41?b",
]
REJECTED = [
    (r"(a+)+$", "nested unbounded"),
    (r"^abc", "anchor"),
    (r"(a+)+b", "nested unbounded"),
    (r"(a*)*b", "empty string"),
    (r"(?:x+y*)+z", "nested unbounded"),
    (r"([a-z]+\s?)*x", "nested unbounded"),
    (r"(a)\1", "backreference"),
    (r"(?=a)b", "lookaround"),
    (r"(?<!a)b", "lookaround"),
    (r"(?P<n>a)", "named groups"),
    (r"(?i)abc", "flags"),
    (r"(?>a)", "atomic"),
    (r"a*?b", "lazy"),
    (r"a++b", "possessive"),
    (r"x*", "empty string"),
    (r"\b", "empty string"),
    (r"a{0,3}", "empty string"),
    (r"a{500}", "outside"),
    (r"a{5,2}", "outside"),
    (r"(?:[a-z]{100}){100}", "RE2 cannot compile"),
    (r"[a-z]{100}" * 21, "compiled size"),
    ("a" * 257, "at most 256"),
    (r"[[:alpha:]]", "POSIX"),
    (r"\p{L}+", "\\p"),
    (r"ABC", "lowercase"),
    (r"(ab", "missing ')'"),
    (r"ab)", "unexpected"),
    (r"[ab", "missing ']'"),
    (r"[z-a]", "bad range"),
    (r"*a", "nothing to repeat"),
    (r"a\\", "x"),
    ("ab\\", "trailing backslash"),
    ("", "non-empty"),
]


@pytest.mark.parametrize("pattern", ACCEPTED)
def test_accepted_patterns_compile_on_both_engines(pattern: str) -> None:
    assert gate(pattern) == pattern
    re2.compile(pattern)
    if importlib.util.find_spec("hyperscan") is not None:
        import hyperscan

        db = hyperscan.Database()
        db.compile(expressions=[pattern.encode()], ids=[1],
                   flags=[hyperscan.HS_FLAG_UTF8 | hyperscan.HS_FLAG_SOM_LEFTMOST])  # fmt: skip


@pytest.mark.parametrize(("pattern", "why"), REJECTED)
def test_rejected_patterns_say_why(pattern: str, why: str) -> None:
    if why == "x":  # an escaped backslash is a literal: accepted
        assert gate(pattern) == pattern
        return
    with pytest.raises(PatternRejected, match=re.escape(why)) as info:
        gate(pattern)
    assert "rejected" in str(info.value)
