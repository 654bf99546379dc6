"""STIX 2.1 codec: round trips, independent validation with stix2, the OASIS validator in
strict mode and the STIX pattern parser, revocation, and strict parsing of everything else."""

from __future__ import annotations

import copy
import dataclasses
import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import stix2
from hypothesis import given, settings
from hypothesis import strategies as st
from stix2patterns.validator import run_validator
from stix2validator import ValidationOptions, validate_instance

from sighub import Form, Indicator, Kind, Tlp
from sighub.client._analyst import read_rows, to_indicators
from sighub.client._keys import identity_for
from sighub.client._stix import (
    SIGHUB_EXTENSION_ID,
    TLP_MARKING_IDS,
    blinded_pattern,
    build_bundle,
    indicator_from_stix,
    indicator_name,
    indicator_to_stix,
    parse_bundle,
    revoke,
)
from sighub.wire import Blinder, StixError
from tests.conftest import NOW, TEST_KEY, make_indicator, make_publisher
from tests.test_patterns import ACCEPTED

ROOT = Path(__file__).resolve().parents[1]


def assert_strictly_valid(bundle: dict[str, Any]) -> None:
    """What a strict consumer checks: the OASIS validator with every SHOULD enforced (no
    check disabled), the stix2 object model, and the STIX pattern grammar on every
    ``stix`` pattern (a ``pcre`` pattern is a regular expression, not a STIX pattern)."""
    result = validate_instance(bundle, ValidationOptions(strict=True, version="2.1"))
    assert result.is_valid and not result.warnings, [
        str(e) for e in [*result.errors, *result.warnings]
    ]
    stix2.parse(bundle, allow_custom=False)
    for obj in bundle["objects"]:
        if obj["type"] != "indicator":
            continue
        ext = obj["extensions"][SIGHUB_EXTENSION_ID]
        if ext["form"] == "blinded":
            assert obj["pattern_type"] == "stix"
            assert run_validator(obj["pattern"], stix_version="2.1") == []
            assert "pattern_text" not in ext
        else:
            assert obj["pattern_type"] == "pcre"
            assert ext["pattern_text"] == f"{ext['canon_version']}-folded"


_indicators = st.builds(
    lambda kind, blinded, digest, pattern, conf, labels, desc, tlp, days, epoch, revoked, canon: (
        make_indicator(
            canon_version=canon,
            kind=kind,
            form=Form.BLINDED if blinded else Form.PATTERN,
            value=digest if blinded else pattern,
            key_epoch=epoch if blinded else None,
            scheme="blake2b-128" if blinded else None,
            confidence=conf,
            labels=tuple(labels),
            description=desc,
            tlp=tlp,
            valid_until=NOW + timedelta(days=days, milliseconds=7),
            modified=NOW + timedelta(seconds=1) if revoked else NOW,
            revoked=revoked,
        )
    ),
    st.sampled_from(list(Kind)),
    st.booleans(),
    st.binary(min_size=16, max_size=16).map(bytes.hex),
    st.sampled_from(ACCEPTED),
    st.integers(0, 100),
    st.lists(st.from_regex(r"[a-z0-9][a-z0-9._:-]{0,20}", fullmatch=True), max_size=3, unique=True),
    st.text(max_size=80),
    st.sampled_from(list(Tlp)),
    st.integers(1, 365),
    st.integers(0, 50),
    st.booleans(),
    st.sampled_from(["canon/1", "canon/2"]),
)


@settings(deadline=None)
@given(_indicators)
def test_indicator_round_trip(ind: Indicator) -> None:
    assert indicator_from_stix(indicator_to_stix(ind), ind.publisher) == ind


@settings(deadline=None)
@given(st.lists(_indicators, min_size=1, max_size=5))
def test_bundle_round_trip_and_strict_validation(inds: list[Indicator]) -> None:
    bundle = build_bundle(inds[0].publisher, inds)
    parsed = parse_bundle(json.loads(json.dumps(bundle)))
    assert parsed.indicators == tuple(inds) and parsed.publisher == inds[0].publisher
    assert_strictly_valid(bundle)


