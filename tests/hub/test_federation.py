"""Federation on real hub processes (``docs/federation.md``): relays inside ``sighub hub
serve`` follow their peers and append what they may take verbatim, with hop records.

Each topology is checked the same way: every envelope arrives at every hub it may reach
exactly once, in its publisher's order, byte for byte, with a hop chain that verifies under
the hubs' log keys; and what may not cross (a ``red`` indicator, an unmapped collaboration,
one hop too many, a cycle) stops where it must, counted."""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sighub.client._daemon import SyncDaemon, SyncReport
from sighub.client._hops import decode_hops, verify_hops
from sighub.client._model import Tlp
from sighub.hub._cli import main as sighub
from tests.hub.conftest import HubProcess, Member

ROOT = Path(__file__).resolve().parents[2]
COLLAB = "sg-csam"
WAIT = 60.0  # seconds a change may take to cross (relays retry with backoff)


class Net:
    """Hubs by name, their members, and peerings made the way an operator makes them."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.hubs: dict[str, HubProcess] = {}
        self.members: list[Member] = []

    def hub(self, name: str, *collabs: str) -> HubProcess:
        hub = HubProcess(self.tmp / name, name=name, publishes_per_minute=6000, burst=1000)
        # the hub's log to a file: a relay logs every batch, a pipe nobody reads would fill
        hub.start(stderr=(self.tmp / f"{name}.log").open("a"))
        for collab in collabs or (COLLAB,):
            assert hub.admin_cli("collab", "add", collab) == 0
        self.hubs[name] = hub
        return hub

    def member(self, hub: str, name: str, collabs: tuple[str, ...] = (COLLAB,)) -> Member:
        m = self.hubs[hub].member(name, self.tmp / hub, collabs=collabs)
        self.members.append(m)
        return m

    def follow(
        self,
        follower: str,
        followed: str,
        collabs: tuple[tuple[str, str], ...] = ((COLLAB, COLLAB),),
        max_hops: int = 4,
        tlp_ceiling: str = "amber",
        unmapped: tuple[str, ...] = (),
    ) -> str:
        """``follower`` peers with ``followed`` (direction pull): ``followed``'s admin issues
        an enrollment for role peer and joins it to the remote collaborations."""
        a, b = self.hubs[followed], self.hubs[follower]
        member = f"hub-{follower}"
        path = self.tmp / f"{followed}-{member}.enroll.json"
        assert a.admin_cli("member", "add", member, "--roles", "peer", "--out", str(path)) == 0
        for remote in (*(r for r, _ in collabs), *unmapped):
            assert a.admin_cli("collab", "join", remote, member) == 0
        maps = [arg for remote, local in collabs for arg in ("--map", f"{remote}={local}")]
        policy = ["--max-hops", str(max_hops), "--tlp-ceiling", tlp_ceiling]
        assert b.admin_cli("peer", "add", followed, "--enrollment", str(path), *maps, *policy) == 0
        return followed

    def log_keys(self) -> dict[str, bytes]:
        keys = {}
        for hub in self.hubs.values():
            with hub.db() as c:
                meta = dict(c.execute("SELECT key, value FROM meta").fetchall())
            keys[meta["log_origin"]] = base64.b64decode(meta["hub_public_key"])
        return keys

    def close(self) -> None:
        for m in self.members:
            m.close()
        for hub in self.hubs.values():
            if hub.proc is not None:
                hub.stop()


def origin(name: str) -> str:
    return f"sighub/{name}"


def envelopes(hub: HubProcess, collab: str = COLLAB) -> list[tuple[int, str, str, bytes, str]]:
    """(seq, id, publisher, raw, hops) of ``collab``'s envelopes, in log order."""
    with hub.db() as c:
        rows = c.execute(
            "SELECT seq, id, publisher, raw, hops FROM envelopes WHERE collab=? ORDER BY seq",
            (collab,),
        ).fetchall()
    return [(int(r[0]), str(r[1]), str(r[2]), bytes(r[3]), str(r[4])) for r in rows]


