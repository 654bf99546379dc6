"""The hub's writer (``_writer``): prompt jobs before bulk ones, bulk jobs in per-member
turns, neither starving; and on a real hub, a small publish that does not wait for another
member's flood of large bundles."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest

from sighub.hub._errors import HubError
from sighub.hub._service import Services
from sighub.hub._writer import PROMPT_BURST, Writer

from .conftest import running_world


def _order(jobs: list[tuple[str, str | None]]) -> list[str]:
    """Queue ``jobs`` (label, bulk lane) behind a gate job, release it, and return the
    labels in the order the writer ran them."""
    writer = Writer()
    gate = threading.Event()
    ran: list[str] = []
    started = threading.Event()

    def hold() -> None:
        started.set()
        gate.wait(30)

    first = writer.submit(hold)
    assert started.wait(30)
    futures = [writer.submit(lambda label=label: ran.append(label), lane) for label, lane in jobs]
    gate.set()
    for f in (first, *futures):
        f.result(30)
    writer.shutdown()
    return ran


def test_prompt_jobs_run_before_bulk_ones_queued_earlier() -> None:
    jobs: list[tuple[str, str | None]] = [("a1", "alice"), ("a2", "alice"), ("p1", None)]
    jobs += [("p2", None)]
    assert _order(jobs) == ["p1", "p2", "a1", "a2"]


def test_bulk_jobs_take_turns_per_member_in_each_members_order() -> None:
    jobs: list[tuple[str, str | None]] = [(f"a{i}", "alice") for i in range(4)]
    jobs += [("b0", "bob"), ("b1", "bob"), ("c0", "carol")]
    assert _order(jobs) == ["a0", "b0", "c0", "a1", "b1", "a2", "a3"]


def test_a_stream_of_prompt_jobs_lets_a_waiting_bulk_job_run() -> None:
    jobs: list[tuple[str, str | None]] = [("bulk", "alice")]
    jobs += [(f"p{i}", None) for i in range(PROMPT_BURST + 4)]
    ran = _order(jobs)
    assert ran.index("bulk") == PROMPT_BURST
    assert sorted(ran) == sorted(label for label, _ in jobs)


def test_a_failing_job_fails_its_future_only_and_shutdown_runs_what_is_queued() -> None:
    writer = Writer()

    def boom() -> None:
        raise ValueError("disk full (synthetic)")

    failed = writer.submit(boom)
    later: list[Future[int]] = [writer.submit(lambda i=i: i, "alice") for i in range(5)]
    writer.shutdown()  # the queued jobs still run
    with pytest.raises(ValueError, match="synthetic"):
        failed.result(30)
    assert [f.result(0) for f in later] == [0, 1, 2, 3, 4]
    with pytest.raises(RuntimeError, match="shut down"):
        writer.submit(lambda: 0)


def test_a_call_after_shutdown_is_unavailable_and_runs_nothing() -> None:
    """A call that reaches the hub while it shuts down gets UNAVAILABLE (retry), not a
    RuntimeError surfacing as UNKNOWN, and its work never runs."""
    writer = Writer()
    writer.shutdown()
    ran: list[int] = []
    services = SimpleNamespace(writer=writer)
    with pytest.raises(HubError) as refused:
        asyncio.run(Services.run(services, lambda: ran.append(1)))  # type: ignore[arg-type]
    assert refused.value.code.name == "UNAVAILABLE" and "shutting down" in refused.value.message
    assert ran == [] and not writer.bulk_waiting()


def test_a_probe_publish_does_not_wait_for_another_members_flood_of_large_bundles(
    tmp_path: Path,
) -> None:
    """Twelve 1,000-indicator bundles of one member sent at once (to another
    collaboration), then, once the first is stored, a one-indicator publish: it is
    committed before the flood's last bundle (a FIFO writer and validation queue put it
    behind all of them), and a follower of its collaboration receives it."""
    settings = {"max_indicators": 1000, "publishes_per_minute": 60000, "burst": 1000}
    with running_world(tmp_path, ("probe", "bulk"), **settings) as w:
        hub, probe, bulk = w["hub"], w["probe"], w["bulk"]
        assert hub.admin_cli("collab", "join", "other", "bulk") == 0
        probe_env = probe.envelope(probe.indicators(1))
        flood = [bulk.envelope(bulk.indicators(1000, collab="other")) for _ in range(12)]
        head = probe.publish(probe.indicators(1)).sequence
        received: list[int] = []
        got_probe = threading.Event()
        probe_seq: list[int] = []
        follower = w["sub"].client()

        def follow() -> None:
            for batch in follower.sync(head, follow=True, timeout=120):
                received.extend(ch.sequence for ch in batch.changes)
                if probe_seq and probe_seq[0] in received:
                    got_probe.set()
                    return

        threading.Thread(target=follow, daemon=True).start()
        first_stored = threading.Event()

        def send(raw: bytes) -> int:
            seq = int(bulk.client().publish("other", raw, timeout=300).sequence)
            first_stored.set()
            return seq

        with ThreadPoolExecutor(len(flood)) as pool:
            futures = [pool.submit(send, raw) for raw in flood]
            assert first_stored.wait(300), "no large bundle of the flood was stored"
            started = time.monotonic()
            probe_seq.append(int(probe.client().publish("sg-csam", probe_env).sequence))
            probe_took = time.monotonic() - started
            flood_seqs = [f.result(300) for f in futures]
        assert probe_seq[0] < max(flood_seqs), (
            f"the probe (sequence {probe_seq[0]}, {probe_took:.2f} s) was stored after "
            f"every bundle of the flood ({sorted(flood_seqs)}): it waited for all of them"
        )
        assert got_probe.wait(120), f"the follower did not receive the probe: {received}"
