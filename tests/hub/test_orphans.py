"""The hub's validation workers never outlive it, and a worker that dies mid-publish costs
that publish an UNAVAILABLE answer (never INTERNAL, never a hang), not the hub's state."""

from __future__ import annotations

import fcntl
import os
import signal
import sys
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sighub import HubRejected
from sighub.client._rpc import PublishResult
from sighub.hub._service import PROMPT_ENVELOPE_BYTES
from tests.hub.conftest import HubProcess, Member

WORKER_ARGV = [sys.executable, "-m", "sighub.client._worker_main", "sighub.hub._validate:check"]
# Indicators per publish here: an envelope over PROMPT_ENVELOPE_BYTES, which the workers
# validate (a smaller one is validated in the hub's writer turn).
LARGE = 200


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, start time) of a process, or None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "
    return fields[0], int(fields[1]), int(fields[19])


def children(parent: int) -> dict[int, int]:
    """The processes whose parent is ``parent``: pid -> start time."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (st := _stat(int(entry.name))) and st[1] == parent:
            found[int(entry.name)] = st[2]
    return found


def argv(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]


def _fds(pid: int) -> dict[str, str]:
    return {fd.name: os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()}


def gone(pid: int, started: int) -> bool:
    """Exited: no such process, a zombie nobody reaped, or the pid reused since."""
    st = _stat(pid)
    return st is None or st[0] == "Z" or st[2] != started


@pytest.fixture
def running(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[HubProcess, Member]]:
    hub = HubProcess(tmp_path / "hub", validation_workers=request.param)
    hub.start()
    pub = None
    try:
        assert hub.admin_cli("collab", "add", "sg-csam") == 0
        pub = hub.member("pub", tmp_path)
        yield hub, pub
    finally:
        if pub is not None:
            pub.close()
        if hub.proc is not None:
            hub.stop()


@pytest.mark.parametrize("running", [2], indirect=True)
def test_validation_workers_exit_when_the_hub_is_killed(
    running: tuple[HubProcess, Member],
) -> None:
    hub, pub = running
    assert hub.proc is not None
    pub.publish(pub.indicators(LARGE))  # the workers start on the first large publish
    kids = children(hub.proc.pid)
    assert len(kids) == 2, {pid: argv(pid) for pid in kids}
    for pid in kids:  # no resource tracker, nothing but the workers
        assert argv(pid) == WORKER_ARGV
        # Only its two pipes to the hub and the hub's stderr: no listening socket, no file.
        targets = set(_fds(pid).values())
        assert len(targets) == 3 and targets <= set(_fds(hub.proc.pid).values()), targets
        assert all(t.startswith("pipe:") for t in targets), targets
    hub.proc.kill()
    hub.proc.wait(timeout=10)
    hub.proc = None
    deadline = time.monotonic() + 10
    while not all(gone(pid, started) for pid, started in kids.items()):
        assert time.monotonic() < deadline, {pid: _stat(pid) for pid in kids}
        time.sleep(0.05)


def _pipe_filled(pid: int, timeout: float = 10) -> None:
    """Wait until the worker's stdin holds unread bytes: a task is queued for it."""
    fd = os.open(f"/proc/{pid}/fd/0", os.O_RDONLY | os.O_NONBLOCK)
    try:
        deadline = time.monotonic() + timeout
        while int.from_bytes(fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"), "little") == 0:
            assert time.monotonic() < deadline, "the hub never handed the publish to its worker"
            time.sleep(0.01)
    finally:
        os.close(fd)  # a reader left open would keep the hub's writes from failing


@pytest.mark.parametrize("running", [1], indirect=True)
def test_a_worker_killed_mid_publish_fails_that_publish_unavailable(
    running: tuple[HubProcess, Member],
) -> None:
    hub, pub = running
    assert hub.proc is not None
    pub.publish(pub.indicators(3))
    assert children(hub.proc.pid) == {}  # a small publish is validated in the writer's turn
    pub.publish(pub.indicators(LARGE))
    (worker,) = children(hub.proc.pid)
    raw = pub.envelope(pub.indicators(LARGE))
    assert len(raw) > PROMPT_ENVELOPE_BYTES
    before = hub.state()
    outcome: list[PublishResult | Exception] = []

    def publish() -> None:
        try:
            outcome.append(pub.client().publish("sg-csam", raw, timeout=30))
        except Exception as exc:
            outcome.append(exc)

    os.kill(worker, signal.SIGSTOP)  # the publish stays in the worker's pipe until the kill
    caller = threading.Thread(target=publish)
    caller.start()
    _pipe_filled(worker)
    os.kill(worker, signal.SIGKILL)
    caller.join(timeout=30)
    (err,) = outcome
    assert isinstance(err, HubRejected), err
    assert err.code == "UNAVAILABLE"
    assert hub.state() == before
    result = pub.client().publish("sg-csam", raw)  # a new worker takes the retry
    assert err.hub_message == (
        f"envelope {result.envelope_id}: the validation worker exited before answering; "
        "not stored, retry"
    )
    assert result.indicators == LARGE and not result.duplicate
    ((replacement, started),) = children(hub.proc.pid).items()
    assert replacement != worker and argv(replacement) == WORKER_ARGV
    assert hub.state()[:2] == (before[0] + 1, before[1] + LARGE)
    assert hub.stop() == 0  # a clean stop ends the worker too
    assert gone(replacement, started)
