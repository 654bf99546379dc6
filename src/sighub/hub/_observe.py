"""The hub's observability: Prometheus metrics (served by ``sighub.client._observe.serve_metrics``
on their own port), an interceptor that counts every RPC by method and final status and
writes one access line per refused RPC, and the plaintext health-only server for
orchestrators.

Label values come from fixed sets only (method names of registered handlers, status code
names, the rule names below, member names from the directory), never from messages."""

from __future__ import annotations

import inspect
import logging
import re
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

import grpc
from grpc_health.v1 import health, health_pb2_grpc
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from sighub.client._observe import (
    MetricsEndpoint,
    ObserveError,
    parse_listen,
    serve_metrics,
)
from sighub.client._rpc import CURSOR_AHEAD, is_loopback
from sighub.hub._store import Store

__all__ = [
    "Exposed",
    "Exposure",
    "HubMetrics",
    "ObserveInterceptor",
    "expose",
    "rule_of",
    "start_health",
]

access = logging.getLogger("sighub.hub.access")

# (pattern over a refusal's message, rule label); the first match names the rule, and a
# message none matches is labelled with its status code.  Budget errors read
# "<what>: <rule>: received ..." (sighub.client._json).
_RULES: Final = tuple(
    (re.compile(pattern), rule)
    for pattern, rule in (
        (r"rate limit", "rate_limit"),
        (r": (?:encoding|syntax): received", "json_syntax"),
        (r": (?:size|number length|number|token length|depth|containers): received", "json_budget"),
        (r"^envelope: (?:received )?\d+ bytes", "envelope_size"),
        (r"signed by key \S+, revoked", "key_revoked"),
        (r"not a registered key", "unknown_key"),
        (r"signature does not verify", "signature"),
        (r"^envelope", "envelope_format"),
        (r"bundle publisher", "publisher_mismatch"),
        (r"bundle is for collaboration", "collab_mismatch"),
        (r"per bundle|indicators; at most", "indicator_count"),
        (r"in the past", "expired"),
        (r"lifetime of|valid for \d+ days", "ttl"),
        (r"ahead of the clock", "future_time"),
        (r"key_epoch", "key_epoch"),
        (r"\d+ characters|longer than", "string_length"),
        (r"only the creator may", "not_creator"),
        (r"already revoked", "already_revoked"),
        (r"must be later than the stored", "stale_revision"),
        (r"^bundle: ", "bundle_format"),
        (re.escape(CURSOR_AHEAD), "cursor_ahead"),
        (r"\bstreams?\b", "stream_limit"),
        (r"is not in collaboration|is not in '", "not_in_collab"),
        (r"has roles .*this needs", "role"),
        (r"member '[^']*' is (?:suspended|removed|pending)", "member_status"),
        (r"bearer token|client certificate|only good for Enroll|cannot enroll", "identity"),
        (r"token not valid or already used", "enrollment_token"),
        (r"already exists|already registered|is already in", "exists"),
        (r"does not exist|is not a key of", "not_found"),
        (r"received [A-Z_]+_UNSPECIFIED \(0\)|received \d+, not a [A-Z]\w*;", "enum_value"),
        (r"page_token .* is not one this RPC returned", "page_token"),
        (r"internal error", "internal"),
    )
)


def rule_of(code: grpc.StatusCode, message: str) -> str:
    """A short, bounded name for the rule a refusal broke."""
    for pattern, rule in _RULES:
        if pattern.search(message):
            return rule
    return str(code.name).lower()