def test_example_file_and_its_revocation_pass_strict_validation() -> None:
    """The analysts' example file (every kind, blinded and pattern forms, several TLP
    levels), bundled as ``sighub bundle`` does, then revoked."""
    rows = read_rows(ROOT / "examples" / "indicators.csv", now=NOW)
    publisher = make_publisher()
    inds = to_indicators(rows, publisher, TEST_KEY, now=NOW)
    assert {i.kind for i in inds} == set(Kind) and {i.form for i in inds} == set(Form)
    for batch in (inds, [revoke(i, NOW + timedelta(seconds=1)) for i in inds]):
        bundle = build_bundle(publisher, batch)
        assert_strictly_valid(bundle)
        assert parse_bundle(json.loads(json.dumps(bundle))).indicators == tuple(batch)


def test_member_identities_are_deterministic_uuid4() -> None:
    """The hub and the member derive a member's identity apart: it must not be random,
    and strict STIX consumers want a version-4 UUID."""
    ident = identity_for("platform-a")
    assert ident == identity_for("platform-a") != identity_for("platform-b")
    assert uuid.UUID(ident.removeprefix("identity--")).version == 4
    assert make_publisher().id == ident


def test_blinded_names_and_patterns_hold_no_clear_value() -> None:
    """A blinded indicator's name comes from its kind, form and description only: two
    values give the same name, and the clear value appears nowhere in the object."""
    clear = ("s3ll3r", "m3nu in bio")
    blinder = Blinder(TEST_KEY)
    inds = [
        make_indicator(value=blinder.value(Kind.KEYWORD, c), description="seller (synthetic)")
        for c in clear
    ]
    objs = [indicator_to_stix(i) for i in inds]
    assert objs[0]["name"] == objs[1]["name"] == "blinded keyword: seller (synthetic)"
    assert objs[0]["pattern"] == f"[x-sighub-blinded:value = '{inds[0].value}']"
    text = json.dumps(objs, ensure_ascii=False)
    assert not any(value in text for value in clear)


def test_names_are_short_and_deterministic() -> None:
    long = "a  long\ndescription " * 10
    name = indicator_name(Kind.URL, Form.PATTERN, long)
    assert name == indicator_name(Kind.URL, Form.PATTERN, long)
    assert name.startswith("pattern url: a long description a long") and name.endswith("\u2026")
    assert len(name) <= len("pattern url: ") + 48
    assert indicator_name(Kind.EMOJI, Form.BLINDED, " ") == "blinded emoji"


def test_official_tlp_markings_are_used() -> None:
    bundle = build_bundle(make_publisher(), [make_indicator(tlp=Tlp.AMBER_STRICT)])
    marks = [o for o in bundle["objects"] if o["type"] == "marking-definition"]
    assert [m["id"] for m in marks] == [TLP_MARKING_IDS[Tlp.AMBER_STRICT]]
    assert marks[0]["name"] == "TLP:AMBER+STRICT"
    assert TLP_MARKING_IDS[Tlp.CLEAR] == "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487"


def test_revocation_is_a_new_version() -> None:
    ind = make_indicator()
    gone = revoke(ind, NOW + timedelta(minutes=1))
    assert gone.id == ind.id and gone.revoked and gone.modified > ind.modified
    assert indicator_to_stix(gone)["revoked"] is True
    with pytest.raises(StixError, match="already revoked"):
        revoke(gone, NOW + timedelta(minutes=2))
    with pytest.raises(StixError, match="must be after"):
        revoke(ind, NOW)


def _bundle() -> dict[str, Any]:
    return build_bundle(make_publisher(), [make_indicator(), make_indicator()])


def _set(path: str, value: object) -> Any:
    def change(b: dict[str, Any]) -> None:
        obj: Any = b
        *parts, last = path.split("/")
        for p in parts:
            obj = obj[int(p)] if p.isdigit() else obj[p]
        if value is _DELETE:
            del obj[int(last) if last.isdigit() else last]
        else:
            obj[int(last) if last.isdigit() else last] = value

    return change


