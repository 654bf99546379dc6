"""The gRPC services: thin adapters from wire messages to ``Hub`` rules and back.  All of
the hub's wire <-> model conversion lives here: enums by their readable names (refusing
the zero and unknown numbers), stored RFC 3339 text as Timestamps, audit details, page
tokens.

Blocking SQLite work never runs on the event loop: every unary call runs in one writer
thread (which serializes writes), and each Sync stream reads through its own connection in
the default thread pool.  A commit that appends log leaves makes a checkpoint due; a new
checkpoint, and admin changes, wake every follow stream (streams serve the log up to the
latest checkpoint, so that each batch comes with one that covers it).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ctypes
import functools
import json
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Final, TypeVar

import grpc
from cryptography import x509
from google.protobuf.timestamp_pb2 import Timestamp

from sighub.client._grant import Chain
from sighub.client._hpke import ProvedKey
from sighub.client._leaves import DIRECTORY_TYPES
from sighub.client._merkle import ProofError, leaf_hash
from sighub.client._proto import (
    admin_pb2,
    admin_pb2_grpc,
    directory_pb2,
    directory_pb2_grpc,
    log_pb2,
    log_pb2_grpc,
    publish_pb2,
    publish_pb2_grpc,
    sync_pb2,
    types_pb2,
)
from sighub.client._rpc import CURSOR_AHEAD, MEMBER_STATUS, ROLE, from_timestamp
from sighub.client._stix import format_time
from sighub.client._tls import key_pem
from sighub.client._workers import WorkerExited, WorkerPool
from sighub.hub._errors import HubError
from sighub.hub._hub import Hub
from sighub.hub._observe import HubMetrics
from sighub.hub._pki import ENROLL_PREFIX, issue_enrollment
from sighub.hub._store import TLOG, LogRange, MemberRow, Store
from sighub.hub._validate import Checked, Plan, Rejection, check

__all__ = ["Services"]

VALIDATE_TASK = "sighub.hub._validate:check"  # what the validation workers run
_MS: Final = timedelta(milliseconds=1)

log = logging.getLogger("sighub.hub")
T = TypeVar("T")


CERT_CACHE_MAX: Final = 4096  # parsed client certificates kept (one per member, renewals)


class Services:
    """Shared state of the four services: the hub, the writer thread, the notifier."""

    def __init__(self, hub: Hub, db_path: Path) -> None:
        self.hub = hub
        self.db_path = db_path
        self.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sighub-writer")
        workers = hub.config.validation_workers
        # Child interpreters fed over pipes (not fork, not multiprocessing): each exits at
        # end of input, so none outlives the hub, even one killed with -9.
        self.validators = WorkerPool(workers, VALIDATE_TASK, "validation") if workers else None
        self.changed = asyncio.Condition()
        self.version = 0  # bumped on every change followers should look at
        self.checkpoint_due = asyncio.Event()  # set by commits that appended log leaves
        self.stopping = asyncio.Event()
        self._cert_cache: dict[bytes, tuple[str, str]] = {}
        self.metrics = HubMetrics()

    async def run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.writer, fn)

    async def notify(self) -> None:
        async with self.changed:
            self.version += 1
            self.changed.notify_all()

    def committed(self) -> None:
        """Leaves were appended: a checkpoint is due (``_server._checkpoints`` signs it and
        then wakes the streams)."""
        self.checkpoint_due.set()

    def identify(self, context: grpc.aio.ServicerContext[Any, Any]) -> MemberRow:
        """The caller, from its client certificate or its bearer token (writer thread)."""
        cn, serial = self.peer_cert(context)
        if cn.startswith(ENROLL_PREFIX):
            raise HubError.unauthenticated(f"certificate {cn!r} is only good for Enroll")
        if cn:
            return self.hub.by_cert(cn, serial)
        for key, value in context.invocation_metadata() or ():
            if key == "authorization" and isinstance(value, str) and value.startswith("Bearer "):
                return self.hub.by_token(value[len("Bearer ") :])
        raise HubError.unauthenticated("no client certificate and no bearer token")

    def peer_cert(self, context: grpc.aio.ServicerContext[Any, Any]) -> tuple[str, str]:
        """(common name, serial) of the verified client certificate, or ("", "")."""
        pems = list(context.auth_context().get("x509_pem_cert") or [])
        return self._cert_identity(pems[0]) if pems else ("", "")

    def _cert_identity(self, pem: bytes) -> tuple[str, str]:
        hit = self._cert_cache.get(pem)
        if hit is None:
            cert = x509.load_pem_x509_certificate(pem)
            names = cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
            hit = (str(names[0].value) if names else "", format(cert.serial_number, "x"))
            if len(self._cert_cache) >= CERT_CACHE_MAX:  # renewals keep adding certificates
                self._cert_cache.clear()
            self._cert_cache[pem] = hit
        return hit

    async def close(self) -> None:
        self.stopping.set()
        await self.notify()
        self.writer.shutdown(wait=True)
        if self.validators is not None:
            await asyncio.to_thread(self.validators.close)

    async def validate(self, plan: Plan, raw: bytes) -> Checked | Rejection:
        if self.validators is None:
            return await self.run(lambda: check(plan, raw))
        try:
            result = await asyncio.wrap_future(self.validators.submit(plan, raw))
        except WorkerExited as exc:  # killed (e.g. for memory): the next publish gets a new one
            log.error("publish of envelope %s not validated: %s", plan.envelope_id, exc)
            why = "the validation worker exited before answering; not stored, retry"
            message = f"envelope {plan.envelope_id}: {why}"
            raise HubError(grpc.StatusCode.UNAVAILABLE, message) from None
        except OSError as exc:  # no worker can start: slower, not broken
            log.warning("cannot start a validation worker (%s): validating in-process", exc)
            return await self.run(lambda: check(plan, raw))
        if not isinstance(result, Checked | Rejection):
            raise TypeError(f"validation worker answered a {type(result).__name__}")
        return result


def _rpc(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Answer HubError with its status and message; log anything unexpected."""

    @functools.wraps(fn)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            return await fn(self, request, context)
        except HubError as exc:
            await context.abort(exc.code, exc.message)
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception:
            log.exception("internal error in %s", fn.__name__)
            await context.abort(grpc.StatusCode.INTERNAL, f"{fn.__name__}: internal error")

    return wrapper


