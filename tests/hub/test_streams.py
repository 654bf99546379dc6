"""Sync streams that are opened and never read: bounded hub memory, a per-member limit,
and the other members unaffected."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from sighub.client._daemon import SyncDaemon
from sighub.client._proto import sync_pb2, sync_pb2_grpc
from sighub.hub._process import start_hub
from tests.hub.conftest import HubProcess, Member

UNREAD = 200


def rss_mib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("streams")
    h = HubProcess(tmp / "hub", publishes_per_minute=60000, burst=5000)
    log = (tmp / "hub.log").open("w")  # read by nobody: must never fill and block the hub
    h.proc, address = start_hub(h.data, "127.0.0.1:0", False, log.fileno())
    h.port = int(address.rsplit(":", 1)[1])
    try:
        assert h.admin_cli("collab", "add", "sg-csam") == 0
        pub, sub = h.member("pub", tmp), h.member("sub", tmp, roles="subscriber")
        for _ in range(120):  # a 12 MB log of 100-indicator envelopes
            pub.publish(pub.indicators(100))
        yield {"hub": h, "pub": pub, "sub": sub, "tmp": tmp}
        pub.close()
        sub.close()
    finally:
        if h.proc is not None:
            h.stop(signal.SIGTERM)
        log.close()


def _open(member: Member, n: int) -> list[Any]:
    stub = sync_pb2_grpc.SyncServiceStub(member.client().channel)
    return [stub.Sync(sync_pb2.SyncRequest(cursor=0, follow=True)) for _ in range(n)]


def _set_limit(h: HubProcess, value: int) -> None:
    text = (h.data / "hub.toml").read_text()
    old = next(x for x in text.splitlines() if x.startswith("max_streams_per_member"))
    (h.data / "hub.toml").write_text(text.replace(old, f"max_streams_per_member = {value}"))
    assert h.proc is not None
    h.proc.send_signal(signal.SIGHUP)
    time.sleep(1.0)


def test_unread_streams_keep_hub_memory_bounded(hub: dict[str, Any]) -> None:
    h, pub, sub = hub["hub"], hub["pub"], hub["sub"]
    assert h.proc is not None
    _set_limit(h, UNREAD + 10)
    before = rss_mib(h.proc.pid)
    calls = _open(pub, UNREAD)
    try:
        peak = before
        for _ in range(8):  # unbounded buffering would grow by ~12 MB per stream
            time.sleep(0.75)
            peak = max(peak, rss_mib(h.proc.pid))
        assert peak < 300, f"hub RSS {peak} MiB with {UNREAD} unread streams (from {before})"
        # Another member is served meanwhile, and publishing goes on.
        d = SyncDaemon(sub.data, address=h.address, workers=0)
        try:
            assert not d.sync_once().refused
        finally:
            d.close()
        pub.publish(pub.indicators(5))
    finally:
        for c in calls:
            c.cancel()
        _set_limit(h, 8)


def test_streams_per_member_are_limited(hub: dict[str, Any]) -> None:
    h, sub = hub["hub"], hub["sub"]
    _set_limit(h, 3)
    calls = _open(sub, 3)
    try:
        time.sleep(0.5)
        (extra,) = _open(sub, 1)
        with pytest.raises(grpc.RpcError) as err:
            next(extra)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "3 open Sync streams" in (err.value.details() or "")
        calls.pop().cancel()
        time.sleep(0.5)
        (again,) = _open(sub, 1)
        assert next(again).changes  # a slot freed: served again
        again.cancel()
    finally:
        for c in calls:
            c.cancel()
        _set_limit(h, 8)