_DELETE = object()
_EXT = SIGHUB_EXTENSION_ID


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_set("type", "report"), "type='bundle'"),
        (_set("id", "bundle--nope"), "UUID"),
        (_set("objects/5/valid_until", _DELETE), "valid_until is required"),
        (_set("objects/5/valid_until", "2026-13-01T00:00:00.000Z"), "not a valid time"),
        (_set("objects/5/valid_until", "2026-12-01T00:00:00Z"), "sssZ"),
        (_set("objects/5/created_by_ref", f"identity--{uuid.uuid4()}"), "created_by_ref"),
        (_set("objects/5/pattern", "zz"), r"pattern 'zz', expected .* for a blinded"),
        (_set("objects/5/pattern", "0" * 32), "for a blinded indicator"),  # sighub's old form
        (_set("objects/5/pattern", blinded_pattern("0" * 32) + " "), "for a blinded"),
        (_set("objects/5/pattern", "[x-sighub-blinded:value = ']"), "for a blinded"),
        (_set("objects/5/pattern", ["x"]), "for a blinded"),
        (_set("objects/5/pattern", blinded_pattern("ZZ")), "32 lowercase hex"),
        (_set("objects/5/pattern", blinded_pattern("0" * 32)), None),
        (_set("objects/5/pattern_type", "sighub-blinded"), "pattern_type"),
        (_set("objects/5/pattern_type", "pcre"), "pattern_type"),
        (_set(f"objects/5/extensions/{_EXT}/pattern_text", "canon/1-folded"), "pattern_text"),
        (_set("objects/5/name", "s3ll3r"), r"name 's3ll3r', expected 'blinded keyword: syn"),
        (_set("objects/5/name", _DELETE), "name is required"),
        (_set("objects/5/description", _DELETE), "description is required"),
        (_set("objects/5/description", "changed"), "name 'blinded keyword: synthetic'"),
        (_set(f"objects/5/extensions/{_EXT}/kind", "phone"), "kind"),
        (_set(f"objects/5/extensions/{_EXT}/collaboration", "other"), "collaborations"),
        (_set(f"objects/5/extensions/{_EXT}/canon_version", "canon/9"), "canon_version"),
        (_set(f"objects/5/extensions/{_EXT}/key_epoch", -1), "key_epoch"),
        (_set("objects/5/object_marking_refs", []), "one TLP 2.0 marking"),
        (_set("objects/5/confidence", 500), "confidence"),
        (_set("objects/5/revoked", False), "must be true"),
        (_set("objects/5/x_extra", 1), "unexpected properties"),
        (_set("objects/5/id", "indicator--0b4a1e6e-2a0f-4a55-8f15-000000000000"), None),
        (_set("objects/1/name", "changed"), "sighub's, unchanged"),
        (_set("objects/3/name", "TLP:RED"), "official TLP 2.0"),
        (_set("objects/2/name", ""), "Publisher.name"),
        (_set("objects/0/type", "malware"), "not accepted"),
        (_set("objects", []), "publisher identities"),
    ],
)
def test_parse_rejections(change: Any, message: str | None) -> None:
    bundle = _bundle()
    good = copy.deepcopy(bundle)
    change(bundle)
    if message is None:  # a valid edit: parses
        parse_bundle(bundle)
        return
    with pytest.raises(StixError, match=message):
        parse_bundle(bundle)
    assert parse_bundle(good).indicators  # the untouched original still parses


