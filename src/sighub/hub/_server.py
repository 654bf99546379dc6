"""Creating a hub's data directory and serving it over gRPC."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import functools
import json
import logging
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import grpc
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from sighub.client._enroll import expiry_warning
from sighub.client._errors import SighubError
from sighub.client._grant import (
    ADMIN_SIGNING_KEY,
    Chain,
    admin_public_key,
    bind_key,
    issue_grant,
)
from sighub.client._keys import read_secret, write_secret
from sighub.client._note import Ed25519Signer
from sighub.client._proto import (
    admin_pb2,
    admin_pb2_grpc,
    directory_pb2,
    directory_pb2_grpc,
    log_pb2,
    log_pb2_grpc,
    peer_pb2,
    peer_pb2_grpc,
    publish_pb2,
    publish_pb2_grpc,
    sync_pb2,
)
from sighub.client._rpc import is_loopback
from sighub.client._tls import key_pem, make_csr, new_tls_key, write_credential
from sighub.hub._adminservice import AdminService
from sighub.hub._backup import DataLock
from sighub.hub._config import DEFAULT_TOML, RESTART_KEYS, HubConfig, changes, load_config
from sighub.hub._hub import Hub, _RateLimiter
from sighub.hub._logservice import LogService
from sighub.hub._observe import Exposure, ObserveInterceptor, expose
from sighub.hub._pki import SERVER_CERT, ServerCertificate, make_ca, server_cert
from sighub.hub._relay import RelayManager
from sighub.hub._service import (
    CHECKPOINT_COALESCE,
    DirectoryService,
    PublishService,
    Services,
    SyncService,
    sync_handler,
)
from sighub.hub._store import BENCH_NO_LOG, Store, log_origin
from sighub.hub._tunnel import PeerService, own_target

__all__ = ["HubPaths", "init_hub", "serve"]

log = logging.getLogger("sighub.hub")
SERVICE_NAMES: Final = (
    publish_pb2.DESCRIPTOR.services_by_name["PublishService"].full_name,
    sync_pb2.DESCRIPTOR.services_by_name["SyncService"].full_name,
    directory_pb2.DESCRIPTOR.services_by_name["DirectoryService"].full_name,
    admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name,
    log_pb2.DESCRIPTOR.services_by_name["LogService"].full_name,
    peer_pb2.DESCRIPTOR.services_by_name["PeerService"].full_name,
)
SWEEP_LANE: Final = " expiry sweep"  # the sweep's bulk lane: no member name has a space


@dataclass(frozen=True, slots=True)
class HubPaths:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "hub.toml"

    @property
    def db(self) -> Path:
        return self.root / "hub.db"

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def signing_key(self) -> Path:
        return self.root / "hub-signing.key"

    @property
    def admin(self) -> Path:
        return self.root / "admin"


def _load_ec(path: Path) -> ec.EllipticCurvePrivateKey:
    key = load_pem_private_key(read_secret(path), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise SighubError(f"{path}: expected an ECDSA key")
    return key


def load_log_signer(path: Path, origin: str) -> Ed25519Signer:
    """The hub's log key (``hub-signing.key``, Ed25519, not the TLS key) as the note
    signer named ``origin``."""
    key = load_pem_private_key(read_secret(path), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise SighubError(f"{path}: expected an Ed25519 key (the hub's log key)")
    return Ed25519Signer(origin, key.private_bytes_raw())


def store_origin(store: Store, name: str) -> str:
    """The log's origin as stored at init (or by the migration that added the log); a
    hub that has none yet takes it from ``name`` now, for good (renaming the hub in
    hub.toml later does not rename its log)."""
    origin = store.meta("log_origin")
    if origin is None:
        origin = log_origin(store.meta("hub_name") or name)
        with store.tx():
            store.set_meta("log_origin", origin)
    return origin


def init_hub(root: Path, name: str, address: str, tls_names: list[str]) -> Path:
    """Create a hub data directory; returns the admin credential folder."""
    paths = HubPaths(root)
    if paths.db.exists():
        raise SighubError(f"{paths.db}: a hub already exists here")
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o700)  # hub.db holds collaboration keys: only the hub's user may read it
    toml = DEFAULT_TOML.replace('name = "sighub"', f'name = "{name}"')
    toml = toml.replace(
        'tls_names = ["localhost", "127.0.0.1"]', f"tls_names = {json.dumps(tls_names)}"
    )
    paths.config.write_text(toml)
    config = load_config(paths.config)
    paths.pki.mkdir(mode=0o700, exist_ok=True)
    ca_key, ca_pem = make_ca(name)
    write_secret(paths.pki / "ca.key", key_pem(ca_key))
    (paths.pki / "ca.pem").write_bytes(ca_pem)
    srv_key, srv_pem = server_cert(ca_key, ca_pem, config.tls_names)
    write_secret(paths.pki / "server.key", key_pem(srv_key))
    (paths.pki / "server.pem").write_bytes(srv_pem)
    signing = Ed25519PrivateKey.generate()
    write_secret(
        paths.signing_key, signing.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )
    hub_public = base64.b64encode(
        signing.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    ).decode()
    store = Store(paths.db)
    store.migrate()
    hub = Hub(store, config, ca_key, ca_pem)
    origin = log_origin(name)
    with store.tx():
        store.set_meta("hub_name", name)
        store.set_meta("hub_public_key", hub_public)
        store.set_meta("log_origin", origin)
    # The admin's signing key is the admin member's key and the root of every member
    # key's chain; it lives only in the admin credential (to be moved off this host).
    signing_admin = Ed25519PrivateKey.generate()
    with store.tx():
        store.set_meta("admin_public_key", admin_public_key(signing_admin))
    _, token = hub.add_member("hub-init", "admin", ["admin"])
    tls_key = new_tls_key()
    admin_raw = signing_admin.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    grant, grant_sig, enrollment = issue_grant(signing_admin, origin, "admin", ["admin"])
    chain = Chain(grant, grant_sig, bind_key(enrollment, grant, admin_raw))
    cert, _, _, bearer = hub.enroll("admin", token, make_csr(tls_key, "admin"), admin_raw, chain)
    store.close()
    write_credential(
        paths.admin, address, "admin", bearer, ca_pem, cert.encode(), tls_key, hub_public,
        log_origin=origin, admin_public=admin_public_key(signing_admin),
    )  # fmt: skip
    write_secret(
        paths.admin / ADMIN_SIGNING_KEY,
        signing_admin.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()),
    )
    return paths.admin


def split_address(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise SighubError(f"--listen {listen!r}: expected HOST:PORT")
    return host, int(port)


async def serve(
    root: Path,
    listen: str,
    insecure: bool = False,
    ready: asyncio.Event | None = None,
    exposure: Exposure | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT: then stop follow streams, let in-flight publishes
    finish (10 s grace), and close the store."""
    paths = HubPaths(root)
    host, port = split_address(listen)
    if insecure and not is_loopback(host):
        raise SighubError(f"--insecure refused on {host!r}: plaintext is only allowed on loopback")
    if not paths.db.exists():
        raise SighubError(f"{root}: no hub here; run 'sighub hub init --data {root}' first")
    lock = DataLock.acquire(root, "hub serve")  # before the store: one hub per directory
    config = load_config(paths.config)
    ca_key = _load_ec(paths.pki / "ca.key")
    ca_pem = (paths.pki / "ca.pem").read_bytes()
    store = Store(paths.db)
    store.migrate()
    if BENCH_NO_LOG:
        log.warning("SIGHUB_BENCH_NO_LOG=1: envelopes are not logged (a benchmark baseline)")
    signer = load_log_signer(paths.signing_key, store_origin(store, config.name))
    services = Services(Hub(store, config, ca_key, ca_pem, log_signer=signer), paths.db)
    services.sign(force=True)  # a fresh one before serving, always there
    services.metrics.load(store)
    server = grpc.aio.server(
        interceptors=[ObserveInterceptor(services.metrics)], options=_options(config)
    )
    health_servicer = _add_services(server, services)
    address = f"{host}:{port}"
    certificate = None if insecure else ServerCertificate(paths.pki, ca_pem)
    bound = _bind(server, address, certificate)
    exposed = await expose(exposure or Exposure(), services.metrics, health_servicer)
    await server.start()
    for name in (*SERVICE_NAMES, ""):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    sys.stdout.write(
        f"sighub hub listening on {host}:{bound} ({'plaintext' if insecure else 'mTLS'})\n"
    )
    sys.stdout.flush()
    exposed.announce()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, _reload, services, paths, certificate, config)
    tasks = [
        asyncio.create_task(_sweep(services)),
        asyncio.create_task(_checkpoints(services)),
        asyncio.create_task(_watch_certificate(certificate)),
    ]
    services.relays = RelayManager(services, loop, "" if insecure else own_target(host, bound))
    await services.relays.refresh()
    if ready is not None:
        ready.set()
    await stop.wait()
    log.info("shutting down")
    await health_servicer.enter_graceful_shutdown()
    for task in tasks:
        task.cancel()
    await services.relays.close()
    await services.close()
    await server.stop(grace=10)
    await exposed.close()
    store.close()
    lock.release()