# -- conversions ----------------------------------------------------------------------------
def _timestamp(text: str) -> Timestamp:
    """A time the store holds as RFC 3339 text, on the wire."""
    ts = Timestamp()
    ts.FromJsonString(text)
    return ts


def _since(ts: Timestamp, where: str) -> str:
    """A request's Timestamp as the store's text: millisecond precision, rounded up so
    that "at or after" keeps its meaning."""
    try:
        when = from_timestamp(ts)
        return format_time(when + _MS if ts.nanos % 1_000_000 else when)
    except (ValueError, OverflowError):
        raise HubError.invalid(
            f"{where}: received seconds={ts.seconds} nanos={ts.nanos}; expected a time "
            "from 0001-01-01 to 9999-12-31"
        ) from None


def _roles(values: Sequence[int], where: str) -> list[str]:
    """Requested roles by name; the zero and unknown numbers are INVALID_ARGUMENT."""
    try:
        return ROLE.names_of(values, where)
    except ValueError as exc:
        raise HubError.invalid(str(exc)) from None


def _role_values(names: Sequence[str]) -> list[types_pb2.Role.ValueType]:
    return [ROLE.values[n] for n in names]


# Stored audit detail keys -> AuditDetail fields (the hub's writes in _hub.py).
_AUDIT_SCALARS: Final = {
    "key_id": "key_id",
    "previous_key_id": "previous_key_id",
    "cert_serial": "cert_serial",
    "previous_cert_serial": "previous_cert_serial",
    "collab": "collaboration",
    "epoch": "key_epoch",
    "envelope": "envelope_id",
    "seq": "log_sequence",
    "indicators": "indicators",
    "revoked": "revoked_indicators",
}


def _audit_detail(text: str, sequence: int) -> admin_pb2.AuditDetail:
    """A stored detail (JSON object) as its typed message.  A key this table does not know
    is logged, not sent: the message has no place for it."""
    detail = admin_pb2.AuditDetail()
    for key, value in json.loads(text).items():
        if value is None:
            continue
        if key == "roles":
            detail.roles.extend(ROLE.values[r] for r in value if r in ROLE.values)
        elif key == "not_after":
            detail.cert_not_after.CopyFrom(_timestamp(value))
        elif key in _AUDIT_SCALARS:
            setattr(detail, _AUDIT_SCALARS[key], value)
        else:
            log.warning("audit entry %d: detail %r has no AuditDetail field", sequence, key)
    return detail


# Page sizes of ListMembers and Audit (the contract's numbers, in admin.proto).
PAGE_DEFAULT: Final = 100
PAGE_MAX: Final = 1000
_MEMBER_POSITION: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_AUDIT_POSITION: Final = re.compile(r"[1-9][0-9]{0,18}")


