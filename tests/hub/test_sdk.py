"""The SDK as detection code uses it: ``Member(path)`` over the transport its enrollment
named, a clear error when the transport does not fit, and ``follow_in_background``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sighub import HubRejected, HubUnreachable, JsonlSink, Member
from sighub.client._enroll import enroll
from tests.hub.conftest import HubProcess


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HubProcess, Path]]:
    """A loopback hub serving plaintext, and a member enrolled with --insecure."""
    tmp = tmp_path_factory.mktemp("plain")
    hub = HubProcess(tmp / "hub")
    hub.start(insecure=True)
    try:
        enroll_file = tmp / "pb.enroll.json"
        assert (
            hub.admin_cli(
                "--insecure",
                "member",
                "add",
                "pb",
                "--roles",
                "subscriber",
                "--out",
                str(enroll_file),
            )
            == 0
        )
        enroll(enroll_file, tmp / "pb", insecure=True, address=hub.address)
        yield hub, tmp / "pb"
    finally:
        hub.stop()


def _cursor(data: Path) -> int:
    import sqlite3

    with sqlite3.connect(data / "local.db") as c:
        row = c.execute("SELECT value FROM meta WHERE key = 'cursor'").fetchone()
    return int(row[0]) if row else 0


def test_member_dials_the_transport_its_enrollment_named(
    plain: tuple[HubProcess, Path],
) -> None:
    _, data = plain
    assert json.loads((data / "hub.json").read_text())["transport"] == "plaintext"
    report = Member(data).sync_once()  # no insecure= needed
    assert report.caught_up


def test_a_transport_that_does_not_fit_says_what_was_tried_and_what_to_pass(
    plain: tuple[HubProcess, Path], world: dict[str, Any]
) -> None:
    _, data = plain
    Member(data).sync_once()
    before = _cursor(data)
    with pytest.raises(HubUnreachable) as caught:
        Member(data, insecure=False).sync_once()
    text = str(caught.value)
    assert "over mTLS (as passed)" in text and "pass insecure=True" in text, text
    assert "'pb'" in text and plain[0].address in text
    assert _cursor(data) == before

    tls = world["pub"].data  # enrolled over mTLS; its hub serves mTLS
    assert json.loads((tls / "hub.json").read_text())["transport"] == "mtls"
    member = Member(tls, insecure=True, address=world["hub"].address)
    with pytest.raises(HubUnreachable) as caught:
        member.sync_once()
    text = str(caught.value)
    assert "over plaintext (as passed)" in text and "pass insecure=False" in text, text


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_follow_in_background_applies_pushed_changes_and_stops_promptly(
    world: dict[str, Any],
) -> None:
    hub, pub, sub = world["hub"], world["pub"], world["sub"]
    out = sub.data / "changes.jsonl"
    member = Member(sub.data, address=hub.address)
    following = member.follow_in_background(sinks=[JsonlSink(out)])
    try:
        assert following.running
        sent = pub.indicators(2)
        pub.publish(sent)
        deadline = time.monotonic() + 20
        ids = {i.id for i in sent}
        while time.monotonic() < deadline and not ids <= {
            x["indicator"]["id"] for x in _lines(out) if x["op"] == "upsert"
        }:
            time.sleep(0.05)
        assert ids <= {x["indicator"]["id"] for x in _lines(out) if x["op"] == "upsert"}
    finally:
        started = time.monotonic()
        report = following.stop()
        took = time.monotonic() - started
    assert took < 5, f"stop took {took:.1f}s (the idle stream's keepalive is 15s)"
    assert not following.running and report.applied >= 2
    assert following.wait(0) is True


def test_follow_in_background_as_a_context_manager(world: dict[str, Any]) -> None:
    sub = world["sub"]
    with Member(sub.data, address=world["hub"].address).follow_in_background() as following:
        assert following.running
    assert not following.running


def test_follow_in_background_hands_over_the_error_it_stopped_with(
    world: dict[str, Any],
) -> None:
    hub, tmp = world["hub"], world["tmp"]
    gone = hub.member("gone", tmp)
    assert hub.admin_cli("member", "remove", "gone") == 0
    following = Member(gone.data, address=hub.address).follow_in_background()
    with pytest.raises(HubRejected) as caught:
        following.wait(timeout=30)
    assert caught.value.code in ("PERMISSION_DENIED", "UNAUTHENTICATED")
    assert not following.running
    with pytest.raises(HubRejected):
        following.stop()
