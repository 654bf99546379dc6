"""Tunnels for peers that cannot be dialed: the push direction of federation
(``docs/federation.md``, "Push").

Hub B pushes to hub A when A cannot reach B (a firewall, a private network) but B can reach
A.  A still pulls, with the relay it uses for any peer, and verifies everything as when it
dials out; only the connection goes the other way:

- on A, a peering with ``dial_in`` has a ``TunnelEnd``: a Unix socket in a private
  directory, which A's relay dials instead of B's address;
- B, enrolled at A as the member of the peering's name with role ``peer``, keeps a control
  stream open to A (``Dialer``, ``PeerService.Tunnel``);
- for each connection A's relay makes to the socket, A asks on the control stream for a data
  stream, and B opens one and connects it to its own server.

The relay's gRPC connection (mTLS with its credential at B) runs inside the data stream, so
the tunnel carries bytes it cannot read or alter unseen.  Everything is bounded: chunks of
64 KiB, a few connections per peering, a data stream asked for is dropped if it does not
come within ``OPEN_SECONDS``.  A suspended or removed peering (or member) ends its streams
at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import grpc

from sighub.client._proto import peer_pb2, peer_pb2_grpc
from sighub.client._rpc import CHANNEL_OPTIONS, Credential, mtls_credentials
from sighub.hub._errors import HubError

if TYPE_CHECKING:
    from sighub.hub._service import Services

__all__ = ["CHUNK", "Dialer", "DialerState", "PeerService", "TunnelEnd", "own_target"]

log = logging.getLogger("sighub.tunnel")
CHUNK: Final = 64 * 1024  # bytes a tunnel message carries, at most
SOCKET_PREFIX: Final = "sighub-tunnel-"
MAX_CONNECTIONS: Final = 4  # data streams at once per peering (a relay uses one or two)
# Tunnel streams at once per peering, open or waiting for their first message: a control
# stream and its data streams, twice over (a dialer that reconnected before the hub saw its
# old streams end).  Past it, RESOURCE_EXHAUSTED: a peer cannot hold streams without end.
MAX_STREAMS: Final = 2 * (MAX_CONNECTIONS + 1)
OPEN_SECONDS: Final = 10.0  # a data stream asked for must come this soon
FIRST_MESSAGE_SECONDS: Final = 10.0
BACKOFF_START: Final = 0.5
BACKOFF_MAX: Final = 30.0

Pipe = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def sweep_stale() -> None:
    """Remove the socket folders of hubs that are gone (killed before they removed them):
    ``sighub-tunnel-PID-*`` of this user whose process no longer runs."""
    for folder in Path(tempfile.gettempdir()).glob(f"{SOCKET_PREFIX}*-*"):
        pid = folder.name[len(SOCKET_PREFIX) :].partition("-")[0]
        try:
            if not pid.isdigit() or folder.stat().st_uid != os.getuid():
                continue
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except OSError:  # another user's process, or a folder gone meanwhile
            continue


class TunnelEnd:
    """This hub's end of one dial-in peering: the socket its relay dials, and the
    connections waiting for (or bridged over) the peer's data streams.  Event loop only,
    but for ``dialed``, which the relay's thread waits on."""

    def __init__(self, name: str) -> None:
        self.name = name
        sweep_stale()
        # 0700, a short path (a Unix socket's is at most 107 bytes); named by this process,
        # so that a hub killed before it removed it leaves nothing the next one keeps
        self.folder = Path(tempfile.mkdtemp(prefix=f"{SOCKET_PREFIX}{os.getpid()}-"))
        self.path = self.folder / "s"
        self.dialed = threading.Event()  # a control stream is open
        self._control: asyncio.Queue[int | None] | None = None
        self._waiting: dict[int, tuple[Pipe, asyncio.Future[None]]] = {}
        self._bridged: set[asyncio.StreamWriter] = set()
        self._next = 1
        self._server: asyncio.AbstractServer | None = None

    @property
    def target(self) -> str:
        """The gRPC target of the socket."""
        return f"unix:{self.path}"

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._accept, path=str(self.path))
        self.path.chmod(0o600)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        control = self._control
        if control is None or len(self._waiting) + len(self._bridged) >= MAX_CONNECTIONS:
            writer.close()  # the relay sees the peer as unreachable and retries with backoff
            return
        number, self._next = self._next, self._next + 1
        claimed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[number] = ((reader, writer), claimed)
        control.put_nowait(number)
        try:
            await asyncio.wait_for(claimed, OPEN_SECONDS)
        except TimeoutError:
            log.warning("tunnel %s: connection %d not opened by the peer in %.0f s",
                        self.name, number, OPEN_SECONDS)  # fmt: skip
            writer.close()
        finally:
            self._waiting.pop(number, None)

    def attach(self) -> asyncio.Queue[int | None]:
        """A new control stream: the one before ends (a peer that reconnected)."""
        self.detach(self._control)
        self._control = asyncio.Queue()
        self.dialed.set()
        return self._control

    def detach(self, control: asyncio.Queue[int | None] | None) -> None:
        """End ``control`` if it is the current control stream."""
        if control is not None and control is self._control:
            control.put_nowait(None)
            self._control = None
            self.dialed.clear()

    def claim(self, number: int) -> Pipe | None:
        """The connection ``number`` waits for its data stream: taken by it, once."""
        entry = self._waiting.pop(number, None)
        if entry is None:
            return None
        pipe, claimed = entry
        if not claimed.done():
            claimed.set_result(None)
        self._bridged.add(pipe[1])
        return pipe

    def release(self, writer: asyncio.StreamWriter) -> None:
        self._bridged.discard(writer)
        writer.close()

    def cut(self) -> None:
        """End the control stream and every connection (a suspension)."""
        self.detach(self._control)
        for (_, writer), _claimed in list(self._waiting.values()):
            writer.close()
        for writer in list(self._bridged):
            self.release(writer)

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
        shutil.rmtree(self.folder, ignore_errors=True)


