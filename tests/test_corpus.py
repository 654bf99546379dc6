"""The adversarial corpus of issue 13 (tests/corpus/) is what its generator produces, is as
large and as broad as the issue asks, and ``bench/eval_canon.py`` scores it end to end."""

from __future__ import annotations

import hashlib
import json
import re
import types
import unicodedata
from collections import Counter
from typing import Any

import pytest

from bench import eval_canon
from sighub import Kind
from sighub.client._canon import Candidate, canonicalize
from sighub.client._errors import CanonError
from tests.corpus import make_corpus as mc

# The list: every category it names must be present (and not marked stretch).
REQUIRED = {
    "lookalike-greek", "lookalike-cyrillic", "lookalike-armenian", "lookalike-cherokee",
    "lookalike-latin-letterlike", "lookalike-other-scripts", "small-capitals",
    "leet-ambiguity", "trailing-punctuation", "digit-initial", "separator-pipe",
    "separator-emoji", "combining-marks", "emoji-whitespace", "url-defang",
    "url-idna-fullstop", "url-percent", "url-zero-width-host", "url-wrapper", "payment-defang",
    "url-uts46", "hashtag-adjacent", "phrase-mined", "combination",
}  # fmt: skip


def _rows(name: str) -> list[dict[str, Any]]:
    return eval_canon.read_jsonl(mc.HERE / name)


def test_manifest_pins_every_file() -> None:
    manifest = json.loads(mc.MANIFEST.read_text(encoding="utf-8"))
    assert manifest["seed"] == mc.SEED and manifest["sources"] == mc.SOURCES
    assert set(manifest["sha256"]) == {"confusables-latin.txt", "positives.jsonl", "benign.jsonl"}
    for name, digest in manifest["sha256"].items():
        got = hashlib.sha256((mc.HERE / name).read_bytes()).hexdigest()
        assert got == digest, f"tests/corpus/{name}: sha256 {got}, manifest says {digest}"


@pytest.mark.skipif(
    unicodedata.unidata_version != mc.UNIDATA,
    reason=f"the corpus is byte-identical under Unicode {mc.UNIDATA} only",
)
def test_positives_are_what_the_generator_writes() -> None:
    assert mc.dumps(mc.positives()) == mc.POSITIVES.read_bytes()


def test_confusables_subset_is_the_pinned_uts39_data() -> None:
    text = mc.CONFUSABLES.read_text(encoding="utf-8")
    assert "Version: 13.0.0" in text and "terms_of_use" in text
    table = mc.read_confusables()
    skeletons = mc.latin_skeletons(table)
    assert len(table) > 1300
    assert all(skel in skeletons for skel in table.values())
    assert skeletons["l"] == "il1" and skeletons["O"] == "o0"
    assert table["Ꮪ"] == "S" and table["ϲ"] == "c"


def test_counts_categories_and_kinds() -> None:
    positives = _rows("positives.jsonl")
    benign = _rows("benign.jsonl")
    assert len(positives) >= 1500
    sources = Counter(b["source"] for b in benign)
    assert sources["docs"] >= 5000 and sources["near-miss"] >= 100
    categories = Counter(p["category"] for p in positives)
    assert set(categories) >= REQUIRED, REQUIRED - set(categories)
    assert all(categories[c] >= 15 for c in REQUIRED), categories
    assert {p["kind"] for p in positives} == {k.value for k in Kind}
    combined = {p["kind"] for p in positives if p["category"] == "combination"}
    assert combined == {k.value for k in Kind}
    stretch = {p["category"] for p in positives if p["stretch"]}
    assert stretch == mc.STRETCH and not stretch & REQUIRED
    # Look-alikes come from UTS #39 (every script), not from a hand-picked list.
    lookalikes = [p for p in positives if p["category"].startswith("lookalike-")]
    assert len(lookalikes) >= 1000


def test_every_value_is_a_valid_indicator_and_the_text_differs() -> None:
    for p in _rows("positives.jsonl"):
        canonicalize(p["kind"], p["value"])  # raises CanonError on a malformed indicator
        plain = {t.format(x=p["value"]) for t in mc.TEMPLATES}
        assert (p["text"] in plain) == (p["category"] == "phrase-mined"), p


def test_benign_texts_hold_no_indicator_written_plainly() -> None:
    patterns = mc._literal_patterns()
    for b in _rows("benign.jsonl"):
        folded = b["text"].casefold()
        assert not any(p.search(folded) for p in patterns), b
    phrases = {p["value"] for p in _rows("positives.jsonl") if p["category"] == "phrase-mined"}
    texts = [b["text"].casefold() for b in _rows("benign.jsonl")]
    assert len(phrases) == mc.N_PHRASES
    for phrase in phrases:
        w1, w2 = phrase.split()
        joined = re.compile(rf"(?<![a-z0-9]){w1}[^a-z0-9.,;:!?\n#]+{w2}(?![a-z0-9])")
        assert not any(joined.search(t) for t in texts), phrase
        across = re.compile(rf"(?<![a-z0-9]){w1}[.,;:!?]\s+{w2}(?![a-z0-9])")
        assert any(across.search(t) for t in texts), phrase


