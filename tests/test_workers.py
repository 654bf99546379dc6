"""Worker processes: envelope checking gives the same answers as checking inline; a worker
that dies fails its pending work instead of leaving its parent waiting, and is replaced; a
task that raises fails alone; any named function can be the task."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sighub.client._envelope import key_id, public_key_bytes
from sighub.client._local import stored_row
from sighub.client._verify import UNKNOWN_KEY, Directory, check_changes
from sighub.client._workers import WorkerError, WorkerExited, WorkerPool
from sighub.wire import build_bundle, seal
from tests.conftest import make_indicator, make_publisher

KEY = Ed25519PrivateKey.generate()
OTHER = Ed25519PrivateKey.generate()
PUB = make_publisher()
DIRECTORY: Directory = {
    key_id(KEY.public_key()): (
        "platform-a",
        PUB.id,
        public_key_bytes(KEY.public_key()),
        None,
        0,
        "",
    )
}


def _envelope(count: int, key: Ed25519PrivateKey = KEY, collab: str = "sg-csam") -> bytes:
    inds = [make_indicator(collaboration=collab) for _ in range(count)]
    return seal(build_bundle(PUB, inds), key)


def _changes() -> list[tuple[int, str, bytes]]:
    good = _envelope(300)
    tampered = good.replace(b'"payload":"', b'"payload":"A', 1)
    return [
        (1, "sg-csam", good),
        (2, "sg-csam", tampered),  # not canonical / bad signature
        (3, "sg-csam", _envelope(2, key=OTHER)),  # a key the directory does not hold
        (4, "other-collab", _envelope(2)),  # relayed under another collaboration
        (5, "sg-csam", _envelope(1000)),
    ]


def test_workers_answer_exactly_as_inline_checking() -> None:
    changes = _changes()
    inline = check_changes(DIRECTORY, changes)
    pool = WorkerPool(2)
    try:
        futures = [pool.submit(DIRECTORY, changes[:3]), pool.submit(DIRECTORY, changes[3:])]
        pooled = futures[0].result(timeout=60) + futures[1].result(timeout=60)
    finally:
        pool.close()
    assert pooled == inline
    assert isinstance(inline[0], list) and len(inline[0]) == 300
    assert [r[0] for r in inline[0]] == sorted(r[0] for r in inline[0])  # id order
    assert isinstance(inline[1], str)
    assert isinstance(inline[2], str) and UNKNOWN_KEY in inline[2]
    assert isinstance(inline[3], str) and "relayed as 'other-collab'" in inline[3]
    assert isinstance(inline[4], list) and len(inline[4]) == 1000
    first: Any = inline[0][0]
    assert stored_row(first).publisher == PUB.id


def test_a_worker_that_dies_fails_its_pending_work_and_is_replaced() -> None:
    pool = WorkerPool(1)
    try:
        pool.submit(DIRECTORY, _changes()[:1]).result(timeout=60)  # started and working
        (pid,) = pool.pids()
        os.kill(pid, signal.SIGSTOP)  # the task below stays pending until the kill
        pending = pool.submit(DIRECTORY, _changes()[:1])
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(
            WorkerExited, match=rf"verification worker {pid} exited \(exit code -9\)"
        ):
            pending.result(timeout=60)
        again = pool.submit(DIRECTORY, _changes()[:1]).result(timeout=60)  # a new worker
        assert isinstance(again[0], list) and len(again[0]) == 300
        assert pool.pids() != [pid]
    finally:
        pool.close()


def test_a_task_that_raises_fails_alone() -> None:
    pool = WorkerPool(1, "os:getpid", "test")
    try:
        (pid_before,) = [pool.submit().result(timeout=60)]
        with pytest.raises(WorkerError, match=r"test worker \d+: task failed: TypeError") as err:
            pool.submit("unexpected").result(timeout=60)
        assert not isinstance(err.value, WorkerExited)
        assert pool.submit().result(timeout=60) == pid_before  # the same worker carries on
    finally:
        pool.close()


def test_what_a_task_prints_goes_to_the_parents_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    pool = WorkerPool(1, "builtins:exec", "test")
    try:
        assert pool.submit("print('s3ller was here')").result(timeout=60) is None  # frames intact
        with pytest.raises(WorkerError, match="task failed: ValueError"):
            pool.submit("int('not a number')").result(timeout=60)
    finally:
        pool.close()  # the worker flushes its output as it exits
    out, err = capfd.readouterr()
    assert out == ""
    assert "s3ller was here" in err and "Traceback" in err and "ValueError" in err


def test_workers_share_the_load() -> None:
    pool = WorkerPool(2, "os:getpid", "test")
    try:
        # Both queued before either worker has started: each goes to the least busy one.
        first, second = pool.submit(), pool.submit()
        answered = {first.result(timeout=60), second.result(timeout=60)}
        assert answered == set(pool.pids()) and len(answered) == 2
    finally:
        pool.close()


@pytest.mark.parametrize(
    ("task", "why"),
    [
        ("os.getpid", "expected MODULE:FUNCTION"),
        ("no_such_module_x:run", "cannot import 'no_such_module_x'"),
        ("os:no_such_function", "'os' has no function 'no_such_function'"),
    ],
)
def test_a_worker_given_a_bad_task_name_exits_and_fails_its_work(task: str, why: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "sighub.client._worker_main", task],
        input=b"",
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert why in proc.stderr.decode() and proc.stdout == b""
    pool = WorkerPool(1, task, "test")
    try:
        with pytest.raises(WorkerExited, match=r"test worker \d+ exited \(exit code 2\)"):
            pool.submit().result(timeout=60)
    finally:
        pool.close()


def test_workers_end_when_the_pool_closes() -> None:
    pool = WorkerPool(2)
    pool.submit(DIRECTORY, _changes()[:1]).result(timeout=60)
    procs = [w.proc for w in pool._workers]
    assert len(procs) == 2
    pool.close()
    assert all(p.poll() == 0 for p in procs)


def test_without_an_interpreter_to_start_checking_stays_in_process(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from sighub.client._intake import POOL_MIN_BYTES, Checker
    from sighub.client._rpc import Change

    changes = [Change(1, "sg-csam", _envelope(1500), ())]
    assert len(changes[0].envelope) >= POOL_MIN_BYTES  # large enough for the workers
    monkeypatch.setattr("sys.executable", "/nonexistent/python3")
    checker = Checker(2)
    result = checker.submit(DIRECTORY, changes).result(timeout=60)
    assert isinstance(result[0], list) and len(result[0]) == 1500
    assert "checking in-process" in caplog.text
    checker.close()