class PeerService(peer_pb2_grpc.PeerServiceServicer):
    """``PeerService.Tunnel``, for peers that dial in."""

    def __init__(self, services: Services) -> None:
        self.s = services
        self.open: dict[str, int] = {}  # peering -> Tunnel streams (event loop only)

    async def Tunnel(
        self, requests: AsyncIterator[peer_pb2.TunnelRequest], context: Any
    ) -> AsyncIterator[peer_pb2.TunnelResponse]:
        try:
            name = await self.s.run(lambda: self._authorize(context))
            self._end(name)  # refused at once, not after the first message
            self._count(name)
        except HubError as exc:
            await context.abort(exc.code, exc.message)
            return
        try:
            try:
                first = await _first(requests)
                # What changed while the first message was awaited: the member or peering
                # suspended, or suspended and resumed (a new end; the one before is closed).
                version = self.s.version
                await self.s.run(lambda: self._still_active(name))
                end = self._end(name)
            except HubError as exc:
                await context.abort(exc.code, exc.message)
                return
            if first.control:
                async for out in self._control(name, end, version, context):
                    yield out
                return
            pipe = end.claim(first.connection)
            if pipe is None:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"tunnel {name!r}: connection {first.connection} was not asked for, or is"
                    " taken; expected a number from this hub's control stream",
                )
                return
            async for out in _bridge(name, end, pipe, requests, context):
                yield out
        finally:
            self.open[name] -= 1
            if not self.open[name]:
                del self.open[name]

    def _count(self, name: str) -> None:
        n = self.open.get(name, 0)
        if n >= MAX_STREAMS:
            raise HubError.exhausted(
                f"tunnel {name!r}: {n} streams open or awaiting their first message; at most"
                f" {MAX_STREAMS}: end one first"
            )
        self.open[name] = n + 1

    def _authorize(self, context: Any) -> str:
        """The caller's dial-in peering (writer thread)."""
        member = self.s.identify(context)
        if not member.active or "peer" not in member.roles:
            raise HubError.denied(
                f"member {member.name!r} ({member.status}, roles {list(member.roles)}) may"
                " not open a tunnel; expected an active member with role peer"
            )
        return self._peering(member.name)

    def _peering(self, name: str) -> str:
        p = self.s.hub.store.peering(name)
        if p is None or not p.dial_in:
            raise HubError.denied(
                f"member {name!r}: no peering {name!r} with dial_in on this hub; expected"
                f" one (`sighub admin peer add {name} --dial-in ...`)"
            )
        if p.status != "active":
            raise HubError.precondition(f"peering {name!r} is {p.status}; expected active")
        return name

    def _end(self, name: str) -> TunnelEnd:
        relays = self.s.relays
        end = relays.tunnel(name) if relays is not None else None
        if end is None:
            raise HubError.unavailable(f"tunnel {name!r}: its relay is not running yet; retry")
        return end

    async def _control(
        self, name: str, end: TunnelEnd, version: int, context: Any
    ) -> AsyncIterator[peer_pb2.TunnelResponse]:
        """Ask for data streams until the peering (or its member) is cut off, or a newer
        control stream takes over.  ``end`` was looked up with no await since, and
        ``version`` read before the last check that the peering is active: no change
        falls in between."""
        queue = end.attach()
        log.info("tunnel %s: the peer dialed in", name)
        try:
            await context.send_initial_metadata(())
            while True:
                get = asyncio.ensure_future(queue.get())
                changed = asyncio.ensure_future(self._changed(version))
                done, _ = await asyncio.wait({get, changed}, return_when=asyncio.FIRST_COMPLETED)
                if get in done:
                    changed.cancel()
                    number = get.result()
                    if number is None:
                        return
                    yield peer_pb2.TunnelResponse(open=number)
                    continue
                get.cancel()
                # every admin change, as Sync streams do: is the peering still active?
                version = self.s.version
                try:
                    await self.s.run(lambda: self._still_active(name))
                except HubError as exc:
                    log.warning("tunnel %s: %s; its streams end", name, exc.message)
                    end.cut()
                    return
        finally:
            end.detach(queue)
            log.info("tunnel %s: control stream ended", name)

    async def _changed(self, version: int) -> None:
        async with self.s.changed:
            while self.s.version == version and not self.s.stopping.is_set():
                await self.s.changed.wait()

    def _still_active(self, name: str) -> None:
        m = self.s.hub.store.member(name)
        if m is None or not m.active:
            raise HubError.denied(f"member {name!r} is {m.status if m else 'removed'}")
        self._peering(name)


