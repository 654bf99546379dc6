"""Hop records (``_hops``): golden vectors, verification of a chain, and every way a relay
could drop, reorder, move or edit a hop being caught."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sighub.client._hops import (
    MAX_HOPS,
    HopError,
    HopRecord,
    decode_hops,
    encode_hops,
    hop_statement,
    hops_digest,
    origin_of,
    sign_hop,
    verify_hops,
)
from sighub.client._note import Ed25519Signer

VECTORS = json.loads((Path(__file__).parent / "vectors" / "hops.json").read_text())
ENVELOPE = base64.b64decode(VECTORS["envelope"])
KEYS = {o: base64.b64decode(k) for o, k in VECTORS["log_keys"].items()}
HERE = "sighub/hotline"


def _hops() -> tuple[HopRecord, ...]:
    return decode_hops(VECTORS["encoded"].encode())


def test_the_vectors_decode_sign_and_digest_alike() -> None:
    hops = _hops()
    assert encode_hops(hops).decode() == VECTORS["encoded"]
    assert hops_digest(hops) == VECTORS["digest"]
    for i, (hop, want) in enumerate(zip(hops, VECTORS["hops"], strict=True)):
        assert hop.fields() == want["record"]
        statement = hop_statement(ENVELOPE, hops[:i], hop.relay, hop.source, hop.seq,
                                  hop.checkpoint, hop.received, hop.n, hop.path)  # fmt: skip
        assert statement.hex() == want["statement"]
        seed = bytes([VECTORS["seeds"][hop.relay]]) * 32
        again = sign_hop(Ed25519Signer(hop.relay, seed).sign, hop.relay, ENVELOPE, hops[:i],
                         hop.source, hop.seq, hop.checkpoint, hop.received, hop.n,
                         hop.path)  # fmt: skip
        assert again == hop


def test_a_chain_verifies_and_names_its_origin() -> None:
    hops = _hops()
    first = verify_hops(ENVELOPE, hops, KEYS, HERE)
    assert first is not None and first.origin == "sighub/industry" and first.size == 40
    # each source logged it, under its name for the collaboration
    assert verify_hops(ENVELOPE, hops, KEYS, HERE, VECTORS["names"]) == first
    for names in (["sg-csam", "sg-csam"], ["sg-regional", "sg-regional"]):
        with pytest.raises(HopError, match="not in 'sighub/"):
            verify_hops(ENVELOPE, hops, KEYS, HERE, names)
    with pytest.raises(HopError, match="1 collaboration names for 2 hops"):
        verify_hops(ENVELOPE, hops, KEYS, HERE, ["sg-csam"])
    assert origin_of(hops, HERE) == "sighub/industry" and origin_of((), HERE) == HERE
    assert verify_hops(ENVELOPE, (), KEYS, HERE) is None


def _tamper(kind: str) -> tuple[bytes, tuple[HopRecord, ...], str]:
    hops = _hops()
    if kind == "other envelope":
        return ENVELOPE + b" ", hops, "signature does not verify"
    if kind == "dropped first":
        return ENVELOPE, hops[1:], "signature does not verify"
    if kind == "reordered":
        return ENVELOPE, (hops[1], hops[0]), "signature does not verify"
    if kind == "edited seq":
        return ENVELOPE, (replace(hops[0], seq=31), hops[1]), "signature does not verify"
    if kind == "edited time":
        edited = replace(hops[1], received="2026-11-28T12:00:09.000Z")
        return ENVELOPE, (hops[0], edited), "signature does not verify"
    if kind == "seq past checkpoint":
        return ENVELOPE, (replace(hops[0], seq=41), hops[1]), "past the checkpoint"
    if kind == "foreign checkpoint":
        return ENVELOPE, (replace(hops[0], checkpoint=hops[1].checkpoint), hops[1]), "checkpoint"
    if kind == "not for this hub":
        return ENVELOPE, hops[:1], "not to this hub"
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    ["other envelope", "dropped first", "reordered", "edited seq", "edited time",
     "seq past checkpoint", "foreign checkpoint", "not for this hub"],
)  # fmt: skip
def test_every_edit_of_the_chain_is_refused(kind: str) -> None:
    envelope, hops, words = _tamper(kind)
    with pytest.raises(HopError, match=words):
        verify_hops(envelope, hops, KEYS, HERE)


def test_a_relay_without_a_pinned_key_and_a_cycle_are_refused() -> None:
    hops = _hops()
    keys = {k: v for k, v in KEYS.items() if k != "sighub/regional"}
    with pytest.raises(HopError, match="no log key pinned for hub 'sighub/regional'"):
        verify_hops(ENVELOPE, hops, keys, HERE)
    back = sign_hop(
        Ed25519Signer("sighub/industry", bytes([1]) * 32).sign,
        "sighub/industry",
        ENVELOPE,
        hops,
        HERE,
        7,
        hops[1].checkpoint,
        "2026-11-28T12:00:05.000Z",
    )
    with pytest.raises(HopError, match="appears twice: a cycle"):  # fmt: skip
        verify_hops(ENVELOPE, (*hops, back), KEYS, "sighub/industry")


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"{}", "expected a list"),
        (b"[1]", "fields"),
        (b'[{"relay":"a"}]', "fields"),
        (b"[" + b",".join([b"{}"] * (MAX_HOPS + 1)) + b"]", "at most 17|at most 16"),
        (b"[" * 50 + b"]" * 50, "budget"),
        (b"[ ]", "canonical"),
    ],
)
def test_hostile_hop_lists_are_refused(raw: bytes, words: str) -> None:
    with pytest.raises(HopError, match=words):
        decode_hops(raw)


def _field_variants() -> list[dict[str, Any]]:
    base = _hops()[0].fields()
    return [
        {**base, "seq": 0},
        {**base, "seq": 2**63},
        {**base, "seq": "30"},
        {**base, "relay": ""},
        {**base, "relay": "r" * 300},
        {**base, "signature": "not base64!"},
        {**base, "checkpoint": "A" * 20000},
    ]


@pytest.mark.parametrize("doc", _field_variants())
def test_out_of_range_fields_are_refused(doc: dict[str, Any]) -> None:
    raw = json.dumps([doc], separators=(",", ":"), sort_keys=True).encode()
    with pytest.raises(HopError):
        decode_hops(raw)


@given(
    st.lists(
        st.tuples(
            st.text(min_size=1, max_size=30),
            st.text(min_size=1, max_size=30),
            st.integers(1, 2**63 - 1),
            st.binary(min_size=1, max_size=200),
            st.text(min_size=1, max_size=30),
            st.binary(min_size=64, max_size=64),
        ),
        max_size=MAX_HOPS,
    )
)
def test_encoding_round_trips(items: list[tuple[str, str, int, bytes, str, bytes]]) -> None:
    hops = tuple(HopRecord(*i) for i in items)
    try:
        raw = encode_hops(hops)
    except ValueError:  # rfc8785 refuses lone surrogates: such a hop is never written
        return
    assert decode_hops(raw) == hops
