"""The push direction on real hub processes (``docs/federation.md``, "Push"; ``hub._tunnel``).

``regional`` pushes to ``hotline``, which cannot reach it: regional dials hotline with its
credential there and keeps a tunnel open; hotline's relay pulls regional's log through it,
verified as when it dials out.  Hotline's record of the peering names an address where
nothing listens (127.0.0.1:1), so every envelope that arrives came through the tunnel."""

from __future__ import annotations

import hashlib
import json
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from sighub.client._proto import peer_pb2, peer_pb2_grpc
from sighub.client._rpc import Credential, open_channel
from sighub.hub._tunnel import CHUNK, MAX_STREAMS
from tests.hub.conftest import HubProcess
from tests.hub.test_federation import (
    COLLAB,
    Net,
    check_arrived,
    counts,
    envelopes,
    member_sync,
    origin,
    published,
    stored,
    wait_for,
)

NOWHERE = "127.0.0.1:1"  # hotline's record of regional's address: nothing listens there


def push(
    net: Net,
    pusher: str,
    receiver: str,
    maps: tuple[str, ...] = (COLLAB,),
    address: str = NOWHERE,
) -> None:
    """``pusher`` pushes to ``receiver`` as two operators set it up: the receiver's admin
    enrolls the pusher as member ``pusher`` (role peer, the tunnel's credential); the
    pusher's admin enrolls the receiver's relay (role peer, in the collaborations) and adds
    a push peering; the receiver's admin adds a dial-in peering named ``pusher``, recording
    ``address`` as the pusher's (the name the pusher's certificate is checked for)."""
    a, b = net.hubs[receiver], net.hubs[pusher]
    dialer = net.tmp / f"{receiver}-{pusher}.enroll.json"
    assert a.admin_cli("member", "add", pusher, "--roles", "peer", "--out", str(dialer)) == 0
    relay = net.tmp / f"{pusher}-hub-{receiver}.enroll.json"
    member = f"hub-{receiver}"
    assert b.admin_cli("member", "add", member, "--roles", "peer", "--out", str(relay)) == 0
    mapped = [arg for c in maps for arg in ("--map", f"{c}={c}")]
    for c in maps:
        assert b.admin_cli("collab", "join", c, member) == 0
    pushing = ("peer", "add", receiver, "--enrollment", str(dialer), *mapped)
    assert b.admin_cli(*pushing, "--direction", "push") == 0
    dial_in = ("peer", "add", pusher, "--enrollment", str(relay), *mapped, "--dial-in")
    assert a.admin_cli(*dial_in, "--address", address, "--tlp-ceiling", "amber") == 0