def counts(hub: HubProcess, peer: str) -> dict[str, int]:
    """What ``hub``'s relay of ``peer`` did with the peer's envelopes (its copies of
    directory leaves aside), by outcome."""
    with hub.db() as c:
        rows = c.execute("SELECT outcome, count FROM relay_counts WHERE peer=?", (peer,))
        got = {str(k): int(v) for k, v in rows.fetchall()}
    return {k: v for k, v in got.items() if k not in ("copied", "duplicate-copy")}


def wait_for(what: str, ok: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.1)


def published(member: Member, n: int = 1, **over: Any) -> list[bytes]:
    """``n`` envelopes of one indicator each, published by ``member``, in order."""
    out = []
    for _ in range(n):
        raw = member.envelope(member.indicators(1, **over))
        member.client().publish(COLLAB, raw)
        out.append(raw)
    return out


def member_sync(member: Member) -> SyncReport:
    """A member daemon's sync: it verifies every relayed envelope itself."""
    daemon = SyncDaemon(member.data, address=member.hub.address, workers=0)
    try:
        return daemon.sync_once()
    finally:
        daemon.close()


def stored(member: Member) -> list[tuple[str, str, str]]:
    """(indicator id, collaboration, publisher identity) in the member's local store."""
    with sqlite3.connect(member.data / "local.db") as c:
        return sorted(c.execute("SELECT id, collab, publisher FROM indicators").fetchall())


def check_arrived(net: Net, hub: str, expected: list[bytes], path: dict[str, list[str]]) -> None:
    """Each of ``expected`` is in ``hub``'s log exactly once, in the given order per
    publisher (``expected`` lists each publisher's envelopes in publish order), with hops
    that verify and name, for an envelope of origin O, the hubs ``path[O]``."""
    rows = envelopes(net.hubs[hub])
    ids = [r[1] for r in rows]
    want = [hashlib.sha256(raw).hexdigest() for raw in expected]
    assert sorted(set(ids)) == sorted(ids), f"{hub}: an envelope twice"
    assert set(want) <= set(ids), f"{hub}: missing {sorted(set(want) - set(ids))}"
    keys = net.log_keys()
    by_id = {r[1]: r for r in rows}
    for raw, eid in zip(expected, want, strict=True):
        _, _, publisher, stored, hops_text = by_id[eid]
        assert stored == raw  # verbatim
        hops = decode_hops(hops_text.encode()) if hops_text != "[]" else ()
        verify_hops(raw, hops, keys, origin(hub))
        first = hops[0].source if hops else origin(hub)
        assert [h.relay for h in hops] == [origin(x) for x in path[first]]
        assert publisher.endswith("@" + first) if hops else "@" not in publisher
    # order per publisher: the log order of each publisher's envelopes is publish order
    expected_ids = set(want)
    for pub in {r[2] for r in rows}:
        mine = [r[1] for r in rows if r[2] == pub and r[1] in expected_ids]
        assert mine == [w for w in want if w in set(mine)]


def test_three_hubs_in_a_line(net: Net) -> None:
    """industry -> regional -> hotline: each envelope of industry reaches hotline over two
    hops, regional's own over one, each once and in order."""
    for name in ("industry", "regional", "hotline"):
        net.hub(name)
    net.follow("regional", "industry")
    net.follow("hotline", "regional")
    pub_a = net.member("industry", "pub-a")
    pub_b = net.member("regional", "pub-b")
    sent_a = published(pub_a, 3)
    sent_b = published(pub_b, 2)
    sent_a += published(pub_a, 2)
    wait_for("hotline holds 7", lambda: len(envelopes(net.hubs["hotline"])) >= 7)
    paths = {origin("industry"): ["regional", "hotline"], origin("regional"): ["hotline"]}
    check_arrived(net, "hotline", sent_a + sent_b, paths)
    check_arrived(net, "regional", sent_a, {origin("industry"): ["regional"]})
    assert len(envelopes(net.hubs["hotline"])) == 7
    assert counts(net.hubs["hotline"], "regional")["relayed"] == 7
    assert len(envelopes(net.hubs["industry"])) == 5  # nothing flows back
    # A member of hotline verifies all seven itself, two hops from industry's publisher.
    sub = net.member("hotline", "sub-c")
    report = member_sync(sub)
    assert report.refused == [] and report.applied == 7
    publishers = {p for _, _, p in stored(sub)}
    assert publishers == {pub_a.files.identity().publisher.id, pub_b.files.identity().publisher.id}
    assert {c for _, c, _ in stored(sub)} == {COLLAB}