def _page_size(requested: int) -> int:
    return min(requested or PAGE_DEFAULT, PAGE_MAX)


def _page_token(rpc: str, position: str) -> str:
    """Opaque to clients: the RPC and where its last page ended, base64url."""
    return base64.urlsafe_b64encode(f"{rpc}:{position}".encode()).decode().rstrip("=")


def _page_position(rpc: str, token: str, pattern: re.Pattern[str]) -> str | None:
    """Where the page a token asks for starts (None for the first page);
    INVALID_ARGUMENT for a token this RPC did not hand out."""
    if not token:
        return None
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, ValueError):
        text = ""
    kind, _, position = text.partition(":")
    if kind != rpc or not pattern.fullmatch(position):
        shown = token if len(token) <= 40 else token[:40] + "..."
        raise HubError.invalid(
            f"{rpc}: page_token {shown!r} is not one this RPC returned; expected empty or "
            "a previous response's next_page_token, unchanged"
        )
    return position


# -- the services ---------------------------------------------------------------------------
class PublishService(publish_pb2_grpc.PublishServiceServicer):
    def __init__(self, s: Services) -> None:
        self.s = s

    @_rpc
    async def Publish(
        self, request: publish_pb2.PublishRequest, context: Any
    ) -> publish_pb2.PublishResponse:
        hub, raw = self.s.hub, request.envelope
        plan, seen = await self.s.run(
            lambda: hub.publish_plan(self.s.identify(context), request.collaboration, raw)
        )
        if seen is None:
            checked = await self.s.validate(plan, raw)
            result = await self.s.run(lambda: hub.publish_commit(plan, raw, checked))
        else:
            result = seen
        self.s.metrics.published(result.sequence, result.indicators, result.duplicate)
        if not result.duplicate:
            self.s.committed()
        return publish_pb2.PublishResponse(
            sequence=result.sequence,
            envelope_id=result.envelope_id,
            indicators=result.indicators,
            duplicate=result.duplicate,
        )


# A stream's own SQLite page cache: it reads each page of the log once.
READER_CACHE_KIB: Final = 64


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One serialized SyncResponse and what the metrics need to know of it."""

    data: bytes
    changes: int
    envelope_bytes: int
    cursor: int
    caught_up: bool


# Most log sequences in one Sync batch: with their hashes (32 bytes) and protobuf framing
# they stay well inside the message size the hub allows besides the envelope bytes.
SYNC_MAX_SEQUENCES: Final = 4096


def _hops(text: str) -> list[sync_pb2.Hop]:
    """A row's stored relays (JSON, "[]" for an envelope published here)."""
    if text == "[]":
        return []
    return [
        sync_pb2.Hop(hub=h["hub"], received_at=_timestamp(h["received_at"]))
        for h in json.loads(text)
    ]


def _log_leaf(seq: int, data: bytes, full: bool) -> types_pb2.LogLeaf:
    if full:
        return types_pb2.LogLeaf(sequence=seq, leaf=data)
    return types_pb2.LogLeaf(sequence=seq, leaf_hash=data)


def _batch(
    part: LogRange, caught_up: bool, head: int, checkpoint: bytes, consistency: list[bytes]
) -> Outgoing:
    """Serialized here, not by gRPC: the stream then holds only these bytes while a slow
    reader keeps the write waiting (not the rows and the message besides)."""
    message = sync_pb2.SyncResponse(
        changes=[
            sync_pb2.Change(
                sequence=r.seq,
                collaboration=r.collab,
                envelope=r.raw,
                hops=_hops(r.hops),
                collab_sequence=r.n,
            )
            for r in part.changes
        ],
        cursor=part.cursor,
        caught_up=caught_up,
        head=max(head, part.cursor),
        leaves=[_log_leaf(*leaf) for leaf in part.leaves],
        checkpoint=checkpoint,
        consistency=consistency,
    )
    size = sum(len(r.raw) for r in part.changes)
    return Outgoing(message.SerializeToString(), len(part.changes), size, part.cursor, caught_up)


