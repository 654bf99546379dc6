"""TLS material on the member side: the P-256 client key, its CSR, the credential folder."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sighub.client._keys import write_secret

__all__ = ["key_pem", "make_csr", "new_tls_key", "write_credential"]


def new_tls_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_csr(key: ec.EllipticCurvePrivateKey, member: str) -> bytes:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, member)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def write_credential(
    folder: Path,
    hub: str,
    member: str,
    bearer: str,
    ca_pem: bytes,
    cert_pem: bytes,
    key: ec.EllipticCurvePrivateKey,
    hub_public: str,
    transport: str = "mtls",
    log_origin: str = "",
    admin_public: str = "",
) -> None:
    """A member's (or the admin's) credential folder: ``hub.json`` (0600: it holds the
    bearer token) and ``tls/`` with the hub CA, the client certificate and key (0600).
    ``log_origin`` names the hub's transparency log: with ``hub_public`` it makes the
    verifier key of its checkpoints.  ``admin_public`` (base64) is the admin key that
    every member signing key must chain to; empty for enrollments from before chains."""
    tls = folder / "tls"
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    tls.mkdir(mode=0o700, parents=True, exist_ok=True)
    (tls / "ca.pem").write_bytes(ca_pem)
    (tls / "client.crt").write_bytes(cert_pem)
    write_secret(tls / "client.key", key_pem(key))
    doc = {
        "hub": hub,
        "member": member,
        "bearer_token": bearer,
        "hub_public_key": hub_public,
        "transport": transport,  # how it enrolled: what the SDK dials by default
        "log_origin": log_origin,
        "admin_public_key": admin_public,
    }
    write_secret(folder / "hub.json", json.dumps(doc, indent=2).encode())
