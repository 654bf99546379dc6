"""The member side of enrollment and key rotation."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from client._errors import KeyFileError, SighubError
from client._keys import SIGNING_KEY, MemberFiles, MemberIdentity, read_secret, write_secret
from client._rpc import CHANNEL_OPTIONS, Credential, HubClient, open_channel
from client._tls import make_csr, new_tls_key, write_credential

__all__ = ["ROTATE_CONTEXT", "EnrollmentFile", "enroll", "rotate_signing_key"]

ROTATE_CONTEXT = b"sighub-rotate-v1"


@dataclass(frozen=True, slots=True)
class EnrollmentFile:
    hub: str
    member: str
    token: str
    ca_pem: bytes
    hub_public_key: str
    cert_pem: bytes = b""  # the short-lived enrollment client certificate and key
    key_pem: bytes = b""

    @classmethod
    def load(cls, path: Path) -> EnrollmentFile:
        try:
            doc: Any = json.loads(read_secret(path))
            return cls(
                doc["hub"],
                doc["member"],
                doc["token"],
                doc["ca_pem"].encode(),
                doc["hub_public_key"],
                doc.get("cert_pem", "").encode(),
                doc.get("key_pem", "").encode(),
            )
        except KeyFileError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise KeyFileError(f"{path}: not an enrollment file ({exc})") from None

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
            },
            indent=2,
        )


def enroll(
    path: Path, data: Path, insecure: bool = False, address: str | None = None
) -> MemberIdentity:
    """Create the member's keys in ``data``, enroll at the hub, store the credential."""
    ef = EnrollmentFile.load(path)
    files = MemberFiles(data)
    if (data / "hub.json").exists():
        raise SighubError(f"{data}: already enrolled (hub.json exists)")
    ident = files.identity() if (data / SIGNING_KEY).exists() else files.create(ef.member)
    if ident.publisher.name != ef.member:
        raise SighubError(f"{data}: holds member {ident.publisher.name!r}, not {ef.member!r}")
    tls_key = new_tls_key()
    target = address or ef.hub
    if insecure:
        placeholder = Credential(data, target, ef.member, "", ef.hub_public_key)
        channel = open_channel(placeholder, insecure=True, address=target)
    else:
        creds = grpc.ssl_channel_credentials(ef.ca_pem, ef.key_pem or None, ef.cert_pem or None)
        channel = grpc.secure_channel(target, creds, options=CHANNEL_OPTIONS)
    public = ident.public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    with HubClient(channel) as hub:
        cert, identity, kid, bearer = hub.enroll(
            ef.member, ef.token, make_csr(tls_key, ef.member), public
        )
    if identity != ident.publisher.id or kid != ident.key_id:
        raise SighubError(
            f"hub answered identity {identity} / key {kid}; expected "
            f"{ident.publisher.id} / {ident.key_id}"
        )
    write_credential(
        data, target, ef.member, bearer, ef.ca_pem, cert.encode(), tls_key, ef.hub_public_key
    )
    return ident


def rotate_signing_key(data: Path, insecure: bool = False) -> tuple[str, str]:
    """Register a new signing key (proved by the current one), then replace it on disk."""
    files = MemberFiles(data)
    current = files.signing_key()
    new = Ed25519PrivateKey.generate()
    new_public = new.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    proof = current.sign(ROTATE_CONTEXT + new_public)
    with HubClient.connect(Credential.load(data), insecure) as hub:
        kid, old = hub.rotate_signing_key(new_public, proof)
    key_path = data / SIGNING_KEY
    old_path = data / f"signing.{old.split(':')[-1][:12]}.retired.key"
    key_path.rename(old_path)
    write_secret(key_path, new.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    ident = MemberIdentity(files.identity().publisher, kid, new.public_key())
    (data / "member.json").write_text(json.dumps(ident.to_json(), indent=2) + "\n")
    return kid, old
