"""Talking to a hub: channels (mTLS by default), typed results, errors.

All protobuf <-> model conversion lives here; nothing outside this module sees a
generated type or a ``grpc.RpcError``.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from sighub.client import _json
from sighub.client._errors import EXIT_REFUSED, EXIT_UNREACHABLE, KeyFileError, SighubError
from sighub.client._grant import Chain
from sighub.client._hpke import ProvedKey
from sighub.client._keys import read_secret
from sighub.client._proto import (
    directory_pb2,
    directory_pb2_grpc,
    log_pb2,
    log_pb2_grpc,
    publish_pb2,
    publish_pb2_grpc,
    sync_pb2,
    sync_pb2_grpc,
    types_pb2,
)
from sighub.client._wraps import Wrap

if TYPE_CHECKING:  # generic in the stubs only
    from google.protobuf.internal.enum_type_wrapper import _EnumTypeWrapper

__all__ = [
    "CURSOR_AHEAD",
    "MEMBER_STATUS",
    "MTLS",
    "PERMANENT",
    "PLAINTEXT",
    "ROLE",
    "Change",
    "Credential",
    "DirectoryKey",
    "Hop",
    "HubClient",
    "HubRejected",
    "HubUnreachable",
    "LogLeaf",
    "PublishResult",
    "SharedKey",
    "SyncBatch",
    "WireEnum",
    "answer_time",
    "from_timestamp",
    "is_loopback",
    "open_channel",
    "to_timestamp",
]

T = TypeVar("T")
V = TypeVar("V", bound=int)
# The hub's words when a member's cursor is past the end of its log (a hub restored from
# an older backup, or one hiding changes): the daemon turns them into an alarm.
CURSOR_AHEAD: Final = "cursor ahead of log"
# Statuses that retrying cannot fix: the member is suspended, removed or not recognised.
PERMANENT: Final = frozenset({"PERMISSION_DENIED", "UNAUTHENTICATED"})
MAX_MESSAGE: Final = 64 * 1024 * 1024
# The transports a credential can name (``hub.json``'s ``transport``).
MTLS: Final = "mtls"
PLAINTEXT: Final = "plaintext"
TRANSPORTS: Final = (MTLS, PLAINTEXT)
CHANNEL_OPTIONS: Final = [
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.max_send_message_length", MAX_MESSAGE),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
]


class HubRejected(SighubError):
    """The hub answered with an error status: ``code`` is its name (e.g.
    ``PERMISSION_DENIED``), the message is the hub's."""

    exit_code = EXIT_REFUSED

    def __init__(self, code: str, message: str, text: str | None = None) -> None:
        super().__init__(text or f"hub refused ({code}): {message}")
        self.code = code
        self.hub_message = message


class HubUnreachable(HubRejected):
    """No answer from the hub (down, wrong address, TLS mismatch, deadline passed): a
    different remedy from a refusal, so a different exit code."""

    exit_code = EXIT_UNREACHABLE
    CODES: Final = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED"})

    def __init__(
        self, code: str, message: str, address: str | None, text: str | None = None
    ) -> None:
        where = f"hub {address}" if address else "the hub"
        super().__init__(
            code,
            message,
            text
            or f"{where} unreachable ({code}): {message}; check the address (--hub) and "
            "that it is serving, and --insecure: plaintext only reaches a hub serving "
            "with --insecure, TLS only one serving without it",
        )
        self.address = address


def _wrap(exc: grpc.RpcError, address: str | None = None) -> HubRejected:
    code = exc.code() if hasattr(exc, "code") else None
    details = str((exc.details() if hasattr(exc, "details") else None) or exc)
    name = code.name if code is not None else "UNKNOWN"
    if name in HubUnreachable.CODES:
        return HubUnreachable(name, details, address)
    return HubRejected(name, details)