def test_a_triangle_never_loops(net: Net) -> None:
    """industry -> regional -> hotline -> industry: every envelope reaches the other two
    once; the one coming back to its origin is refused as a cycle."""
    for name in ("industry", "regional", "hotline"):
        net.hub(name)
    net.follow("regional", "industry")
    net.follow("hotline", "regional")
    net.follow("industry", "hotline")
    pubs = {name: net.member(name, f"pub-{name}") for name in ("industry", "regional", "hotline")}
    sent = {name: published(m, 2) for name, m in pubs.items()}
    everything = [raw for raws in sent.values() for raw in raws]
    for hub in net.hubs.values():
        wait_for(f"{hub.data.name} holds 6", lambda h=hub: len(envelopes(h)) >= 6)  # type: ignore[misc]
    # Every envelope went round to the hub before its origin, then stopped: 2 per origin.
    wait_for("the cycles are counted", lambda: sum(
        counts(h, p).get("cycle", 0) for h, p in
        ((net.hubs["regional"], "industry"), (net.hubs["hotline"], "regional"),
         (net.hubs["industry"], "hotline"))) == 6)  # fmt: skip
    ring = ["industry", "regional", "hotline"]
    for i, name in enumerate(ring):
        paths = {origin(o): [ring[(ring.index(o) + k) % 3] for k in range(1, 3)] for o in ring}
        paths = {o: p[: p.index(name) + 1] for o, p in paths.items() if name in p}
        check_arrived(net, name, everything, {**paths, origin(name): []})
        assert len(envelopes(net.hubs[name])) == 6
        del i


def test_a_diamond_delivers_once(net: Net) -> None:
    """industry -> regional -> hotline and industry -> national -> hotline: hotline takes
    each envelope from whichever relay is first and counts the other as a duplicate."""
    for name in ("industry", "regional", "national", "hotline"):
        net.hub(name)
    net.follow("regional", "industry")
    net.follow("national", "industry")
    net.follow("hotline", "regional")
    net.follow("hotline", "national")
    pub = net.member("industry", "pub-a")
    sent = published(pub, 4)
    hotline = net.hubs["hotline"]
    wait_for("hotline holds 4", lambda: len(envelopes(hotline)) >= 4)
    wait_for("both relays saw all", lambda: sum(
        counts(hotline, p).get("relayed", 0) + counts(hotline, p).get("duplicate", 0)
        for p in ("regional", "national")) == 8)  # fmt: skip
    rows = envelopes(hotline)
    assert len(rows) == 4
    assert [r[3] for r in rows] == sent
    keys = net.log_keys()
    for _, _, _, raw, hops_text in rows:
        hops = decode_hops(hops_text.encode())
        verify_hops(raw, hops, keys, origin("hotline"))
        assert hops[0].source == origin("industry") and len(hops) == 2


def test_what_may_not_cross_stops_where_it_must(net: Net) -> None:
    """A red indicator stays home; a collaboration not mapped does not cross; a peering
    with max_hops 1 takes its peer's own envelopes but none the peer relayed."""
    net.hub("industry", COLLAB, "sg-other")
    net.hub("regional")
    net.hub("hotline")
    net.follow("regional", "industry", unmapped=("sg-other",))
    net.follow("hotline", "regional", max_hops=1)
    pub_a = net.member("industry", "pub-a", collabs=(COLLAB, "sg-other"))
    pub_b = net.member("regional", "pub-b")
    red = published(pub_a, 1, tlp=Tlp.RED)
    green = published(pub_a, 1, tlp=Tlp.GREEN)
    other = pub_a.envelope(pub_a.indicators(1, collab="sg-other"))
    pub_a.client().publish("sg-other", other)
    own_b = published(pub_b, 1)
    regional, hotline = net.hubs["regional"], net.hubs["hotline"]
    wait_for("regional counted 3", lambda: sum(counts(regional, "industry").values()) == 3)
    assert counts(regional, "industry") == {"relayed": 1, "tlp-ceiling": 1, "unmapped": 1}
    assert [r[3] for r in envelopes(regional)] == [*green, *own_b] or [
        r[3] for r in envelopes(regional)
    ] == [*own_b, *green]
    wait_for("hotline counted 2", lambda: sum(counts(hotline, "regional").values()) == 2)
    assert counts(hotline, "regional") == {"relayed": 1, "hop-limit": 1}
    assert [r[3] for r in envelopes(hotline)] == own_b
    assert red[0] not in [r[3] for r in envelopes(regional)]


