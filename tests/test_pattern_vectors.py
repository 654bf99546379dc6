"""Golden vectors for pattern indicators: each canon version's fold and the spans mapped
back to the original text, under both pattern engines (``tests/vectors/pattern-fold.jsonl``,
written by ``tests/vectors/make_pattern_vectors.py`` and frozen)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sighub.client._local import stored
from sighub.client._matcher import HAVE_HYPERSCAN, Matcher
from sighub.client._model import Form, Kind
from tests.conftest import make_indicator
from tests.vectors._codepoints import decoded

ROWS = [
    json.loads(x)
    for x in (Path(__file__).parent / "vectors/pattern-fold.jsonl").read_text().splitlines()
]
ENGINES = ["re2", "hyperscan"] if HAVE_HYPERSCAN else ["re2"]


def test_the_vectors_cover_both_versions_and_where_they_differ() -> None:
    assert len(ROWS) >= 300
    assert {r["canon"] for r in ROWS} == {"canon/1", "canon/2"}
    by_text: dict[tuple[str, str], dict[str, object]] = {}
    for r in ROWS:
        spans = by_text.setdefault((str(r["pattern"]), decoded(r, "text")), {})
        spans[str(r["canon"])] = r["spans"]
    differ = [k for k, v in by_text.items() if v["canon/1"] != v["canon/2"]]
    assert len(differ) >= 50  # look-alikes and marks only canon/2 folds


@pytest.mark.parametrize("engine", ENGINES)
def test_pattern_vectors(engine: str) -> None:
    wrong = []
    for row in ROWS:
        ind = make_indicator(form=Form.PATTERN, kind=Kind.PAYMENT, value=row["pattern"],
                             key_epoch=None, scheme=None, canon_version=row["canon"])  # fmt: skip
        text = decoded(row, "text")
        got = [[m.start, m.end] for m in Matcher([stored(ind)], {}, engine).scan(text)]
        if got != row["spans"]:
            wrong.append((row["rule"], row["canon"], text, got, row["spans"]))
    assert not wrong, wrong[:5]
