"""Federation under faults, on real hub processes: a relaying hub killed (``kill -9``) and
brought back on its port again and again while envelopes flow through it, and a peer that
goes away and comes back.  What crossed must cross exactly once, in order, verified by a
member two hops away; the relays resume from their cursors."""

from __future__ import annotations

import json
import os
import random
import threading
import time
from typing import Any

import pytest

from tests.hub.conftest import HubProcess
from tests.hub.test_federation import (
    Net,
    check_arrived,
    counts,
    envelopes,
    member_sync,
    origin,
    published,
    wait_for,
)

KILLS = 10


class Publisher(threading.Thread):
    """Publishes one small envelope after another to its hub until stopped, keeping them
    in publish order (the hub it publishes to stays up: only the relaying hub dies)."""

    def __init__(self, net: Net, hub: str, name: str) -> None:
        super().__init__(name=f"publisher-{name}", daemon=True)
        self.member = net.member(hub, name)
        self.sent: list[bytes] = []
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                self.sent += published(self.member, 1)
                self.stop.wait(0.02)
        except BaseException as exc:  # shown by the test, which joins
            self.error = exc

    def finish(self) -> list[bytes]:
        self.stop.set()
        self.join(30)
        assert not self.is_alive(), "the publisher did not stop"
        if self.error is not None:
            raise AssertionError(f"publishing failed: {self.error!r}") from self.error
        return self.sent


def restart(net: Net, name: str, hub: HubProcess, port: int) -> None:
    """Start ``hub`` again on ``port``: its peers' enrollments hold that address."""
    deadline = time.monotonic() + 20
    while True:
        try:
            hub.start(port=port, stderr=(net.tmp / f"{name}.log").open("a"))
            return
        except Exception:  # the port may linger a moment after the kill
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_a_relaying_hub_killed_ten_times_loses_and_doubles_nothing(net: Net) -> None:
    """industry -> regional -> hotline while a publisher on industry keeps publishing:
    regional is killed with SIGKILL at random points and restarted on the same port.
    After it heals, every envelope is at regional and at hotline exactly once, in publish
    order, byte for byte with verifying hop chains, and a member of hotline verifies all
    of them itself."""
    seed = int(os.environ.get("SIGHUB_FAULT_SEED", random.SystemRandom().randrange(2**32)))
    print(f"partition seed: {seed} (SIGHUB_FAULT_SEED={seed} repeats this run)")
    rng = random.Random(seed)
    for name in ("industry", "regional", "hotline"):
        net.hub(name)
    net.follow("regional", "industry")
    net.follow("hotline", "regional")
    regional, hotline = net.hubs["regional"], net.hubs["hotline"]
    port = regional.port
    publisher = Publisher(net, "industry", "pub-a")
    publisher.start()
    try:
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.1, 1.2))
            assert regional.proc is not None
            regional.proc.kill()  # SIGKILL by PID: no shutdown, a transaction may be cut
            regional.proc.wait(10)
            regional.proc = None
            time.sleep(rng.uniform(0.0, 0.4))
            restart(net, "regional", regional, port)
    finally:
        sent = publisher.finish()
    assert len(sent) > KILLS  # the kills fell among the envelopes, not after them
    wait_for(f"hotline holds {len(sent)}", lambda: len(envelopes(hotline)) >= len(sent), 90)
    check_arrived(net, "regional", sent, {origin("industry"): ["regional"]})
    check_arrived(net, "hotline", sent, {origin("industry"): ["regional", "hotline"]})
    assert len(envelopes(regional)) == len(envelopes(hotline)) == len(sent)
    # Each relay took each envelope once; a re-delivered batch is a counted duplicate.
    wait_for("counted", lambda: counts(hotline, "regional").get("relayed") == len(sent))
    for hub, peer in ((regional, "industry"), (hotline, "regional")):
        got = counts(hub, peer)
        assert got["relayed"] == len(sent), got
        assert set(got) <= {"relayed", "duplicate"}, got
    sub = net.member("hotline", "sub-c")
    report = member_sync(sub)
    assert report.refused == [] and report.applied == len(sent)


def test_a_peer_that_goes_away_is_shown_and_caught_up(
    net: Net, capsys: pytest.CaptureFixture[str]
) -> None:
    """industry stops: regional's relay shows it cannot reach its peer; industry comes back
    on its port and publishes more: regional catches up from its cursor, once each."""
    net.hub("industry")
    net.hub("regional")
    net.follow("regional", "industry")
    industry, regional = net.hubs["industry"], net.hubs["regional"]
    pub = net.member("industry", "pub-a")
    sent = published(pub, 2)
    wait_for("relayed 2", lambda: len(envelopes(regional)) == 2)

    def relay() -> dict[str, Any]:
        capsys.readouterr()
        assert regional.admin_cli("peer", "status", "industry") == 0
        shown: dict[str, Any] = json.loads(capsys.readouterr().out)["relay"]
        return shown

    port = industry.port
    industry.stop()
    wait_for("the relay shows its peer unreachable", lambda: relay()["state"] == "retrying", 30)
    shown = relay()
    assert f"hub {industry.address} unreachable (UNAVAILABLE)" in shown["error"], shown
    assert shown["cursor"] > 0 and shown["counts"]["relayed"] == 2
    restart(net, "industry", industry, port)
    # Back, with nothing new yet: the relay shows it follows again, the error gone.
    wait_for("following again", lambda: relay()["state"] == "following", 45)
    assert relay()["error"] == ""
    sent += published(pub, 3)
    wait_for("caught up", lambda: len(envelopes(regional)) == 5)
    check_arrived(net, "regional", sent, {origin("industry"): ["regional"]})
    wait_for("following again", lambda: relay()["state"] == "following" and relay()["lag"] == 0)
    assert relay()["error"] == ""
    assert counts(regional, "industry") == {"relayed": 5}
