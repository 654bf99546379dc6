"""The member side of enrollment and key rotation."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import grpc
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from sighub.client._enckey import enrollment_key
from sighub.client._envelope import key_id
from sighub.client._errors import EXIT_BAD_INPUT, EXIT_REFUSED, KeyFileError, SighubError
from sighub.client._grant import (
    ROTATE_CONTEXT,
    Chain,
    KeyChainError,
    bind_key,
    decode_b64,
    decode_public,
)
from sighub.client._hpke import DEFAULT_SUITE, encryption_key_id
from sighub.client._json import DOCUMENT
from sighub.client._json import loads as json_loads
from sighub.client._keys import (
    SIGNING_KEY,
    MemberFiles,
    MemberIdentity,
    fsync_path,
    read_secret,
    write_secret,
)
from sighub.client._rpc import (
    CHANNEL_OPTIONS,
    MTLS,
    PLAINTEXT,
    Credential,
    HubClient,
    HubRejected,
    HubUnreachable,
    open_channel,
    tunnel_options,
)
from sighub.client._tls import key_pem, make_csr, new_tls_key, write_credential

__all__ = [
    "EXPIRY_WARNING",
    "CertificateError",
    "EnrollmentFile",
    "Renewed",
    "certificate_not_after",
    "check_client_certificate",
    "client_certificate_warning",
    "enroll",
    "expiry_warning",
    "renew_certificate",
    "replace_file",
    "rotate_signing_key",
]

EXPIRY_WARNING: Final = timedelta(days=30)  # warn this long before a certificate expires
log = logging.getLogger("sighub.member")


@dataclass(frozen=True, slots=True)
class EnrollmentFile:
    hub: str
    member: str
    token: str
    ca_pem: bytes
    hub_public_key: str
    cert_pem: bytes = b""  # the short-lived enrollment client certificate and key
    key_pem: bytes = b""
    # The hub's log origin ("sighub/<hub name>"): with hub_public_key, the checkpoint
    # verifier key.  Empty in files written before the log existed.
    log_origin: str = ""
    # The admin-signed grant (``_grant``), the admin's signature over it, the one-time
    # enrollment key's private half (raw, base64: a secret, like the token) and the admin
    # key the member then pins.  Empty in files written before key chains.
    grant: str = ""
    grant_signature: str = ""
    enrollment_key: str = ""
    admin_public_key: str = ""

    @classmethod
    def load(cls, path: Path) -> EnrollmentFile:
        return cls.parse(read_secret(path), str(path))

    @classmethod
    def parse(cls, raw: bytes, what: str) -> EnrollmentFile:
        """The enrollment file of bytes ``raw`` (``what`` names it in errors)."""
        try:
            doc: Any = json_loads(raw, DOCUMENT, what)
            return cls(
                doc["hub"],
                doc["member"],
                doc["token"],
                doc["ca_pem"].encode(),
                doc["hub_public_key"],
                doc.get("cert_pem", "").encode(),
                doc.get("key_pem", "").encode(),
                doc.get("log_origin", ""),
                *(_text(doc, k, what) for k in _CHAIN_FIELDS),
            )
        except KeyFileError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise KeyFileError(f"{what}: not an enrollment file ({exc})") from None

    def to_json(self) -> str:
        return json.dumps(
            {
                "hub": self.hub,
                "member": self.member,
                "token": self.token,
                "ca_pem": self.ca_pem.decode(),
                "hub_public_key": self.hub_public_key,
                "cert_pem": self.cert_pem.decode(),
                "key_pem": self.key_pem.decode(),
                "log_origin": self.log_origin,
                **{k: getattr(self, k) for k in _CHAIN_FIELDS},
            },
            indent=2,
        )

    def chain_for(self, signing_public: bytes) -> Chain | None:
        """The chain proving ``signing_public`` (None for a file without a grant);
        ``KeyFileError`` for grant fields that are not what the admin wrote."""
        try:
            if self.admin_public_key:  # pinned in the credential: checked before it is
                decode_public(self.admin_public_key, "admin_public_key")
            if not self.grant:
                return None
            grant = decode_b64(self.grant, "grant")
            seed = decode_b64(self.enrollment_key, "enrollment_key")
            signature = decode_b64(self.grant_signature, "grant_signature")
            enrollment = Ed25519PrivateKey.from_private_bytes(seed)
        except (KeyChainError, ValueError) as exc:
            raise KeyFileError(f"enrollment file: {exc}") from None
        return Chain(grant, signature, bind_key(enrollment, grant, signing_public))


def _text(doc: dict[str, Any], field: str, path: str) -> str:
    value = doc.get(field, "")
    if not isinstance(value, str):
        raise KeyFileError(f"{path}: {field} is {type(value).__name__}, expected a string")
    return value


_CHAIN_FIELDS: Final = ("grant", "grant_signature", "enrollment_key", "admin_public_key")


def enroll(
    path: Path,
    data: Path,
    insecure: bool = False,
    address: str | None = None,
    encryption_suite: str = DEFAULT_SUITE,
    via: str | None = None,
) -> MemberIdentity:
    """Create the member's keys in ``data`` (a signing key, an HPKE encryption key of
    ``encryption_suite``), enroll at the hub, store the credential.  ``via``: reach the hub
    through this ``unix:`` socket of a tunnel (``hub._tunnel``)."""
    ef = EnrollmentFile.load(path)
    files = MemberFiles(data)
    if (data / "hub.json").exists():
        raise SighubError(f"{data}: already enrolled (hub.json exists)")
    ident = files.identity() if (data / SIGNING_KEY).exists() else files.create(ef.member)
    if ident.publisher.name != ef.member:
        raise SighubError(f"{data}: holds member {ident.publisher.name!r}, not {ef.member!r}")
    encryption = enrollment_key(data, files.signing_key(), encryption_suite)
    tls_key = new_tls_key()
    target = address or ef.hub
    if insecure:
        if via is not None:
            raise SighubError(f"{via}: a tunnel carries mTLS only, not plaintext")
        placeholder = Credential(data, target, ef.member, "", ef.hub_public_key)
        channel = open_channel(placeholder, insecure=True, address=target)
    else:
        creds = grpc.ssl_channel_credentials(ef.ca_pem, ef.key_pem or None, ef.cert_pem or None)
        if via is None:
            channel = grpc.secure_channel(target, creds, options=CHANNEL_OPTIONS)
        else:  # through a tunnel (``hub._tunnel``): the hub's name checked as when dialing
            channel = grpc.secure_channel(via, creds, options=tunnel_options(target))
    public = ident.public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    chain = ef.chain_for(public)  # before the hub is asked: a bad file spends no token
    with HubClient(channel, target) as hub:
        cert, identity, kid, bearer = hub.enroll(
            ef.member, ef.token, make_csr(tls_key, ef.member), public, chain, encryption
        )
    if identity != ident.publisher.id or kid != ident.key_id:
        raise SighubError(
            f"hub answered identity {identity} / key {kid}; expected "
            f"{ident.publisher.id} / {ident.key_id}"
        )
    files.write_identity(ident, encryption_key_id(encryption.public))
    transport = PLAINTEXT if insecure else MTLS
    write_credential(
        data, target, ef.member, bearer, ef.ca_pem, cert.encode(), tls_key, ef.hub_public_key,
        transport, ef.log_origin, ef.admin_public_key,
    )  # fmt: skip
    return ident


def rotate_signing_key(
    data: Path, insecure: bool = False, address: str | None = None
) -> tuple[str, str]:
    """Register a new signing key (proved by the current one), then replace it on disk;
    ``address`` overrides the credential's hub address."""
    files = MemberFiles(data)
    current = files.signing_key()
    new = Ed25519PrivateKey.generate()
    new_public = new.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    proof = current.sign(ROTATE_CONTEXT + new_public)
    cred = Credential.load(data)
    if address is not None:
        cred = replace(cred, hub=address)
    # On disk before the hub logs it: a sync daemon that reads the key.rotate leaf finds
    # the key among this member's own, never "a key it did not make".
    pending = data / f"signing.{key_id(new.public_key()).split(':')[-1][:12]}.pending.key"
    write_secret(pending, new.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    try:
        with HubClient.connect(cred, insecure) as hub:
            kid, old = hub.rotate_signing_key(new_public, proof)
    except HubRejected as exc:
        if not isinstance(exc, HubUnreachable):  # refused: the hub logged nothing
            pending.unlink()
        raise  # unreachable: it may have been logged, so the key stays this member's
    key_path = data / SIGNING_KEY
    old_path = data / f"signing.{old.split(':')[-1][:12]}.retired.key"
    key_path.rename(old_path)
    pending.rename(key_path)
    fsync_path(data)
    files.write_identity(MemberIdentity(files.identity().publisher, kid, new.public_key()))
    return kid, old


# -- TLS certificates: expiry and renewal ------------------------------------------------
class CertificateError(SighubError):
    """A certificate on disk, or one the hub answered, that sighub cannot use."""

    exit_code = EXIT_BAD_INPUT


def replace_file(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file with ``mode`` beside it,
    flushed to disk, renamed over ``path``; the directory is synced so the rename lasts."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)  # O_CREAT's mode does not apply to a leftover file
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(path.parent)


def certificate_not_after(pem: bytes, what: str) -> datetime:
    try:
        return x509.load_pem_x509_certificate(pem).not_valid_after_utc
    except ValueError:
        raise CertificateError(f"{what}: not a PEM certificate") from None


def expiry_warning(
    pem: bytes,
    what: str,
    renew: str,
    now: datetime | None = None,
    within: timedelta = EXPIRY_WARNING,
) -> str | None:
    """A warning when the certificate ``pem`` expires within ``within`` (or has expired);
    ``renew`` says how to renew it.  None while it has longer to live."""
    not_after = certificate_not_after(pem, what)
    left = not_after - (now or datetime.now(UTC))
    when = not_after.strftime("%Y-%m-%dT%H:%M:%SZ")
    if left <= timedelta(0):
        return f"{what}: certificate expired at {when}; TLS peers refuse it: {renew}"
    if left <= within:
        return f"{what}: certificate expires at {when} (in {left.days} days); {renew}"
    return None


_TLS: Final = "tls"
_CLIENT_CERT: Final = "client.crt"
_CLIENT_KEY: Final = "client.key"
_NEXT: Final = ".next"  # a renewal's new files, before they replace the current ones


def client_certificate_warning(data: Path, now: datetime | None = None) -> str | None:
    """A warning when ``data``'s client certificate expires within 30 days (or has
    expired); None otherwise.  Also completes a renewal interrupted after the hub
    answered."""
    tls = data / _TLS
    _finish_renewal(tls)
    path = tls / _CLIENT_CERT
    if not path.exists():
        return None
    return expiry_warning(
        path.read_bytes(),
        str(path),
        f"renew it with 'sighub member renew-cert --data {data}' while it is still valid",
        now,
    )


def check_client_certificate(data: Path, now: datetime | None = None) -> str | None:
    """:func:`client_certificate_warning`, logged as a WARNING (the sync daemon's start)."""
    message = client_certificate_warning(data, now)
    if message is not None:
        log.warning("%s", message)
    return message


def _finish_renewal(tls: Path) -> None:
    """A renewal writes client.key.next, then (once the hub's answer checked out)
    client.crt.next, then renames the key and the certificate into place.  A crash after
    the certificate's .next file was written leaves a complete new pair: finish it."""
    cert_next = tls / (_CLIENT_CERT + _NEXT)
    if not cert_next.exists():
        return
    key_next = tls / (_CLIENT_KEY + _NEXT)
    if key_next.exists():
        os.replace(key_next, tls / _CLIENT_KEY)
    os.replace(cert_next, tls / _CLIENT_CERT)
    fsync_path(tls)


@dataclass(frozen=True, slots=True)
class Renewed:
    member: str
    serial: str
    not_after: datetime
    path: Path


def renew_certificate(data: Path, insecure: bool = False, address: str | None = None) -> Renewed:
    """Replace ``data``'s TLS client key and certificate: a new key and CSR, signed by the
    hub over the current mTLS connection (after which the old certificate is refused).
    The new key is on disk before the hub is asked, and the answer is checked (our key,
    our name, the hub's CA) before it replaces anything."""
    if insecure:
        raise SighubError(
            "renew-cert: a certificate is renewed over mTLS with the current one; "
            "--insecure (plaintext) cannot prove it"
        )
    cred = Credential.load(data)
    tls = data / _TLS
    _finish_renewal(tls)
    key = new_tls_key()
    key_next, cert_next = tls / (_CLIENT_KEY + _NEXT), tls / (_CLIENT_CERT + _NEXT)
    replace_file(key_next, key_pem(key), 0o600)
    channel = open_channel(cred, address=address)
    with HubClient(channel, address or cred.hub) as hub:
        cert_pem, _ = hub.renew_certificate(make_csr(key, cred.member))
    cert = _check_issued(cert_pem, key, cred.member, (tls / "ca.pem").read_bytes())
    replace_file(cert_next, cert_pem, 0o644)
    os.replace(key_next, tls / _CLIENT_KEY)
    os.replace(cert_next, tls / _CLIENT_CERT)
    fsync_path(tls)
    return Renewed(
        cred.member, format(cert.serial_number, "x"), cert.not_valid_after_utc, tls / _CLIENT_CERT
    )


class _BadAnswer(SighubError):
    exit_code = EXIT_REFUSED


def _check_issued(
    cert_pem: bytes, key: ec.EllipticCurvePrivateKey, member: str, ca_pem: bytes
) -> x509.Certificate:
    """The hub's answer must certify our new key, for our name, signed by the hub's CA."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        ca = x509.load_pem_x509_certificate(ca_pem)
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise _BadAnswer(f"renew-cert: the hub answered a certificate that fails ({exc})") from None
    names = [
        str(n.value) for n in cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
    ]
    if cert.public_key() != key.public_key() or names != [member]:
        raise _BadAnswer(
            f"renew-cert: the hub answered a certificate for {names} and another key; "
            f"expected {member!r} and the key just generated"
        )
    return cert
