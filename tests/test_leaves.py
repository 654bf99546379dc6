"""Log leaves: canonical bytes that hub and member compute alike, and a strict reader."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sighub.client import _leaves as lv
from sighub.client._envelope import canonical_json
from sighub.client._leaves import LeafError, parse_leaf

KEY = bytes(range(32))


def test_a_relayed_envelopes_leaf_commits_to_its_hop_records() -> None:
    hops = b'[{"relay":"sighub/b"}]'
    doc = parse_leaf(lv.envelope_leaf("sg-csam", b"env", 3, hops))
    assert doc["hops"] == hashlib.sha256(hops).hexdigest() and doc["n"] == 3
    for here in (b"", b"[]"):  # published at this hub: no hops field, the leaf as before
        assert lv.envelope_leaf("sg-csam", b"env", 3, here) == lv.envelope_leaf(
            "sg-csam", b"env", 3
        )
    assert lv.envelope_leaf("sg-csam", b"env", 3, hops) != lv.envelope_leaf("sg-csam", b"env", 3)


def test_leaves_are_canonical_json_with_a_version_and_a_type() -> None:
    raw = lv.envelope_leaf("sg-csam", b"envelope bytes")
    assert raw == (
        b'{"collab":"sg-csam","envelope":"'
        + hashlib.sha256(b"envelope bytes").hexdigest().encode()
        + b'","type":"envelope","v":1}'
    )
    for raw in (
        lv.member_enroll("pa", "identity--x", ["subscriber", "publisher"], "ed25519:ab", KEY),
        lv.key_rotate("pa", "ed25519:cd", KEY, "ed25519:ab", b"\x01" * 64),
        lv.key_revoke("pa", "ed25519:ab"),
        lv.member_status("pa", "suspended"),
        lv.member_roles("pa", ["subscriber"]),
        lv.collab_add("sg-csam"),
        lv.collab_membership("sg-csam", "pa", joined=True),
        lv.collab_membership("sg-csam", "pa", joined=False),
        lv.collab_epoch("sg-csam", 2, KEY),
    ):
        doc = parse_leaf(raw)
        assert doc["v"] == 1 and doc["type"] in lv.LEAF_TYPES
    assert parse_leaf(lv.member_enroll("pa", "i", ["b", "a"], "k", KEY))["roles"] == ["a", "b"]


def test_an_epoch_leaf_holds_a_commitment_never_the_secret() -> None:
    raw = lv.collab_epoch("sg-csam", 0, KEY)
    assert KEY.hex().encode() not in raw and KEY not in raw
    expected = hashlib.sha256(b"sighub-collab-key-v1" + KEY).hexdigest()
    assert parse_leaf(raw)["commitment"] == expected


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"not json", "not JSON"),
        (b'{"v":2,"type":"envelope"}', "v=1"),
        (b'{"type":"envelope"}', "v=1"),
        (b'{"type":"secret.dump","v":1}', "type 'secret.dump'"),
        (b'{"v":1, "type":"collab.add","collab":"x"}', "canonical"),
        (b'{"v":1,"type":"collab.add","collab":"x"}', "canonical"),  # keys out of order
        (b"[" * 10 + b"]" * 10, "not JSON within budget"),
        (b'{"collab":"' + b"x" * 5000 + b'","type":"collab.add","v":1}', "expected at most 4096"),
        (b'{"collab":"' + b"x" * 20000 + b'","type":"collab.add","v":1}', "not JSON within budget"),
    ],
)
def test_the_reader_refuses_what_sighub_does_not_write(raw: bytes, fragment: str) -> None:
    with pytest.raises(LeafError, match=fragment):
        parse_leaf(raw)


@given(st.text(min_size=1, max_size=60), st.text(min_size=1, max_size=60), st.booleans())
def test_membership_leaves_round_trip(collab: str, member: str, joined: bool) -> None:
    raw = lv.collab_membership(collab, member, joined=joined)
    doc = parse_leaf(raw)
    assert (doc["collab"], doc["member"]) == (collab, member)
    assert json.loads(raw) == doc


@pytest.mark.parametrize(
    "raw",
    [
        b'{"collab":"\\ud800","type":"collab.add","v":1}',  # a lone surrogate
        b'{"collab":"x","n":1e400,"type":"collab.add","v":1}',  # parses as infinity
        b'{"collab":"x","type":"collab.add","v":true}',  # true == 1, but not a version
    ],
)
def test_a_leaf_rfc8785_cannot_carry_is_a_leaf_error(raw: bytes) -> None:
    """Served by a hub, such a leaf is evidence (an alarm), never a crash of the sync."""
    with pytest.raises(LeafError):
        parse_leaf(raw)


@pytest.mark.parametrize(
    "doc, words",
    [
        ({"type": "key.revoke", "member": 42, "key_id": "ed25519:00"}, "'member' is int"),
        ({"type": "key.revoke", "member": "42"}, "lacks ['key_id']"),
        ({"type": "envelope", "collab": "sg", "envelope": "00", "n": -1}, "expected a count"),
        ({"type": "envelope", "collab": "sg", "envelope": "00", "n": True}, "expected a count"),
        ({"type": "member.roles", "member": "m", "roles": ["publisher", 7]}, "expected strings"),
        ({"type": "collab.add", "collab": ["sg"]}, "expected a string"),
    ],
)
def test_a_leaf_with_fields_of_the_wrong_kind_is_refused(
    doc: dict[str, object], words: str
) -> None:
    """A member named 42 (a number) would pass every name comparison as another member:
    each field must be of its kind, and each type's fields present."""
    raw = canonical_json({"v": 1, **doc})
    with pytest.raises(lv.LeafError, match=re.escape(words)):
        lv.parse_leaf(raw)
