"""Incremental reloads: a matcher rebuilt from its predecessor applies only what changed in
the store (a base pattern set kept, a delta set for added patterns, revoked ones masked,
digest tables shared unless changed) and finds exactly what one built from scratch finds."""

from __future__ import annotations

import importlib.util
import uuid
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sighub.client import _matcher
from sighub.client._blind import Blinder, CollabKey
from sighub.client._local import CHANGES_KEPT, LocalStore, stored
from sighub.client._matcher import DELTA_MAX, Matcher, mask_max
from sighub.client._model import CANON_VERSION as V1
from sighub.client._model import Form, Indicator, Kind
from tests.conftest import NOW, TEST_KEY, make_indicator
from tests.test_matcher import KEYS

ENGINES = ["re2"] + (["hyperscan"] if importlib.util.find_spec("hyperscan") else [])
EPOCH1 = CollabKey(TEST_KEY.collaboration, 1, bytes(range(1, 33)))  # a second digest table
BLINDERS = [Blinder(TEST_KEY), Blinder(EPOCH1)]
SECRETS = [(k.collaboration, k.epoch, k.secret) for k in (TEST_KEY, EPOCH1)]

# Patterns over a small alphabet, so random texts hit them, overlap and share spans.
WORDS = ["ab", "ba", "abc", "cab", "menu", "s3ll", "te", "et"]
TAILS = {"[0-9]{2}": "12", "[a-c]+": "cab", "-?[0-9]": "-3", "x?": "x", "[a-z]{3}": "men"}
TAILS |= {"(ab|ba)": "ba"}  # each tail with a text it matches
POOL = [w + t for w in WORDS for t in TAILS]
EXAMPLE = {w + t: w + x for w in WORDS for t, x in TAILS.items()}
KEYWORDS = ["abc", "menu", "s3ll", "te et", "cab"]  # blinded keywords, seen by the same texts


def uid(n: int) -> str:
    return f"indicator--{uuid.UUID(int=n, version=4)}"


def pattern(regex: str, n: int = 0, confidence: int = 80, **over: object) -> Indicator:
    return make_indicator(
        id=uid(n),
        kind=Kind.KEYWORD,
        form=Form.PATTERN,
        value=regex,
        key_epoch=None,
        scheme=None,
        confidence=confidence,
        description=regex,
        **over,
    )


def keyword(word: str, n: int, epoch: int = 0, **over: object) -> Indicator:
    value = BLINDERS[epoch].value(Kind.KEYWORD, word)
    return make_indicator(id=uid(n), value=value, key_epoch=epoch, description=word, **over)


def many(count: int) -> list[Indicator]:
    return [pattern(f"code{i}x[a-z0-9]{{4}}", i) for i in range(count)]


def store_of(tmp: Path, rules: list[Indicator]) -> LocalStore:
    store = LocalStore(tmp / "local.db")
    store.replace_directory([], SECRETS)
    write(store, rules)
    return store


def write(store: LocalStore, rules: list[Indicator]) -> None:
    with store.tx() as c:
        store.upsert(c, [store.row(i, 1) for i in rules])


def revoke(store: LocalStore, ind: Indicator) -> None:
    write(store, [replace(ind, revoked=True, modified=ind.modified + timedelta(seconds=1))])


AT = NOW + timedelta(hours=1)


@pytest.mark.parametrize("engine", ENGINES)
def test_adding_a_pattern_compiles_only_the_delta(tmp_path: Path, engine: str) -> None:
    store = store_of(tmp_path, many(200))
    old = Matcher.from_store(store, AT, engine)
    assert old._patterns[V1].full and old._patterns[V1].delta is None
    extra = pattern("code9999x[a-z0-9]{4}", 9999)
    write(store, [extra])
    new = Matcher.from_store(store, AT, engine, previous=old)
    assert not new._patterns[V1].full and new._patterns[V1].base is old._patterns[V1].base
    assert new._patterns[V1].delta is not None and new._patterns[V1].delta.sources == (extra.value,)
    (m,) = new.scan("see code9999xab12 now")
    assert m.indicator == extra.id and m.text == "code9999xab12"
    assert old.scan("see code9999xab12 now") == []  # the old matcher is left as it was
    # a blinded change only: both pattern sets are reused as they are
    write(store, [keyword("menu", 50_000)])
    newer = Matcher.from_store(store, AT, engine, previous=new)
    assert newer._patterns[V1].base is old._patterns[V1].base
    assert newer._patterns[V1].delta is new._patterns[V1].delta
    assert [m.text for m in newer.scan("menu code9999xab12")] == ["menu", "code9999xab12"]