def _add_services(server: grpc.aio.Server, services: Services) -> health.aio.HealthServicer:
    """The hub's services, health and reflection on ``server``; returns the health one."""
    publish_pb2_grpc.add_PublishServiceServicer_to_server(PublishService(services), server)
    server.add_generic_rpc_handlers((sync_handler(SyncService(services)),))
    directory_pb2_grpc.add_DirectoryServiceServicer_to_server(DirectoryService(services), server)
    admin_pb2_grpc.add_AdminServiceServicer_to_server(AdminService(services), server)
    log_pb2_grpc.add_LogServiceServicer_to_server(LogService(services), server)
    peer_pb2_grpc.add_PeerServiceServicer_to_server(PeerService(services), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    return health_servicer


async def _sweep(services: Services) -> None:
    def work() -> int:
        with services.hub.store.tx():
            return services.hub.store.sweep_expired(services.hub.now())

    while True:
        # A bulk job: a sweep after a mass expiry can take a while, and publishes go first.
        removed = await services.run(work, SWEEP_LANE)
        if removed:
            log.info("expiry sweep removed %d indicators from the current state", removed)
        await asyncio.sleep(services.hub.config.sweep_seconds)  # SIGHUP may change it


async def _checkpoints(services: Services) -> None:
    """Sign a checkpoint soon after every commit that appended leaves and whose own writer
    turn did not sign one (coalesced to one per CHECKPOINT_COALESCE under load), and at
    least every checkpoint_interval_seconds while idle; then wake the Sync streams, which
    serve the log up to it."""
    due = services.checkpoint_due
    while True:
        interval = services.hub.config.checkpoint_interval_seconds  # SIGHUP may change it
        wait = services.last_signed + interval - time.monotonic()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(due.wait(), max(0.0, wait))
        due.clear()
        idle = time.monotonic() - services.last_signed >= interval
        try:
            issued = await services.run(functools.partial(services.sign, force=idle))
        except Exception:  # a full disk, say: keep trying, the next commit is due again
            log.exception("checkpoint not issued")
            issued = None
        if issued is not None:
            await services.signed(issued)
        await asyncio.sleep(CHECKPOINT_COALESCE)


def _bind(server: grpc.aio.Server, address: str, certificate: ServerCertificate | None) -> int:
    try:
        if certificate is None:
            return server.add_insecure_port(address)
        return server.add_secure_port(address, certificate.credentials())
    except RuntimeError:  # gRPC's words point at GRPC_VERBOSITY; say what went wrong
        raise SighubError(
            f"--listen {address}: cannot listen there: the port is in use (another hub?) "
            "or the address is not one of this host's"
        ) from None


def _reload(
    services: Services,
    paths: HubPaths,
    certificate: ServerCertificate | None,
    started: HubConfig,
) -> None:
    """SIGHUP: re-read hub.toml (and SIGHUB_* from the environment the hub started with)
    and swap the keys that can change live into the running hub; re-read the server
    certificate for new connections.  A bad file or pair changes nothing."""
    hub = services.hub
    try:
        new = load_config(paths.config)
    except SighubError as exc:
        log.error("SIGHUP: configuration not reloaded, the hub keeps its values: %s", exc)
    else:
        changed = changes(hub.config, new)
        restart = {k: v for k, v in changed.items() if k in RESTART_KEYS}
        for key, (old, value) in sorted(restart.items()):
            log.warning("SIGHUP: %s %r -> %r needs a restart; still %r", key, old, value, old)
        hub.config = dataclasses.replace(new, **{k: old for k, (old, _) in restart.items()})
        hub.limiter = _RateLimiter(hub.config.publishes_per_minute, hub.config.burst)
        live = {k: v for k, v in changed.items() if k not in RESTART_KEYS}
        for key, (old, value) in sorted(live.items()):
            log.info("SIGHUP: %s %r -> %r", key, old, value)
        ceilings = zip(_options(hub.config)[:2], _options(started)[:2], strict=True)
        if any(now[1] > then[1] for now, then in ceilings):  # gRPC's message size limits
            log.warning("SIGHUP: envelopes or batches larger than at start need a restart")
        log.info("SIGHUP: configuration reloaded, %d keys changed live", len(live))
    if certificate is not None:
        try:
            not_after = certificate.reload()
        except (SighubError, OSError, ValueError) as exc:
            log.error("SIGHUP: server certificate not reloaded, the old one serves: %s", exc)
        else:
            log.info("SIGHUP: server certificate re-read; valid until %s", not_after)
            _warn_expiry(certificate)


def _warn_expiry(certificate: ServerCertificate) -> None:
    message = expiry_warning(
        (certificate.pki / SERVER_CERT).read_bytes(),
        str(certificate.pki / SERVER_CERT),
        f"renew it with 'sighub hub renew-cert --data {certificate.pki.parent}', then "
        "SIGHUP or restart the hub",
    )
    if message is not None:
        log.warning("%s", message)


async def _watch_certificate(certificate: ServerCertificate | None) -> None:
    """Warn at start and then daily while the server certificate nears its expiry."""
    while certificate is not None:
        try:
            _warn_expiry(certificate)
        except (SighubError, OSError) as exc:
            log.error("server certificate check failed: %s", exc)
        await asyncio.sleep(86_400)


def _options(config: HubConfig) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", config.max_envelope_bytes + 65536),
        (
            "grpc.max_send_message_length",
            config.sync_batch_max_bytes + config.max_envelope_bytes + 65536,
        ),
        ("grpc.keepalive_time_ms", 20_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.so_reuseport", 0),  # a second hub on the same port fails to bind
    ]