async def _first(requests: AsyncIterator[peer_pb2.TunnelRequest]) -> peer_pb2.TunnelRequest:
    try:
        first = await asyncio.wait_for(anext(requests), FIRST_MESSAGE_SECONDS)
    except (StopAsyncIteration, TimeoutError):
        raise HubError.invalid(
            f"tunnel: no first message within {FIRST_MESSAGE_SECONDS:.0f} s; expected one"
            " naming the stream (control, or a connection)"
        ) from None
    if first.control == (first.connection > 0) or first.data:
        raise HubError.invalid(
            f"tunnel: first message control={first.control} connection={first.connection}"
            f" with {len(first.data)} data bytes; expected control, or one connection, and"
            " no data"
        )
    return first


async def _bridge(
    name: str,
    end: TunnelEnd,
    pipe: Pipe,
    requests: AsyncIterator[peer_pb2.TunnelRequest],
    context: Any,
) -> AsyncIterator[peer_pb2.TunnelResponse]:
    """Bytes both ways between the relay's connection and the peer's data stream, until
    either side ends; a message no data stream may carry ends both, INVALID_ARGUMENT."""
    reader, writer = pipe
    refused = ""

    async def inbound() -> None:
        nonlocal refused
        try:
            async for message in requests:
                if len(message.data) > CHUNK or message.control or message.connection:
                    refused = (
                        f"tunnel {name!r}: a data stream message of {len(message.data)} bytes,"
                        f" control={message.control}, connection={message.connection};"
                        f" expected at most {CHUNK} bytes and nothing else"
                    )
                    log.warning("%s; closed", refused)
                    break
                writer.write(message.data)
                await writer.drain()
        except (ConnectionError, grpc.aio.AioRpcError, asyncio.CancelledError):
            pass
        finally:
            end.release(writer)

    task = asyncio.ensure_future(inbound())
    try:
        while chunk := await reader.read(CHUNK):  # ends once inbound closes the writer
            yield peer_pb2.TunnelResponse(data=chunk)
    except ConnectionError:
        pass
    finally:
        task.cancel()
        end.release(writer)
    if refused:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, refused)


# -- the dialing side ---------------------------------------------------------------------
def own_target(listen_host: str, port: int) -> str:
    """Where this hub's own server is reached from inside it: its listen address, with a
    wildcard made loopback."""
    host = listen_host.strip("[]")
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass
class DialerState:
    """What ``sighub admin peer status`` shows of a push peering's dialer."""

    state: str = "stopped"  # dialing, connected, retrying, stopped
    error: str = ""
    connections: int = 0  # data streams open now
    declined: int = 0  # data streams asked for past MAX_CONNECTIONS (or numbered 0)