def read_batch(
    reader: Store,
    after: int,
    collabs: list[str],
    visible: frozenset[str],
    limit: int,
    max_bytes: int,
) -> tuple[Outgoing, int, int]:
    """The next batch after ``after`` up to the latest checkpoint, serialized; the log's
    size read after it (above the batch's cursor when the log grew past the checkpoint,
    which a new checkpoint soon covers) and the checkpoint's size."""
    latest = reader.checkpoint()
    size, note = latest if latest is not None else (0, b"")
    part = reader.read_range(after, size, collabs, visible, limit, max_bytes, SYNC_MAX_SEQUENCES)
    head = reader.head()
    proof = TLOG.consistency_proof(reader.conn, part.cursor, size) if 0 < part.cursor < size else []
    return _batch(part, part.cursor >= head, head, note, proof), head, size


class _Trimmer:
    """Hands freed heap back to the system after streams close (glibc keeps it in its
    arenas otherwise: RSS would stay at its peak after a burst of streams ends); at most
    once a second, off the event loop."""

    def __init__(self) -> None:
        try:
            self._trim: Callable[[int], int] | None = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):  # not glibc: nothing to do
            self._trim = None
        self._last = 0.0

    def soon(self) -> None:
        now = time.monotonic()
        if self._trim is None or now - self._last < 1.0:
            return
        self._last = now
        asyncio.get_running_loop().run_in_executor(None, self._trim, 0)


def sync_handler(service: SyncService) -> grpc.GenericRpcHandler:
    """SyncService with a pass-through serializer (its batches come serialized)."""
    name = sync_pb2.DESCRIPTOR.services_by_name["SyncService"].full_name
    handler = grpc.unary_stream_rpc_method_handler(
        service.Sync,
        request_deserializer=sync_pb2.SyncRequest.FromString,
        response_serializer=bytes,  # bytes(b) is b itself: no copy
    )
    return grpc.method_handlers_generic_handler(name, {"Sync": handler})


