"""Fuzzing what a publisher can send: 10,000 hostile payloads through the hub's validation
(the function every Publish runs) must each end in a Checked result or a Rejection, never
an exception; a sample of them through a real hub must never be answered INTERNAL."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sighub.client._envelope import PAYLOAD_TYPE, _envelope_bytes, key_id, pae, public_key_bytes
from sighub.client._rpc import HubRejected
from sighub.client._rules import PublishLimits
from sighub.hub._validate import Checked, Plan, Rejection, check
from sighub.wire import build_bundle
from tests.conftest import make_indicator, make_publisher
from tests.hub.conftest import Member

KEY = Ed25519PrivateKey.generate()
PUBLISHER = make_publisher()
PLAN = Plan(
    envelope_id="0" * 64,
    member="platform-a",
    identity=PUBLISHER.id,
    collab="sg-csam",
    keys={key_id(KEY.public_key()): public_key_bytes(KEY.public_key())},
    revoked={},
    epochs=(0,),
    limits=PublishLimits(),
    now=datetime(2026, 11, 1, 12, tzinfo=UTC),
)
BASE = build_bundle(
    PUBLISHER,
    [make_indicator(), make_indicator(labels=("a", "b"), valid_until=PLAN.now + timedelta(1))],
)

# JSON as a hostile publisher writes it: huge and odd numbers, NaN, deep nesting, lone
# surrogates, containers where strings belong.
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.sampled_from(
        ["indicator--00000000-0000-4000-8000-000000000000", "2099-01-01T00:00:00.000Z"]
    )
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def sign(body: bytes) -> bytes:
    return _envelope_bytes(body, key_id(KEY.public_key()), KEY.sign(pae(PAYLOAD_TYPE, body)))


def encode(doc: Any) -> bytes:
    """Canonical bytes where JCS can write them (so the payload reaches the bundle rules),
    plain JSON (NaN, huge integers) where it cannot."""
    try:
        return rfc8785.dumps(doc)
    except (rfc8785.CanonicalizationError, ValueError, TypeError):
        return json.dumps(doc, allow_nan=True).encode("utf-8", "surrogatepass")


def mutate(doc: Any, path_seed: int, value: Any) -> Any:
    """``doc`` with one value, somewhere inside it, replaced by ``value``."""
    rng = random.Random(path_seed)
    doc = json.loads(json.dumps(doc))
    parent: Any = None
    key: Any = None
    node = doc
    for _ in range(rng.randint(1, 5)):
        if isinstance(node, dict) and node:
            k: Any = rng.choice(sorted(node))
        elif isinstance(node, list) and node:
            k = rng.randrange(len(node))
        else:
            break
        parent, key = node, k
        if not isinstance(node[k], (dict, list)) or rng.random() < 0.3:
            break
        node = node[k]
    if parent is None:
        return value
    parent[key] = value
    return doc


def deep(n: int, opener: str) -> bytes:
    close = {"[": "]", "{": "}"}[opener]
    inner = '{"a":' * n if opener == "{" else "[" * n
    return (inner + "1" + close * n).encode()


def outcome(raw: bytes) -> Checked | Rejection:
    result = check(PLAN, raw)
    assert isinstance(result, (Checked, Rejection)), result
    if isinstance(result, Rejection):
        assert result.status in {"INVALID_ARGUMENT", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED"}
        assert result.message
    return result


# 8,000 cases here, 150 through a real hub; the analyst-file and `sighub match` fuzzers
# bring the total past 20,000.
FUZZ = settings(max_examples=2500, deadline=None, suppress_health_check=list(HealthCheck))


@settings(FUZZ, max_examples=2000)
@given(seed=st.integers(0, 2**32), value=values)
def test_mutated_bundles_are_checked_or_refused(seed: int, value: Any) -> None:
    outcome(sign(encode(mutate(BASE, seed, value))))


@FUZZ
@given(body=st.binary(max_size=512))
def test_signed_random_payloads_are_refused(body: bytes) -> None:
    assert isinstance(outcome(sign(body)), Rejection)


@FUZZ
@given(
    raw=st.binary(max_size=512)
    | st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass"))
)
def test_random_envelopes_are_refused(raw: bytes) -> None:
    assert isinstance(outcome(raw), Rejection)


@settings(FUZZ, max_examples=1000)
@given(
    n=st.integers(1, 5000),
    opener=st.sampled_from("[{"),
    digits=st.integers(1, 6000),
    where=st.sampled_from(["id", "confidence", "objects"]),
)
def test_deep_and_long_payloads_are_refused(n: int, opener: str, digits: int, where: str) -> None:
    nested = deep(n, opener).decode()
    number = "9" * digits
    body = json.dumps(BASE).replace(f'"{where}":', f'"{where}":{nested}, "x{where}":{number},', 1)
    result = outcome(sign(body.encode()))
    assert isinstance(result, Rejection)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(seed=st.integers(0, 2**32), value=values, nested=st.integers(0, 3000))
def test_a_real_hub_never_answers_internal(
    world: dict[str, Any], seed: int, value: Any, nested: int
) -> None:
    pub: Member = world["pub"]
    key = pub.files.signing_key()
    if nested > 2500:  # now and then a payload only a budgeted parser survives
        body = deep(nested, "[{"[seed % 2])
    else:
        bundle = build_bundle(pub.files.identity().publisher, pub.indicators(1))
        body = encode(mutate(bundle, seed, value))
    raw = _envelope_bytes(body, key_id(key.public_key()), key.sign(pae(PAYLOAD_TYPE, body)))
    try:
        pub.client().publish("sg-csam", raw)
    except HubRejected as exc:
        assert exc.code not in {"INTERNAL", "UNKNOWN", "UNAVAILABLE"}, exc
