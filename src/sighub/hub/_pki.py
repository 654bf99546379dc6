"""The hub's certificate authority: a CA, the server certificate, member client
certificates issued from CSRs at enrollment.  TLS keys are ECDSA P-256 (what every gRPC
TLS stack accepts); signing keys for envelopes stay Ed25519 and are separate."""

from __future__ import annotations

import datetime as dt
import ipaddress
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sighub.client._enroll import certificate_not_after, replace_file
from sighub.client._errors import SighubError
from sighub.client._keys import read_secret
from sighub.client._tls import key_pem, new_tls_key

__all__ = [
    "ENROLL_PREFIX",
    "VALIDITY_LEAF",
    "Issued",
    "ServerCertificate",
    "csr_common_names",
    "issue_client",
    "issue_enrollment",
    "load_server_pair",
    "make_ca",
    "renew_server_cert",
    "server_cert",
]

_VALIDITY_CA = dt.timedelta(days=3650)
VALIDITY_LEAF = dt.timedelta(days=397)  # the CA/Browser Forum's ceiling for TLS leaves


@dataclass(frozen=True, slots=True)
class Issued:
    cert_pem: bytes
    serial: str
    common_name: str
    not_after: dt.datetime


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def make_ca(name: str) -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    key = new_tls_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} sighub CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(minutes=5))
        .not_valid_after(_now() + _VALIDITY_CA)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM)


def _leaf(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_pem: bytes,
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    usage: x509.ObjectIdentifier,
    names: list[x509.GeneralName],
    validity: dt.timedelta = VALIDITY_LEAF,
) -> x509.Certificate:
    ca = x509.load_pem_x509_certificate(ca_pem)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(minutes=5))
        .not_valid_after(_now() + validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def server_cert(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_pem: bytes,
    names: tuple[str, ...],
    validity: dt.timedelta = VALIDITY_LEAF,
) -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    key = new_tls_key()
    alt: list[x509.GeneralName] = []
    for n in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            alt.append(x509.DNSName(n))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    cert = _leaf(
        ca_key, ca_pem, subject, key.public_key(), ExtendedKeyUsageOID.SERVER_AUTH, alt, validity
    )
    return key, cert.public_bytes(serialization.Encoding.PEM)


ENROLL_PREFIX = "enroll:"
_VALIDITY_ENROLL = dt.timedelta(days=14)


def issue_enrollment(
    ca_key: ec.EllipticCurvePrivateKey, ca_pem: bytes, member: str
) -> tuple[bytes, ec.EllipticCurvePrivateKey]:
    """A short-lived client certificate that only lets ``member`` call Enroll."""
    key = new_tls_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ENROLL_PREFIX + member)])
    cert = _leaf(
        ca_key,
        ca_pem,
        subject,
        key.public_key(),
        ExtendedKeyUsageOID.CLIENT_AUTH,
        [],
        validity=_VALIDITY_ENROLL,
    )
    return cert.public_bytes(serialization.Encoding.PEM), key


def csr_common_names(csr_pem: bytes) -> list[str]:
    """The common names a CSR asks for (after checking it is a well-formed, self-signed
    P-256 request)."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError:
        raise SighubError("csr_pem: not a PEM certificate request") from None
    if not csr.is_signature_valid:
        raise SighubError("csr_pem: the CSR's signature does not verify")
    if not isinstance(csr.public_key(), ec.EllipticCurvePublicKey):
        raise SighubError("csr_pem: the CSR's key must be ECDSA P-256")
    return [str(n.value) for n in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]


def issue_client(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_pem: bytes,
    csr_pem: bytes,
    member: str,
    validity: dt.timedelta = VALIDITY_LEAF,
) -> Issued:
    """A client certificate for ``member`` from its CSR (the CSR's subject is ignored
    except that it must name the same member)."""
    names = csr_common_names(csr_pem)
    if names != [member]:
        raise SighubError(f"enrollment: the CSR names {names}, not {member!r}")
    public = x509.load_pem_x509_csr(csr_pem).public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)  # csr_common_names checked it
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, member)])
    cert = _leaf(ca_key, ca_pem, subject, public, ExtendedKeyUsageOID.CLIENT_AUTH, [], validity)
    return Issued(
        cert.public_bytes(serialization.Encoding.PEM),
        format(cert.serial_number, "x"),
        member,
        cert.not_valid_after_utc,
    )


# -- the server certificate on disk -------------------------------------------------------
SERVER_KEY = "server.key"
SERVER_CERT = "server.pem"


def load_server_pair(pki: Path) -> tuple[bytes, bytes, dt.datetime]:
    """(key PEM, certificate PEM, not-after) of the server certificate in ``pki``, after
    checking that the two files belong together (a renewal interrupted between its two
    renames leaves them apart)."""
    key = load_pem_private_key(read_secret(pki / SERVER_KEY), password=None)
    cert_pem = (pki / SERVER_CERT).read_bytes()
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        raise SighubError(f"{pki / SERVER_CERT}: not a PEM certificate") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        raise SighubError(
            f"{pki}: {SERVER_KEY} does not match {SERVER_CERT}; "
            f"run 'sighub hub renew-cert --data {pki.parent}' to issue a matching pair"
        )
    return key_pem(key), cert_pem, cert.not_valid_after_utc


def renew_server_cert(
    pki: Path, names: tuple[str, ...], validity: dt.timedelta = VALIDITY_LEAF
) -> tuple[str, dt.datetime]:
    """Issue a new server key and certificate for ``names`` from the CA on disk and
    replace the old pair (each file atomically, the key first); returns (serial,
    not-after)."""
    ca_key = load_pem_private_key(read_secret(pki / "ca.key"), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise SighubError(f"{pki / 'ca.key'}: expected an ECDSA key")
    key, pem = server_cert(ca_key, (pki / "ca.pem").read_bytes(), names, validity)
    replace_file(pki / SERVER_KEY, key_pem(key), 0o600)
    replace_file(pki / SERVER_CERT, pem, 0o644)
    cert = x509.load_pem_x509_certificate(pem)
    return format(cert.serial_number, "x"), certificate_not_after(pem, str(pki / SERVER_CERT))


class ServerCertificate:
    """The server's TLS credentials, re-read on demand: gRPC asks ``fetch`` at each new
    handshake, and gets a new configuration once after ``reload`` (SIGHUP) read a valid
    pair; connections already open keep the certificate they started with."""

    def __init__(self, pki: Path, ca_pem: bytes) -> None:
        self.pki, self.ca_pem = pki, ca_pem
        self._pending: grpc.ServerCertificateConfiguration | None = None
        self._lock = threading.Lock()
        self.not_after = load_server_pair(pki)[2]

    def _configuration(self) -> grpc.ServerCertificateConfiguration:
        key, cert, self.not_after = load_server_pair(self.pki)
        return grpc.ssl_server_certificate_configuration([(key, cert)], self.ca_pem)

    def credentials(self) -> grpc.ServerCredentials:
        # gRPC documents None from the fetcher as "no change"; its stubs omit the None.
        fetch = cast(Callable[[], grpc.ServerCertificateConfiguration], self.fetch)
        return grpc.dynamic_ssl_server_credentials(
            self._configuration(), fetch, require_client_authentication=True
        )

    def reload(self) -> dt.datetime:
        """Read the pair again; it serves new handshakes from now on.  A bad pair raises
        and the current one stays."""
        configuration = self._configuration()
        with self._lock:
            self._pending = configuration
        return self.not_after

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        with self._lock:
            pending, self._pending = self._pending, None
        return pending
