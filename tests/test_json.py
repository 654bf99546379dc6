"""The parser budget for untrusted JSON: each rule refuses exactly what is over it, and
what is within it parses as the standard library parses it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sighub.client._errors import JsonBudgetError
from sighub.client._json import PAYLOAD, JsonBudget, loads

BUDGET = JsonBudget(1 << 16, max_depth=6, max_containers=40, max_number_chars=17)

docs = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**15), 10**15)
    | st.text(alphabet=st.sampled_from('ab[]{}"\\,:é🧀'), max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(alphabet="ab[{", max_size=3), inner, max_size=3)
    ),
    max_leaves=30,
)


def depth(doc: Any) -> int:
    if isinstance(doc, list):
        return 1 + max(map(depth, doc), default=0)
    if isinstance(doc, dict):
        return 1 + max(map(depth, doc.values()), default=0)
    return 0


def containers(doc: Any) -> int:
    if isinstance(doc, list):
        return 1 + sum(map(containers, doc))
    if isinstance(doc, dict):
        return 1 + sum(map(containers, doc.values()))
    return 0


@settings(max_examples=1500)
@given(doc=docs, pretty=st.booleans())
def test_within_budget_parses_as_json_does_and_over_it_is_refused(doc: Any, pretty: bool) -> None:
    raw = json.dumps(doc, indent=1 if pretty else None, ensure_ascii=False).encode()
    within = depth(doc) <= BUDGET.max_depth and containers(doc) <= BUDGET.max_containers
    if within:
        assert loads(raw, BUDGET, "doc") == doc
    else:
        with pytest.raises(JsonBudgetError) as err:
            loads(raw, BUDGET, "doc")
        assert err.value.rule in {"depth", "containers"}


@pytest.mark.parametrize(
    ("raw", "rule"),
    [
        (b"[" * 2000 + b"]" * 2000, "depth"),
        (b'{"a":' * 7 + b"1" + b"}" * 7, "depth"),
        (b"[" + b"[]," * 50 + b"[]]", "containers"),
        (b'{"n":' + b"7" * 5000 + b"}", "number length"),
        (b'{"n":1.' + b"5" * 20 + b"}", "number length"),
        (b'{"id": NaN}', "number"),
        (b"[Infinity]", "number"),
        (b'["' + b"x" * 70000 + b'"]', "size"),
        (b'["\xed\xa0\x80"]', "encoding"),  # CESU-8 / a surrogate in UTF-8
        (b'["\xc0\xaf"]', "encoding"),  # overlong
        (b'{"a": 1,}', "syntax"),
        (b'["unterminated', "syntax"),
    ],
)
def test_each_rule_refuses_with_what_and_why(raw: bytes, rule: str) -> None:
    with pytest.raises(JsonBudgetError) as err:
        loads(raw, BUDGET, "stdin line 3")
    assert err.value.rule == rule
    assert str(err.value).startswith("stdin line 3: ")


def test_long_tokens_are_refused_without_reading_them_whole() -> None:
    budget = JsonBudget(1 << 20, max_depth=4, max_containers=8, max_token_bytes=1024)
    with pytest.raises(JsonBudgetError, match="token length"):
        loads(b'["' + b"y" * 5000 + b'"]', budget, "doc")
    with pytest.raises(JsonBudgetError, match="token length"):
        loads(b"[" + b" " * 5000 + b"1]", budget, "doc")
    assert loads(b'["' + b"y" * 1000 + b'"]', budget, "doc") == ["y" * 1000]


def test_brackets_inside_strings_count_for_nothing() -> None:
    raw = json.dumps({"p": "[[[[[[[[[[" * 50, "q": "}}}}]]]]" * 50, "r": [["{"]]}).encode()
    assert loads(raw, BUDGET, "doc")["r"] == [["{"]]


def test_a_sighub_bundle_fits_the_payload_budget() -> None:
    from sighub.wire import build_bundle
    from tests.conftest import make_indicator, make_publisher

    bundle = build_bundle(make_publisher(), [make_indicator() for _ in range(50)])
    assert loads(json.dumps(bundle).encode(), PAYLOAD, "payload") == bundle


def test_the_exact_nesting_check_runs_at_c_speed() -> None:
    """A document the quick bracket check cannot clear (a bracket inside a string, deep
    arrays) takes the exact check: 8x the document may take at most 16x the time, and a
    63 KB one well under the 100 ms a Python loop over its brackets took."""
    import time

    def doc(n: int) -> bytes:
        inner = b",".join(b"[[[[[[[%d]]]]]]]" % i for i in range(n))
        return b'{"s":"[[[[","x":[' + inner + b"]}"

    def seconds(raw: bytes) -> float:
        """This process's CPU time, best of 5: other processes on a loaded machine (a
        parallel test run, CI neighbours) do not count, nor does one slow round."""
        best = float("inf")
        for _ in range(5):
            start = time.process_time()
            loads(raw, PAYLOAD, "payload")
            best = min(best, time.process_time() - start)
        return best

    seconds(doc(100))
    small, large = seconds(doc(400)), seconds(doc(3200))
    assert large < 16 * max(small, 0.002), (small, large)
