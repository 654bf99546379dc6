"""Observability shared by the hub and the sync daemon: logging set-up (text or JSON lines),
the ``--log-*`` and ``--metrics-listen`` flags, a Prometheus endpoint on its own plain-HTTP
port, and the daemon's metrics.

Metrics live in a dedicated ``CollectorRegistry`` per process role, never the global one, so
only sighub's own series are exported and tests can hold several side by side."""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from sighub.client._errors import EXIT_BAD_INPUT, SighubError

if TYPE_CHECKING:
    from sighub.client._daemon import SyncReport

__all__ = [
    "LOG_FORMATS",
    "LOG_LEVELS",
    "FollowObserver",
    "JsonFormatter",
    "MetricsEndpoint",
    "ObserveError",
    "SyncMetrics",
    "add_log_flags",
    "add_metrics_flag",
    "parse_listen",
    "serve_metrics",
    "setup_logging",
]

_log = logging.getLogger("sighub.sync")
LOG_LEVELS: Final = ("debug", "info", "warning", "error")
LOG_FORMATS: Final = ("text", "json")
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s %(message)s"
# Attributes every LogRecord has: whatever else a record carries came from ``extra=``.
_RECORD_FIELDS: Final = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
# Extra fields whose values are never written, whatever a caller passes.
_SECRET_HINTS: Final = ("token", "secret", "password", "private", "bearer")


class ObserveError(SighubError):
    """A logging or metrics option sighub cannot accept."""

    exit_code = EXIT_BAD_INPUT


# -- logging ------------------------------------------------------------------------------
class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the record's extra
    fields (values that are not JSON become strings; fields named like secrets are
    redacted)."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key in _RECORD_FIELDS or key in doc:
                continue
            secret = any(hint in key.lower() for hint in _SECRET_HINTS)
            doc[key] = "[redacted]" if secret else value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str, ensure_ascii=False)


def setup_logging(level: str, fmt: str) -> None:
    """Configure the root logger once for the whole process (hub or daemon): ``level`` one
    of LOG_LEVELS, ``fmt`` one of LOG_FORMATS, written to stderr."""
    if level.lower() not in LOG_LEVELS:
        raise ObserveError(f"log level {level!r}: expected one of {', '.join(LOG_LEVELS)}")
    if fmt.lower() not in LOG_FORMATS:
        raise ObserveError(f"log format {fmt!r}: expected one of {', '.join(LOG_FORMATS)}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if fmt.lower() == "json" else logging.Formatter(TEXT_FORMAT)
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())


def add_log_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level",
        default=os.environ.get("SIGHUB_LOG_LEVEL", "info"),
        metavar="LEVEL",
        help=f"{'/'.join(LOG_LEVELS)} (default info; env SIGHUB_LOG_LEVEL)",
    )
    parser.add_argument(
        "--log-format",
        default=os.environ.get("SIGHUB_LOG_FORMAT", "text"),
        metavar="FORMAT",
        help="text, or json: one object per line (default text; env SIGHUB_LOG_FORMAT)",
    )


# -- the metrics endpoint -----------------------------------------------------------------
def add_metrics_flag(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--metrics-listen",
        default=os.environ.get("SIGHUB_METRICS_LISTEN") or None,
        metavar="HOST:PORT",
        help=f"serve Prometheus metrics{what} over plain HTTP at http://HOST:PORT/metrics "
        "(off by default; PORT alone binds 127.0.0.1; port 0: any free, printed; "
        "env SIGHUB_METRICS_LISTEN)",
    )