@pytest.mark.parametrize("engine", ENGINES)
def test_revoking_masks_the_pattern_until_the_mask_is_full(tmp_path: Path, engine: str) -> None:
    rules = many(2 * mask_max(0) + 10)
    store = store_of(tmp_path, rules)
    old = Matcher.from_store(store, AT, engine)
    assert old.scan("code7xab12") != []
    revoke(store, rules[7])
    new = Matcher.from_store(store, AT, engine, previous=old)
    assert not new._patterns[V1].full and new._patterns[V1].base is old._patterns[V1].base
    assert new._patterns[V1].masked == 1 and new.size == old.size - 1
    assert new.scan("code7xab12") == []
    for r in rules[8 : 8 + mask_max(len(rules)) - 1]:  # up to the limit: still masked
        revoke(store, r)
    full = Matcher.from_store(store, AT, engine, previous=new)
    assert not full._patterns[V1].full and full._patterns[V1].masked == mask_max(len(rules))
    revoke(store, rules[-1])  # one more: every live pattern compiled again, none masked
    last = Matcher.from_store(store, AT, engine, previous=full)
    assert last._patterns[V1].full and last._patterns[V1].masked == 0
    assert len(last._patterns[V1].base_sources) == len(rules) - mask_max(len(rules)) - 1


@pytest.mark.parametrize("engine", ENGINES)
def test_a_full_delta_triggers_a_full_compile(tmp_path: Path, engine: str) -> None:
    store = store_of(tmp_path, many(10))
    m = Matcher.from_store(store, AT, engine)
    write(store, [pattern(f"extra{i}x[0-9]", 1000 + i) for i in range(DELTA_MAX)])
    m2 = Matcher.from_store(store, AT, engine, previous=m)
    assert not m2._patterns[V1].full and m2._patterns[V1].delta is not None
    assert len(m2._patterns[V1].delta.sources) == DELTA_MAX
    write(store, [pattern("extra-last[0-9]", 5000)])
    m3 = Matcher.from_store(store, AT, engine, previous=m2)
    assert m3._patterns[V1].full and m3._patterns[V1].delta is None
    assert len(m3._patterns[V1].base_sources) == DELTA_MAX + 11
    assert m3.scan("extra-last7")[0].indicator == uid(5000)


def test_a_shared_pattern_is_compiled_once_and_fires_for_every_rule(tmp_path: Path) -> None:
    a, b = pattern("menu[0-9]{2}", 1, 90), pattern("menu[0-9]{2}", 2, 40)
    store = store_of(tmp_path, [a, b])
    m = Matcher.from_store(store, AT, "re2")
    assert len(m._patterns[V1].base_sources) == 1 and len(m._patterns[V1].base) == 1
    (found,) = m.scan("a menu42 b")
    assert found.indicators == (a.id, b.id)
    revoke(store, a)  # the other still fires, the pattern is not masked
    only_b = Matcher.from_store(store, AT, "re2", previous=m)
    assert only_b._patterns[V1].base is m._patterns[V1].base and only_b._patterns[V1].masked == 0
    assert only_b.scan("a menu42 b")[0].indicators == (b.id,)


def test_unchanged_digest_tables_are_shared_and_changed_ones_copied(tmp_path: Path) -> None:
    first = [keyword("abc", 1), keyword("menu", 2, epoch=1)]
    store = store_of(tmp_path, first)
    old = Matcher.from_store(store, AT, "re2")
    (t0, t1) = (table for _, table in old._groups)
    write(store, [keyword("s3ll", 3, epoch=1)])
    new = Matcher.from_store(store, AT, "re2", previous=old)
    (n0, n1) = (table for _, table in new._groups)
    assert n0 is t0 and n1 is not t1 and len(n1) == len(t1) + 1
    assert [m.text for m in new.scan("abc s3ll menu")] == ["abc", "s3ll", "menu"]
    assert [m.text for m in old.scan("abc s3ll menu")] == ["abc", "menu"]
    assert old._groups[0][0] is new._groups[0][0]  # the blinder and its warm caches