def status(hub: HubProcess, name: str, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    assert hub.admin_cli("peer", "status", name) == 0
    doc: dict[str, Any] = json.loads(capsys.readouterr().out)
    return doc


@pytest.fixture
def pair(net: Net) -> Net:
    net.hub("regional")
    net.hub("hotline")
    push(net, "regional", "hotline")
    return net


def test_a_hub_that_cannot_be_dialed_is_pulled_through_its_tunnel(
    pair: Net, capsys: pytest.CaptureFixture[str]
) -> None:
    net = pair
    pub = net.member("regional", "pub-b")
    sent = published(pub, 3)
    wait_for("hotline holds 3", lambda: len(envelopes(net.hubs["hotline"])) >= 3)
    check_arrived(net, "hotline", sent, {origin("regional"): ["hotline"]})
    assert counts(net.hubs["hotline"], "regional")["relayed"] == 3
    # live: a later publish crosses on the open stream
    sent += published(pub, 2)
    wait_for("hotline holds 5", lambda: len(envelopes(net.hubs["hotline"])) >= 5)
    check_arrived(net, "hotline", sent, {origin("regional"): ["hotline"]})
    # a member of hotline verifies each itself, against regional's copied directory
    sub = net.member("hotline", "sub-c")
    report = member_sync(sub)
    assert report.refused == [] and report.applied == 5
    assert {p for _, _, p in stored(sub)} == {pub.files.identity().publisher.id}
    # the operators see both ends; the enrollment file hotline kept is spent and gone
    pushing = status(net.hubs["regional"], "hotline", capsys)["relay"]
    assert pushing["push"] == "connected" and pushing["state"] == "pushing"
    following = status(net.hubs["hotline"], "regional", capsys)["relay"]
    assert following["state"] == "following" and following["lag"] == 0
    assert not (net.hubs["hotline"].data / "peers" / "regional" / "enrollment.json").exists()
    assert len(envelopes(net.hubs["regional"])) == 3 + 2  # nothing flows back


def test_suspending_the_peering_cuts_the_tunnel_and_resuming_heals_it(
    pair: Net, capsys: pytest.CaptureFixture[str]
) -> None:
    net = pair
    hotline, regional = net.hubs["hotline"], net.hubs["regional"]
    pub = net.member("regional", "pub-b")
    sent = published(pub, 1)
    wait_for("hotline holds 1", lambda: len(envelopes(hotline)) >= 1)
    assert hotline.admin_cli("peer", "suspend", "regional") == 0
    wait_for(
        "regional's dialer refused",
        lambda: status(regional, "hotline", capsys)["relay"]["push"] == "retrying",
    )
    assert "suspended" in status(regional, "hotline", capsys)["relay"]["error"]
    sent += published(pub, 2)
    assert len(envelopes(hotline)) == 1  # cut off: nothing crosses while suspended
    assert hotline.admin_cli("peer", "resume", "regional") == 0
    wait_for("hotline holds 3", lambda: len(envelopes(hotline)) >= 3, timeout=90)
    check_arrived(net, "hotline", sent, {origin("regional"): ["hotline"]})
    assert counts(hotline, "regional").get("duplicate", 0) == 0


def test_the_pusher_killed_mid_stream_comes_back_with_nothing_lost_or_doubled(
    pair: Net,
) -> None:
    net = pair
    hotline, regional = net.hubs["hotline"], net.hubs["regional"]
    pub = net.member("regional", "pub-b")
    sent = published(pub, 4)
    wait_for("hotline holds 4", lambda: len(envelopes(hotline)) >= 4)
    port = regional.port
    regional.stop(signal.SIGKILL)
    regional.start(port=port, stderr=(net.tmp / "regional.log").open("a"))
    sent += published(pub, 3)
    wait_for("hotline holds 7", lambda: len(envelopes(hotline)) >= 7, timeout=90)
    check_arrived(net, "hotline", sent, {origin("regional"): ["hotline"]})
    assert len(envelopes(hotline)) == 7


def _tunnel(cred: Credential, address: str, *requests: peer_pb2.TunnelRequest) -> grpc.RpcError:
    with open_channel(cred, address=address) as channel:
        stub = peer_pb2_grpc.PeerServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            list(stub.Tunnel(iter(requests), timeout=20))
    return caught.value


def test_a_tunnel_is_refused_to_anyone_but_the_dial_in_peer(pair: Net) -> None:
    net = pair
    hotline = net.hubs["hotline"]
    before = hotline.state()
    stranger = net.member("hotline", "sub-x")
    cred = Credential.load(stranger.data)
    err = _tunnel(cred, hotline.address, peer_pb2.TunnelRequest(control=True))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "role peer" in (err.details() or "")
    # the dialer's own credential, with a first message naming no stream, or a connection
    # hotline never asked for
    dialer = Credential.load(net.hubs["regional"].data / "peers" / "hotline")
    for bad in (
        peer_pb2.TunnelRequest(),
        peer_pb2.TunnelRequest(control=True, connection=3),
        peer_pb2.TunnelRequest(control=True, data=b"x"),
        peer_pb2.TunnelRequest(connection=999),
    ):
        err = _tunnel(dialer, hotline.address, bad)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, bad
    assert hotline.state()[:2] == before[:2]  # nothing stored
    # the refusals cost the real tunnel nothing: a publish still crosses
    pub = net.member("regional", "pub-b")
    sent = published(pub, 1)
    wait_for("hotline holds 1", lambda: len(envelopes(hotline)) >= 1)
    assert envelopes(hotline)[-1][1] == hashlib.sha256(sent[0]).hexdigest()


def test_a_dial_in_peering_needs_its_member_and_direction_pull(net: Net) -> None:
    hotline = net.hub("hotline")
    regional = net.hub("regional")
    relay = net.tmp / "relay.enroll.json"
    assert regional.admin_cli("member", "add", "hub-hotline", "--roles", "peer",
                              "--out", str(relay)) == 0  # fmt: skip
    before = hotline.state()
    # no member "regional" on hotline: the tunnel would have no credential
    args = ("peer", "add", "regional", "--enrollment", str(relay), "--map", f"{COLLAB}={COLLAB}")
    assert hotline.admin_cli(*args, "--dial-in") != 0
    assert hotline.admin_cli("member", "add", "regional", "--roles", "peer",
                             "--out", str(net.tmp / "d.json")) == 0  # fmt: skip
    after_member = hotline.state()
    assert hotline.admin_cli(*args, "--dial-in", "--direction", "push") != 0
    assert hotline.admin_cli(*args, "--dial-in", "--direction", "both") != 0
    assert hotline.state() == after_member and after_member[:2] == before[:2]
    with hotline.db() as c:
        assert c.execute("SELECT COUNT(*) FROM peerings").fetchone()[0] == 0
    assert not (hotline.data / "peers" / "regional").exists()
    # with both, it is stored, and waits for the peer to dial in
    assert hotline.admin_cli(*args, "--dial-in") == 0
    with hotline.db() as c:
        assert c.execute("SELECT dial_in FROM peerings").fetchall() == [(1,)]
    kept = hotline.data / "peers" / "regional" / "enrollment.json"
    assert kept.exists() and kept.stat().st_mode & 0o777 == 0o600


def test_a_push_peering_to_a_hub_without_a_dial_in_record_keeps_retrying(
    net: Net, capsys: pytest.CaptureFixture[str]
) -> None:
    """The pusher's side alone: hotline has no dial-in peering yet, so regional's dialer is
    refused and says why; adding hotline's record later connects it."""
    hotline, regional = net.hub("hotline"), net.hub("regional")
    dialer = net.tmp / "dialer.json"
    assert hotline.admin_cli("member", "add", "regional", "--roles", "peer",
                             "--out", str(dialer)) == 0  # fmt: skip
    assert regional.admin_cli("peer", "add", "hotline", "--enrollment", str(dialer), "--map",
                              f"{COLLAB}={COLLAB}", "--direction", "push") == 0  # fmt: skip
    wait_for(
        "the dialer refused",
        lambda: status(regional, "hotline", capsys)["relay"]["push"] == "retrying",
    )
    assert "dial_in" in status(regional, "hotline", capsys)["relay"]["error"]
    relay = net.tmp / "relay.json"
    assert regional.admin_cli("member", "add", "hub-hotline", "--roles", "peer",
                              "--out", str(relay)) == 0  # fmt: skip
    assert regional.admin_cli("collab", "join", COLLAB, "hub-hotline") == 0
    dial_in = ("peer", "add", "regional", "--enrollment", str(relay), "--dial-in")
    assert hotline.admin_cli(*dial_in, "--map", f"{COLLAB}={COLLAB}", "--address", NOWHERE) == 0
    pub = net.member("regional", "pub-b")
    sent = published(pub, 2)
    wait_for("hotline holds 2", lambda: len(envelopes(hotline)) >= 2, timeout=90)
    check_arrived(net, "hotline", sent, {origin("regional"): ["hotline"]})


# -- hostile or unlucky dialers ------------------------------------------------------------
def held(
    first: peer_pb2.TunnelRequest, go: threading.Event, done: threading.Event
) -> Iterator[peer_pb2.TunnelRequest]:
    """A stream's requests: ``first`` once ``go`` is set, then nothing until ``done``."""
    go.wait(30)
    yield first
    done.wait(60)


def dialing_as_regional(net: Net) -> Credential:
    """Regional's own dialer stopped (its push peering suspended) and hotline's relay
    restarted, waiting for a dial-in: the test dials with regional's credential at hotline."""
    regional, hotline = net.hubs["regional"], net.hubs["hotline"]
    assert regional.admin_cli("peer", "suspend", "hotline") == 0
    assert hotline.admin_cli("peer", "suspend", "regional") == 0
    assert hotline.admin_cli("peer", "resume", "regional") == 0
    return Credential.load(regional.data / "peers" / "hotline")


def test_a_dialer_holds_a_bounded_number_of_streams(pair: Net) -> None:
    """Streams that never send their first message each cost the hub a task until
    FIRST_MESSAGE_SECONDS: past MAX_STREAMS of one peering, the next is refused at once."""
    net = pair
    hotline = net.hubs["hotline"]
    dialer = Credential.load(net.hubs["regional"].data / "peers" / "hotline")
    done = threading.Event()
    with open_channel(dialer, address=hotline.address) as channel:
        stub = peer_pb2_grpc.PeerServiceStub(channel)
        control = peer_pb2.TunnelRequest(control=True)
        calls = [stub.Tunnel(held(control, done, done), timeout=30) for _ in range(MAX_STREAMS)]
        refused: list[grpc.RpcError] = []

        def full() -> bool:  # a probe with a bad first message: refused at once either way
            err = _tunnel(dialer, hotline.address, peer_pb2.TunnelRequest())
            assert err.code() in (
                grpc.StatusCode.INVALID_ARGUMENT,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
            ), err
            refused.append(err)
            return err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

        try:
            wait_for("a stream past the bound refused", full, timeout=8)  # < 10 s: all held
            assert f"at most {MAX_STREAMS}" in (refused[-1].details() or "")
        finally:
            for call in calls:
                call.cancel()
            done.set()
    # cancelled, the held streams leave the count at once (not when their 10 s are up)
    wait_for("the count released", lambda: not full(), timeout=5)
    # and the real tunnel, whose streams were open all along, still carries a publish
    sent = published(net.member("regional", "pub-b"), 1)
    wait_for("hotline holds 1", lambda: len(envelopes(hotline)) >= 1, timeout=90)
    check_arrived(net, "hotline", sent, {origin("regional"): ["hotline"]})


def test_a_slow_first_message_meets_the_peering_as_it_is_when_it_comes(pair: Net) -> None:
    """A control stream authorized, then slow to say so: what the admin changed meanwhile
    holds.  The member suspended: refused.  The peering suspended and resumed: attached
    to the new tunnel end, whose relay asks it for a connection (not to the closed one)."""
    net = pair
    hotline = net.hubs["hotline"]
    dialer = dialing_as_regional(net)
    control = peer_pb2.TunnelRequest(control=True)
    with open_channel(dialer, address=hotline.address) as channel:
        stub = peer_pb2_grpc.PeerServiceStub(channel)
        for change, resume in (("member", "member"), ("peer", "peer")):
            go, done = threading.Event(), threading.Event()
            call = stub.Tunnel(held(control, go, done), timeout=25)
            try:
                time.sleep(2)  # authorized by now: the stream waits for its first message
                assert hotline.admin_cli(change, "suspend", "regional") == 0
                if change == "peer":
                    assert hotline.admin_cli(resume, "resume", "regional") == 0
                go.set()
                if change == "member":
                    with pytest.raises(grpc.RpcError) as caught:
                        next(call)
                    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
                    assert "suspended" in (caught.value.details() or "")
                    assert hotline.admin_cli(resume, "resume", "regional") == 0
                else:
                    assert next(call).open > 0
            finally:
                call.cancel()
                go.set()
                done.set()


def test_a_data_stream_chunk_over_64_kib_is_refused(pair: Net) -> None:
    net = pair
    hotline = net.hubs["hotline"]
    dialer = dialing_as_regional(net)
    done = threading.Event()
    with open_channel(dialer, address=hotline.address) as channel:
        stub = peer_pb2_grpc.PeerServiceStub(channel)
        go = threading.Event()
        go.set()
        control = stub.Tunnel(held(peer_pb2.TunnelRequest(control=True), go, done), timeout=30)
        try:
            number = next(control).open  # hotline's relay dialed its end
            assert number > 0
            big = (
                peer_pb2.TunnelRequest(connection=number),
                peer_pb2.TunnelRequest(data=b"x" * (CHUNK + 1)),
            )
            with pytest.raises(grpc.RpcError) as caught:
                list(stub.Tunnel(iter(big), timeout=20))
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert f"{CHUNK + 1} bytes" in (caught.value.details() or "")
        finally:
            control.cancel()
            done.set()


def test_a_dialer_without_its_credential_says_so_and_retries(
    pair: Net, capsys: pytest.CaptureFixture[str]
) -> None:
    """Regional restarted without its credential at hotline (an operator's mistake): its
    dialer shows why in peer status and keeps retrying; the file back, the tunnel heals."""
    net = pair
    hotline, regional = net.hubs["hotline"], net.hubs["regional"]
    cred = regional.data / "peers" / "hotline" / "hub.json"
    aside = cred.with_name("hub.json.aside")
    port = regional.port
    regional.stop()
    cred.rename(aside)
    regional.start(port=port, stderr=(net.tmp / "regional.log").open("a"))
    wait_for(
        "regional's dialer retrying",
        lambda: status(regional, "hotline", capsys)["relay"]["push"] == "retrying",
    )
    assert "hub.json" in status(regional, "hotline", capsys)["relay"]["error"]
    aside.rename(cred)
    sent = published(net.member("regional", "pub-b"), 2)
    wait_for("hotline holds 2", lambda: len(envelopes(hotline)) >= 2, timeout=90)
    check_arrived(net, "hotline", sent, {origin("regional"): ["hotline"]})
