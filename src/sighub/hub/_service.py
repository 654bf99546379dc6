"""The gRPC services: thin adapters from wire messages to ``Hub`` rules and back
(``LogService`` is in ``_logservice``, ``AdminService`` in ``_adminservice``, with the
conversions only the operator's RPCs use).  The hub's wire <-> model conversion lives
here: stored RFC 3339 text as Timestamps, envelopes and leaves as sync messages.

Blocking SQLite work never runs on the event loop: every unary call runs in one writer
thread (which serializes writes; ``_writer`` runs small jobs before large bundles' commits),
and each Sync stream reads through its own connection in the default thread pool.  A
commit that appends log leaves signs a checkpoint in its own writer turn, or makes one due
(coalesced); a new checkpoint, and admin changes, wake every follow stream (streams serve
the log up to the latest checkpoint, so that each batch comes with one that covers it).
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

import grpc
from cryptography import x509
from google.protobuf.timestamp_pb2 import Timestamp

from sighub.client._grant import Chain
from sighub.client._hpke import ProvedKey
from sighub.client._proto import (
    directory_pb2,
    directory_pb2_grpc,
    publish_pb2,
    publish_pb2_grpc,
    sync_pb2,
    types_pb2,
)
from sighub.client._rpc import CURSOR_AHEAD, MEMBER_STATUS, wrap_from_pb, wrap_to_pb
from sighub.client._workers import WorkerExited, WorkerPool
from sighub.hub import _epochs
from sighub.hub._errors import HubError
from sighub.hub._history import history
from sighub.hub._hub import Hub, PublishResult
from sighub.hub._observe import HubMetrics
from sighub.hub._pki import ENROLL_PREFIX
from sighub.hub._store import TLOG, EnvelopeRow, LogRange, MemberRow, Store
from sighub.hub._validate import Checked, Plan, Rejection, check
from sighub.hub._writer import Writer, WriterClosed

if TYPE_CHECKING:
    from sighub.hub._relay import RelayManager

__all__ = ["Services"]

VALIDATE_TASK = "sighub.hub._validate:check"  # what the validation workers run

log = logging.getLogger("sighub.hub")
T = TypeVar("T")


CERT_CACHE_MAX: Final = 4096  # parsed client certificates kept (one per member, renewals)
# Envelopes up to this size (about 90 indicators) are checked, validated and committed in
# one prompt writer turn, never queued behind large bundles (in the writer or the
# validation workers): a small publish does not wait for other members' bulk.
PROMPT_ENVELOPE_BYTES: Final = 64 * 1024
CHECKPOINT_COALESCE: Final = 0.01  # seconds: a live push waits at most this for its checkpoint


class Services:
    """Shared state of the four services: the hub, the writer thread, the notifier."""

    def __init__(self, hub: Hub, db_path: Path) -> None:
        self.hub = hub
        self.db_path = db_path
        self.writer = Writer()
        workers = hub.config.validation_workers
        # Child interpreters fed over pipes (not fork, not multiprocessing): each exits at
        # end of input, so none outlives the hub, even one killed with -9.
        self.validators = WorkerPool(workers, VALIDATE_TASK, "validation") if workers else None
        self.changed = asyncio.Condition()
        self.version = 0  # bumped on every change followers should look at
        self.checkpoint_due = asyncio.Event()  # set by commits that appended log leaves
        self.last_signed = time.monotonic()  # of the latest checkpoint (writer thread)
        self.stopping = asyncio.Event()
        self._cert_cache: dict[bytes, tuple[str, str]] = {}
        self.metrics = HubMetrics()
        self.relays: RelayManager | None = None  # set by ``serve`` (federation relays)

    async def run(self, fn: Callable[[], T], bulk_lane: str | None = None) -> T:
        """``fn()`` on the writer's thread: promptly, or in ``bulk_lane``'s turn (see
        ``_writer``)."""
        try:
            future = self.writer.submit(fn, bulk_lane)
        except WriterClosed:  # shutting down: a call that came late may retry elsewhere
            raise HubError.unavailable("the hub is shutting down; retry shortly") from None
        return await asyncio.wrap_future(future)

    async def notify(self) -> None:
        async with self.changed:
            self.version += 1
            self.changed.notify_all()

    def sign(self, force: bool = False) -> tuple[int, bytes] | None:
        """Issue a checkpoint if the log grew (or ``force``); writer thread."""
        issued = self.hub.issue_checkpoint(force=force)
        if issued is not None:
            self.last_signed = time.monotonic()
        return issued

    def sign_after_commit(self) -> tuple[int, bytes] | None:
        """Right after a commit, in the same writer turn: sign its checkpoint now, unless
        one was signed within CHECKPOINT_COALESCE and no large bundle waits for the writer
        (the checkpoint task then signs it, in a prompt job that runs soon).  A checkpoint
        left to its own writer job behind a large bundle's commit would keep every follower
        waiting for that commit.  A failure here (a full disk) does not fail the publish,
        which is committed: the checkpoint task retries."""
        recent = time.monotonic() - self.last_signed < CHECKPOINT_COALESCE
        if recent and not self.writer.bulk_waiting():
            return None
        try:
            return self.sign()
        except Exception:
            log.exception("checkpoint after a commit not issued; the checkpoint task retries")
            return None

    async def signed(self, issued: tuple[int, bytes]) -> None:
        """A checkpoint was issued: wake the Sync streams, which serve the log up to it."""
        self.metrics.log_size(issued[0])
        await self.notify()

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
        await asyncio.to_thread(self.writer.shutdown)
        if self.validators is not None:
            await asyncio.to_thread(self.validators.close)

    async def validate(self, plan: Plan, raw: bytes) -> Checked | Rejection:
        """A large envelope's validation: in a worker, else in its member's bulk turn."""
        if self.validators is None:
            return await self.run(lambda: check(plan, raw), plan.member)
        try:
            result = await asyncio.wrap_future(self.validators.submit(plan, raw))
        except WorkerExited as exc:  # killed (e.g. for memory): the next publish gets a new one
            log.error("publish of envelope %s not validated: %s", plan.envelope_id, exc)
            why = "the validation worker exited before answering; not stored, retry"
            message = f"envelope {plan.envelope_id}: {why}"
            raise HubError(grpc.StatusCode.UNAVAILABLE, message) from None
        except OSError as exc:  # no worker can start: slower, not broken
            log.warning("cannot start a validation worker (%s): validating in-process", exc)
            return await self.run(lambda: check(plan, raw), plan.member)
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


class PublishService(publish_pb2_grpc.PublishServiceServicer):
    def __init__(self, s: Services) -> None:
        self.s = s

    @_rpc
    async def Publish(
        self, request: publish_pb2.PublishRequest, context: Any
    ) -> publish_pb2.PublishResponse:
        # Shielded: a call cancelled once its envelope is in the writer's queue still wakes
        # the followers after the commit (else they would wait for the next checkpoint).
        result = await asyncio.shield(self._publish(request, context))
        return publish_pb2.PublishResponse(
            sequence=result.sequence,
            envelope_id=result.envelope_id,
            indicators=result.indicators,
            duplicate=result.duplicate,
        )

    async def _publish(self, request: publish_pb2.PublishRequest, context: Any) -> PublishResult:
        hub, raw = self.s.hub, request.envelope

        def plan_() -> tuple[Plan, PublishResult | None]:
            return hub.publish_plan(self.s.identify(context), request.collaboration, raw)

        if len(raw) <= PROMPT_ENVELOPE_BYTES:
            result, issued = await self.s.run(lambda: self._small(plan_(), raw))
        else:
            plan, seen = await self.s.run(plan_)
            if seen is None:
                checked = await self.s.validate(plan, raw)
                result, issued = await self.s.run(lambda: self._commit(plan, raw, checked),
                                                  plan.member)  # fmt: skip
            else:
                result, issued = seen, None
        self.s.metrics.published(result.sequence, result.indicators, result.duplicate)
        if issued is not None:
            await self.s.signed(issued)
        elif not result.duplicate:
            self.s.committed()
        return result

    def _small(
        self, planned: tuple[Plan, PublishResult | None], raw: bytes
    ) -> tuple[PublishResult, tuple[int, bytes] | None]:
        """A small envelope, whole in one prompt writer turn: its checks, validation (a
        millisecond or so) and commit.  Under load every writer turn waits for the large
        commit in progress; one turn, not two, and no validation queue behind large
        bundles in the workers."""
        plan, seen = planned
        if seen is not None:
            return seen, None
        return self._commit(plan, raw, check(plan, raw))

    def _commit(
        self, plan: Plan, raw: bytes, checked: Checked | Rejection
    ) -> tuple[PublishResult, tuple[int, bytes] | None]:
        result = self.s.hub.publish_commit(plan, raw, checked)
        return result, None if result.duplicate else self.s.sign_after_commit()


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


def _hops(text: str) -> tuple[list[sync_pb2.Hop], bytes]:
    """A row's stored hop records (``_hops.encode_hops``, "[]" for an envelope published
    here), as the Change's summary and its exact bytes."""
    if text == "[]":
        return [], b""
    # Checked when the relay stored them (and by every member from the bytes sent): a
    # row served to each follower is read, not checked and re-encoded again.
    try:
        hops = [
            sync_pb2.Hop(hub=h["relay"], received_at=_timestamp(h["received"]))
            for h in json.loads(text)
        ]
    except (ValueError, KeyError, TypeError):  # no summary; members check the bytes
        hops = []
    return hops, text.encode()