def test_near_misses_are_close_but_not_equal() -> None:
    assert mc._one_edit("seller", "sellar") and not mc._one_edit("seller", "seller")
    assert mc._one_edit("menu", "menus") and not mc._one_edit("menu", "venue")
    near = [b["text"] for b in _rows("benign.jsonl") if b["source"] == "near-miss"]
    assert len(set(near)) == len(near)
    assert not {"seller", "cheese", "pizza", "menu"} & {w.lower() for w in near}


def _fake(version: str, found: dict[str, list[Candidate]]) -> eval_canon.Canon:
    return eval_canon.Canon(version, lambda kind, value: value, lambda t: found.get(t, []))


def test_evaluate_counts_recall_and_false_positives() -> None:
    positives = [
        {"category": "a", "kind": "keyword", "value": "menu", "text": "m3nu", "stretch": False},
        {"category": "a", "kind": "keyword", "value": "pizza", "text": "p!zza", "stretch": False},
        {"category": "s", "kind": "url", "value": "x.carrd.co", "text": "x[.]carrd[.]co",
         "stretch": True},
    ]  # fmt: skip
    benign = [{"source": "docs", "text": "a menu"}, {"source": "docs", "text": "plain"}]
    found = {
        "m3nu": [Candidate(Kind.KEYWORD, "menu", 0, 4)],
        "p!zza": [Candidate(Kind.HASHTAG, "pizza", 0, 5)],  # right value, wrong kind: a miss
        "a menu": [Candidate(Kind.KEYWORD, "menu", 2, 6)],
    }
    result = eval_canon.evaluate(_fake("canon/2", found), positives, benign)
    assert (result.by_category["a"].hits, result.by_category["a"].total) == (1, 2)
    assert result.core.total == 2 and result.overall.total == 3 and result.stretch == {"s"}
    assert result.fp_per_10k == 5000.0
    failures = result.failures()
    assert len(failures) == 2 and "recall 50.0% in a" in failures[0]
    assert "5000.0 false positives per 10,000" in failures[1]
    text = eval_canon.report(result, show=5)
    assert "s                                1     0.0% (stretch)" in text
    assert "miss [a] 'pizza' in 'p!zza'" in text


def test_targets_are_enforced_for_canon2_only(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(eval_canon, "load_canon", lambda n: _fake(f"canon/{n}", {}))
    assert eval_canon.main(["--canon", "1", "--sample", "50"]) == 0
    assert "TARGET MISSED" not in capsys.readouterr().out
    assert eval_canon.main(["--canon", "2", "--sample", "50"]) == 1
    assert "TARGET MISSED (canon/2): recall 0.0% in" in capsys.readouterr().out


def test_version_is_passed_only_where_accepted() -> None:
    def old(kind: str, value: str) -> str:
        return value

    def new(kind: str, value: str, version: str = "canon/1") -> str:
        return value

    assert not eval_canon._accepts_version(old) and eval_canon._accepts_version(new)
    if not eval_canon._accepts_version(eval_canon._canon.extract):
        with pytest.raises(eval_canon.CanonMissing, match="canon/2 is not in this build"):
            eval_canon.load_canon(2)


def test_eval_runs_end_to_end_on_a_slice(capsys: pytest.CaptureFixture[str]) -> None:
    assert eval_canon.main(["--canon", "1", "--sample", "300"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^== canon/1: \d+ positives, \d+ benign$", out, re.M), out
    assert re.search(r"^overall +\d+ +\d+\.\d%$", out, re.M), out
    assert re.search(r"^false positives: \d+ of \d+ \(\d+\.\d per 10,000; docs", out, re.M)
    for kind in Kind:
        assert re.search(rf"^{kind.value} +\d+ +\d+\.\d%$", out, re.M), kind


def test_version_reaches_a_canon_that_takes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str]] = []

    def canonicalize(kind: str, value: str, version: str = "canon/1") -> str:
        if version not in ("canon/1", "canon/2"):
            raise CanonError(f"canon version {version!r}: unknown")
        calls.append(("canonicalize", version))
        return value

    def extract(text: str, version: str = "canon/1") -> list[Candidate]:
        calls.append(("extract", version))
        return [Candidate(Kind.KEYWORD, text, 0, len(text))]

    fake = types.SimpleNamespace(canonicalize=canonicalize, extract=extract)
    monkeypatch.setattr(eval_canon, "_canon", fake)
    canon = eval_canon.load_canon(2)
    assert canon.canonicalize("keyword", "menu") == "menu" and canon.extract("menu")
    assert calls[-2:] == [("canonicalize", "canon/2"), ("extract", "canon/2")]
    with pytest.raises(eval_canon.CanonMissing, match="canon/3: refused"):
        eval_canon.load_canon(3)
