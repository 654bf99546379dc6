"""Sync streams against a real hub: batches, exact resume, live follow, authorization."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sighub.client._envelope import key_id
from sighub.client._rpc import HubRejected
from sighub.wire import decode_payload, open_envelope, parse_bundle
from tests.hub.conftest import HubProcess, Member


def _all(m: Member, cursor: int = 0, **kw: Any) -> list[Any]:
    return [c for b in m.client().sync(cursor, **kw) for c in b.changes]


def test_sync_resumes_exactly_and_filters_collaborations(world: dict[str, Any]) -> None:
    pub, sub, outsider = world["pub"], world["sub"], world["outsider"]
    for _ in range(5):
        pub.publish(pub.indicators(2))
    outsider.publish(outsider.indicators(1, "other"), collab="other")
    changes = _all(sub, batch_size=2)
    seqs = [c.sequence for c in changes]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert {c.collaboration for c in changes} == {"sg-csam"}
    middle = seqs[len(seqs) // 2]
    assert [c.sequence for c in _all(sub, middle)] == [s for s in seqs if s > middle]
    # every envelope verifies end to end against the directory
    keys = {k.key_id: k for k in sub.client().key_directory()}
    public = {kid: Ed25519PublicKey.from_public_bytes(k.public_key) for kid, k in keys.items()}
    for c in changes:
        bundle = parse_bundle(decode_payload(open_envelope(c.envelope, public)))
        assert bundle.collaboration == "sg-csam"
    assert key_id  # imported for readers: key ids are what the directory is keyed by


def test_sync_authorization(world: dict[str, Any]) -> None:
    sub, outsider = world["sub"], world["outsider"]
    with pytest.raises(HubRejected) as info:
        _all(sub, collaborations=["other"])
    assert info.value.code == "PERMISSION_DENIED"
    assert {c.collaboration for c in _all(outsider)} <= {"other"}


def test_follow_pushes_and_suspension_ends_the_stream(world: dict[str, Any]) -> None:
    hub: HubProcess = world["hub"]
    pub = world["pub"]
    follower = hub.member("follower", world["tmp"], roles="subscriber")
    head = max([c.sequence for c in _all(follower)] or [0])
    got: list[int] = []
    error: list[HubRejected] = []

    def follow() -> None:
        try:
            for batch in follower.client().sync(head, follow=True):
                got.extend(c.sequence for c in batch.changes)
        except HubRejected as exc:
            error.append(exc)

    t = threading.Thread(target=follow, daemon=True)
    t.start()
    time.sleep(0.5)
    sent = pub.publish(pub.indicators(1)).sequence
    deadline = time.time() + 10
    while sent not in got and time.time() < deadline:
        time.sleep(0.05)
    assert sent in got
    assert hub.admin_cli("member", "suspend", "follower") == 0
    t.join(timeout=10)
    assert not t.is_alive() and error and error[0].code == "PERMISSION_DENIED"
    follower.close()
