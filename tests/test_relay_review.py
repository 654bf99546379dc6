"""Review of the relay's copies (issue 12): a relay copies into its hub's log only the copies
of hubs behind its peer that its own verified view of the peer's log took.  A copy it could
not check (an origin whose log key it does not know) would reach members who may know that
key (their hub peers with the origin directly) and who then alarm on their own hub's log;
its dedup key would also keep the genuine copy out."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sighub.client._envelope import key_id, public_key_bytes
from sighub.client._farlog import FarLog
from sighub.client._keys import identity_for
from sighub.client._leaves import member_enroll, parse_leaf
from sighub.client._logcheck import LogAlarm
from sighub.client._merkle import inclusion_proof, leaf_hash, root
from sighub.client._rpc import LogLeaf, SyncBatch
from sighub.hub import _relay
from sighub.hub._peering import Direction
from sighub.hub._relay import RelayDaemon, RelayManager
from tests.test_farlog import OriginLog, Pins

HERE, PEER, QUARRY, REMOTE = "sighub/here", "sighub/peer", "sighub/quarry", "sighub/remote"


def _relay_over(peer: OriginLog, far: FarLog) -> RelayDaemon:
    """A relay whose guard verified ``peer``'s log up to its last leaf (``far`` its view of
    the copies there); only what ``_copies`` reads is set."""
    hashes = [leaf_hash(x) for x in peer.leaves]
    checkpoint = SimpleNamespace(size=len(hashes), root=root(hashes), note=peer.note())
    daemon = RelayDaemon.__new__(RelayDaemon)
    daemon._guard = SimpleNamespace(state=SimpleNamespace(checkpoint=checkpoint), far=far)  # type: ignore[assignment]
    daemon.context = SimpleNamespace(  # type: ignore[assignment]
        peering=SimpleNamespace(origin=peer.origin, local_collab=lambda remote: None), here=HERE
    )
    daemon._peer = SimpleNamespace(  # type: ignore[attr-defined]
        inclusion_proof=lambda index, size: inclusion_proof(index, size, hashes[:size])
    )
    meta: dict[str, str] = {}  # the relay's own store: only its meta is read
    daemon.store = SimpleNamespace(  # type: ignore[assignment]
        meta=lambda key, default="": meta.get(key, default), set_meta=meta.__setitem__
    )
    return daemon


def _origins(leaves: list[Any]) -> list[tuple[str, str]]:
    return [(c.kind, str(parse_leaf(c.leaf)["origin"])) for c in leaves]


def test_a_copy_the_relay_could_not_verify_is_not_copied() -> None:
    peer, remote, impostor = OriginLog(PEER), OriginLog(REMOTE), OriginLog(QUARRY)
    pub = Ed25519PrivateKey.generate().public_key()
    peer.add(member_enroll("pub-a", identity_for("pub-a"), ["publisher"], key_id(pub),
                           public_key_bytes(pub)))  # fmt: skip
    remote.add(member_enroll("pub-r", identity_for("pub-r"), ["publisher"], key_id(pub),
                             public_key_bytes(pub)))  # fmt: skip
    forged = impostor.copies()[0]  # "quarry's" checkpoint, signed by a key the peer made up
    genuine = remote.copies(1)  # remote's checkpoint and leaf, which the peer may copy
    for leaf in (forged, *genuine):
        peer.add(leaf)
    # The relay's view of the peer's log: the peer pins remote's key, not quarry's.
    far = FarLog(PEER, peer.public, Pins({REMOTE: remote.public}))
    for seq, leaf in enumerate(peer.leaves[1:], 2):
        far.apply(seq, parse_leaf(leaf), leaf)
    batch = SyncBatch(
        (), len(peer.leaves), True, len(peer.leaves),
        leaves=tuple(LogLeaf(i, x, None) for i, x in enumerate(peer.leaves, 1)),
    )  # fmt: skip
    copies = _relay_over(peer, far)._copies(batch)
    assert _origins(copies) == [
        ("peer.checkpoint", PEER),
        ("peer.leaf", PEER),
        ("peer.checkpoint", REMOTE),
        ("peer.leaf", REMOTE),
    ]
    # What the unverified copy would have done on this hub: a member whose hub peers with
    # the real quarry (its admin pinned quarry's key) alarms on its own hub's log.
    real_quarry = Ed25519PrivateKey.generate().public_key()
    member = FarLog(HERE, b"\x00" * 32, Pins({QUARRY: public_key_bytes(real_quarry)}))
    with pytest.raises(LogAlarm):
        member.apply(7, parse_leaf(forged), forged)


class _FakeRelay:
    """A relay thread that runs nothing: ``RelayManager`` only starts, halts and joins it."""

    def __init__(
        self,
        services: Any,
        peering: Any,
        loop: Any,
        state: Any,
        after: Any = None,
        end: Any = None,
        acknowledge: bool = False,
    ) -> None:
        self.peering, self.after = peering, after
        self.thread = threading.Thread(target=lambda: None)

    def halt(self) -> None:
        pass


def test_a_relay_being_stopped_for_a_status_change_is_not_restarted_meanwhile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_relay, "_Relay", _FakeRelay)
    peering = SimpleNamespace(
        name="industry", status="active", direction=Direction.PULL, dial_in=False
    )

    async def run(fn: Any) -> Any:
        return fn()

    store = SimpleNamespace(peerings=lambda: [peering], relay_counts=lambda name: {})
    services = SimpleNamespace(run=run, hub=SimpleNamespace(store=store))

    async def scenario() -> list[bool]:
        manager = RelayManager(services, asyncio.get_running_loop())  # type: ignore[arg-type]
        await manager.refresh()
        running = ["industry" in manager._relays]
        # An admin suspends the peering: the relay is held and stopped before the change
        # commits; another admin call's refresh (the status still reads active) comes in
        # between, and must not start it again.
        manager.hold("industry")
        first = manager._relays["industry"]
        await manager.stop("industry")
        await manager.refresh()
        running.append("industry" in manager._relays)
        await manager.refresh(release="industry")  # the change was refused: it runs again
        running.append("industry" in manager._relays)
        # the new relay waits for the stopped one's thread: never two on one directory
        running.append(manager._relays["industry"].after is first)
        await manager.close()
        # An admin call served while the hub shuts down: nothing would stop what it started.
        await manager.refresh()
        running.append("industry" in manager._relays)
        return running

    assert asyncio.run(scenario()) == [True, False, True, True, False]