def call(fn: Callable[[], T], address: str | None = None) -> T:
    """``fn()``, with a gRPC error turned into :class:`HubRejected` or, when no answer
    came from ``address``, :class:`HubUnreachable`."""
    try:
        return fn()
    except grpc.RpcError as exc:
        raise _wrap(exc, address) from None


class WireEnum(Generic[V]):
    """A wire enum's values by their readable names (``active`` for
    ``MEMBER_STATUS_ACTIVE``): the one place that maps them, both ways, for the hub and
    the CLI alike.  The ``_UNSPECIFIED`` zero has no name: it is never a valid value."""

    def __init__(self, enum: _EnumTypeWrapper[V]) -> None:
        items = enum.items()
        self.type_name = enum.DESCRIPTOR.name
        self.zero = enum.Name(enum.values()[0])  # e.g. ROLE_UNSPECIFIED (buf's rules)
        prefix = self.zero.removesuffix("UNSPECIFIED")
        self.names: Mapping[int, str] = {v: n.removeprefix(prefix).lower() for n, v in items if v}
        self.values: Mapping[str, V] = {n.removeprefix(prefix).lower(): v for n, v in items if v}

    def name(self, value: int, where: str) -> str:
        """The readable name of ``value``; ValueError naming ``where`` for the zero or a
        number this enum does not define."""
        name = self.names.get(value)
        if name is None:
            got = f"{self.zero} ({value})" if value == 0 else f"{value}, not a {self.type_name}"
            raise ValueError(f"{where}: received {got}; expected one of {self.expected()}")
        return name

    def value(self, name: str, where: str) -> V:
        """The wire number of readable ``name``; ValueError naming ``where`` otherwise."""
        value = self.values.get(name)
        if value is None:
            raise ValueError(f"{where}: received {name!r}; expected one of {self.expected()}")
        return value

    def label(self, value: int) -> str:
        """The readable name of ``value`` in an answer, which is shown, never refused: a
        newer hub may send a value this client does not know (``MemberStatus(7)``)."""
        return self.names.get(value) or f"{self.type_name}({value})"

    def names_of(self, values: Iterable[int], where: str) -> list[str]:
        return [self.name(v, f"{where}[{i}]") for i, v in enumerate(values)]

    def expected(self) -> str:
        return ", ".join(self.names.values())


ROLE: Final = WireEnum(types_pb2.Role)
MEMBER_STATUS: Final = WireEnum(types_pb2.MemberStatus)


def to_timestamp(when: datetime) -> Timestamp:
    """``when`` (timezone-aware) on the wire."""
    ts = Timestamp()
    ts.FromDatetime(when)
    return ts


def from_timestamp(ts: Timestamp) -> datetime:
    """A wire Timestamp as an aware UTC datetime."""
    return ts.ToDatetime(tzinfo=UTC)


def answer_time(ts: Timestamp) -> datetime:
    """A Timestamp of the hub's answer; one no datetime holds (seconds out of range) is a
    refusal of the answer, never a crash of the caller."""
    try:
        return from_timestamp(ts)
    except (ValueError, OverflowError):
        raise HubRejected(
            "INVALID_ANSWER", f"a timestamp of {ts.seconds} s, outside 0001..9999"
        ) from None


@dataclass(frozen=True, slots=True)
class Credential:
    """What a member (or the admin) needs to reach its hub: ``hub.json`` + ``tls/``."""

    folder: Path
    hub: str
    member: str
    bearer_token: str
    hub_public_key: str
    # How the member enrolled: MTLS, or PLAINTEXT (``--insecure``, loopback only), which
    # the SDK then uses by default.
    transport: str = "mtls"
    # The hub's log origin ("sighub/<hub name>"), the key name of its checkpoints'
    # signature by ``hub_public_key``; empty in credentials written before the log.
    log_origin: str = ""
    # The admin's signing key (base64), pinned at enrollment: the root of every member
    # key's chain.  Empty in credentials written before chains (not enforced then).
    admin_public_key: str = ""

    @classmethod
    def load(cls, folder: Path) -> Credential:
        path = folder / "hub.json"
        try:
            doc = _json.loads(read_secret(path), _json.DOCUMENT, str(path))
            transport = doc.get("transport", MTLS)
            if transport not in TRANSPORTS:
                raise ValueError(f"transport {transport!r}, expected one of {TRANSPORTS}")
            return cls(
                folder,
                doc["hub"],
                doc["member"],
                doc["bearer_token"],
                doc["hub_public_key"],
                transport,
                doc.get("log_origin", ""),
                doc.get("admin_public_key", ""),
            )
        except KeyFileError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise KeyFileError(f"{path}: not a hub credential ({exc})") from None


