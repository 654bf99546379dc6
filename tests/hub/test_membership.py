"""What members see when the hub's membership or log changes under them: a removed
publisher's history, a cursor past the log's head, a member suspended while following."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sighub.client._daemon import SyncDaemon
from sighub.client._enroll import rotate_signing_key
from sighub.client._errors import EXIT_ALARM, EXIT_REFUSED, IntegrityAlarm
from sighub.client._rpc import HubRejected
from tests.conftest import SIGHUB
from tests.hub.conftest import ROOT, HubProcess
from tests.hub.test_poison import _fresh, _inject


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[dict[str, Any]]:
    # an injected envelope is checkpointed by the idle interval: keep it short
    h = HubProcess(
        tmp_path / "hub", publishes_per_minute=6000, burst=1000, checkpoint_interval_seconds=0.5
    )
    h.start()
    try:
        assert h.admin_cli("collab", "add", "sg-csam") == 0
        pub, sub = h.member("pub", tmp_path), h.member("sub", tmp_path, roles="subscriber")
        yield {"hub": h, "pub": pub, "sub": sub, "tmp": tmp_path}
        pub.close()
        sub.close()
    finally:
        if h.proc is not None:
            h.stop()


def _active(data: Path, h: HubProcess) -> set[str]:
    d = SyncDaemon(data, address=h.address, workers=0)
    try:
        report = d.sync_once()
        assert all("revoked at sequence" in why for _, why in report.refused), report.refused
        return {i.id for i in d.store.active(datetime.now(UTC))}
    finally:
        d.close()


def test_a_removed_publishers_history_is_the_same_for_fresh_and_old_members(
    hub: dict[str, Any],
) -> None:
    h, pub, sub = hub["hub"], hub["pub"], hub["sub"]
    published = pub.indicators(3)
    pub.publish(published)
    old = _active(sub.data, h)  # synced before the removal
    assert {i.id for i in published} <= old
    late = pub.envelope(pub.indicators(1))  # signed now, appears after the removal
    assert h.admin_cli("member", "remove", "pub") == 0
    (after,) = _inject(h, pub, [late])  # a hub that accepted it anyway
    fresh = _active(_fresh(sub, hub["tmp"], "fresh"), h)
    again = _active(sub.data, h)
    assert fresh == again == old  # one meaning of removal, applied alike
    d = SyncDaemon(sub.data, address=h.address, workers=0)
    try:
        reasons = dict(d.store.conn.execute("SELECT seq, reason FROM refused").fetchall())
        assert "revoked at sequence" in reasons[after]
    finally:
        d.close()


def test_a_rotated_key_keeps_what_it_signed_before(hub: dict[str, Any]) -> None:
    h, pub, sub = hub["hub"], hub["pub"], hub["sub"]
    before = pub.indicators(2)
    pub.publish(before)
    rotate_signing_key(pub.data)  # the old key is revoked at the log's head
    after = pub.indicators(1)
    pub.publish(after)
    assert {i.id for i in before + after} <= _active(_fresh(sub, hub["tmp"], "fresh"), h)


def test_a_cursor_past_the_log_is_an_alarm_with_a_remedy(hub: dict[str, Any]) -> None:
    h, pub, sub = hub["hub"], hub["pub"], hub["sub"]
    pub.publish(pub.indicators(2))
    d = SyncDaemon(sub.data, address=h.address, workers=0)
    try:
        d.sync_once()
        head = d.store.cursor
        with d.store.tx():  # as after the hub was restored from an older backup
            d.store.set_meta("cursor", str(head + 50))
        with pytest.raises(IntegrityAlarm, match="cursor ahead of log") as err:
            d.sync_once()
        assert "--resync" in str(err.value)
        assert d.store.cursor == head + 50  # nothing changed
    finally:
        d.close()
    base = [*SIGHUB, "sync", "--data", str(sub.data), "--hub", h.address]
    done = subprocess.run(base, check=False, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == EXIT_ALARM and "--resync" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    pub.publish(later := pub.indicators(1))
    # the alarm is recorded: a resync alone is refused until the operator clears it
    done = subprocess.run(
        [*base, "--resync"], check=False, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == EXIT_ALARM and "--clear-alarm" in done.stderr, done.stderr
    status = [*SIGHUB, "status", "--data", str(sub.data)]
    shown = subprocess.run(status, check=False, cwd=ROOT, capture_output=True, text=True)
    assert shown.returncode == EXIT_ALARM and "rollback" in shown.stdout, shown.stdout
    assert "cursor ahead of log" in shown.stdout
    done = subprocess.run(
        [*base, "--resync", "--clear-alarm"],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    shown = subprocess.run(status, check=False, cwd=ROOT, capture_output=True, text=True)
    assert shown.returncode == 0 and "ALARM" not in shown.stdout, shown.stdout
    assert later[0].id in _active(sub.data, h)


def test_follow_exits_with_a_distinct_code_when_the_member_is_suspended(
    hub: dict[str, Any],
) -> None:
    h, sub = hub["hub"], hub["sub"]
    args = [*SIGHUB, "sync", "--data", str(sub.data), "--hub", h.address, "--follow"]
    proc = subprocess.Popen(
        args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        time.sleep(1.5)  # connected and following
        assert proc.poll() is None
        assert h.admin_cli("member", "suspend", "sub") == 0
        code = proc.wait(timeout=30)
        err = proc.stderr.read() if proc.stderr else ""
        assert code == EXIT_REFUSED, err
        assert "suspended" in err and "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_member_that_joins_a_collaboration_late_gets_its_history(
    hub: dict[str, Any],
) -> None:
    """sub's cursor passes the envelopes of 'later' before sub is in it; after the join
    its next sync fetches them (GetHistory, each with an inclusion proof) and applies
    them, and a fresh member of 'later' ends with the same indicators."""
    h, pub, sub = hub["hub"], hub["pub"], hub["sub"]
    assert h.admin_cli("collab", "add", "later") == 0
    assert h.admin_cli("collab", "join", "later", "pub") == 0
    early = [pub.indicators(2, collab="later") for _ in range(3)]
    for indicators in early:
        pub.publish(indicators, collab="later")
    before = _active(sub.data, h)  # sub is not in 'later': its cursor passes them
    assert not before & {i.id for batch in early for i in batch}
    assert h.admin_cli("collab", "join", "later", "sub") == 0
    after = pub.indicators(1, collab="later")
    pub.publish(after, collab="later")
    got = _active(sub.data, h)
    assert {i.id for batch in early for i in batch} | {after[0].id} <= got
    fresh = _active(_fresh(sub, hub["tmp"], "fresh-later"), h)
    assert fresh == got


def test_get_history_refuses_bad_ranges_and_non_members(hub: dict[str, Any]) -> None:
    """Each refusal names the rule; the log is untouched."""
    h, pub, sub = hub["hub"], hub["pub"], hub["sub"]
    pub.publish(pub.indicators(1))
    with h.db() as c:
        size = c.execute("SELECT COUNT(*) FROM leaves").fetchone()[0]
    assert h.admin_cli("collab", "add", "closed") == 0
    size += 2  # the collaboration's leaves
    cases = [
        (sub, "sg-csam", 0, size + 1, size + 1, "INVALID_ARGUMENT", "before_sequence"),
        (sub, "sg-csam", 0, size, size - 1, "INVALID_ARGUMENT", "tree_size"),
        (sub, "sg-csam", 2**60, 1, size, "INVALID_ARGUMENT", "after_number"),
        (sub, "closed", 0, 1, size, "PERMISSION_DENIED", "not in collaboration 'closed'"),
    ]
    for member, collab, after, before, tree, code, words in cases:
        with pytest.raises(HubRejected) as err:
            member.client().history(collab, after, before, tree)
        assert err.value.code == code and words in err.value.hub_message, err.value
    with h.db() as c:
        assert c.execute("SELECT COUNT(*) FROM leaves").fetchone()[0] == size
    got = sub.client().history("sg-csam", 0, size, size)  # and an honest ask works
    assert [ch.n for ch, _ in got] == list(range(1, len(got) + 1)) and got
