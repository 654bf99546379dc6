"""Member key material on disk: the Ed25519 signing key, the member identity and
collaboration keys.  Secrets are written atomically with mode 0600 and refused when other
users could read them."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import stat
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from sighub.client import _json
from sighub.client._blind import CollabKey
from sighub.client._envelope import key_id, public_key_bytes
from sighub.client._errors import JsonBudgetError, KeyFileError, ModelError
from sighub.client._model import Publisher

__all__ = ["MemberFiles", "MemberIdentity", "identity_for"]

SIGNING_KEY: Final = "signing.key"
MEMBER_FILE: Final = "member.json"
ENCRYPTION_KEY_ID: Final = "encryption_key_id"  # the field of member.json naming it
COLLAB_DIR: Final = "collab-keys"
_NAMESPACE: Final = uuid.UUID("8a3f3c2e-0a4b-4f59-9a0e-3c1d2b7e6f10")


def identity_for(name: str) -> str:
    """The STIX identity id of a member name.  Derived, not drawn, because the hub (member
    add) and the member (keygen, offline) compute it apart and must agree.  STIX 2.1 says
    identity ids SHOULD be UUIDv4 and strict validators refuse UUIDv5, so the name's
    SHA-256 in sighub's namespace fills the 122 bits of a version-4 layout: as unique as
    random bits, and a valid v4 UUID for every consumer."""
    digest = hashlib.sha256(_NAMESPACE.bytes + b"member:" + name.encode()).digest()
    return f"identity--{uuid.UUID(bytes=digest[:16], version=4)}"


@dataclass(frozen=True, slots=True)
class MemberIdentity:
    publisher: Publisher
    key_id: str
    public_key: Ed25519PublicKey

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.publisher.name,
            "identity": self.publisher.id,
            "key_id": self.key_id,
            "public_key": base64.b64encode(public_key_bytes(self.public_key)).decode(),
        }

    @classmethod
    def from_json(cls, doc: Any, where: str) -> MemberIdentity:
        try:
            raw = base64.b64decode(doc["public_key"], validate=True)
            public = Ed25519PublicKey.from_public_bytes(raw)
            publisher = Publisher(doc["identity"], doc["name"])
        except (KeyError, TypeError, ValueError, binascii.Error, ModelError) as exc:
            raise KeyFileError(f"{where}: not a member identity file ({exc})") from None
        if key_id(public) != doc.get("key_id"):
            raise KeyFileError(f"{where}: key_id does not match the public key")
        return cls(publisher, key_id(public), public)


def write_secret(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 (never overwriting) and write ``data`` to it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{path}: already exists; refusing to overwrite a key") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def fsync_path(path: Path) -> None:
    """Flush ``path`` (a file, or a folder after a rename in it) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_secret(path: Path) -> bytes:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise KeyFileError(f"{path}: no such key file") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"{path}: mode {stat.S_IMODE(st.st_mode):04o}, expected 0600 (others can read it)"
        )
    return path.read_bytes()


class MemberFiles:
    """A member's data directory: ``signing.key``, ``member.json``, ``collab-keys/``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def create(self, name: str) -> MemberIdentity:
        """Generate a signing key and identity for member ``name``."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)  # keys, credentials and the local store live here
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        ident = MemberIdentity(
            Publisher(identity_for(name), name), key_id(key.public_key()), key.public_key()
        )
        write_secret(self.root / SIGNING_KEY, pem)
        (self.root / MEMBER_FILE).write_text(json.dumps(ident.to_json(), indent=2) + "\n")
        return ident

    def write_identity(self, ident: MemberIdentity, encryption_key_id: str | None = None) -> None:
        """(Re)write ``member.json`` for ``ident``.  It also names the member's current
        encryption key (``encryption_key_id``, else the one it named before), as it names
        the signing key: a data directory holding only ``member.json`` still knows both
        keys for its own."""
        path = self.root / MEMBER_FILE
        doc = ident.to_json()
        if encryption_key_id is None and path.exists():
            old = _json.loads(path.read_bytes(), _json.DOCUMENT, str(path))
            if isinstance(old, dict) and isinstance(old.get(ENCRYPTION_KEY_ID), str):
                encryption_key_id = old[ENCRYPTION_KEY_ID]
        if encryption_key_id is not None:
            doc[ENCRYPTION_KEY_ID] = encryption_key_id
        path.write_text(json.dumps(doc, indent=2) + "\n")

    def signing_key(self) -> Ed25519PrivateKey:
        path = self.root / SIGNING_KEY
        try:
            key = load_pem_private_key(read_secret(path), password=None)
        except ValueError:
            raise KeyFileError(f"{path}: not a PEM private key") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyFileError(f"{path}: expected an Ed25519 key, got {type(key).__name__}")
        return key

    def identity(self) -> MemberIdentity:
        path = self.root / MEMBER_FILE
        try:
            doc = _json.loads(path.read_bytes(), _json.DOCUMENT, str(path))
        except FileNotFoundError:
            raise KeyFileError(f"{path}: missing; run 'sighub keygen' first") from None
        except JsonBudgetError as exc:
            raise KeyFileError(str(exc)) from None
        return MemberIdentity.from_json(doc, str(path))

    def add_collab_key(self, key: CollabKey) -> Path:
        folder = self.root / COLLAB_DIR
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = folder / f"{key.collaboration}.{key.epoch}.json"
        doc = {
            "collaboration": key.collaboration,
            "epoch": key.epoch,
            "secret": base64.b64encode(key.secret).decode(),
        }
        write_secret(path, json.dumps(doc).encode())
        return path

    def collab_keys(self, collaboration: str) -> list[CollabKey]:
        """Every stored epoch of ``collaboration``'s key, oldest first."""
        out = []
        for path in sorted((self.root / COLLAB_DIR).glob(f"{collaboration}.*.json")):
            try:
                doc = _json.loads(read_secret(path), _json.DOCUMENT, str(path))
                key = CollabKey(doc["collaboration"], doc["epoch"], base64.b64decode(doc["secret"]))
            except (KeyError, TypeError, ValueError, binascii.Error) as exc:
                raise KeyFileError(f"{path}: not a collaboration key file ({exc})") from None
            if key.collaboration == collaboration:
                out.append(key)
        return sorted(out, key=lambda k: k.epoch)

    def current_collab_key(self, collaboration: str) -> CollabKey:
        keys = self.collab_keys(collaboration)
        if not keys:
            raise KeyFileError(
                f"{self.root / COLLAB_DIR}: no key for collaboration {collaboration!r}"
            )
        return keys[-1]
