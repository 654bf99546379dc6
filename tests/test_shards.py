"""Sharded pattern sets: a pattern change recompiles only its shard, and a matcher rebuilt
incrementally from its predecessor finds exactly what one built from scratch finds."""

from __future__ import annotations

import importlib.util
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sighub import Form, Kind
from sighub.client._local import StoredIndicator, stored
from sighub.client._matcher import Matcher, shard_of
from tests.conftest import make_indicator
from tests.test_matcher import KEYS, blinded

ENGINES = ["re2"] + (["hyperscan"] if importlib.util.find_spec("hyperscan") else [])

# Patterns over a small alphabet, so random texts hit them, overlap and share spans.
WORDS = ["ab", "ba", "abc", "cab", "menu", "s3ll", "te", "et"]
TAILS = {"[0-9]{2}": "12", "[a-c]+": "cab", "-?[0-9]": "-3", "x?": "x", "[a-z]{3}": "men"}
TAILS |= {"(ab|ba)": "ba"}  # each tail with a text it matches
POOL = [w + t for w in WORDS for t in TAILS]
EXAMPLE = {w + t: w + x for w in WORDS for t, x in TAILS.items()}


def pattern(regex: str, n: int = 0, confidence: int = 80) -> StoredIndicator:
    return stored(
        make_indicator(
            id=f"indicator--{uuid.UUID(int=n, version=4)}",
            kind=Kind.KEYWORD,
            form=Form.PATTERN,
            value=regex,
            key_epoch=None,
            scheme=None,
            confidence=confidence,
            description=regex,
        )
    )


def many(count: int) -> list[StoredIndicator]:
    return [pattern(f"code{i}x[a-z0-9]{{4}}", i) for i in range(count)]


@pytest.mark.parametrize("engine", ENGINES)
def test_adding_a_pattern_recompiles_only_its_shard(engine: str) -> None:
    rules = many(200)
    old = Matcher(rules, KEYS, engine, shards=16)
    assert old._patterns.compiled == 16  # 200 patterns leave no shard empty
    assert None not in old._patterns.shards
    extra = pattern("code9999x[a-z0-9]{4}", 9999)
    new = Matcher([*rules, extra], KEYS, engine, previous=old, shards=16)
    changed = shard_of(extra.value, 16)
    assert new._patterns.compiled == 1
    for k, (a, b) in enumerate(zip(old._patterns.shards, new._patterns.shards, strict=True)):
        assert (a is b) == (k != changed), k
    (m,) = new.scan("see code9999xab12 now")
    assert m.indicator == extra.id and m.text == "code9999xab12"


@pytest.mark.parametrize("engine", ENGINES)
def test_revoking_masks_the_pattern_until_its_shard_is_mostly_dead(engine: str) -> None:
    rules = many(200)
    old = Matcher(rules, KEYS, engine, shards=16)
    gone = rules[7]
    new = Matcher([r for r in rules if r is not gone], KEYS, engine, previous=old, shards=16)
    assert new._patterns.compiled == 0
    assert all(a is b for a, b in zip(old._patterns.shards, new._patterns.shards, strict=True))
    assert new.scan("code7xab12") == [] and old.scan("code7xab12") != []
    # revoke most of one shard: it is recompiled without the dead weight, alone
    shard = shard_of(gone.value, 16)
    kept = [r for r in rules if shard_of(r.value, 16) != shard]
    newer = Matcher(kept, KEYS, engine, previous=new, shards=16)
    assert newer._patterns.compiled == 0 and newer._patterns.shards[shard] is None
    one = [r for r in rules if shard_of(r.value, 16) == shard][:1]
    last = Matcher(kept + one, KEYS, engine, previous=new, shards=16)
    assert last._patterns.compiled == 1
    assert last._patterns.shards[shard] is not new._patterns.shards[shard]
    assert last._patterns.shards[shard].sources == (one[0].value,)  # type: ignore[union-attr]


def test_a_shared_pattern_is_compiled_once_and_fires_for_every_rule() -> None:
    a, b = pattern("menu[0-9]{2}", 1, 90), pattern("menu[0-9]{2}", 2, 40)
    m = Matcher([a, b], KEYS, "re2")
    assert sum(len(s.sources) for s in m._patterns.shards if s is not None) == 1
    (found,) = m.scan("a menu42 b")
    assert found.indicators == (a.id, b.id)
    # dropping one of the two keeps the compiled pattern; the other still fires
    only_b = Matcher([b], KEYS, "re2", previous=m)
    assert only_b._patterns.compiled == 0
    assert only_b.scan("a menu42 b")[0].indicators == (b.id,)


def test_a_different_engine_or_shard_count_is_not_reused() -> None:
    rules = many(40)

    def used(shards: int) -> int:  # the shards holding a pattern (the others stay empty)
        return len({shard_of(r.value, shards) for r in rules})

    old = Matcher(rules, KEYS, "re2", shards=8)
    assert old._patterns.compiled == used(8) > 4
    assert Matcher(rules, KEYS, "re2", previous=old, shards=8)._patterns.compiled == 0
    assert Matcher(rules, KEYS, "re2", previous=old, shards=4)._patterns.compiled == used(4)
    if "hyperscan" in ENGINES:
        again = Matcher(rules, KEYS, "hyperscan", previous=old, shards=8)
        assert again._patterns.compiled == used(8)


TEXT = st.text(alphabet="abcmenutes3lx-0123456789 ", max_size=40)
RULE = st.tuples(st.sampled_from(POOL), st.integers(0, 5), st.sampled_from([40, 80, 90]))


def _rules(spec: list[tuple[str, int, int]]) -> list[StoredIndicator]:
    # n picks one of a few ids per pattern, so some patterns are shared by several rules
    return [pattern(p, POOL.index(p) * 8 + n, c) for p, n, c in spec]


@settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(
    before=st.lists(RULE, max_size=30),
    change=st.lists(st.tuples(st.booleans(), RULE), min_size=1, max_size=4),
    shards=st.sampled_from([1, 4, 32]),
    texts=st.lists(TEXT, min_size=1, max_size=6),
)
def test_incremental_rebuild_equals_a_full_one(
    before: list[tuple[str, int, int]],
    change: list[tuple[bool, tuple[str, int, int]]],
    shards: int,
    texts: list[str],
) -> None:
    """Random single additions or removals, one reload each, against a fresh build; both
    engines agree."""
    every = [p for p, _, _ in before] + [p for _, (p, _, _) in change]
    texts = [*texts, " ".join(EXAMPLE[p] for p in every), "".join(EXAMPLE[p] for p in every)]
    spec = list(dict.fromkeys(before))
    previous = {e: Matcher(_rules(spec), KEYS, e, shards=shards) for e in ENGINES}
    blinded_rule = blinded(Kind.KEYWORD, "abc")
    for add, rule in change:
        if add:
            spec = [*spec, rule] if rule not in spec else spec
        elif spec:
            spec = [r for r in spec if r != spec[rule[1] % len(spec)]]
        rules = [*_rules(spec), blinded_rule]
        fresh = {e: Matcher(rules, KEYS, e, shards=shards) for e in ENGINES}
        reloaded = {
            e: Matcher(rules, KEYS, e, previous=previous[e], shards=shards) for e in ENGINES
        }
        assert all(m._patterns.compiled <= 1 for m in reloaded.values())
        want = [fresh["re2"].scan(t) for t in texts]
        for e in ENGINES:
            assert [fresh[e].scan(t) for t in texts] == want, e
            assert [reloaded[e].scan(t) for t in texts] == want, e
        previous = reloaded