def test_a_stewarded_collaboration_keeps_its_keys_with_a_relay_in_it(net: Net) -> None:
    """A peer hub's relay is a member of the collaborations it relays, with no encryption
    key: the steward wraps each epoch to the platforms, not to it, and what the steward's
    platform publishes under the epoch crosses."""
    industry = net.hub("industry")
    net.hub("regional")
    pub = net.member("industry", "pub-a", collabs=())
    assert industry.admin_cli("collab", "add", "sg-stw", "--steward", "pub-a") == 0
    net.follow("regional", "industry", collabs=(("sg-stw", COLLAB),))
    rekey = ["collab", "rekey", "sg-stw", "--data", str(pub.data), "--hub", industry.address]
    assert sighub(rekey) == 0
    with industry.db() as c:
        holders = [r[0] for r in c.execute("SELECT recipient FROM epoch_wraps")]
    assert holders == ["pub-a"]
    raw = pub.envelope(pub.indicators(1, collab="sg-stw"))
    pub.client().publish("sg-stw", raw)
    regional = net.hubs["regional"]
    wait_for("relayed", lambda: len(envelopes(regional)) == 1)
    assert envelopes(regional)[0][3] == raw


def test_peer_status_shows_the_lag_and_suspend_stops_the_relay(
    net: Net, capsys: pytest.CaptureFixture[str]
) -> None:
    net.hub("industry")
    net.hub("regional")
    net.follow("regional", "industry")
    pub = net.member("industry", "pub-a")
    published(pub, 2)
    regional = net.hubs["regional"]
    wait_for("relayed 2", lambda: len(envelopes(regional)) == 2)

    def status() -> dict[str, Any]:
        capsys.readouterr()
        assert regional.admin_cli("peer", "status", "industry") == 0
        return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]

    wait_for("caught up", lambda: (status()["relay"] or {}).get("state") == "following"
             and status()["relay"]["lag"] == 0 and status()["relay"]["cursor"] > 0)  # fmt: skip
    shown = status()
    assert shown["relay"]["counts"]["relayed"] == 2
    assert regional.admin_cli("peer", "suspend", "industry") == 0
    assert status()["relay"]["state"] == "stopped"
    published(pub, 1)
    time.sleep(2)
    assert len(envelopes(regional)) == 2  # cut off
    assert regional.admin_cli("peer", "resume", "industry") == 0
    wait_for("resumed", lambda: len(envelopes(regional)) == 3)
    # Removed while following: the relay stops before its credential is deleted.
    assert regional.admin_cli("peer", "remove", "industry") == 0
    assert status()["relay"]["state"] == "stopped"
    assert not (regional.data / "peers" / "industry").exists()
    published(pub, 1)
    time.sleep(2)
    assert len(envelopes(regional)) == 3
    assert "relay industry stopped" not in (net.tmp / "regional.log").read_text()


def test_the_federation_demo_runs_end_to_end() -> None:
    """``make demo-federation``: three hubs, a match two hops away with its provenance (a
    blinded keyword too: the steward's key crossed both hops), the red indicator kept home,
    a revocation across both hops, within 30 s."""
    started = time.monotonic()
    res = subprocess.run(
        [sys.executable, "examples/demo_federation.py"],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    assert time.monotonic() - started < 30
    out = res.stdout
    assert "applied 3 indicators from 1 envelopes, refused 0" in out
    via = "origin sighub/industry-hub, via sighub/regional-hub > sighub/hotline-hub"
    assert out.count(via) == 5  # three matches, then the two left after the revocation
    assert "keyword  's3ller'" in out  # blinded: the steward's key reached two hops away
    assert "epoch 0 wrapped to platform-c@sighub/hotline-hub" in out
    assert "counted it as 1 over its TLP ceiling" in out
    assert "p4 no longer fires at the hotline's hub" in out
    assert out.count("exited with 0") == 3
