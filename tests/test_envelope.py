"""Signed envelopes: tamper evidence byte by byte, keys, canonical forms."""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from sighub import KeyFileError
from sighub.client._envelope import (
    PAYLOAD_TYPE,
    canonical_json,
    decode_payload,
    key_id,
    open_envelope,
    pae,
    seal,
)
from sighub.client._keys import MemberFiles
from sighub.client._stix import build_bundle, parse_bundle
from sighub.wire import EnvelopeError, UnknownKeyError
from tests.conftest import make_indicator, make_publisher

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
KEYS = {key_id(KEY.public_key()): KEY.public_key()}


def _envelope() -> bytes:
    return seal(build_bundle(make_publisher(), [make_indicator()]), KEY)


def test_seal_and_open() -> None:
    raw = _envelope()
    env = open_envelope(raw, KEYS)
    assert env.key_id == key_id(KEY.public_key()) and env.raw == raw
    assert parse_bundle(decode_payload(env)).indicators
    assert canonical_json(json.loads(raw)) == raw  # the envelope itself is JCS
    assert rfc8785.dumps(json.loads(raw)) == raw


def test_every_single_byte_change_is_rejected() -> None:
    raw = _envelope()
    for i in range(len(raw)):
        for delta in (1, 0x20, 0x80):
            bad = bytearray(raw)
            bad[i] = (bad[i] + delta) % 256
            with pytest.raises(EnvelopeError):
                open_envelope(bytes(bad), KEYS)
    for i in (0, len(raw) // 2, len(raw) - 1):  # deletions and insertions too
        with pytest.raises(EnvelopeError):
            open_envelope(raw[:i] + raw[i + 1 :], KEYS)
        with pytest.raises(EnvelopeError):
            open_envelope(raw[:i] + b" " + raw[i:], KEYS)


def test_wrong_key_is_rejected() -> None:
    other = Ed25519PrivateKey.generate()
    with pytest.raises(EnvelopeError, match="unknown key") as caught:
        open_envelope(_envelope(), {key_id(other.public_key()): other.public_key()})
    assert isinstance(caught.value, UnknownKeyError)  # typed: nobody parses the message
    assert caught.value.key_id == key_id(KEY.public_key())
    # the right key id pointing at the wrong key: the signature fails
    with pytest.raises(EnvelopeError, match="does not verify"):
        open_envelope(_envelope(), {key_id(KEY.public_key()): other.public_key()})


def _rebuild(payload: bytes, ptype: str = PAYLOAD_TYPE, key: Ed25519PrivateKey = KEY) -> bytes:
    sig = key.sign(pae(ptype, payload))
    doc = {
        "payload": base64.b64encode(payload).decode(),
        "payloadType": ptype,
        "signatures": [{"keyid": key_id(key.public_key()), "sig": base64.b64encode(sig).decode()}],
    }
    return rfc8785.dumps(doc)


def test_wrong_payload_type_rejected_even_when_signed() -> None:
    body = json.loads(open_envelope(_envelope(), KEYS).payload)
    raw = _rebuild(rfc8785.dumps(body), ptype="application/json")
    with pytest.raises(EnvelopeError, match="payloadType"):
        open_envelope(raw, KEYS)


def test_non_canonical_payload_rejected_even_when_signed() -> None:
    body = json.loads(open_envelope(_envelope(), KEYS).payload)
    pretty = json.dumps(body, indent=1).encode()
    env = open_envelope(_rebuild(pretty), KEYS)  # the signature is fine...
    with pytest.raises(EnvelopeError, match="canonical"):
        decode_payload(env)  # ...but the payload is not the canonical form


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"not json", "not JSON"),
        (b"[]", "keys"),
        (b'{"payload":"","payloadType":"x"}', "keys"),
        (b'{"payload": "", "payloadType": "x", "signatures": []}', "exactly one signature"),
        (b'{"payloadType":"x","payload":"","signatures":[{"keyid":"a","sig":""}]}', "canonical"),
        (b"x" * (4 * 1024 * 1024 + 1), "at most"),
    ],
)
def test_malformed_envelopes(raw: bytes, message: str) -> None:
    with pytest.raises(EnvelopeError, match=message):
        open_envelope(raw, KEYS)


def test_non_canonical_base64_rejected() -> None:
    raw = _envelope()
    doc = json.loads(raw)
    sig = doc["signatures"][0]["sig"]  # 64 bytes: the last quantum has 4 unused bits
    doc["signatures"][0]["sig"] = sig[:-3] + chr(ord(sig[-3]) + 1) + sig[-2:]
    with pytest.raises(EnvelopeError, match="non-canonical base64"):
        open_envelope(rfc8785.dumps(doc), KEYS)


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(deadline=None)
@given(_json)
def test_fast_canonical_json_equals_rfc8785(value: object) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)


def test_member_key_files(tmp_path: os.PathLike[str]) -> None:
    files = MemberFiles(tmp_path / "m")  # type: ignore[operator]
    ident = files.create("platform-a")
    key_path = files.root / "signing.key"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert key_id(files.signing_key().public_key()) == ident.key_id == files.identity().key_id
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        files.create("platform-a")
    key_path.chmod(0o644)
    with pytest.raises(KeyFileError, match="0644"):
        files.signing_key()
    assert b"PRIVATE" not in str(KeyFileError("x")).encode()


def test_seal_refuses_a_bundle_json_cannot_carry_canonically() -> None:
    key = Ed25519PrivateKey.generate()
    for bad in ({"x": float("nan")}, {"x": 2**60}, {"x": object()}):
        with pytest.raises(EnvelopeError, match="not canonical JSON"):
            seal(bad, key)
