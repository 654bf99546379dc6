"""Witnesses without a hub: the policy's rules, the checks of witnessed checkpoints
(``check_witnesses``, ``compare_roots``) on synthetic logs, and the cosignature sender's
bounds (one a second, the newest, never raising)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from sighub.client._checkpoint import Checkpoint, Cosigner, parse_checkpoint, sign_checkpoint
from sighub.client._cosign import CosignSender
from sighub.client._logcheck import AlarmKind, LogAlarm, SignedRoot
from sighub.client._merkle import consistency_proof, leaf_hash, root
from sighub.client._note import Ed25519Signer, parse_note
from sighub.client._rpc import HubClient, HubRejected
from sighub.client._witness import (
    Witnessed,
    WitnessPolicy,
    WitnessPolicyError,
    check_witnesses,
    compare_roots,
)

ORIGIN = "sighub/test-hub"
HUB = Ed25519Signer(ORIGIN, bytes(range(32)))
NOW = 1_790_000_000
W1, W2 = Cosigner("w1.witness.sighub", bytes([1]) * 32), Cosigner("w2.witness", bytes([2]) * 32)
LEAVES = [leaf_hash(f"s3ller 🧀 {i}".encode()) for i in range(20)]
FORKED = [*LEAVES[:10], *(leaf_hash(f"*.carrd.co {i}".encode()) for i in range(10))]


def _note(size: int, leaves: Sequence[bytes] = LEAVES, signer: Ed25519Signer = HUB) -> bytes:
    body = Checkpoint(ORIGIN, size, root(leaves[:size])).with_time(NOW)
    return sign_checkpoint(body, signer)


def _mine(size: int, leaves: Sequence[bytes] = LEAVES) -> SignedRoot:
    return SignedRoot(size, root(leaves[:size]), _note(size, leaves))


def _cosigned(note: bytes, *by: tuple[Cosigner, int]) -> bytes:
    parsed = parse_note(note)
    cp = parse_checkpoint(parsed.text)
    return parsed.with_signatures(*(w.cosign(cp, t) for w, t in by)).encode()


def _prover(leaves: Sequence[bytes]) -> Any:
    def prove(first: int, second: int) -> list[bytes]:
        return consistency_proof(first, second, leaves[:second])

    return prove


def _check(
    mine: SignedRoot, notes: list[bytes], leaves: Sequence[bytes] = LEAVES, k: int = 1
) -> Witnessed:
    policy = WitnessPolicy(k, (W1.verifier, W2.verifier))
    return check_witnesses(policy, HUB.verifier, mine, notes, _prover(leaves), NOW, 3600, 300)


# -- the policy --------------------------------------------------------------------------
def test_the_policy_refuses_what_cannot_be_met() -> None:
    assert WitnessPolicy().required == 0  # the default requires nothing
    with pytest.raises(WitnessPolicyError, match="2 required but 1 witness key"):
        WitnessPolicy.from_vkeys(2, [W1.verifier.vkey])
    with pytest.raises(WitnessPolicyError, match="whole number"):
        WitnessPolicy(-1)
    with pytest.raises(WitnessPolicyError, match="witness key: "):
        WitnessPolicy.from_vkeys(0, ["🍕+00000000+AA=="])
    twice = WitnessPolicy.from_vkeys(1, [W1.verifier.vkey, W1.verifier.vkey])
    assert twice.ids == [f"w1.witness.sighub+{W1.key_id:08x}"]
    with pytest.raises(WitnessPolicyError, match="given twice"):
        WitnessPolicy(1, (W1.verifier, W1.verifier))
    many = [Cosigner(f"w{i}", bytes([i]) * 32).verifier.vkey for i in range(65)]
    with pytest.raises(WitnessPolicyError, match="received 65, expected at most 64"):
        WitnessPolicy.from_vkeys(1, many)
    impostor = Cosigner("w1.witness.sighub", bytes([9]) * 32).verifier
    assert impostor.key_id != W1.key_id  # the ID covers the key: two keys, one name is fine


# -- checking witnessed checkpoints ------------------------------------------------------
@pytest.mark.parametrize(("mine", "theirs"), [(12, 12), (12, 17), (17, 12), (1, 20), (20, 1)])
def test_consistent_witnessed_trees_vouch(mine: int, theirs: int) -> None:
    note = _cosigned(_note(theirs), (W1, NOW - 60), (W2, NOW))
    found = _check(_mine(mine), [note], k=2)
    assert len(found.vouched) == 2 and not found.problems


@pytest.mark.parametrize(("mine", "theirs"), [(15, 15), (12, 17), (17, 12)])
def test_a_forked_witnessed_tree_is_a_split_view(mine: int, theirs: int) -> None:
    note = _cosigned(_note(theirs, FORKED), (W1, NOW))
    prover_log = FORKED if theirs > mine else LEAVES  # the larger tree's hub answers
    with pytest.raises(LogAlarm) as err:
        _check(_mine(mine), [note], prover_log)
    assert err.value.kind is AlarmKind.SPLIT_VIEW
    evidence = err.value.evidence
    assert {"checkpoint", "other", "source"} <= set(evidence)
    assert "w1.witness.sighub" in evidence["source"]


def test_a_hub_refusing_to_prove_two_sizes_it_signed_is_a_split_view() -> None:
    def refuse(first: int, second: int) -> list[bytes]:
        raise HubRejected("INVALID_ARGUMENT", f"tree size: received {second}")

    with pytest.raises(LogAlarm, match="refuses to prove size 10 a prefix of size 20"):
        compare_roots(_mine(10), _mine(20), refuse, "s3ller")

    def deny(first: int, second: int) -> list[bytes]:
        raise HubRejected("PERMISSION_DENIED", "member 's3ller' is suspended")

    with pytest.raises(HubRejected):  # no verdict: the caller sees the refusal
        compare_roots(_mine(10), _mine(20), deny, "s3ller")


@pytest.mark.parametrize(
    ("cosigned_at", "words"),
    [(NOW - 3601, "s ago (> 3600)"), (NOW + 301, "ahead of this clock")],
)
def test_an_old_or_future_cosignature_does_not_vouch(cosigned_at: int, words: str) -> None:
    note = _cosigned(_note(12), (W1, cosigned_at))
    with pytest.raises(LogAlarm) as err:
        _check(_mine(12), [note])
    assert err.value.kind is AlarmKind.UNWITNESSED and words in str(err.value)
    assert err.value.evidence["vouched"] == [] and err.value.evidence["witnessed"]


def test_notes_the_hub_did_not_sign_or_a_bad_cosignature_count_for_nothing() -> None:
    stranger = Ed25519Signer(ORIGIN, bytes([5]) * 32)
    forged = _cosigned(_note(12, signer=stranger), (W1, NOW))
    good = parse_note(_cosigned(_note(12), (W1, NOW)))
    sig = good.signatures[1]
    bad = good.with_signatures(type(sig)(sig.name, sig.key_id, sig.value[:-1] + b"\0")).encode()
    with pytest.raises(LogAlarm) as err:
        _check(_mine(12), [forged, bad, b"\xff" * 10])
    assert err.value.kind is AlarmKind.UNWITNESSED
    assert "does not verify" in str(err.value) and "no cosignature at the hub" in str(err.value)
    # with one good note beside them, one witness vouches
    found = _check(_mine(12), [forged, _cosigned(_note(12), (W2, NOW))])
    assert found.vouched == (f"w2.witness+{W2.key_id:08x}",) and found.problems


def test_a_hub_cannot_flood_the_check() -> None:
    """At most two notes per known witness are opened."""
    notes = [b"\xff"] * 1000 + [_cosigned(_note(12), (W1, NOW))]
    with pytest.raises(LogAlarm) as err:
        _check(_mine(12), notes)
    assert err.value.kind is AlarmKind.UNWITNESSED
    assert len(err.value.evidence["witnessed"]) <= 16


# -- the sender ---------------------------------------------------------------------------
class _Client:
    """What CosignSender needs of a HubClient, recording what it sends."""

    def __init__(self, refuse: bool = False) -> None:
        self.sent: list[tuple[bytes, bytes, str, float]] = []
        self.refuse = refuse
        self.closed = False

    def add_cosignature(self, checkpoint: bytes, line: bytes, vkey: str) -> int:
        self.sent.append((checkpoint, line, vkey, time.monotonic()))
        if self.refuse:
            raise HubRejected("FAILED_PRECONDITION", "s3ller")
        return 1

    def close(self) -> None:
        self.closed = True


def _sender(client: _Client, interval: float = 0.3) -> CosignSender:
    def connect() -> HubClient:
        return client  # type: ignore[return-value]

    return CosignSender(W1, connect, lambda: datetime.fromtimestamp(NOW, UTC), interval)


def test_the_sender_sends_the_newest_at_most_once_an_interval() -> None:
    client = _Client()
    sender = _sender(client)
    notes = [_note(size) for size in range(1, 11)]
    try:
        for note in notes:
            sender.offer(note)
        assert sender.flush(5)
        sender.offer(notes[-1])  # the one sent last: not again
        assert sender.flush(5)
    finally:
        sender.close()
    assert client.closed
    sent = [s[0] for s in client.sent]
    assert sent[-1] == notes[-1] and len(sent) <= 2
    gaps = [b[3] - a[3] for a, b in zip(client.sent, client.sent[1:], strict=False)]
    assert all(g >= 0.29 for g in gaps)
    checkpoint, line, vkey, _ = client.sent[-1]
    opened = parse_note(checkpoint + line)
    assert vkey == W1.verifier.vkey
    assert W1.verifier.verify(opened.text.encode(), opened.signatures[1].value)


def test_a_refused_cosignature_is_a_warning_and_sending_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = _Client(refuse=True)
    sender = _sender(client, 0.05)
    caplog.set_level(logging.WARNING, logger="sighub.sync")
    try:
        sender.offer(_note(3))
        assert sender.flush(5)
        sender.offer(_note(4))
        assert sender.flush(5)
    finally:
        sender.close()
    assert len(client.sent) == 2 and sender.accepted == 0
    assert "refused by the hub (FAILED_PRECONDITION)" in caplog.text


def test_offer_never_blocks_on_a_slow_hub() -> None:
    release = threading.Event()

    class Slow(_Client):
        def add_cosignature(self, checkpoint: bytes, line: bytes, vkey: str) -> int:
            release.wait(10)
            return super().add_cosignature(checkpoint, line, vkey)

    client = Slow()
    sender = _sender(client, 0.0)
    try:
        started = time.monotonic()
        for size in range(1, 50):
            sender.offer(_note(size))
        assert time.monotonic() - started < 1
        assert not sender.flush(0.2)  # still in flight
        release.set()
        assert sender.flush(5)
    finally:
        sender.close()
    sent = [s[0] for s in client.sent]
    assert sent[-1] == _note(49) and len(sent) <= 2
