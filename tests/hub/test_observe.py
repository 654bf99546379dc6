"""Observability and health for operators, against one real hub process started with
``--metrics-listen``, ``--health-listen`` and ``--log-format json``: Prometheus counters
move, refused RPCs log one access line each, the plaintext health port answers while the
member port stays mTLS-only, and the sync daemon exports what it applied."""

from __future__ import annotations

import importlib
import json
import logging
import math
import os
import select
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

import sighub.hub._cli as hub_cli
from sighub import HubRejected
from sighub.client._daemon import SyncReport
from sighub.client._observe import JsonFormatter, ObserveError, SyncMetrics, parse_listen
from sighub.client._proto import publish_pb2, publish_pb2_grpc
from sighub.hub._observe import rule_of
from tests.conftest import SIGHUB
from tests.hub.conftest import HubProcess, Member

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
PUBLISH = "sighub.v1.PublishService/Publish"
SYNC = "sighub.v1.SyncService/Sync"


def _env() -> dict[str, str]:
    """The environment without gRPC logging settings: the CLI must choose its own."""
    return {k: v for k, v in os.environ.items() if k not in ("GRPC_VERBOSITY", "GRPC_TRACE")}


class Lines:
    """A child's stdout read line by line with a deadline (raw reads: a buffered reader
    would hide lines already read from select)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        self.proc, self.fd, self.buffer = proc, proc.stdout.fileno(), b""

    def wait_for(self, marker: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while True:
            line, sep, rest = self.buffer.partition(b"\n")
            if sep:
                self.buffer = rest
                if marker in line.decode():
                    return line.decode().strip()
                continue
            left = deadline - time.monotonic()
            ready = select.select([self.fd], [], [], max(left, 0))[0] if left > 0 else []
            chunk = os.read(self.fd, 65536) if ready else b""
            if not chunk:
                raise AssertionError(f"no line with {marker!r} from {self.proc.args!r}")
            self.buffer += chunk


def scrape(url: str) -> Samples:
    assert url.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def wait_for(check: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


class Observed:
    def __init__(self, hub: HubProcess, metrics: str, health: str, stderr: Path) -> None:
        self.hub, self.metrics, self.health, self.stderr = hub, metrics, health, stderr

    def scrape(self) -> Samples:
        return scrape(self.metrics)

    def log_lines(self) -> list[dict[str, Any]]:
        lines = self.stderr.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("observe")
    hub = HubProcess(tmp / "hub", publishes_per_minute=6000, burst=1000)
    stderr = tmp / "hub.stderr"
    args = [*SIGHUB, "hub", "serve", "--data", str(hub.data), "--listen", "127.0.0.1:0"]
    args += ["--metrics-listen", "127.0.0.1:0", "--health-listen", "0", "--log-format", "json"]
    with stderr.open("w") as err:
        hub.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, text=True, env=_env())
    try:
        out = Lines(hub.proc)
        hub.port = int(out.wait_for("listening on ").split()[4].rsplit(":", 1)[1])
        metrics = out.wait_for("metrics on ").split()[-1]
        health = out.wait_for("health on ").split()[4]
        assert hub.admin_cli("collab", "add", "sg-csam") == 0
        world: dict[str, Any] = {
            "obs": Observed(hub, metrics, health, stderr),
            "pub": hub.member("pub", tmp),
            "sub": hub.member("sub", tmp, roles="subscriber"),
        }
        yield world
        world["pub"].close()
        world["sub"].close()
    finally:
        if hub.proc is not None:
            hub.stop()


def test_metrics_count_publishes_refusals_and_syncs(observed: dict[str, Any]) -> None:
    obs: Observed = observed["obs"]
    pub: Member = observed["pub"]
    sub: Member = observed["sub"]
    before = obs.scrape()
    result = pub.publish(pub.indicators(3))
    state = obs.hub.state()
    with pytest.raises(HubRejected) as refused:
        sub.publish(sub.indicators(1))  # a subscriber may not publish
    assert refused.value.code == "PERMISSION_DENIED"
    assert obs.hub.state() == state  # the refusal changed nothing
    with pytest.raises(HubRejected) as denied:  # a stream refused before its first batch
        list(sub.client().sync(0, collaborations=["not-mine"]))
    assert denied.value.code == "PERMISSION_DENIED"
    batches = list(pub.client().sync(0))
    sent = sum(len(b.changes) for b in batches)
    assert batches[-1].caught_up and sent >= 1
    wait_for(lambda: value(obs.scrape(), "sighub_hub_sync_streams", follow="false") == 0)
    after = obs.scrape()

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("sighub_hub_rpcs_total", method=PUBLISH, code="OK") == 1
    assert moved("sighub_hub_rpcs_total", method=PUBLISH, code="PERMISSION_DENIED") == 1
    assert moved("sighub_hub_rpcs_total", method=SYNC, code="PERMISSION_DENIED") == 1
    assert moved("sighub_hub_rpcs_total", method=SYNC, code="OK") == 1
    assert moved("sighub_hub_rejections_total", code="PERMISSION_DENIED", rule="role") == 1
    assert moved("sighub_hub_rejections_total", code="PERMISSION_DENIED", rule="not_in_collab") == 1
    assert moved("sighub_hub_published_envelopes_total") == 1
    assert moved("sighub_hub_published_indicators_total") == 3
    assert moved("sighub_hub_sync_envelopes_total") == sent
    assert moved("sighub_hub_sync_envelope_bytes_total") > 0
    assert value(after, "sighub_hub_log_head_sequence") == result.sequence
    assert value(after, "sighub_hub_log_envelopes") == state[0]
    assert value(after, "sighub_hub_member_lag", member="pub") == 0  # it said caught up


def test_refused_rpc_logs_one_access_line(observed: dict[str, Any]) -> None:
    obs: Observed = observed["obs"]
    assert obs.hub.admin_cli("member", "show", "n0body-7") != 0

    def mine() -> list[dict[str, Any]]:
        return [d for d in obs.log_lines() if "n0body-7" in d["message"]]

    wait_for(lambda: bool(mine()))
    time.sleep(0.2)  # a second line, were there one, would be written by now
    (line,) = mine()
    assert line["logger"] == "sighub.hub.access" and line["level"] == "warning"
    assert line["method"] == "sighub.v1.AdminService/ShowMember"
    assert line["code"] == "NOT_FOUND" and line["rule"] == "not_found"
    assert line["member"] == "admin" and line["peer"].startswith("ipv4:127.0.0.1:")
    assert {"time", "message"} <= set(line)


def test_health_port_answers_plaintext_while_member_port_refuses_it(
    observed: dict[str, Any],
) -> None:
    obs: Observed = observed["obs"]
    assert obs.health.startswith("127.0.0.1:")  # a bare port binds loopback
    with grpc.insecure_channel(obs.health) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "sighub.v1.PublishService"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as only_health:  # nothing but health there
            publish_pb2_grpc.PublishServiceStub(channel).Publish(
                publish_pb2.PublishRequest(), timeout=5
            )
        assert only_health.value.code() == grpc.StatusCode.UNIMPLEMENTED
    with grpc.insecure_channel(obs.hub.address) as channel, pytest.raises(grpc.RpcError) as tls:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert tls.value.code() == grpc.StatusCode.UNAVAILABLE


def test_daemon_exports_applied_changes(observed: dict[str, Any]) -> None:
    obs: Observed = observed["obs"]
    pub: Member = observed["pub"]
    pub.publish(pub.indicators(2))
    args = [*SIGHUB, "sync", "--follow", "--data", str(pub.data), "--hub", obs.hub.address]
    args += ["--workers", "0", "--metrics-listen", "127.0.0.1:0", "--log-format", "json"]
    daemon = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env()
    )
    try:
        url = Lines(daemon).wait_for("sync metrics on ").split()[-1]
        wait_for(lambda: value(scrape(url), "sighub_sync_caught_up") == 1)
        got, hub = scrape(url), obs.scrape()
        head = value(hub, "sighub_hub_log_head_sequence")
        assert value(got, "sighub_sync_applied_total") >= 2
        assert value(got, "sighub_sync_refused_total") == 0
        assert value(got, "sighub_sync_cursor") == head
        assert value(got, "sighub_sync_lag") == 0
        assert time.time() - value(got, "sighub_sync_last_success_timestamp_seconds") < 60
        assert value(hub, "sighub_hub_sync_streams", follow="true") == 1
        assert value(hub, "sighub_hub_member_lag", member="pub") == 0
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=20)
    assert daemon.returncode == 0, err
    assert all(json.loads(line)["logger"] for line in err.splitlines() if line.strip())


@pytest.mark.parametrize(
    ("flags", "problem"),
    [
        (["--health-listen", "0.0.0.0:0"], "--health-public"),
        (["--metrics-listen", "127.0.0.1:http"], "expected HOST:PORT"),
        (["--log-level", "chatty"], "log level 'chatty'"),
        (["--log-format", "xml"], "log format 'xml'"),
    ],
)
def test_bad_operations_flags_refused_before_serving(
    observed: dict[str, Any], flags: list[str], problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data = observed["obs"].hub.data
    handlers = list(logging.getLogger().handlers)
    assert (
        hub_cli.main(["hub", "serve", "--data", str(data), "--listen", "127.0.0.1:0", *flags]) == 2
    )
    out, err = capsys.readouterr()
    assert problem in err and "listening" not in out
    assert logging.getLogger().handlers == handlers  # refused before logging was set up


def test_grpc_core_logging_is_off_unless_the_user_asks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The console script sets these before it imports grpc (read at import)."""
    monkeypatch.delenv("GRPC_VERBOSITY", raising=False)
    monkeypatch.delenv("GRPC_TRACE", raising=False)
    importlib.reload(hub_cli)
    assert (os.environ["GRPC_VERBOSITY"], os.environ["GRPC_TRACE"]) == ("NONE", "")
    monkeypatch.setenv("GRPC_VERBOSITY", "debug")
    monkeypatch.setenv("GRPC_TRACE", "http")
    importlib.reload(hub_cli)
    assert (os.environ["GRPC_VERBOSITY"], os.environ["GRPC_TRACE"]) == ("debug", "http")