def _change(r: EnvelopeRow) -> sync_pb2.Change:
    hops, records = _hops(r.hops)
    return sync_pb2.Change(
        sequence=r.seq,
        collaboration=r.collab,
        envelope=r.raw,
        hops=hops,
        collab_sequence=r.n,
        hop_records=records,
    )


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
        changes=[_change(r) for r in part.changes],
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
    history = grpc.unary_unary_rpc_method_handler(
        service.GetHistory,
        request_deserializer=sync_pb2.GetHistoryRequest.FromString,
        response_serializer=sync_pb2.GetHistoryResponse.SerializeToString,
    )
    return grpc.method_handlers_generic_handler(name, {"Sync": handler, "GetHistory": history})


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

    @_rpc
    async def GetHistory(
        self, request: sync_pb2.GetHistoryRequest, context: Any
    ) -> sync_pb2.GetHistoryResponse:
        def allowed() -> None:  # on the writer's thread, as every caller check
            member = self.s.identify(context)
            self.s.hub.require(member, "subscriber", "peer")
            self.s.hub.require_member_of(member, request.collaboration)

        def read() -> list[tuple[EnvelopeRow, list[bytes]]]:
            # Up to 256 proofs: on a connection of its own, so that publishes never wait
            # behind a member catching up with a collaboration's history.
            store = Store(self.s.db_path)
            try:
                return history(
                    store,
                    request.collaboration,
                    request.after_number,
                    request.before_sequence,
                    request.tree_size,
                    request.page_size,
                    self.s.hub.config.sync_batch_max_bytes,
                )
            finally:
                store.close()

        await self.s.run(allowed)
        entries = await asyncio.to_thread(read)
        return sync_pb2.GetHistoryResponse(
            entries=[
                sync_pb2.HistoryEntry(change=_change(row), inclusion_proof=proof)
                for row, proof in entries
            ]
        )

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
        named = sorted(set(request.collaborations))
        for c in named:
            if c not in mine:
                raise HubError.denied(f"member {member.name!r} is not in collaboration {c!r}")
        # A collaboration asked for by name whose current key this member cannot hold is
        # refused (its stewards excepted: they sync to make the key).  A stream of all of
        # the member's collaborations is not: one gap would stop every other one, and a
        # steward's duties with it.
        for c in named:
            gap = _epochs.missing_for(self.s.hub.store, member.name, c)
            if gap is not None and member.name not in gap[1]:
                raise _epochs.refusal(c, member.name, *gap)
        return member, named or mine

    @staticmethod
    def _still_allowed(
        store: Store, member: MemberRow, collabs: list[str]
    ) -> tuple[list[str], frozenset[str]]:
        """The stream's collaborations the member is still in, and all of its
        collaborations now (whose log leaves it may see in full), read on the stream's
        own connection: every commit asks it of every follow stream, and the writer's
        thread has better things to do."""
        now = store.member(member.name)
        if now is None or not now.active:
            raise HubError.denied(f"member {member.name!r} is {now.status if now else 'removed'}")
        mine = frozenset(store.member_collabs(member.name))
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
                collabs, visible = await reader.run(
                    self._still_allowed, reader.store, member, collabs
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
    async def PutEpoch(
        self, request: directory_pb2.PutEpochRequest, context: Any
    ) -> directory_pb2.PutEpochResponse:
        wraps = [wrap_from_pb(w) for w in request.wraps]
        hub = self.s.hub
        seq, stored = await self.s.run(
            lambda: _epochs.put_epoch(
                hub.store, self.s.identify(context), request.collaboration,
                request.epoch, request.commitment, wraps, hub.now(),
            )
        )  # fmt: skip
        self.s.committed()
        return directory_pb2.PutEpochResponse(sequence=seq, stored=stored)

    @_rpc
    async def GetWraps(
        self, request: directory_pb2.GetWrapsRequest, context: Any
    ) -> directory_pb2.GetWrapsResponse:
        store = self.s.hub.store
        wraps, missing = await self.s.run(
            lambda: _epochs.wraps_for(store, self.s.identify(context), request.collaboration)
        )
        return directory_pb2.GetWrapsResponse(
            wraps=[wrap_to_pb(w) for w in wraps],
            missing=[
                directory_pb2.MissingWrap(collaboration=c, epoch=e, stewards=s)
                for c, e, s in missing
            ],
        )

    @_rpc
    async def GetCollabStatus(
        self, request: directory_pb2.GetCollabStatusRequest, context: Any
    ) -> directory_pb2.GetCollabStatusResponse:
        store = self.s.hub.store
        status = await self.s.run(
            lambda: _epochs.collab_status(store, self.s.identify(context), request.collaboration)
        )
        return directory_pb2.GetCollabStatusResponse(
            stewards=status.stewards,
            members=[
                directory_pb2.CollabMember(member=m, encryption_key_id=k)
                for m, k in status.members
            ],
            epochs=[
                directory_pb2.EpochHolders(
                    epoch=e.epoch, steward=e.steward, holders=e.holders,
                    created_at=_timestamp(e.created),
                )
                for e in status.epochs
            ],
            earlier_epochs=status.earlier_epochs,
        )  # fmt: skip

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