class Dialer:
    """This hub's side of a push peering: dials the peer with this hub's credential there
    (``DATA/peers/NAME``), keeps a control stream open, and connects each data stream the
    peer asks for to this hub's own server.  Retries with backoff; ``stop`` ends it."""

    def __init__(self, name: str, data: Path, own: str, state: DialerState) -> None:
        self.name, self.data, self.own, self.state = name, data, own, state
        self._stopped = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._streams: set[asyncio.Task[None]] = set()  # the data streams' tasks

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        self._stopped.set()
        for task in [self._task, *self._streams]:
            if task is not None:
                task.cancel()
        for task in [self._task, *self._streams]:
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self.state.state, self.state.connections = "stopped", 0

    async def _run(self) -> None:
        delay = BACKOFF_START
        while not self._stopped.is_set():
            self.state.state = "dialing"
            try:
                await self._session()
                delay = BACKOFF_START
            except grpc.aio.AioRpcError as exc:
                self._failed(f"{exc.code().name}: {exc.details()}", delay)
            except Exception as exc:  # no credential, a bad file: said, and retried
                self._failed(str(exc) or type(exc).__name__, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), delay)
            delay = min(delay * 2, BACKOFF_MAX)

    def _failed(self, why: str, delay: float) -> None:
        self.state.state, self.state.error = "retrying", why[:500]
        log.warning("push to %s: %s; retry in %.1f s", self.name, why, delay)

    async def _session(self) -> None:
        cred = Credential.load(self.data)
        async with _channel(cred) as channel:
            stub = peer_pb2_grpc.PeerServiceStub(channel)
            call = stub.Tunnel(_control_requests())
            await call.initial_metadata()
            self.state.state, self.state.error = "connected", ""
            log.info("push to %s: connected (%s)", self.name, cred.hub)
            async for message in call:
                if len(self._streams) >= MAX_CONNECTIONS or message.open <= 0:
                    self.state.declined += 1  # counted, said at the first and every 1000th
                    if self.state.declined == 1 or self.state.declined % 1000 == 0:
                        log.warning("push to %s: connection %d asked for, %d open; not"
                                    " opened (%d declined so far)", self.name, message.open,
                                    len(self._streams), self.state.declined)  # fmt: skip
                    continue
                task = asyncio.ensure_future(self._data(stub, message.open))
                self._streams.add(task)
                task.add_done_callback(self._streams.discard)

    async def _data(self, stub: Any, number: int) -> None:
        """One data stream: the peer's relay connection to this hub's own server."""
        host, _, port = self.own.rpartition(":")
        try:
            reader, writer = await asyncio.open_connection(host.strip("[]"), int(port))
        except OSError as exc:
            log.error("push to %s: cannot reach this hub's own server %s: %s", self.name,
                      self.own, exc)  # fmt: skip
            return
        self.state.connections += 1
        call = stub.Tunnel(_data_requests(number, reader))
        try:
            async for message in call:
                if len(message.data) > CHUNK:
                    log.warning("push to %s: a message of %d bytes; closed", self.name,
                                len(message.data))  # fmt: skip
                    break
                writer.write(message.data)
                await writer.drain()
        except (grpc.aio.AioRpcError, ConnectionError):
            pass
        finally:
            self.state.connections -= 1
            call.cancel()
            writer.close()


async def _control_requests() -> AsyncIterator[peer_pb2.TunnelRequest]:
    yield peer_pb2.TunnelRequest(control=True)


async def _data_requests(
    number: int, reader: asyncio.StreamReader
) -> AsyncIterator[peer_pb2.TunnelRequest]:
    yield peer_pb2.TunnelRequest(connection=number)
    with contextlib.suppress(ConnectionError):
        while chunk := await reader.read(CHUNK):
            yield peer_pb2.TunnelRequest(data=chunk)


def _channel(cred: Credential) -> grpc.aio.Channel:
    """An asyncio channel to the peer with this hub's member credential there (mTLS)."""
    return grpc.aio.secure_channel(cred.hub, mtls_credentials(cred), options=CHANNEL_OPTIONS)