class _StreamReader:
    """A Sync stream's own connection, used from worker threads one call at a time.  A
    stream cancelled while a call runs (its client gone) must not close the connection
    under that call: SQLite crashes the process.  So calls and the close share a lock, and
    the close waits in a worker thread for the call to end."""

    def __init__(self, store: Store) -> None:
        store.conn.execute(f"PRAGMA cache_size=-{READER_CACHE_KIB}")
        self.store = store
        self._lock = threading.Lock()

    def _locked(self, fn: Callable[..., T], *args: Any) -> T:
        with self._lock:
            return fn(*args)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker thread, never concurrently with another call."""
        return await asyncio.to_thread(self._locked, fn, *args)

    def close(self) -> None:
        """Close the connection once no call is running (not awaited: safe in a
        ``finally`` of a cancelled stream)."""
        asyncio.get_running_loop().run_in_executor(None, self._locked, self.store.close)


class SyncService:
    def __init__(self, s: Services) -> None:
        self.s = s
        self.open: dict[str, int] = {}  # member -> open Sync streams (event loop only)
        self._trimmer = _Trimmer()

    async def Sync(self, request: sync_pb2.SyncRequest, context: Any) -> AsyncIterator[bytes]:
        try:
            member, collabs = await self.s.run(lambda: self._authorize(request, context))
            self._count_stream(member.name)
        except HubError as exc:
            await context.abort(exc.code, exc.message)
            return
        reader = _StreamReader(Store(self.s.db_path))
        self.s.metrics.opened(request.follow)
        try:
            head = await reader.run(reader.store.head)
            if request.cursor > head:
                raise HubError.precondition(
                    f"{CURSOR_AHEAD}: cursor {request.cursor}, log head {head} (restored from "
                    "an older backup?)"
                )
            async for out in self._stream(request, member, collabs, reader):
                self.s.metrics.sent(member.name, out.changes, out.envelope_bytes, out.cursor,
                                    out.caught_up)  # fmt: skip
                yield out.data
        except HubError as exc:
            await context.abort(exc.code, exc.message)
        finally:
            self.open[member.name] -= 1
            self.s.metrics.closed(request.follow)
            reader.close()  # after the query in flight, if the stream was cancelled in it
            self._trimmer.soon()

    def _count_stream(self, member: str) -> None:
        limit = self.s.hub.config.max_streams_per_member
        n = self.open.get(member, 0)
        if n >= limit:
            raise HubError.exhausted(
                f"member {member!r} has {n} open Sync streams; at most {limit} "
                "([limits] max_streams_per_member): close one first"
            )
        self.open[member] = n + 1

    def _authorize(
        self, request: sync_pb2.SyncRequest, context: Any
    ) -> tuple[MemberRow, list[str]]:
        member = self.s.identify(context)
        self.s.hub.require(member, "subscriber", "peer")
        mine = self.s.hub.store.member_collabs(member.name)
        wanted = list(request.collaborations) or mine
        for c in wanted:
            if c not in mine:
                raise HubError.denied(f"member {member.name!r} is not in collaboration {c!r}")
        return member, sorted(set(wanted))

    def _still_allowed(
        self, member: MemberRow, collabs: list[str]
    ) -> tuple[list[str], frozenset[str]]:
        """The stream's collaborations the member is still in, and all of its
        collaborations now (whose log leaves it may see in full)."""
        now = self.s.hub.store.member(member.name)
        if now is None or not now.active:
            raise HubError.denied(f"member {member.name!r} is {now.status if now else 'removed'}")
        mine = frozenset(self.s.hub.store.member_collabs(member.name))
        return [c for c in collabs if c in mine], mine

    async def _stream(
        self,
        request: sync_pb2.SyncRequest,
        member: MemberRow,
        collabs: list[str],
        reader: _StreamReader,
    ) -> AsyncIterator[Outgoing]:
        cfg = self.s.hub.config
        limit = min(request.batch_size or cfg.sync_batch_envelopes, 1000)
        cursor = request.cursor
        seen_version = -1
        visible: frozenset[str] = frozenset()
        keepalive = False
        while not self.s.stopping.is_set():
            version = self.s.version
            if version != seen_version:
                collabs, visible = await self.s.run(
                    functools.partial(self._still_allowed, member, collabs)
                )
                seen_version = version
            out, head, signed = await reader.run(
                read_batch, reader.store, cursor, collabs, visible, limit, cfg.sync_batch_max_bytes
            )
            if out.cursor > cursor:
                cursor = out.cursor
                yield out
                if out.caught_up and not request.follow:
                    return
                continue
            # Nothing new up to the checkpoint.  The log past it (head > cursor, or a
            # cursor beyond it) gets a checkpoint soon, which wakes this stream.
            behind = head > cursor or signed < cursor
            if not behind and (keepalive or not request.follow):
                yield out
                if not request.follow:
                    return
            keepalive = False
            async with self.s.changed:
                if self.s.version == version and not self.s.stopping.is_set():
                    try:
                        await asyncio.wait_for(self.s.changed.wait(), cfg.keepalive_seconds)
                    except TimeoutError:
                        keepalive = True


class DirectoryService(directory_pb2_grpc.DirectoryServiceServicer):
    def __init__(self, s: Services) -> None:
        self.s = s

    @_rpc
    async def Enroll(
        self, request: directory_pb2.EnrollRequest, context: Any
    ) -> directory_pb2.EnrollResponse:
        cn, _ = self.s.peer_cert(context)
        if cn and cn != ENROLL_PREFIX + request.member:
            raise HubError.denied(f"certificate {cn!r} cannot enroll member {request.member!r}")
        chain = (
            Chain(request.grant, request.grant_signature, request.binding)
            if request.grant or request.grant_signature or request.binding
            else None
        )
        encryption = (
            ProvedKey(
                request.encryption_suite, request.encryption_public_key, request.encryption_proof
            )
            if request.encryption_suite or request.encryption_public_key or request.encryption_proof
            else None
        )
        cert, identity, kid, bearer = await self.s.run(
            lambda: self.s.hub.enroll(
                request.member,
                request.token,
                request.csr_pem,
                request.signing_public_key,
                chain,
                encryption,
            )
        )
        self.s.committed()
        await self.s.notify()
        return directory_pb2.EnrollResponse(
            certificate_pem=cert.encode(), identity=identity, key_id=kid, bearer_token=bearer
        )

    @_rpc
    async def GetKeys(
        self, request: directory_pb2.GetKeysRequest, context: Any
    ) -> directory_pb2.GetKeysResponse:
        rows = await self.s.run(lambda: self.s.hub.key_directory(self.s.identify(context)))
        return directory_pb2.GetKeysResponse(
            keys=[
                directory_pb2.MemberKey(
                    member=r.member,
                    identity=r.identity,
                    key_id=r.key_id,
                    public_key=r.public_key,
                    added_at=_timestamp(r.added),
                    revoked_at=None if r.revoked_at is None else _timestamp(r.revoked_at),
                    revoked_sequence=r.revoked_seq or 0,
                    member_status=MEMBER_STATUS.values[r.status],
                )
                for r in rows
            ]
        )

    @_rpc
    async def GetCollabKeys(
        self, request: directory_pb2.GetCollabKeysRequest, context: Any
    ) -> directory_pb2.GetCollabKeysResponse:
        rows = await self.s.run(lambda: self.s.hub.collab_keys(self.s.identify(context)))
        return directory_pb2.GetCollabKeysResponse(
            keys=[
                directory_pb2.CollabKey(
                    collaboration=c, epoch=e, secret=s, created_at=_timestamp(t)
                )
                for c, e, s, t in rows
            ]
        )

    @_rpc
    async def RotateSigningKey(
        self, request: directory_pb2.RotateSigningKeyRequest, context: Any
    ) -> directory_pb2.RotateSigningKeyResponse:
        kid, old = await self.s.run(
            lambda: self.s.hub.rotate_signing_key(
                self.s.identify(context), request.new_public_key, request.proof
            )
        )
        self.s.committed()
        return directory_pb2.RotateSigningKeyResponse(key_id=kid, previous_key_id=old)

    @_rpc
    async def RotateEncryptionKey(
        self, request: directory_pb2.RotateEncryptionKeyRequest, context: Any
    ) -> directory_pb2.RotateEncryptionKeyResponse:
        proved = ProvedKey(request.suite, request.public_key, request.proof)
        kid, signer, old, seq = await self.s.run(
            lambda: self.s.hub.rotate_encryption_key(self.s.identify(context), proved)
        )
        self.s.committed()
        return directory_pb2.RotateEncryptionKeyResponse(
            encryption_key_id=kid,
            signing_key_id=signer,
            previous_encryption_key_id=old,
            sequence=seq,
        )

    @_rpc
    async def RenewCertificate(
        self, request: directory_pb2.RenewCertificateRequest, context: Any
    ) -> directory_pb2.RenewCertificateResponse:
        def work() -> tuple[bytes, str]:
            if not self.s.peer_cert(context)[0]:  # a bearer token does not prove the TLS key
                raise HubError.unauthenticated(
                    "RenewCertificate: call it over mTLS with the member's current certificate"
                )
            return self.s.hub.renew_certificate(self.s.identify(context), request.csr_pem)

        cert, not_after = await self.s.run(work)
        return directory_pb2.RenewCertificateResponse(
            certificate_pem=cert, not_after=_timestamp(not_after)
        )


class AdminService(admin_pb2_grpc.AdminServiceServicer):
    def __init__(self, s: Services) -> None:
        self.s = s

    def _admin(self, context: Any) -> str:
        m = self.s.identify(context)
        self.s.hub.require(m, "admin")
        return m.name

    def _member(self, name: str) -> admin_pb2.Member:
        store = self.s.hub.store
        m = store.member(name)
        if m is None:
            raise HubError.not_found(f"member {name!r} does not exist")
        return admin_pb2.Member(
            name=m.name,
            identity=m.identity,
            roles=_role_values(m.roles),
            status=MEMBER_STATUS.values[m.status],
            collaborations=store.member_collabs(name),
            key_ids=[k[0] for k in store.member_keys(name) if k[3] is None],
            created_at=_timestamp(m.created),
        )

    def _collab(self, name: str) -> admin_pb2.Collaboration:
        store = self.s.hub.store
        row = store.one("SELECT created FROM collabs WHERE name=?", name)
        if row is None:
            raise HubError.not_found(f"collaboration {name!r} does not exist")
        return admin_pb2.Collaboration(
            name=name,
            members=store.collab_members(name),
            key_epoch=store.collab_epoch(name) or 0,
            created_at=_timestamp(row[0]),
        )

    async def _change(self, fn: Callable[[], T]) -> T:
        result = await self.s.run(fn)
        self.s.committed()  # most changes are log leaves
        await self.s.notify()  # streams re-check who may still read what
        return result

    @_rpc
    async def AddMember(
        self, request: admin_pb2.AddMemberRequest, context: Any
    ) -> admin_pb2.AddMemberResponse:
        def work() -> admin_pb2.AddMemberResponse:
            actor = self._admin(context)
            roles = _roles(request.roles, f"member {request.name!r}: roles")
            m, token = self.s.hub.add_member(actor, request.name, roles)
            cert, key = issue_enrollment(self.s.hub.ca_key, self.s.hub.ca_pem, m.name)
            return admin_pb2.AddMemberResponse(
                member=self._member(m.name),
                enrollment_token=token,
                enrollment_cert_pem=cert,
                enrollment_key_pem=key_pem(key),
            )

        return await self._change(work)

    @_rpc
    async def ListMembers(
        self, request: admin_pb2.ListMembersRequest, context: Any
    ) -> admin_pb2.ListMembersResponse:
        def work() -> admin_pb2.ListMembersResponse:
            self._admin(context)
            after = _page_position("ListMembers", request.page_token, _MEMBER_POSITION)
            size = _page_size(request.page_size)
            rows = self.s.hub.store.members(after or "", size + 1)
            page = rows[:size]
            more = len(rows) > size
            return admin_pb2.ListMembersResponse(
                members=[self._member(m.name) for m in page],
                next_page_token=_page_token("ListMembers", page[-1].name) if more else "",
            )

        return await self.s.run(work)

    @_rpc
    async def ShowMember(
        self, request: admin_pb2.ShowMemberRequest, context: Any
    ) -> admin_pb2.ShowMemberResponse:
        def work() -> admin_pb2.ShowMemberResponse:
            self._admin(context)
            return admin_pb2.ShowMemberResponse(member=self._member(request.name))

        return await self.s.run(work)

    @_rpc
    async def SuspendMember(
        self, request: admin_pb2.SuspendMemberRequest, context: Any
    ) -> admin_pb2.SuspendMemberResponse:
        def work() -> admin_pb2.SuspendMemberResponse:
            m = self.s.hub.set_status(self._admin(context), request.name, "suspended")
            return admin_pb2.SuspendMemberResponse(member=self._member(m.name))

        return await self._change(work)

    @_rpc
    async def ResumeMember(
        self, request: admin_pb2.ResumeMemberRequest, context: Any
    ) -> admin_pb2.ResumeMemberResponse:
        def work() -> admin_pb2.ResumeMemberResponse:
            m = self.s.hub.set_status(self._admin(context), request.name, "active")
            return admin_pb2.ResumeMemberResponse(member=self._member(m.name))

        return await self._change(work)

    @_rpc
    async def RemoveMember(
        self, request: admin_pb2.RemoveMemberRequest, context: Any
    ) -> admin_pb2.RemoveMemberResponse:
        def work() -> admin_pb2.RemoveMemberResponse:
            m = self.s.hub.remove_member(self._admin(context), request.name)
            return admin_pb2.RemoveMemberResponse(member=self._member(m.name))

        return await self._change(work)

    @_rpc
    async def RevokeMemberKey(
        self, request: admin_pb2.RevokeMemberKeyRequest, context: Any
    ) -> admin_pb2.RevokeMemberKeyResponse:
        def work() -> admin_pb2.RevokeMemberKeyResponse:
            m = self.s.hub.revoke_key(self._admin(context), request.member, request.key_id)
            return admin_pb2.RevokeMemberKeyResponse(member=self._member(m.name))

        return await self._change(work)

    @_rpc
    async def AttestMemberKey(
        self, request: admin_pb2.AttestMemberKeyRequest, context: Any
    ) -> admin_pb2.AttestMemberKeyResponse:
        def work() -> admin_pb2.AttestMemberKeyResponse:
            m = self.s.hub.attest_key(
                self._admin(context), request.member, request.attestation, request.signature
            )
            return admin_pb2.AttestMemberKeyResponse(member=self._member(m.name))

        return await self._change(work)

    @_rpc
    async def AddCollab(
        self, request: admin_pb2.AddCollabRequest, context: Any
    ) -> admin_pb2.AddCollabResponse:
        def work() -> admin_pb2.AddCollabResponse:
            name = self.s.hub.add_collab(self._admin(context), request.name)
            return admin_pb2.AddCollabResponse(collaboration=self._collab(name))

        return await self._change(work)

    @_rpc
    async def JoinCollab(
        self, request: admin_pb2.JoinCollabRequest, context: Any
    ) -> admin_pb2.JoinCollabResponse:
        def work() -> admin_pb2.JoinCollabResponse:
            name = self.s.hub.join(self._admin(context), request.collaboration, request.member)
            return admin_pb2.JoinCollabResponse(collaboration=self._collab(name))

        return await self._change(work)

    @_rpc
    async def LeaveCollab(
        self, request: admin_pb2.LeaveCollabRequest, context: Any
    ) -> admin_pb2.LeaveCollabResponse:
        def work() -> admin_pb2.LeaveCollabResponse:
            name = self.s.hub.leave(self._admin(context), request.collaboration, request.member)
            return admin_pb2.LeaveCollabResponse(collaboration=self._collab(name))

        return await self._change(work)

    @_rpc
    async def RotateCollabKey(
        self, request: admin_pb2.RotateCollabKeyRequest, context: Any
    ) -> admin_pb2.RotateCollabKeyResponse:
        def work() -> admin_pb2.RotateCollabKeyResponse:
            self.s.hub.rotate_collab_key(self._admin(context), request.name)
            return admin_pb2.RotateCollabKeyResponse(collaboration=self._collab(request.name))

        return await self._change(work)

    @_rpc
    async def Audit(self, request: admin_pb2.AuditRequest, context: Any) -> admin_pb2.AuditResponse:
        def work() -> admin_pb2.AuditResponse:
            self._admin(context)
            before = _page_position("Audit", request.page_token, _AUDIT_POSITION)
            since = _since(request.since, "Audit: since") if request.HasField("since") else ""
            size = _page_size(request.page_size)
            rows = self.s.hub.audit_log(
                request.member, since, size + 1, None if before is None else int(before)
            )
            page = rows[:size]
            more = len(rows) > size
            return admin_pb2.AuditResponse(
                entries=[
                    admin_pb2.AuditEntry(
                        sequence=int(r[0]),
                        at=_timestamp(str(r[1])),
                        actor=str(r[2]),
                        action=str(r[3]),
                        target=str(r[4]),
                        detail=_audit_detail(str(r[5]), int(r[0])),
                    )
                    for r in page
                ],
                next_page_token=_page_token("Audit", str(page[-1][0])) if more else "",
            )

        return await self.s.run(work)


# Most leaves one GetLeaves answers (the contract's number, in log.proto), and about how
# many bytes of them.
LEAVES_MAX: Final = 1000
LEAVES_MAX_BYTES: Final = 256 * 1024


class LogService(log_pb2_grpc.LogServiceServicer):
    """Checkpoints, proofs and leaves of the transparency log, for any active member."""

    def __init__(self, s: Services) -> None:
        self.s = s

    async def _proof(self, context: Any, fn: Callable[[Store], list[bytes]]) -> list[bytes]:
        def work() -> list[bytes]:
            self.s.identify(context)
            try:
                return fn(self.s.hub.store)
            except ProofError as exc:
                raise HubError.invalid(str(exc)) from None

        return await self.s.run(work)

    @_rpc
    async def GetCheckpoint(
        self, request: log_pb2.GetCheckpointRequest, context: Any
    ) -> log_pb2.GetCheckpointResponse:
        def work() -> bytes:
            self.s.identify(context)
            latest = self.s.hub.store.checkpoint()
            if latest is None:  # serve() issues one before it listens
                raise HubError(grpc.StatusCode.UNAVAILABLE, "no checkpoint issued yet; retry")
            return latest[1]

        return log_pb2.GetCheckpointResponse(checkpoint=await self.s.run(work))

    @_rpc
    async def GetInclusionProof(
        self, request: log_pb2.GetInclusionProofRequest, context: Any
    ) -> log_pb2.GetInclusionProofResponse:
        index, size = request.leaf_index, request.tree_size
        hashes = await self._proof(context, lambda st: TLOG.inclusion_proof(st.conn, index, size))
        return log_pb2.GetInclusionProofResponse(hashes=hashes)

    @_rpc
    async def GetConsistencyProof(
        self, request: log_pb2.GetConsistencyProofRequest, context: Any
    ) -> log_pb2.GetConsistencyProofResponse:
        first, second = request.first_size, request.second_size
        hashes = await self._proof(
            context, lambda st: TLOG.consistency_proof(st.conn, first, second)
        )
        return log_pb2.GetConsistencyProofResponse(hashes=hashes)

    @_rpc
    async def GetLeaves(
        self, request: log_pb2.GetLeavesRequest, context: Any
    ) -> log_pb2.GetLeavesResponse:
        start, end = request.start, request.end

        def work() -> list[types_pb2.LogLeaf]:
            member = self.s.identify(context)
            store = self.s.hub.store
            size = store.head()
            if not start < end <= size:
                raise HubError.invalid(
                    f"GetLeaves: received start={start} end={end}; expected"
                    f" 0 <= start < end <= {size} (the log's size)"
                )
            mine = frozenset(store.member_collabs(member.name))
            out: list[types_pb2.LogLeaf] = []
            total = 0
            for seq, kind, collab, leaf in store.leaf_rows(start + 1, end, LEAVES_MAX):
                full = kind in DIRECTORY_TYPES or collab in mine
                item = leaf if full else leaf_hash(leaf)
                if out and total + len(item) > LEAVES_MAX_BYTES:
                    break
                out.append(_log_leaf(seq, item, full))
                total += len(item)
            return out

        return log_pb2.GetLeavesResponse(leaves=await self.s.run(work))