# -- metrics ------------------------------------------------------------------------------
class _MemberLag(Collector):
    """``sighub_hub_member_lag``: per member, the log head minus the last position its
    streams reported (a batch's cursor; the head itself when the batch said caught up).
    Computed at scrape time, so a member that stopped syncing shows its lag growing."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._position: dict[str, int] = {}
        self.head = 0

    def seen(self, member: str, position: int) -> None:
        with self._lock:
            self._position[member] = max(position, self._position.get(member, 0))

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "sighub_hub_member_lag",
            "Log head minus the last position sent to the member's Sync streams",
            labels=["member"],
        )
        with self._lock:
            positions, head = dict(self._position), self.head
        for member, position in sorted(positions.items()):
            family.add_metric([member], max(head - position, 0))
        yield family


class HubMetrics:
    """Every hub series, in one dedicated registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.rpcs = Counter(
            "sighub_hub_rpcs", "RPCs by method and final status", ["method", "code"], registry=r
        )
        self.rejections = Counter(
            "sighub_hub_rejections", "Refused RPCs by status and rule", ["code", "rule"], registry=r
        )
        self.published_envelopes = Counter(
            "sighub_hub_published_envelopes", "Envelopes appended to the log", registry=r
        )
        self.published_indicators = Counter(
            "sighub_hub_published_indicators", "Indicators in appended envelopes", registry=r
        )
        self.duplicates = Counter(
            "sighub_hub_publish_duplicates", "Publishes of an envelope already stored", registry=r
        )
        self.sync_envelopes = Counter(
            "sighub_hub_sync_envelopes", "Envelopes sent on Sync streams", registry=r
        )
        self.sync_bytes = Counter(
            "sighub_hub_sync_envelope_bytes", "Envelope bytes sent on Sync streams", registry=r
        )
        self.streams = Gauge("sighub_hub_sync_streams", "Open Sync streams", ["follow"], registry=r)
        self.head = Gauge("sighub_hub_log_head_sequence", "Highest log sequence", registry=r)
        self.envelopes = Gauge("sighub_hub_log_envelopes", "Envelopes in the log", registry=r)
        self.lag = _MemberLag()
        r.register(self.lag)
        for follow in ("true", "false"):
            self.streams.labels(follow=follow)

    def load(self, store: Store) -> None:
        """The log's size at start; publishes and checkpoints keep it current afterwards."""
        head = store.head()
        self.head.set(head)
        self.lag.head = head
        self.envelopes.set(int(store.one("SELECT COUNT(*) FROM envelopes")[0]))

    def published(self, sequence: int, indicators: int, duplicate: bool) -> None:
        if duplicate:
            self.duplicates.inc()
            return
        self.published_envelopes.inc()
        self.published_indicators.inc(indicators)
        self.envelopes.inc()
        self.head.set(max(sequence, self.lag.head))
        self.lag.head = max(sequence, self.lag.head)

    def log_size(self, size: int) -> None:
        """The log's size at a new checkpoint: directory events grow it too."""
        self.head.set(max(size, self.lag.head))
        self.lag.head = max(size, self.lag.head)

    def opened(self, follow: bool) -> None:
        self.streams.labels(follow=str(follow).lower()).inc()

    def closed(self, follow: bool) -> None:
        self.streams.labels(follow=str(follow).lower()).dec()

    def sent(
        self, member: str, changes: int, envelope_bytes: int, cursor: int, caught_up: bool
    ) -> None:
        """A Sync batch on its way to ``member``."""
        if changes:
            self.sync_envelopes.inc(changes)
            self.sync_bytes.inc(envelope_bytes)
        # Caught up means nothing this member may read lies past the cursor: at the head.
        self.lag.seen(member, max(cursor, self.lag.head) if caught_up else cursor)


# -- the interceptor ----------------------------------------------------------------------
Behavior = Callable[..., Any]
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"  # generic in the stubs only


