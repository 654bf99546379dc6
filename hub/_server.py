"""Creating a hub's data directory and serving it over gRPC."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import logging
import signal
import sys
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

from client import SighubError
from client._keys import read_secret, write_secret
from client._proto import (
    admin_pb2,
    admin_pb2_grpc,
    directory_pb2,
    directory_pb2_grpc,
    publish_pb2,
    publish_pb2_grpc,
    sync_pb2,
    sync_pb2_grpc,
)
from client._tls import key_pem, make_csr, new_tls_key, write_credential
from hub._config import DEFAULT_TOML, HubConfig, load_config
from hub._hub import Hub
from hub._pki import make_ca, server_cert
from hub._service import AdminService, DirectoryService, PublisherService, Services, SyncService
from hub._store import Store

__all__ = ["HubPaths", "init_hub", "serve"]

log = logging.getLogger("sighub.hub")
SERVICE_NAMES: Final = (
    publish_pb2.DESCRIPTOR.services_by_name["Publisher"].full_name,
    sync_pb2.DESCRIPTOR.services_by_name["Sync"].full_name,
    directory_pb2.DESCRIPTOR.services_by_name["Directory"].full_name,
    admin_pb2.DESCRIPTOR.services_by_name["Admin"].full_name,
)


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
    with store.tx():
        store.set_meta("hub_name", name)
        store.set_meta("hub_public_key", hub_public)
    _, token = hub.add_member("hub-init", "admin", ["admin"])
    tls_key = new_tls_key()
    signing_admin = (
        Ed25519PrivateKey.generate()
    )  # the admin never publishes; enrollment wants a key
    cert, _, _, bearer = hub.enroll(
        "admin",
        token,
        make_csr(tls_key, "admin"),
        signing_admin.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw),
    )
    store.close()
    write_credential(
        paths.admin, address, "admin", bearer, ca_pem, cert.encode(), tls_key, hub_public
    )
    return paths.admin


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def split_address(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise SighubError(f"--listen {listen!r}: expected HOST:PORT")
    return host, int(port)


async def serve(
    root: Path, listen: str, insecure: bool = False, ready: asyncio.Event | None = None
) -> None:
    """Serve until SIGTERM/SIGINT: then stop follow streams, let in-flight publishes
    finish (10 s grace), and close the store."""
    paths = HubPaths(root)
    host, port = split_address(listen)
    if insecure and not _is_loopback(host):
        raise SighubError(f"--insecure refused on {host!r}: plaintext is only allowed on loopback")
    if not paths.db.exists():
        raise SighubError(f"{root}: no hub here; run 'sighub hub init --data {root}' first")
    config = load_config(paths.config)
    ca_key = _load_ec(paths.pki / "ca.key")
    ca_pem = (paths.pki / "ca.pem").read_bytes()
    store = Store(paths.db)
    store.migrate()
    services = Services(Hub(store, config, ca_key, ca_pem), paths.db)
    server = grpc.aio.server(options=_options(config))
    publish_pb2_grpc.add_PublisherServicer_to_server(PublisherService(services), server)
    sync_pb2_grpc.add_SyncServicer_to_server(SyncService(services), server)
    directory_pb2_grpc.add_DirectoryServicer_to_server(DirectoryService(services), server)
    admin_pb2_grpc.add_AdminServicer_to_server(AdminService(services), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    address = f"{host}:{port}"
    if insecure:
        bound = server.add_insecure_port(address)
    else:
        creds = grpc.ssl_server_credentials(
            [(read_secret(paths.pki / "server.key"), (paths.pki / "server.pem").read_bytes())],
            root_certificates=ca_pem,
            require_client_auth=True,
        )
        bound = server.add_secure_port(address, creds)
    await server.start()
    for name in (*SERVICE_NAMES, ""):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    sys.stdout.write(
        f"sighub hub listening on {host}:{bound} ({'plaintext' if insecure else 'mTLS'})\n"
    )
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    sweeper = asyncio.create_task(_sweep(services, config.sweep_seconds))
    if ready is not None:
        ready.set()
    await stop.wait()
    log.info("shutting down")
    await health_servicer.enter_graceful_shutdown()
    sweeper.cancel()
    await services.close()
    await server.stop(grace=10)
    store.close()


async def _sweep(services: Services, every: float) -> None:
    def work() -> int:
        with services.hub.store.tx():
            return services.hub.store.sweep_expired(services.hub.now())

    while True:
        removed = await services.run(work)
        if removed:
            log.info("expiry sweep removed %d indicators from the current state", removed)
        await asyncio.sleep(every)


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
    ]