def test_stop_leaves_only_json_log_lines(observed: dict[str, Any]) -> None:
    """Last in this module: stops the hub and reads everything it wrote to stderr."""
    obs: Observed = observed["obs"]
    assert obs.hub.stop() == 0
    lines = obs.log_lines()  # each line is a JSON object: no gRPC core noise, no traceback
    assert lines and all({"time", "level", "logger", "message"} <= set(d) for d in lines)
    assert lines[-1]["message"] == "shutting down"
    with pytest.raises(OSError):
        scrape(obs.metrics)  # the metrics port closed with the hub


# -- units ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("code", "message", "rule"),
    [
        (
            "RESOURCE_EXHAUSTED",
            "member 'pub': publish rate limit reached; retry later",
            "rate_limit",
        ),
        (
            "INVALID_ARGUMENT",
            "payload: depth: received nesting deeper than 64, expected at most",
            "json_budget",
        ),
        (
            "PERMISSION_DENIED",
            "envelope signed by key k1, not a registered key of 'pub'",
            "unknown_key",
        ),
        ("FAILED_PRECONDITION", "cursor ahead of log: cursor 9, log head 3", "cursor_ahead"),
        ("PERMISSION_DENIED", "member 'pub' has roles ['subscriber']; this needs one of", "role"),
        (
            "INVALID_ARGUMENT",
            "envelope: syntax: received Expecting value, expected JSON",
            "json_syntax",
        ),
        ("RESOURCE_EXHAUSTED", "member 'pub' has 4 open Sync streams; at most 4", "stream_limit"),
        (
            "INVALID_ARGUMENT",
            "member 's3ller': roles[0]: received ROLE_UNSPECIFIED (0); expected one of peer",
            "enum_value",
        ),
        (
            "INVALID_ARGUMENT",
            "member 'x': roles[1]: received 99, not a Role; expected",
            "enum_value",
        ),
        (
            "INVALID_ARGUMENT",
            "Audit: page_token '🧀🍕' is not one this RPC returned; expected empty or",
            "page_token",
        ),
        ("UNAVAILABLE", "a message no rule knows about 🧀", "unavailable"),
    ],
)
def test_rule_names_are_bounded(code: str, message: str, rule: str) -> None:
    assert rule_of(grpc.StatusCode[code], message) == rule


