"""The hub's certificate authority: a CA, the server certificate, member client
certificates issued from CSRs at enrollment.  TLS keys are ECDSA P-256 (what every gRPC
TLS stack accepts); signing keys for envelopes stay Ed25519 and are separate."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from client import SighubError
from client._tls import new_tls_key

__all__ = ["ENROLL_PREFIX", "Issued", "issue_client", "issue_enrollment", "make_ca", "server_cert"]

_VALIDITY_CA = dt.timedelta(days=3650)
_VALIDITY_LEAF = dt.timedelta(days=397)


@dataclass(frozen=True, slots=True)
class Issued:
    cert_pem: bytes
    serial: str
    common_name: str


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
    validity: dt.timedelta = _VALIDITY_LEAF,
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
    ca_key: ec.EllipticCurvePrivateKey, ca_pem: bytes, names: tuple[str, ...]
) -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    key = new_tls_key()
    alt: list[x509.GeneralName] = []
    for n in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            alt.append(x509.DNSName(n))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    cert = _leaf(ca_key, ca_pem, subject, key.public_key(), ExtendedKeyUsageOID.SERVER_AUTH, alt)
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


def issue_client(
    ca_key: ec.EllipticCurvePrivateKey, ca_pem: bytes, csr_pem: bytes, member: str
) -> Issued:
    """A client certificate for ``member`` from its CSR (the CSR's subject is ignored
    except that it must name the same member)."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError:
        raise SighubError("enrollment: csr_pem is not a PEM certificate request") from None
    if not csr.is_signature_valid:
        raise SighubError("enrollment: the CSR's signature does not verify")
    public = csr.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise SighubError("enrollment: the CSR's key must be ECDSA P-256")
    names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if [n.value for n in names] != [member]:
        raise SighubError(f"enrollment: the CSR names {[n.value for n in names]}, not {member!r}")
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, member)])
    cert = _leaf(ca_key, ca_pem, subject, public, ExtendedKeyUsageOID.CLIENT_AUTH, [])
    return Issued(
        cert.public_bytes(serialization.Encoding.PEM), format(cert.serial_number, "x"), member
    )