def _change(c: sync_pb2.Change) -> Change:
    return Change(
        c.sequence,
        c.collaboration,
        c.envelope,
        tuple(Hop(h.hub, answer_time(h.received_at)) for h in c.hops),
        c.collab_sequence,
        c.hop_records,
    )


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an IP address, IPv6 possibly in brackets) is loopback:
    the only place plaintext is allowed."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def tunnel_options(hub: str) -> list[tuple[str, Any]]:
    """Channel options to reach ``hub`` (HOST:PORT) through a tunnel's local socket
    (``hub._tunnel``): TLS checks the hub's certificate for HOST, as when dialing it."""
    host = hub.rpartition(":")[0].strip("[]")
    return [
        *CHANNEL_OPTIONS,
        ("grpc.ssl_target_name_override", host),
        ("grpc.default_authority", hub),
    ]


def open_channel(
    cred: Credential, insecure: bool = False, address: str | None = None, via: str | None = None
) -> grpc.Channel:
    """A channel to the hub: mTLS with the member's certificate, or, only with
    ``insecure`` and only on loopback, plaintext with the bearer token.  ``via``: connect
    to this ``unix:`` socket of a tunnel instead, mTLS only, the hub's name checked as
    when dialing it."""
    target = address or cred.hub
    if via is not None:
        if insecure:
            raise SighubError(f"{via}: a tunnel carries mTLS only, not plaintext")
        return grpc.secure_channel(via, mtls_credentials(cred), options=tunnel_options(target))
    if insecure:
        if not is_loopback(target.rpartition(":")[0]):
            raise SighubError(
                f"insecure connection to {target!r} refused: plaintext is loopback-only"
            )
        return grpc.intercept_channel(
            grpc.insecure_channel(target, options=CHANNEL_OPTIONS), _Bearer(cred.bearer_token)
        )
    return grpc.secure_channel(target, mtls_credentials(cred), options=CHANNEL_OPTIONS)


def mtls_credentials(cred: Credential) -> grpc.ChannelCredentials:
    """The member's mTLS channel credentials (``tls/`` of its credential folder)."""
    tls = cred.folder / "tls"
    return grpc.ssl_channel_credentials(
        root_certificates=(tls / "ca.pem").read_bytes(),
        private_key=read_secret(tls / "client.key"),
        certificate_chain=(tls / "client.crt").read_bytes(),
    )