def _pattern_bundle() -> dict[str, Any]:
    inds = [
        make_indicator(form=Form.PATTERN, value=p, key_epoch=None, scheme=None)
        for p in ACCEPTED[:2]
    ]
    return build_bundle(inds[0].publisher, inds)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_set(f"objects/5/extensions/{_EXT}/pattern_text", _DELETE), "pattern_text None, exp"),
        (_set(f"objects/5/extensions/{_EXT}/pattern_text", "raw"), "'canon/1-folded'"),
        # a canon/2 pattern runs over canon/2-folded text, and says so
        (_set(f"objects/5/extensions/{_EXT}/canon_version", "canon/2"), "'canon/2-folded'"),
        (_set("objects/5/pattern_type", "stix"), "expected 'pcre' for form pattern"),
        (_set("objects/5/pattern", blinded_pattern("0" * 32)), "gated pattern"),
        (_set("objects/5/name", "blinded keyword: synthetic"), "expected 'pattern keyword"),
        (_set(f"objects/5/extensions/{_EXT}/key_epoch", 0), "scheme"),
    ],
)
def test_pattern_form_rejections(change: Any, message: str) -> None:
    """A pattern indicator says it runs over canon-folded text, and only that."""
    bundle = _pattern_bundle()
    assert_strictly_valid(copy.deepcopy(bundle))
    change(bundle)
    with pytest.raises(StixError, match=message):
        parse_bundle(bundle)


def test_duplicate_ids_and_mixed_collaborations_refused() -> None:
    ind = make_indicator()
    with pytest.raises(StixError, match="appears twice"):
        build_bundle(ind.publisher, [ind, ind])
    with pytest.raises(StixError, match="collaborations"):
        build_bundle(ind.publisher, [ind, make_indicator(collaboration="other")])
    with pytest.raises(StixError, match="publisher"):
        build_bundle(make_publisher("platform-b"), [ind])


# Values of every JSON type, including the ones Python compares equal across types
# (1 == 1.0 == True): what the bundle reader's same-shape shortcut must not confuse.
_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-2, 200)
    | st.sampled_from([0.0, 1.0, 80.0])
    | st.sampled_from(["", "x", "seller-term", "2.1", "canon/1", "blake2b-128", "sg-csam"])
    | st.sampled_from(["stix", "pcre", "canon/1-folded", "blinded keyword: synthetic"])
    | st.sampled_from([blinded_pattern("0" * 32), "0" * 32, ACCEPTED[0]]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=4,
)
_TOP = sorted({*indicator_to_stix(make_indicator()), "labels", "description", "revoked", "x"})
_EXT_KEYS = ["extension_type", "kind", "form", "canon_version", "collaboration", "scheme"]
_EXT_KEYS += ["key_epoch", "pattern_text", "x"]


@given(
    _indicators,
    st.lists(
        st.tuples(st.booleans(), st.sampled_from(_TOP + _EXT_KEYS), st.none() | _json),
        min_size=1,
        max_size=3,
    ),
)
def test_same_shape_shortcut_reads_exactly_what_the_full_reader_reads(
    first: Indicator, edits: list[tuple[bool, str, Any]]
) -> None:
    """A bundle reads each indicator like ``indicator_from_stix`` would, also when a later
    indicator repeats an earlier one's shape with one property changed (or removed)."""
    second = dataclasses.replace(first, id=f"indicator--{uuid.uuid4()}")  # same shape
    bundle = build_bundle(first.publisher, [first, second])
    obj = next(o for o in bundle["objects"] if o.get("id") == second.id)
    for in_ext, key, value in edits:
        exts = obj.get("extensions")
        ext = exts.get(SIGHUB_EXTENSION_ID) if isinstance(exts, dict) else None
        where = ext if in_ext and key in _EXT_KEYS and isinstance(ext, dict) else obj
        if value is None:
            where.pop(key, None)
        else:
            where[key] = value
    try:
        expected: Any = indicator_from_stix(copy.deepcopy(obj), first.publisher)
    except StixError:
        expected = StixError
    try:
        got: Any = parse_bundle(bundle).indicators[1]
    except StixError:
        got = StixError
    if expected is not StixError and got is StixError:  # the bundle's own rules may refuse
        with pytest.raises(StixError, match=r"bundle|marking"):
            parse_bundle(bundle)
        return
    assert got == expected