class ObserveInterceptor(grpc.aio.ServerInterceptor):
    """Counts each RPC by method and final status (aborts included) and logs one access
    line per refused RPC (any status but OK and CANCELLED) with method, status, member
    (the client certificate's name, when there is one), peer and the hub's message."""

    def __init__(self, metrics: HubMetrics) -> None:
        self.metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:  # an unknown method: gRPC answers UNIMPLEMENTED itself
            return handler
        method = str(handler_call_details.method).lstrip("/")
        return _rewrap(handler, lambda behavior: self._wrap(method, behavior))

    def _wrap(self, method: str, behavior: Behavior) -> Behavior:
        if inspect.isasyncgenfunction(behavior):

            async def streaming(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                started = time.monotonic()
                responses = behavior(request, context)
                try:
                    async for response in responses:
                        yield response
                except BaseException as exc:
                    self._finish(method, context, exc, started)
                    raise
                finally:
                    await responses.aclose()
                self._finish(method, context, None, started)

            return streaming
        if inspect.iscoroutinefunction(behavior):

            async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                started = time.monotonic()
                try:
                    response = await behavior(request, context)
                except BaseException as exc:
                    self._finish(method, context, exc, started)
                    raise
                self._finish(method, context, None, started)
                return response

            return unary
        return behavior  # a synchronous handler: none is registered; leave it be

    def _finish(
        self,
        method: str,
        context: grpc.aio.ServicerContext[Any, Any],
        exc: BaseException | None,
        started: float,
    ) -> None:
        code, message = _final_status(context, exc)
        self.metrics.rpcs.labels(method=method, code=code.name).inc()
        if code in (grpc.StatusCode.OK, grpc.StatusCode.CANCELLED):
            return
        rule = rule_of(code, message)
        self.metrics.rejections.labels(code=code.name, rule=rule).inc()
        member = _member(context)
        access.log(
            logging.ERROR if code in _SERVER_FAULTS else logging.WARNING,
            "refused %s %s member=%s peer=%s: %s",
            method,
            code.name,
            member or "-",
            context.peer(),
            message,
            extra={
                "method": method,
                "code": code.name,
                "rule": rule,
                "member": member,
                "peer": context.peer(),
                "duration_ms": round((time.monotonic() - started) * 1000, 1),
            },
        )


_SERVER_FAULTS: Final = frozenset(
    {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS}
)


def _final_status(
    context: grpc.aio.ServicerContext[Any, Any], exc: BaseException | None
) -> tuple[grpc.StatusCode, str]:
    """The status the client receives: the one set by ``abort``/``set_code`` if any;
    otherwise OK for a return, CANCELLED for a cancellation, UNKNOWN for a crash (as
    gRPC answers it)."""
    code = _status_code(context.code())
    details = context.details() or ""
    message = details.decode(errors="replace") if isinstance(details, bytes) else str(details)
    if code is not None and (exc is None or isinstance(exc, grpc.aio.AbortError)):
        return code, message
    if exc is None:
        return grpc.StatusCode.OK, message
    if isinstance(exc, grpc.aio.AbortError):
        return grpc.StatusCode.UNKNOWN, message
    if isinstance(exc, Exception):
        return grpc.StatusCode.UNKNOWN, f"unexpected {type(exc).__name__}"
    return grpc.StatusCode.CANCELLED, message  # CancelledError, GeneratorExit


def _status_code(value: object) -> grpc.StatusCode | None:
    if isinstance(value, grpc.StatusCode):
        return value
    if isinstance(value, int):  # the core's integer code
        return next((c for c in grpc.StatusCode if c.value[0] == value), None)
    return None


def _member(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """The client certificate's common name, or "" (bearer-token callers, or none yet)."""
    names = list(context.auth_context().get("x509_common_name") or ())
    return bytes(names[0]).decode(errors="replace") if names else ""


def _rewrap(handler: Handler, wrap: Callable[[Behavior], Behavior]) -> Handler:
    """``handler`` with its behavior wrapped, whatever its streaming kind."""
    des, ser = handler.request_deserializer, handler.response_serializer
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(wrap(handler.unary_unary), des, ser)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(wrap(handler.unary_stream), des, ser)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(wrap(handler.stream_unary), des, ser)
    if handler.stream_stream is not None:
        return grpc.stream_stream_rpc_method_handler(wrap(handler.stream_stream), des, ser)
    return handler


# -- health for orchestrators ----------------------------------------------------------------
def _health_address(listen: str, public: bool) -> tuple[str, int]:
    host, port = parse_listen(listen, "--health-listen")
    if not public and not is_loopback(host):
        raise ObserveError(
            f"--health-listen {listen!r}: {host!r} is not a loopback address; the health "
            "port is plaintext and unauthenticated, so give --health-public to expose it"
        )
    return host, port


async def start_health(
    listen: str, public: bool, servicer: health.aio.HealthServicer
) -> tuple[grpc.aio.Server, str]:
    """A second, plaintext server answering grpc.health.v1 only, from the main server's
    own servicer (so both report the same status, NOT_SERVING during shutdown).  Loopback
    only unless ``public``: it has no authentication."""
    host, port = _health_address(listen, public)
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    shown = f"[{host}]" if ":" in host else host
    try:
        bound = server.add_insecure_port(f"{shown}:{port}")
    except RuntimeError as exc:
        raise ObserveError(f"--health-listen {listen!r}: cannot listen ({exc})") from None
    await server.start()
    return server, f"{shown}:{bound}"


@dataclass(frozen=True, slots=True)
class Exposure:
    """The operator's endpoints beside the member port; each is off unless given."""

    metrics_listen: str | None = None
    health_listen: str | None = None
    health_public: bool = False

    def check(self) -> None:
        """Refuse a bad address before anything starts (fail closed)."""
        if self.metrics_listen:
            parse_listen(self.metrics_listen, "--metrics-listen")
        if self.health_listen:
            _health_address(self.health_listen, self.health_public)


@dataclass(slots=True)
class Exposed:
    """The running endpoints of an Exposure."""

    metrics: MetricsEndpoint | None = None
    health: grpc.aio.Server | None = None
    health_address: str = ""

    def announce(self) -> None:
        """Say where each endpoint listens (port 0 binds any free port: tests read this)."""
        if self.metrics is not None:
            sys.stdout.write(f"sighub hub metrics on {self.metrics.url}\n")
        if self.health is not None:
            sys.stdout.write(
                f"sighub hub health on {self.health_address} (plaintext, grpc.health.v1 only)\n"
            )
        sys.stdout.flush()

    async def close(self) -> None:
        """After the main server stopped: probes saw NOT_SERVING until then."""
        if self.health is not None:
            await self.health.stop(grace=None)
        if self.metrics is not None:
            self.metrics.close()


async def expose(
    exposure: Exposure, metrics: HubMetrics, servicer: health.aio.HealthServicer
) -> Exposed:
    """Start the endpoints ``exposure`` asks for; on a failure, stop those started."""
    exposed = Exposed()
    try:
        if exposure.metrics_listen:
            exposed.metrics = serve_metrics(exposure.metrics_listen, metrics.registry)
        if exposure.health_listen:
            exposed.health, exposed.health_address = await start_health(
                exposure.health_listen, exposure.health_public, servicer
            )
    except BaseException:
        await exposed.close()
        raise
    return exposed