def parse_listen(value: str, flag: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``PORT`` (then 127.0.0.1) -> (host, port); IPv6 hosts in brackets."""
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", value
    if not port.isdigit() or int(port) > 65535 or (sep and not host):
        raise ObserveError(f"{flag} {value!r}: expected HOST:PORT or PORT (0-65535)")
    return host.strip("[]"), int(port)


@dataclass(frozen=True, slots=True)
class MetricsEndpoint:
    """A running metrics server: ``url`` names the port actually bound."""

    server: WSGIServer
    url: str

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve_metrics(listen: str, registry: CollectorRegistry) -> MetricsEndpoint:
    """Serve ``registry`` at /metrics on a daemon thread (plain HTTP)."""
    host, port = parse_listen(listen, "--metrics-listen")
    try:
        server, _ = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise ObserveError(
            f"--metrics-listen {listen!r}: cannot listen ({exc.strerror or exc})"
        ) from None
    shown = f"[{host}]" if ":" in host else host
    return MetricsEndpoint(server, f"http://{shown}:{server.server_port}/metrics")


# -- the sync daemon's metrics ------------------------------------------------------------
class SyncMetrics:
    """What ``sighub sync --follow`` exports.  Fed from the daemon's per-batch report
    (cumulative), so it keeps the last totals it saw and counts the difference."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.applied = Counter(
            "sighub_sync_applied", "Indicator versions written to the local store", registry=r
        )
        self.envelopes = Counter(
            "sighub_sync_envelopes", "Envelopes received and checked", registry=r
        )
        self.refused = Counter(
            "sighub_sync_refused", "Envelopes refused (nothing of them applied)", registry=r
        )
        self.cursor = Gauge("sighub_sync_cursor", "Hub log sequence applied up to", registry=r)
        self.caught_up = Gauge(
            "sighub_sync_caught_up", "1 when the last batch reached the hub's head", registry=r
        )
        self.lag = Gauge(
            "sighub_sync_lag",
            "Log sequences between the cursor and the head the hub last reported for this "
            "member's collaborations (0 when caught up; NaN before the first batch)",
            registry=r,
        )
        self.last_success = Gauge(
            "sighub_sync_last_success_timestamp_seconds",
            "Unix time of the last batch committed",
            registry=r,
        )
        self.lag.set(math.nan)
        self._seen = (0, 0, 0)

    def batch(self, report: SyncReport) -> None:
        """Record the state after a committed batch."""
        now = (report.applied, report.envelopes, report.refused_count)
        if any(n < s for n, s in zip(now, self._seen, strict=True)):  # a fresh report
            self._seen = (0, 0, 0)
        self.applied.inc(now[0] - self._seen[0])
        self.envelopes.inc(now[1] - self._seen[1])
        self.refused.inc(now[2] - self._seen[2])
        self._seen = now
        self.cursor.set(report.cursor)
        self.caught_up.set(int(report.caught_up))
        self.lag.set(max(report.head - report.cursor, 0))
        self.last_success.set(time.time())


class FollowObserver:
    """What ``sighub sync --follow`` reports per committed batch: a log line, and the
    metrics when an endpoint was asked for."""

    def __init__(self, metrics: SyncMetrics | None, endpoint: MetricsEndpoint | None) -> None:
        self.metrics, self.endpoint = metrics, endpoint

    @classmethod
    def start(cls, metrics_listen: str | None) -> FollowObserver:
        if not metrics_listen:
            return cls(None, None)
        metrics = SyncMetrics()
        endpoint = serve_metrics(metrics_listen, metrics.registry)
        sys.stdout.write(f"sighub sync metrics on {endpoint.url}\n")
        sys.stdout.flush()
        return cls(metrics, endpoint)

    def batch(self, report: SyncReport) -> None:
        _log.info(
            "applied cursor=%d envelopes=%d indicators=%d refused=%d",
            report.cursor,
            report.envelopes,
            report.applied,
            report.refused_count,
            extra={
                "cursor": report.cursor,
                "envelopes": report.envelopes,
                "applied": report.applied,
                "refused": report.refused_count,
                "caught_up": report.caught_up,
            },
        )
        if self.metrics is not None:
            self.metrics.batch(report)

    def close(self) -> None:
        if self.endpoint is not None:
            self.endpoint.close()