def test_expiry_and_future_start_follow_the_clock(tmp_path: Path) -> None:
    soon = keyword("abc", 1, valid_until=AT + timedelta(minutes=5))
    later = keyword("menu", 2, valid_from=AT + timedelta(minutes=10))
    store = store_of(tmp_path, [soon, later, pattern("cab[0-9]{2}", 3)])
    m = Matcher.from_store(store, AT)
    assert [x.text for x in m.scan("abc menu cab12")] == ["abc", "cab12"]
    m = Matcher.from_store(store, AT + timedelta(minutes=6), previous=m)
    assert [x.text for x in m.scan("abc menu cab12")] == ["cab12"] and m.size == 1
    m = Matcher.from_store(store, AT + timedelta(minutes=11), previous=m)
    assert [x.text for x in m.scan("abc menu cab12")] == ["menu", "cab12"] and m.size == 2
    # back in time: read again from every row rather than undo expiries
    back = Matcher.from_store(store, AT, previous=m)
    assert [x.text for x in back.scan("abc menu cab12")] == ["abc", "cab12"]


def test_pruned_change_log_reads_every_row_again(tmp_path: Path) -> None:
    a = keyword("abc", 1)
    store = store_of(tmp_path, [a, keyword("menu", 2)])
    m = Matcher.from_store(store, AT)
    revoke(store, a)
    write(store, [keyword("cab", 3)])
    revoke(store, keyword("cab", 3))  # the log now holds entries 1..2
    with store.tx() as c:  # as if entries up to 1 had been pruned: 0 is no longer covered
        c.execute("DELETE FROM indicator_changes WHERE n <= 1")
    assert store.changes_after(0) is None and store.changes_after(1) is not None
    again = Matcher.from_store(store, AT, previous=m)
    assert [x.text for x in again.scan("abc menu cab")] == ["menu"] and again.size == 1
    # The full read stands at the log's last entry, so the next reload is incremental
    # again (it once stood at 0, and every later reload read every row).
    assert again._cursor.changes == store.last_change() == 2
    assert store.changes_after(again._cursor.changes) is not None


def test_in_place_updates_and_deletes_are_seen(tmp_path: Path) -> None:
    rules = [keyword("abc", 1), keyword("menu", 2), pattern("cab[0-9]{2}", 3)]
    store = store_of(tmp_path, rules)
    m = Matcher.from_store(store, AT)
    with store.tx() as c:
        c.execute("UPDATE indicators SET revoked = 1 WHERE id = ?", (uid(1),))
        c.execute("DELETE FROM indicators WHERE id = ?", (uid(3),))
    m = Matcher.from_store(store, AT, previous=m)
    assert [x.text for x in m.scan("abc menu cab12")] == ["menu"] and m.size == 1
    # the top row deleted, then its rowid reused by the next insert
    top = store.top_rowid()
    with store.tx() as c:
        c.execute("DELETE FROM indicators WHERE rowid = ?", (top,))
    write(store, [keyword("te et", 4)])
    assert store.top_rowid() == top
    m = Matcher.from_store(store, AT, previous=m)
    assert [x.text for x in m.scan("abc menu te et")] == ["te et"]


# -- random changes against a build from scratch ------------------------------------------

TEXT = st.text(alphabet="abcmenutes3lx-0123456789 ", max_size=40)
OP = st.one_of(
    st.tuples(st.just("pattern"), st.sampled_from(POOL), st.integers(0, 40)),
    st.tuples(st.just("keyword"), st.sampled_from(KEYWORDS), st.integers(0, 40)),
    st.tuples(st.just("revoke"), st.integers(0, 1000), st.just(0)),
    st.tuples(st.just("revise"), st.integers(0, 1000), st.sampled_from(POOL)),  # new value
    st.tuples(st.just("update"), st.integers(0, 1000), st.just(0)),  # revoked in place
    st.tuples(st.just("sweep"), st.just(0), st.just(0)),  # expired rows deleted
    st.tuples(st.just("time"), st.integers(1, 40), st.just(0)),  # minutes pass
)


@settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(
    before=st.lists(st.tuples(st.sampled_from(POOL + KEYWORDS), st.integers(0, 40)), max_size=30),
    ops=st.lists(OP, min_size=1, max_size=8),
    texts=st.lists(TEXT, min_size=1, max_size=4),
)
def test_incremental_reload_equals_a_build_from_scratch(
    tmp_path_factory: pytest.TempPathFactory,
    before: list[tuple[str, int]],
    ops: list[tuple[str, object, object]],
    texts: list[str],
) -> None:
    """Random additions, revocations, revisions, in-place updates, sweeps and expiries,
    one reload after each, against a fresh build at the same time; both engines agree."""
    store = LocalStore(tmp_path_factory.mktemp("s") / "local.db")
    store.replace_directory([], SECRETS)
    now = AT
    live: dict[str, Indicator] = {}
    serial = iter(range(10**6, 2 * 10**6))

    def make(value: str, minutes: int) -> Indicator:
        # the minutes set each rule's lifetime, so the clock expires some of them
        n, until = next(serial), now + timedelta(minutes=5 + minutes * 7)
        if value in KEYWORDS:
            return keyword(value, n, epoch=minutes % 2, valid_until=until)
        start = now + timedelta(minutes=minutes % 3 * 4)  # some start later
        return pattern(value, n, 40 + minutes, valid_from=start, valid_until=until)

    def put(ind: Indicator) -> None:
        write(store, [ind])
        live[ind.id] = ind

    for value, minutes in before:
        put(make(value, minutes))
    every = sorted(set(POOL))
    texts = [*texts, " ".join(EXAMPLE[p] for p in every), " ".join(KEYWORDS)]
    previous = {e: Matcher.from_store(store, now, e) for e in ENGINES}
    for op, a, b in ops:
        ids = sorted(live)
        pick = live[ids[int(a) % len(ids)]] if ids and isinstance(a, int) else None
        if op in ("pattern", "keyword"):
            put(make(str(a), int(b)))  # type: ignore[call-overload]
        elif op == "revoke" and pick is not None:
            revoke(store, pick)
            del live[pick.id]
        elif op == "revise" and pick is not None and pick.form is Form.PATTERN:
            put(replace(pick, value=str(b), modified=pick.modified + timedelta(seconds=1)))
        elif op == "update" and pick is not None:
            with store.tx() as c:
                c.execute("UPDATE indicators SET revoked = 1 WHERE id = ?", (pick.id,))
            del live[pick.id]
        elif op == "sweep":
            store.sweep_expired(now)
        elif op == "time":
            now += timedelta(minutes=int(a))  # type: ignore[call-overload]
        fresh = {e: Matcher.from_store(store, now, e) for e in ENGINES}
        reloaded = {e: Matcher.from_store(store, now, e, previous=previous[e]) for e in ENGINES}
        want = [fresh["re2"].scan(t) for t in texts]
        for e in ENGINES:
            assert reloaded[e].size == fresh[e].size, e
            assert [fresh[e].scan(t) for t in texts] == want, e
            assert [reloaded[e].scan(t) for t in texts] == want, e
            p, old = reloaded[e]._patterns[V1], previous[e]._patterns[V1]
            assert p.full or p.base is old.base, e  # the base set is only ever recompiled whole
        previous = reloaded
    store.close()


def test_a_list_built_matcher_reuses_the_base_set_too() -> None:
    rules = [stored(r) for r in many(50)]
    old = Matcher(rules, KEYS, "re2")
    extra = stored(pattern("code9999x[a-z0-9]{4}", 9999))
    new = Matcher([*rules, extra], KEYS, "re2", previous=old)
    assert new._patterns[V1].base is old._patterns[V1].base
    assert new.scan("code9999xab12")[0].indicator == extra.id
    assert Matcher(rules, KEYS, "hyperscan" if "hyperscan" in ENGINES else "re2", previous=new)


def test_the_change_log_keeps_the_latest_entries(tmp_path: Path) -> None:
    store = store_of(tmp_path, [keyword("abc", 1)])
    total = CHANGES_KEPT + 100
    with store.tx() as c:  # each update logs the version it replaces
        c.executemany("UPDATE indicators SET confidence = ?", [(i % 90,) for i in range(total)])
    first, last, gone = store.changes_after(total - 5)  # type: ignore[misc]
    assert (first, last, len(gone)) == (total - CHANGES_KEPT + 1, total, 5)
    assert store.changes_after(total - CHANGES_KEPT - 1) is None  # pruned: read every row


@pytest.mark.parametrize("engine", ENGINES)
def test_a_large_base_is_compiled_in_sets(
    tmp_path: Path, engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_matcher, "BASE_SET_MAX", 3)
    rules = many(10)
    store = store_of(tmp_path, rules)
    m = Matcher.from_store(store, AT, engine)
    assert [len(s.sources) for s in m._patterns[V1].base] == [3, 3, 3, 1]
    text = " ".join(f"code{i}xab12" for i in range(10))
    assert [x.indicator for x in m.scan(text)] == [r.id for r in rules]
