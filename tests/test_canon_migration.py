"""Both canons in force: one store holding canon/1 and canon/2 indicators, each blinded and
scanned under its own version; reloads that add and revoke across versions; a store made
before canon/2 gains the columns with its rows read as canon/1."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from sighub.client._blind import Blinder, blind, blinder_for
from sighub.client._canon import canonicalize
from sighub.client._errors import CanonError, ModelError
from sighub.client._local import LocalStore, stored
from sighub.client._matcher import Matcher
from sighub.client._model import Form, Indicator, Kind
from tests.conftest import NOW, TEST_KEY, make_indicator

V1, V2 = "canon/1", "canon/2"
SECRETS = [(TEST_KEY.collaboration, TEST_KEY.epoch, TEST_KEY.secret)]
AT = NOW + timedelta(hours=1)


def rule(kind: Kind, value: str, canon: str) -> Indicator:
    digest = Blinder(TEST_KEY, canon).value(kind, value)
    return make_indicator(kind=kind, value=digest, canon_version=canon,
                          description=f"{canon} {value}")  # fmt: skip


def fired(m: Matcher, text: str) -> set[tuple[str, str]]:
    return {(h.description, x.text) for x in m.scan(text) for h in x.hits}


def store_of(tmp: Path, rules: list[Indicator]) -> LocalStore:
    store = LocalStore(tmp / "local.db")
    store.replace_directory([], SECRETS)
    with store.tx() as c:
        store.upsert(c, [store.row(i, 1) for i in rules])
    return store


RULES = [
    rule(Kind.KEYWORD, "seller", V1),
    rule(Kind.KEYWORD, "on chapter 14", V1),
    rule(Kind.KEYWORD, "cheese pizza", V2),
    rule(Kind.KEYWORD, "menu in bio", V2),
    rule(Kind.URL, "carrd.co/prices", V2),
    rule(Kind.EMOJI, "🧀🍕", V2),
]


def test_the_digest_data_names_the_canon_version() -> None:
    one = blind(TEST_KEY, Kind.KEYWORD, "seler")
    two = blind(TEST_KEY, Kind.KEYWORD, "seler", V2)
    assert one != two and one == Blinder(TEST_KEY).value(Kind.KEYWORD, "seller")
    assert two == Blinder(TEST_KEY, V2).value(Kind.KEYWORD, "seller")
    with pytest.raises(CanonError, match="canon/9"):
        Blinder(TEST_KEY, "canon/9")
    with pytest.raises(ModelError, match="scheme"):
        blinder_for(TEST_KEY, V2, "sha256")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # canon/1 indicators keep firing beside canon/2 ones, each under its own canon
        ("S3LL3R with ϲheese pizza", {("canon/1 seller", "S3LL3R"),
                                      ("canon/2 cheese pizza", "ϲheese pizza")}),
        ("m3nu 1n b10", {("canon/2 menu in bio", "m3nu 1n b10")}),
        ("carry on. Chapter 14 is next", {("canon/1 on chapter 14", "on. Chapter 14")}),
        ("see carrd[.]co/%70rices", {("canon/2 carrd.co/prices", "carrd[.]co/%70rices")}),
        ("🧀\u00a0🍕", {("canon/2 🧀🍕", "🧀\u00a0🍕")}),
        # canon/1 does not read "se11er" as seller; canon/2 has no "seller" indicator
        ("se11er", set()),
        ("cheese. pizza", set()),
    ],
)  # fmt: skip
def test_both_versions_fire_from_one_matcher(text: str, expected: set[tuple[str, str]]) -> None:
    keys = {(TEST_KEY.collaboration, TEST_KEY.epoch): TEST_KEY.secret}
    m = Matcher([stored(r) for r in RULES], keys, "re2")
    assert fired(m, text) == expected
    assert sorted(b.canon.version for b, _ in m._groups) == [V1, V2]


def test_only_the_versions_the_store_holds_are_extracted(tmp_path: Path) -> None:
    store = store_of(tmp_path, [r for r in RULES if r.canon_version == V1])
    m = Matcher.from_store(store, AT, "re2")
    assert [v for v, _ in m._canons] == [V1]
    assert fired(m, "ϲheese pizza") == set()


def test_reload_adds_and_revokes_across_versions(tmp_path: Path) -> None:
    store = store_of(tmp_path, RULES[:2])
    old = Matcher.from_store(store, AT, "re2")
    with store.tx() as c:
        store.upsert(c, [store.row(r, 2) for r in RULES[2:]])
    new = Matcher.from_store(store, AT, "re2", previous=old)
    assert old._groups[0][0] is new._groups[0][0]  # canon/1's blinder and its caches
    assert ("canon/2 cheese pizza", "ϲheese pizza") in fired(new, "ϲheese pizza")
    gone = replace(RULES[2], revoked=True, modified=RULES[2].modified + timedelta(seconds=1))
    with store.tx() as c:
        store.upsert(c, [store.row(gone, 3)])
    newer = Matcher.from_store(store, AT, "re2", previous=new)
    assert fired(newer, "ϲheese pizza") == set()
    assert fired(newer, "S3LL3R") == {("canon/1 seller", "S3LL3R")}
    scratch = Matcher.from_store(store, AT, "re2")
    for text in ("ϲheese pizza S3LL3R m3nu 1n b10", "carry on. Chapter 14"):
        assert fired(scratch, text) == fired(newer, text)


def test_a_store_whose_migration_stopped_between_the_columns_gains_the_other(
    tmp_path: Path,
) -> None:
    """The two ALTERs commit apart: a crash between them leaves ``canon`` alone, and the
    next open adds ``scheme`` (it used to look for ``canon`` only, and stay broken)."""
    path = tmp_path / "local.db"
    store_of(tmp_path, RULES[:1]).close()
    conn = sqlite3.connect(path)
    for name in ("updated", "deleted"):  # the triggers name the column
        conn.execute(f"DROP TRIGGER indicator_changes_{name}")
    for table in ("indicators", "indicator_changes"):
        conn.execute(f"ALTER TABLE {table} DROP COLUMN scheme")
    conn.commit()
    conn.close()
    store = LocalStore(path)
    try:
        for table in ("indicators", "indicator_changes"):
            cols = {r[1] for r in store.conn.execute(f"PRAGMA table_info({table})")}
            assert {"canon", "scheme"} <= cols, table
        assert store.active(AT)[0].canon == V1
    finally:
        store.close()


def test_a_store_made_before_canon2_gains_the_columns(tmp_path: Path) -> None:
    path = tmp_path / "local.db"
    store = store_of(tmp_path, RULES[:1])
    store.close()
    conn = sqlite3.connect(path)  # back to the schema (and triggers) before canon/2
    for name, event in (("updated", "UPDATE"), ("deleted", "DELETE")):
        conn.execute(f"DROP TRIGGER indicator_changes_{name}")
        conn.execute(
            f"CREATE TRIGGER indicator_changes_{name} AFTER {event} ON indicators BEGIN"
            " INSERT INTO indicator_changes (row, collab, key_epoch, form, value)"
            " VALUES (OLD.rowid, OLD.collab, OLD.key_epoch, OLD.form, OLD.value); END"
        )
    for table in ("indicators", "indicator_changes"):
        conn.execute(f"ALTER TABLE {table} DROP COLUMN canon")
        conn.execute(f"ALTER TABLE {table} DROP COLUMN scheme")
    conn.commit()
    conn.close()
    store = LocalStore(path)
    assert store.active(AT)[0].canon == V1
    with store.tx() as c:
        store.upsert(c, [store.row(RULES[2], 2)])
    old = Matcher.from_store(store, AT, "re2")
    gone = replace(RULES[2], revoked=True, modified=RULES[2].modified + timedelta(seconds=1))
    with store.tx() as c:
        store.upsert(c, [store.row(gone, 3)])
    row = store.conn.execute("SELECT canon, scheme FROM indicator_changes").fetchall()[-1]
    assert row == (V2, "blake2b-128")  # the triggers were made anew: they log the pair
    assert fired(Matcher.from_store(store, AT, "re2", previous=old), "ϲheese pizza") == set()


def test_analyst_values_canonicalize_per_version() -> None:
    assert canonicalize("keyword", "seIIer", V2) == canonicalize("keyword", "seller", V2)


def pattern(source: str, canon: str, name: str = "") -> Indicator:
    return make_indicator(form=Form.PATTERN, kind=Kind.PAYMENT, value=source, key_epoch=None,
                          scheme=None, canon_version=canon,
                          description=name or f"{canon} {source}")  # fmt: skip


GIFT = r"code\d{4}"


@pytest.mark.parametrize("engine", ["re2", "hyperscan"])
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # canon/1's table never sees lunate sigma as a c; canon/2's does
        ("ϲode1234", {("canon/2 p", "ϲode1234")}),
        ("code1234", {("canon/1 p", "code1234"), ("canon/2 p", "code1234")}),
        # canon/2 strips every combining mark: the span covers the mark in the original
        ("co\u0301de1234!", {("canon/1 p", "co\u0301de1234"), ("canon/2 p", "co\u0301de1234")}),
        ("c\u0489ode1234 x ᴄode9999", {("canon/2 p", "c\u0489ode1234"),
                                         ("canon/2 p", "ᴄode9999")}),
        ("ꜱ code12 ϲ0de1234", set()),
    ],
)  # fmt: skip
def test_a_pattern_runs_over_the_text_its_canon_version_folds(
    engine: str, text: str, expected: set[tuple[str, str]]
) -> None:
    if engine == "hyperscan":
        pytest.importorskip("hyperscan")
    rules = [pattern(GIFT, V1, "canon/1 p"), pattern(GIFT, V2, "canon/2 p")]
    m = Matcher([stored(r) for r in rules], {}, engine)
    assert fired(m, text) == expected
    assert [c.version for c, _ in m._pattern_canons] == [V1, V2]


def test_canon2_patterns_alone_fold_the_text_once(tmp_path: Path) -> None:
    store = store_of(tmp_path, [RULES[2], pattern(GIFT, V2)])
    m = Matcher.from_store(store, AT, "re2")
    assert [v for v, _ in m._folds] == [V2]  # no canon/1 fold for canon/1's empty set
    assert fired(m, "ϲheese pizza ϲode1234") == {
        ("canon/2 cheese pizza", "ϲheese pizza"), (f"canon/2 {GIFT}", "ϲode1234")}  # fmt: skip


def test_reload_adds_and_revokes_patterns_per_version(tmp_path: Path) -> None:
    one, two = pattern(GIFT, V1), pattern(GIFT, V2)
    store = store_of(tmp_path, [one])
    old = Matcher.from_store(store, AT, "re2")
    with store.tx() as c:
        store.upsert(c, [store.row(two, 2)])
    new = Matcher.from_store(store, AT, "re2", previous=old)
    assert new._patterns[V1].base is old._patterns[V1].base  # canon/1's set not compiled again
    assert new._patterns[V2].delta is not None and new._patterns[V2].delta.sources == (GIFT,)
    assert fired(new, "ϲode1234") == {(f"canon/2 {GIFT}", "ϲode1234")}
    gone = replace(two, revoked=True, modified=two.modified + timedelta(seconds=1))
    with store.tx() as c:
        store.upsert(c, [store.row(gone, 3)])
    newer = Matcher.from_store(store, AT, "re2", previous=new)
    assert fired(newer, "ϲode1234 code1234") == {(f"canon/1 {GIFT}", "code1234")}
    assert newer._patterns[V1].refs == {GIFT: newer._patterns[V1].refs[GIFT]}
    assert not newer._patterns[V2].refs and [v for v, _ in newer._folds] == [V1]
