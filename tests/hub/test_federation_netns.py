"""Federation across network namespaces: each hub of a line in its own namespace (a test
host this test creates and deletes), listening on its own address there with a server
certificate for that address, joined by veth pairs on a bridge; then a real partition (the
middle hub's link down, the process alive) and its healing; and the push direction across
a real one-way reachability (hotline's routing refuses every connection it would open to
regional).  Needs root and iproute2."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sighub.client._errors import SighubError
from sighub.hub._cli import main as sighub
from tests.hub.conftest import ROOT, HubProcess
from tests.hub.test_federation import (
    COLLAB,
    Net,
    check_arrived,
    envelopes,
    member_sync,
    origin,
    published,
    wait_for,
)
from tests.hub.test_federation_push import push

PORT = 7443
NAMES = ("industry", "regional", "hotline")
TAG = f"sht{os.getpid() % 10000}"  # this run's links and namespaces: no other run's
SUBNET = f"10.77.{os.getpid() % 250}"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None,
    reason="network namespaces need root and iproute2 (`ip netns`)",
)


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


class NsHub(HubProcess):
    """A hub serving on ``host`` inside namespace ``ns``, its certificate for that host."""

    def __init__(self, data: Path, name: str, ns: str, host: str) -> None:
        super().__init__(data, name=name, publishes_per_minute=6000, burst=1000)
        self.ns, self.host = ns, host
        config = data / "hub.toml"
        text = config.read_text().replace('tls_names = ["localhost", "127.0.0.1"]',
                                          f'tls_names = ["{host}"]')  # fmt: skip
        assert host in text
        config.write_text(text)
        assert sighub(["hub", "renew-cert", "--data", str(data)]) == 0

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, insecure: bool = False, port: int = PORT, stderr: object = None) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"),
                                                          env.get("PYTHONPATH")]))  # fmt: skip
        args = ["ip", "netns", "exec", self.ns, sys.executable, "-m", "sighub.hub._cli", "hub",
                "serve", "--data", str(self.data), "--listen", f"{self.host}:{port}"]  # fmt: skip
        log = (self.data.parent / f"{self.data.name}.log").open("a")
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "listening on " not in line:
            proc.kill()
            proc.wait()
            raise SighubError(f"hub {self.data.name} in {self.ns} did not start: {line!r}")
        self.proc, self.port = proc, port


def connect_error(ns: str, address: str) -> str:
    """A TCP connect from inside namespace ``ns`` to ``address``: "" if it connects, else
    the error's name."""
    host, _, port = address.rpartition(":")
    probe = (
        "import socket\n"
        "try:\n"
        f"    socket.create_connection(({host!r}, {port}), timeout=3).close()\n"
        "    print('')\n"
        "except OSError as exc:\n"
        "    print(type(exc).__name__)\n"
    )
    out = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", probe],
                         check=True, capture_output=True, text=True, timeout=15)  # fmt: skip
    return out.stdout.strip()


def ip_quietly(*args: str) -> None:
    """For cleaning up: what is already gone is fine."""
    subprocess.run(["ip", *args], check=False, capture_output=True, timeout=10)


def make_hosts(bridge: str, made: list[str]) -> dict[str, tuple[str, str]]:
    ip("link", "add", bridge, "type", "bridge")
    ip("addr", "add", f"{SUBNET}.254/24", "dev", bridge)
    ip("link", "set", bridge, "up")
    out = {}
    for i, name in enumerate(NAMES, 1):
        ns, outer, inner = f"{TAG}-{name}", f"{TAG}{i}a", f"{TAG}{i}b"
        ip("netns", "add", ns)
        made.append(ns)
        ip("link", "add", outer, "type", "veth", "peer", "name", inner)
        ip("link", "set", inner, "netns", ns)
        ip("link", "set", outer, "master", bridge, "up")
        ip("-n", ns, "addr", "add", f"{SUBNET}.{i}/24", "dev", inner)
        ip("-n", ns, "link", "set", inner, "up")
        ip("-n", ns, "link", "set", "lo", "up")
        out[name] = (ns, f"{SUBNET}.{i}")
    return out


@pytest.fixture
def hosts() -> Iterator[dict[str, tuple[str, str]]]:
    """name -> (namespace, address): a namespace per hub on a bridge of this host."""
    bridge = f"{TAG}br"
    made: list[str] = []
    try:
        try:
            out = make_hosts(bridge, made)
        except subprocess.CalledProcessError as exc:  # root, but no CAP_NET_ADMIN (a container)
            pytest.skip(f"cannot make test hosts: {' '.join(exc.cmd)}: {exc.stderr!r}")
        yield out
    finally:
        for ns in made:  # deleting a namespace deletes its veth end, and so the pair
            ip_quietly("netns", "del", ns)
        ip_quietly("link", "del", bridge)