class _Bearer(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    def __init__(self, token: str) -> None:
        self.md = ("authorization", f"Bearer {token}")

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(_Details(details, [*(details.metadata or ()), self.md]), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(_Details(details, [*(details.metadata or ()), self.md]), request)


class _Closed(grpc.RpcError):
    """A call on a client already closed: CANCELLED, as a call cut off by the close is."""

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.CANCELLED

    def details(self) -> str:
        return "the client was closed"


class _CloseGuard(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Counts the calls being started and refuses new ones once ``close`` began; ``close``
    waits for those being started (see ``HubClient.__init__``).  A unary call counts until
    it answers (its deadline bounds that), a stream only while it is created: closing
    cancels a stream being read at once.  Calls never wait for one another."""

    def __init__(self, channel: grpc.Channel) -> None:
        self._channel = channel
        self._cond = threading.Condition()
        self._starting = 0
        self._closed = False

    def _start(self, continuation: Any, details: Any, request: Any) -> Any:
        with self._cond:
            if self._closed:
                raise _Closed()
            self._starting += 1
        try:
            return continuation(details, request)
        finally:
            with self._cond:
                self._starting -= 1
                self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            while self._starting:
                self._cond.wait()
        self._channel.close()  # no call is being created: none can be from now on

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return self._start(continuation, details, request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return self._start(continuation, details, request)


class _Details(grpc.ClientCallDetails):
    def __init__(self, base: Any, metadata: list[tuple[str, str]]) -> None:
        self.method = base.method
        self.timeout = base.timeout
        self.metadata = tuple(metadata)
        self.credentials = base.credentials
        self.wait_for_ready = getattr(base, "wait_for_ready", None)
        self.compression = getattr(base, "compression", None)


@dataclass(frozen=True, slots=True)
class PublishResult:
    """What the hub answered to a publish: the envelope's ``sequence`` in its log, its
    ``envelope_id`` (SHA-256 of the exact bytes, hex), the number of ``indicators`` it
    held, and ``duplicate`` when these exact bytes were already stored (publishing is
    idempotent: the original sequence comes back)."""

    sequence: int
    envelope_id: str
    indicators: int
    duplicate: bool


@dataclass(frozen=True, slots=True)
class Hop:
    hub: str
    received_at: datetime


@dataclass(frozen=True, slots=True)
class Change:
    sequence: int
    collaboration: str
    envelope: bytes
    hops: tuple[Hop, ...]
    n: int = 0  # its number within the collaboration (0: logged before numbering)
    hop_records: bytes = b""  # relayed from a peer: its hop records as signed (``_hops``)


@dataclass(frozen=True, slots=True)
class LogLeaf:
    """One log leaf as the hub sent it: ``leaf`` (its exact bytes) when the caller may
    see it, else only ``leaf_hash`` (its 32-byte RFC 9162 hash); exactly one is set."""

    sequence: int  # the leaf's index + 1
    leaf: bytes | None
    leaf_hash: bytes | None


@dataclass(frozen=True, slots=True)
class SyncBatch:
    """One batch: the log's range (previous cursor, ``cursor``], its envelopes of the
    stream's collaborations as ``changes`` and every other sequence as ``leaves``, with
    the latest signed ``checkpoint`` (a C2SP note, tree size >= cursor) and the
    ``consistency`` proof from tree size ``cursor`` to it."""

    changes: tuple[Change, ...]
    cursor: int
    caught_up: bool
    head: int  # the log's size as the hub sent the batch
    leaves: tuple[LogLeaf, ...] = ()
    checkpoint: bytes = b""
    consistency: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class DirectoryKey:
    member: str
    identity: str
    key_id: str
    public_key: bytes
    added_at: datetime
    revoked_at: datetime | None
    revoked_sequence: int | None  # envelopes it signed after this log sequence are refused
    member_status: str  # readable: active, suspended, removed


@dataclass(frozen=True, slots=True)
class SharedKey:
    collaboration: str
    epoch: int
    secret: bytes
    created_at: datetime


def wrap_to_pb(w: Wrap) -> directory_pb2.EpochWrap:
    return directory_pb2.EpochWrap(
        collaboration=w.collab, epoch=w.epoch, commitment=w.commitment, recipient=w.recipient,
        recipient_key_id=w.recipient_key_id, suite=w.suite, sealed=w.sealed, steward=w.steward,
        signing_key_id=w.signing_key_id, signature=w.signature,
    )  # fmt: skip


def wrap_from_pb(p: directory_pb2.EpochWrap) -> Wrap:
    return Wrap(
        p.collaboration, p.epoch, p.commitment, p.recipient, p.recipient_key_id, p.suite,
        p.sealed, p.steward, p.signing_key_id, p.signature,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class MissingWrap:
    """A collaboration of the caller whose current epoch (-1: none yet) has no wrap for it."""

    collab: str
    epoch: int
    stewards: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EpochStatus:
    epoch: int
    steward: str  # "" for an epoch the hub made
    holders: tuple[str, ...]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CollabStatus:
    collab: str
    stewards: tuple[str, ...]
    members: tuple[tuple[str, str], ...]  # (member, encryption key id or "")
    epochs: tuple[EpochStatus, ...]
    earlier_epochs: int = 0  # the policy: epochs before the current one a joiner is wrapped


def _log_leaf(leaf: types_pb2.LogLeaf) -> LogLeaf:
    if leaf.WhichOneof("content") == "leaf":
        return LogLeaf(leaf.sequence, leaf.leaf, None)
    return LogLeaf(leaf.sequence, None, leaf.leaf_hash)


class HubClient:
    """A member's connection to its hub."""

    def __init__(self, channel: grpc.Channel, address: str | None = None) -> None:
        # Every call starts under the guard, and close takes it: gRPC's C core crashes the
        # process when a channel is closed while another thread creates a call on it (a
        # daemon interrupted from another thread while it asks for its keys).
        self._guard = _CloseGuard(channel)
        self.channel = grpc.intercept_channel(channel, self._guard)
        self.address = address  # named in HubUnreachable errors
        self._publish = publish_pb2_grpc.PublishServiceStub(self.channel)
        self._sync = sync_pb2_grpc.SyncServiceStub(self.channel)
        self._directory = directory_pb2_grpc.DirectoryServiceStub(self.channel)
        self._log = log_pb2_grpc.LogServiceStub(self.channel)

    @classmethod
    def connect(cls, cred: Credential, insecure: bool = False) -> HubClient:
        return cls(open_channel(cred, insecure), cred.hub)

    def close(self) -> None:
        """Close the channel: calls in flight end (CANCELLED), later ones are refused with
        CANCELLED; safe from any thread, once or more."""
        self._guard.close()

    def __enter__(self) -> HubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def publish(self, collaboration: str, envelope: bytes, timeout: float = 60) -> PublishResult:
        r = call(
            lambda: self._publish.Publish(
                publish_pb2.PublishRequest(collaboration=collaboration, envelope=envelope),
                timeout=timeout,
            ),
            self.address,
        )
        return PublishResult(r.sequence, r.envelope_id, r.indicators, r.duplicate)

    def sync(
        self,
        cursor: int = 0,
        collaborations: list[str] | None = None,
        follow: bool = False,
        batch_size: int = 0,
        timeout: float | None = None,
    ) -> Iterator[SyncBatch]:
        """Batches from ``cursor`` on; with ``follow`` the iterator waits for new ones."""
        request = sync_pb2.SyncRequest(
            cursor=cursor, collaborations=collaborations or [], follow=follow, batch_size=batch_size
        )
        stream = call(lambda: self._sync.Sync(request, timeout=timeout), self.address)
        try:
            for b in stream:
                yield SyncBatch(
                    tuple(map(_change, b.changes)),
                    b.cursor,
                    b.caught_up,
                    b.head,
                    tuple(map(_log_leaf, b.leaves)),
                    b.checkpoint,
                    tuple(b.consistency),
                )
        except grpc.RpcError as exc:
            raise _wrap(exc, self.address) from None
        finally:
            stream.cancel()

    # -- the transparency log ----------------------------------------------------------
    def checkpoint(self) -> bytes:
        """The hub's latest signed checkpoint (a C2SP note), as sent: unverified."""
        r = call(
            lambda: self._log.GetCheckpoint(log_pb2.GetCheckpointRequest(), timeout=30),
            self.address,
        )
        return bytes(r.checkpoint)

    def witnessed(self, witnesses: Sequence[str] | None = None) -> list[bytes]:
        """The latest checkpoint each witness co-signed (notes signed by the hub, then the
        witness), as sent: unverified.  ``witnesses`` names keys as ``<name>+<hex key
        ID>``; None asks for every witness the hub knows."""
        request = log_pb2.GetCheckpointRequest(
            witnesses=list(witnesses or ()), all_witnesses=witnesses is None
        )
        r = call(lambda: self._log.GetCheckpoint(request, timeout=30), self.address)
        return [bytes(n) for n in r.witnessed]

    def add_cosignature(
        self, checkpoint: bytes, cosignature: bytes, witness_key: str, timeout: float = 10
    ) -> int:
        """Send a witness's cosignature (its signature line) of the hub-signed
        ``checkpoint`` with its vkey; returns the size the hub now holds for that key."""
        request = log_pb2.AddCosignatureRequest(
            checkpoint=checkpoint, cosignature=cosignature, witness_key=witness_key
        )
        r = call(lambda: self._log.AddCosignature(request, timeout=timeout), self.address)
        return int(r.size)

    def inclusion_proof(self, leaf_index: int, tree_size: int) -> list[bytes]:
        """The RFC 9162 inclusion proof of leaf ``leaf_index`` in the tree of
        ``tree_size`` leaves (``HubRejected`` INVALID_ARGUMENT if the log cannot prove it)."""
        request = log_pb2.GetInclusionProofRequest(leaf_index=leaf_index, tree_size=tree_size)
        r = call(lambda: self._log.GetInclusionProof(request, timeout=30), self.address)
        return list(r.hashes)

    def consistency_proof(self, first_size: int, second_size: int) -> list[bytes]:
        """The RFC 9162 consistency proof from tree size ``first_size`` to ``second_size``."""
        request = log_pb2.GetConsistencyProofRequest(first_size=first_size, second_size=second_size)
        r = call(lambda: self._log.GetConsistencyProof(request, timeout=30), self.address)
        return list(r.hashes)

    def history(
        self, collab: str, after: int, before: int, tree_size: int
    ) -> list[tuple[Change, tuple[bytes, ...]]]:
        """A page of ``collab``'s envelopes numbered after ``after`` and logged before
        sequence ``before``, each with its inclusion proof in the tree of ``tree_size``
        (see ``SyncService.GetHistory``); empty when none is left."""
        request = sync_pb2.GetHistoryRequest(
            collaboration=collab, after_number=after, before_sequence=before, tree_size=tree_size
        )
        r = call(lambda: self._sync.GetHistory(request, timeout=60), self.address)
        return [(_change(e.change), tuple(e.inclusion_proof)) for e in r.entries]

    def leaves(self, start: int, end: int) -> list[LogLeaf]:
        """Leaves of indexes [start, end): the hub answers a prefix of at most 1000, full
        bytes for those the caller may see, hashes for the others."""
        request = log_pb2.GetLeavesRequest(start=start, end=end)
        r = call(lambda: self._log.GetLeaves(request, timeout=30), self.address)
        return [_log_leaf(leaf) for leaf in r.leaves]

    def key_directory(self) -> list[DirectoryKey]:
        r = call(
            lambda: self._directory.GetKeys(directory_pb2.GetKeysRequest(), timeout=30),
            self.address,
        )
        return [
            DirectoryKey(
                k.member,
                k.identity,
                k.key_id,
                k.public_key,
                answer_time(k.added_at),
                answer_time(k.revoked_at) if k.HasField("revoked_at") else None,
                k.revoked_sequence if k.HasField("revoked_at") else None,
                MEMBER_STATUS.label(k.member_status),
            )
            for k in r.keys
        ]

    def collab_keys(self) -> list[SharedKey]:
        r = call(
            lambda: self._directory.GetCollabKeys(directory_pb2.GetCollabKeysRequest(), timeout=30),
            self.address,
        )
        return [
            SharedKey(k.collaboration, k.epoch, k.secret, answer_time(k.created_at)) for k in r.keys
        ]

    def put_epoch(self, collab: str, epoch: int, commitment: str, wraps: list[Wrap]) -> int:
        """Store a steward's wraps; the sequence of the epoch's leaf (0: wraps added to
        an epoch logged before)."""
        request = directory_pb2.PutEpochRequest(
            collaboration=collab, epoch=epoch, commitment=commitment,
            wraps=[wrap_to_pb(w) for w in wraps],
        )  # fmt: skip
        r = call(lambda: self._directory.PutEpoch(request, timeout=60), self.address)
        return r.sequence

    def wraps(self, collab: str = "") -> tuple[list[Wrap], list[MissingWrap]]:
        """The wraps addressed to this member, and its collaborations lacking one."""
        request = directory_pb2.GetWrapsRequest(collaboration=collab)
        r = call(lambda: self._directory.GetWraps(request, timeout=30), self.address)
        missing = [MissingWrap(x.collaboration, x.epoch, tuple(x.stewards)) for x in r.missing]
        return [wrap_from_pb(w) for w in r.wraps], missing

    def collab_status(self, collab: str) -> CollabStatus:
        request = directory_pb2.GetCollabStatusRequest(collaboration=collab)
        r = call(lambda: self._directory.GetCollabStatus(request, timeout=30), self.address)
        return CollabStatus(
            collab,
            tuple(r.stewards),
            tuple((m.member, m.encryption_key_id) for m in r.members),
            tuple(
                EpochStatus(e.epoch, e.steward, tuple(e.holders), answer_time(e.created_at))
                for e in r.epochs
            ),
            r.earlier_epochs,
        )

    def rotate_signing_key(self, new_public_key: bytes, proof: bytes) -> tuple[str, str]:
        r = call(
            lambda: self._directory.RotateSigningKey(
                directory_pb2.RotateSigningKeyRequest(new_public_key=new_public_key, proof=proof),
                timeout=30,
            ),
            self.address,
        )
        return r.key_id, r.previous_key_id

    def rotate_encryption_key(self, encryption: ProvedKey) -> tuple[str, str, str, int]:
        """Register a new encryption key: (its id, the signing key id that proved it, the
        id of the key it replaced or "", its log sequence)."""
        request = directory_pb2.RotateEncryptionKeyRequest(
            suite=encryption.suite, public_key=encryption.public, proof=encryption.proof
        )
        r = call(lambda: self._directory.RotateEncryptionKey(request, timeout=30), self.address)
        return r.encryption_key_id, r.signing_key_id, r.previous_encryption_key_id, r.sequence

    def enroll(
        self,
        member: str,
        token: str,
        csr_pem: bytes,
        signing_key: bytes,
        chain: Chain | None = None,
        encryption: ProvedKey | None = None,
    ) -> tuple[str, str, str, str]:
        request = directory_pb2.EnrollRequest(
            member=member, token=token, csr_pem=csr_pem, signing_public_key=signing_key
        )
        if chain is not None:
            request.grant, request.grant_signature = chain.grant, chain.grant_signature
            request.binding = chain.binding
        if encryption is not None:
            request.encryption_suite = encryption.suite
            request.encryption_public_key = encryption.public
            request.encryption_proof = encryption.proof
        r = call(lambda: self._directory.Enroll(request, timeout=30), self.address)
        return r.certificate_pem.decode(), r.identity, r.key_id, r.bearer_token

    def renew_certificate(self, csr_pem: bytes) -> tuple[bytes, datetime]:
        """A new client certificate for the caller's CSR: (PEM, not-after).  From the hub's
        answer on, the certificate this channel was opened with is refused."""
        r = call(
            lambda: self._directory.RenewCertificate(
                directory_pb2.RenewCertificateRequest(csr_pem=csr_pem), timeout=30
            ),
            self.address,
        )
        return bytes(r.certificate_pem), answer_time(r.not_after)