def test_json_formatter_writes_extras_and_redacts_secrets() -> None:
    record = logging.LogRecord(
        "sighub.hub", logging.INFO, __file__, 1, "hello %s", ("s3ller",), None
    )
    record.member, record.bearer_token = "pub", "abc123"
    doc = json.loads(JsonFormatter().format(record))
    assert doc["message"] == "hello s3ller" and doc["level"] == "info"
    assert doc["member"] == "pub" and doc["bearer_token"] == "[redacted]"
    assert "abc123" not in JsonFormatter().format(record)


def test_listen_addresses() -> None:
    assert parse_listen("9100", "--x") == ("127.0.0.1", 9100)
    assert parse_listen("[::1]:0", "--x") == ("::1", 0)
    for bad in ("", ":9100", "host:", "host:99999", "host:-1"):
        with pytest.raises(ObserveError, match="--x"):
            parse_listen(bad, "--x")


def test_sync_metrics_count_differences_of_cumulative_reports() -> None:
    metrics = SyncMetrics()
    assert math.isnan(metrics.lag.collect()[0].samples[0].value)  # no batch yet
    report = SyncReport(envelopes=2, applied=5, cursor=7, head=12)
    metrics.batch(report)
    assert metrics.lag.collect()[0].samples[0].value == 5
    report.envelopes, report.applied, report.cursor, report.caught_up = 3, 6, 9, True
    report.add_refused(8, "bad")
    metrics.batch(report)
    metrics.batch(SyncReport(envelopes=1, applied=1, cursor=10, head=14))  # a new session
    got = {s.name: s.value for f in metrics.registry.collect() for s in f.samples}
    assert got["sighub_sync_applied_total"] == 7 and got["sighub_sync_envelopes_total"] == 4
    assert got["sighub_sync_refused_total"] == 1 and got["sighub_sync_cursor"] == 10
    assert got["sighub_sync_caught_up"] == 0 and got["sighub_sync_lag"] == 4