def test_a_line_across_namespaces_heals_after_a_partition(
    tmp_path: Path, hosts: dict[str, tuple[str, str]]
) -> None:
    net = Net(tmp_path)
    try:
        for name in NAMES:
            ns, host = hosts[name]
            hub = NsHub(tmp_path / name, name, ns, host)
            hub.start()
            assert hub.admin_cli("collab", "add", "sg-csam") == 0
            net.hubs[name] = hub
        net.follow("regional", "industry")
        net.follow("hotline", "regional")
        pub = net.member("industry", "pub-a")
        sent = published(pub, 2)
        hotline = net.hubs["hotline"]
        wait_for("hotline holds 2", lambda: len(envelopes(hotline)) == 2)
        # The partition: regional's link goes down, its process lives on.
        ns, _ = hosts["regional"]
        link = f"{TAG}2b"
        ip("-n", ns, "link", "set", link, "down")
        sent += published(pub, 3)
        regional = net.hubs["regional"]
        time.sleep(3)  # what crossed during the partition: nothing
        assert len(envelopes(regional)) == 2 and len(envelopes(hotline)) == 2
        ip("-n", ns, "link", "set", link, "up")
        ip("-n", ns, "addr", "replace", f"{SUBNET}.2/24", "dev", link)
        wait_for("hotline holds 5", lambda: len(envelopes(hotline)) == 5, 90)
        paths = {origin("industry"): ["regional", "hotline"]}
        check_arrived(net, "hotline", sent, paths)
        assert len(envelopes(hotline)) == 5
        report = member_sync(net.member("hotline", "sub-c"))
        assert report.refused == [] and report.applied == 5
    finally:
        net.close()


# Policy routing, since this machine has no iptables or nft: what hotline sends to regional
# from its hub's port (the replies of the connections regional opens) is routed, anything
# else (every connection hotline would open, any port) is refused: stateless, one way.
REPLIES, REFUSED = "1000", "1001"  # the rules' priorities: their names, for deleting them


def test_push_crosses_a_one_way_reachability_across_namespaces(
    tmp_path: Path, hosts: dict[str, tuple[str, str]]
) -> None:
    """Regional can reach hotline; hotline cannot reach regional.  Regional pushes, and
    hotline's relay pulls every envelope through the tunnel regional opened, verified."""
    net = Net(tmp_path)
    hotline_ns, _ = hosts["hotline"]
    regional_ns, regional_host = hosts["regional"]
    try:
        for name in ("regional", "hotline"):
            ns, host = hosts[name]
            hub = NsHub(tmp_path / name, name, ns, host)
            hub.start()
            assert hub.admin_cli("collab", "add", COLLAB) == 0
            net.hubs[name] = hub
        regional, hotline = net.hubs["regional"], net.hubs["hotline"]
        assert connect_error(hotline_ns, regional.address) == ""  # before the cut: it can
        ip("-n", hotline_ns, "rule", "add", "priority", REPLIES, "to", f"{regional_host}/32",
           "ipproto", "tcp", "sport", str(PORT), "lookup", "main")  # fmt: skip
        ip("-n", hotline_ns, "rule", "add", "priority", REFUSED, "to", f"{regional_host}/32",
           "prohibit")  # fmt: skip
        assert connect_error(hotline_ns, regional.address) == "PermissionError"
        assert connect_error(regional_ns, hotline.address) == ""
        # hotline's record names regional's real address: its certificate's name, and a
        # place hotline's relay could not dial
        push(net, "regional", "hotline", address=regional.address)
        pub = net.member("regional", "pub-b")
        sent = published(pub, 3)
        wait_for("hotline holds 3", lambda: len(envelopes(hotline)) == 3)
        sent += published(pub, 2)  # live, on the open tunnel
        wait_for("hotline holds 5", lambda: len(envelopes(hotline)) == 5)
        check_arrived(net, "hotline", sent, {origin("regional"): ["hotline"]})
        assert len(envelopes(hotline)) == 5
        report = member_sync(net.member("hotline", "sub-c"))
        assert report.refused == [] and report.applied == 5
        # the cut held all along: no envelope came by any other way
        assert connect_error(hotline_ns, regional.address) == "PermissionError"
    finally:
        net.close()
        for priority in (REFUSED, REPLIES):
            ip_quietly("-n", hotline_ns, "rule", "del", "priority", priority)
