"""Closing a hub client from another thread while it is used (``Following.stop``, a relay
stopped for a suspension): calls in flight end, later ones are refused, and the process
never crashes (gRPC's C core did when a channel closed while a call was being created)."""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest

from sighub.client._rpc import Credential, HubClient, HubRejected


def _client(world: dict[str, Any]) -> HubClient:
    m = world["pub"]
    cred = Credential.load(m.data)
    return HubClient.connect(
        Credential(cred.folder, m.hub.address, cred.member, cred.bearer_token, cred.hub_public_key)
    )


def test_a_closed_client_refuses_calls_with_cancelled(world: dict[str, Any]) -> None:
    hub = _client(world)
    assert hub.collab_keys()  # open: answered
    hub.close()
    hub.close()  # twice is fine
    with pytest.raises(HubRejected) as caught:
        hub.collab_keys()
    assert caught.value.code == "CANCELLED"
    with pytest.raises(HubRejected):
        next(iter(hub.sync(0)))


def test_closing_while_another_thread_calls_never_crashes(world: dict[str, Any]) -> None:
    """Unary calls and streams started in a loop on one thread, the client closed at a
    random moment from another, many times: every call answers or ends CANCELLED."""
    rng = random.Random(12)
    for _ in range(40):
        hub = _client(world)
        outcomes: list[str] = []

        def use(h: HubClient = hub, out: list[str] = outcomes) -> None:
            try:
                while True:
                    h.collab_keys()
                    for _batch in h.sync(0):
                        break
            except HubRejected as exc:
                out.append(exc.code)

        worker = threading.Thread(target=use)
        worker.start()
        threading.Event().wait(rng.uniform(0, 0.02))
        hub.close()
        worker.join(30)
        assert not worker.is_alive()
        assert outcomes and outcomes[0] in ("CANCELLED", "UNAVAILABLE"), outcomes
