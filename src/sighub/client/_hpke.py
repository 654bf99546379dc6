"""Member encryption keys: HPKE (RFC 9180) key pairs and the one way sighub uses them.

Every member holds an HPKE key pair besides its signing key.  The private half stays in
``encryption.key`` in its data directory (0600); the public half is registered at the hub,
logged in the member's ``member.enroll`` or ``key.encryption`` leaf with a proof (its
signing key's signature over the key), and rotated as signing keys are.  What is sealed to
these keys (collaboration secrets) can be collected today and attacked for years, so the
default suite's KEM is the post-quantum/traditional hybrid.

Suites, by the name used on the wire, in leaves and in key files:

- ``mlkem768x25519-sha256-chacha20poly1305`` (the default): KEM MLKEM768-X25519 (X-Wing,
  KEM id 0x647a of draft-ietf-hpke-pq), HKDF-SHA256, ChaCha20-Poly1305.  Public keys are
  1216 bytes (ML-KEM-768's 1184, then X25519's 32); each sealed message carries 1120.
- ``x25519-sha256-chacha20poly1305``: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
  ChaCha20-Poly1305 (RFC 9180).  For an operator who needs it (a peer without ML-KEM,
  32-byte keys); it gives no protection against a future quantum computer.

A private key is kept as its 32-byte seed: for MLKEM768-X25519 the X-Wing decapsulation
key (SHAKE256 expands it into the ML-KEM-768 seed and the X25519 key), for X25519 the raw
key.  Both are the suites' own serializations, so the files outlive a library change.

``cryptography``'s single-shot ``Suite.encrypt`` takes ``info`` but no AAD (RFC 9180
section 8.1 advises single-shot users to put such context in ``info``), so ``seal`` binds
its ``aad`` there: the HPKE info is ``sighub-hpke-v1 0x00 ‖ len(info) (4 bytes) ‖ info ‖
aad``.  A changed byte of either fails ``open_``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sighub.client import _json
from sighub.client._errors import EXIT_BAD_INPUT, JsonBudgetError, KeyFileError, SighubError
from sighub.client._keys import read_secret, write_secret

__all__ = [
    "DEFAULT_SUITE",
    "ENCRYPTION_KEY",
    "SUITES",
    "X25519_SUITE",
    "EncryptionKey",
    "HpkeError",
    "ProvedKey",
    "check_proof",
    "check_public",
    "encryption_key_id",
    "load_key",
    "open_",
    "prove",
    "seal",
]

ENCRYPTION_KEY: Final = "encryption.key"  # in the member data directory
DEFAULT_SUITE: Final = "mlkem768x25519-sha256-chacha20poly1305"
X25519_SUITE: Final = "x25519-sha256-chacha20poly1305"
PROOF_CONTEXT: Final = b"sighub-encryption-key-v1\n"
INFO_CONTEXT: Final = b"sighub-hpke-v1\x00"
_SEED: Final = 32
_MLKEM768_PUBLIC: Final = 1184
_TAG: Final = 16  # ChaCha20-Poly1305's tag
_KEY_FILE: Final = _json.JsonBudget(4096, max_depth=1, max_containers=1)


class HpkeError(SighubError, ValueError):
    """An encryption key, proof or sealed message sighub cannot use; the message names
    which, never a key's secret."""

    exit_code = EXIT_BAD_INPUT


@dataclass(frozen=True, slots=True)
class _Suite:
    name: str
    kem: hpke.KEM
    public_size: int
    enc_size: int
    title: str


SUITES: Final = {
    s.name: s
    for s in (
        _Suite(DEFAULT_SUITE, hpke.KEM.MLKEM768_X25519, _MLKEM768_PUBLIC + 32, 1120,
               "MLKEM768-X25519, HKDF-SHA256, ChaCha20-Poly1305"),
        _Suite(X25519_SUITE, hpke.KEM.X25519, 32, 32,
               "DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305"),
    )
}  # fmt: skip
# Both suites share the KDF and AEAD; one Suite object per KEM, made once.
_HPKE: Final = {
    name: hpke.Suite(s.kem, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
    for name, s in SUITES.items()
}

_Public = x25519.X25519PublicKey | hpke.MLKEM768X25519PublicKey
_Private = x25519.X25519PrivateKey | hpke.MLKEM768X25519PrivateKey


def _suite(name: str, what: str) -> _Suite:
    suite = SUITES.get(name)
    if suite is None:
        raise HpkeError(f"{what}: suite {name[:80]!r} is not one of {sorted(SUITES)}")
    return suite


def encryption_key_id(public: bytes) -> str:
    """The id of an encryption public key: ``hpke:`` and the first 16 bytes of its
    SHA-256, in hex (as signing key ids are made)."""
    return "hpke:" + hashlib.sha256(public).digest()[:16].hex()


def _public_object(suite: _Suite, raw: bytes, what: str) -> _Public:
    if len(raw) != suite.public_size:
        raise HpkeError(
            f"{what}: {len(raw)} bytes, expected a {suite.public_size}-byte {suite.name} key"
        )
    try:
        if suite.name == X25519_SUITE:
            return x25519.X25519PublicKey.from_public_bytes(raw)
        return hpke.MLKEM768X25519PublicKey(
            mlkem.MLKEM768PublicKey.from_public_bytes(raw[:_MLKEM768_PUBLIC]),
            x25519.X25519PublicKey.from_public_bytes(raw[_MLKEM768_PUBLIC:]),
        )
    except ValueError:
        raise HpkeError(f"{what}: not a valid {suite.name} public key") from None


def check_public(suite: str, public: bytes, what: str = "encryption key") -> None:
    """That ``public`` is a public key of ``suite`` (``HpkeError`` naming what is not)."""
    _public_object(_suite(suite, what), public, what)


def _derive(suite: _Suite, seed: bytes) -> tuple[_Private, bytes]:
    """The private key object of ``seed`` and its raw public key."""
    if suite.name == X25519_SUITE:
        key = x25519.X25519PrivateKey.from_private_bytes(seed)
        return key, key.public_key().public_bytes_raw()
    # X-Wing's key derivation: SHAKE256(seed) -> ML-KEM-768 seed (d ‖ z) ‖ X25519 key
    expanded = hashlib.shake_256(seed).digest(96)
    ml = mlkem.MLKEM768PrivateKey.from_seed_bytes(expanded[:64])
    xk = x25519.X25519PrivateKey.from_private_bytes(expanded[64:])
    public = ml.public_key().public_bytes_raw() + xk.public_key().public_bytes_raw()
    return hpke.MLKEM768X25519PrivateKey(ml, xk), public


class EncryptionKey:
    """A member's HPKE key pair: ``suite``, ``public`` (raw bytes) and the private key,
    which ``repr`` and ``str`` never show."""

    __slots__ = ("_private", "_seed", "public", "suite")

    def __init__(self, suite: str, seed: bytes) -> None:
        spec = _suite(suite, "encryption key")
        if len(seed) != _SEED:
            raise HpkeError(f"{suite} private key: {len(seed)} bytes, expected a {_SEED}-byte seed")
        self.suite, self._seed = suite, seed
        self._private, self.public = _derive(spec, seed)

    @classmethod
    def generate(cls, suite: str = DEFAULT_SUITE) -> EncryptionKey:
        return cls(suite, os.urandom(_SEED))

    @property
    def key_id(self) -> str:
        return encryption_key_id(self.public)

    def __repr__(self) -> str:
        return f"EncryptionKey({self.suite!r}, {self.key_id!r})"

    def file_bytes(self) -> bytes:
        """The key file's content (a secret)."""
        seed = base64.b64encode(self._seed).decode()
        return json.dumps({"v": 1, "suite": self.suite, "seed": seed}).encode()

    def write(self, path: Path) -> None:
        """Create ``path`` (0600, never overwriting) holding this key."""
        write_secret(path, self.file_bytes())

    def open_(self, ciphertext: bytes, aad: bytes, info: bytes) -> bytes:
        """The plaintext ``seal`` sealed to this key with the same ``aad`` and ``info``."""
        spec = SUITES[self.suite]
        what = f"HPKE open ({self.suite}, key {self.key_id})"
        if len(ciphertext) < spec.enc_size + _TAG:
            raise HpkeError(
                f"{what}: ciphertext of {len(ciphertext)} bytes, expected at least"
                f" {spec.enc_size + _TAG} (encapsulated key and tag)"
            )
        try:
            return _HPKE[self.suite].decrypt(ciphertext, self._private, _info(info, aad))
        except (InvalidTag, ValueError):
            raise HpkeError(
                f"{what}: the ciphertext does not open under this key with this aad and info"
                " (altered, sealed to another key, or for another context)"
            ) from None


def load_key(path: Path) -> EncryptionKey:
    """The encryption key in ``path`` (0600)."""
    try:
        doc: Any = _json.loads(read_secret(path), _KEY_FILE, str(path))
        if not isinstance(doc, dict) or doc.get("v") != 1:
            raise KeyFileError(f"{path}: not a v1 encryption key file")
        seed = base64.b64decode(str(doc.get("seed")), validate=True)
        return EncryptionKey(str(doc.get("suite")), seed)
    except HpkeError as exc:
        raise KeyFileError(f"{path}: {exc}") from None
    except (JsonBudgetError, ValueError) as exc:  # binascii.Error, or a non-ASCII seed
        raise KeyFileError(f"{path}: not an encryption key file ({type(exc).__name__})") from None


def _info(info: bytes, aad: bytes) -> bytes:
    return INFO_CONTEXT + struct.pack(">I", len(info)) + info + aad


def seal(suite: str, recipient_public: bytes, plaintext: bytes, aad: bytes, info: bytes) -> bytes:
    """HPKE base-mode single-shot encryption of ``plaintext`` to ``recipient_public``:
    the encapsulated key followed by the AEAD ciphertext, bound to ``aad`` and ``info``."""
    spec = _suite(suite, "HPKE seal")
    public = _public_object(spec, recipient_public, f"HPKE seal: recipient key ({suite})")
    return _HPKE[suite].encrypt(plaintext, public, _info(info, aad))


def open_(key: EncryptionKey, ciphertext: bytes, aad: bytes, info: bytes) -> bytes:
    """``key.open_``: the plaintext of a ``seal`` to ``key``, or ``HpkeError``."""
    return key.open_(ciphertext, aad, info)


# -- proofs: the member's signing key vouches for its encryption key ----------------------
def _proof_message(suite: str, public: bytes) -> bytes:
    return PROOF_CONTEXT + suite.encode() + b"\n" + public


def prove(signing: Ed25519PrivateKey, suite: str, public: bytes) -> bytes:
    """The signing key's signature over ``sighub-encryption-key-v1\\n ‖ suite ‖ \\n ‖
    public``."""
    return signing.sign(_proof_message(suite, public))


def check_proof(signing_public: bytes, suite: str, public: bytes, proof: bytes) -> None:
    """That ``proof`` is the signature of ``signing_public`` over this suite and key."""
    try:
        Ed25519PublicKey.from_public_bytes(signing_public).verify(
            proof, _proof_message(suite, public)
        )
    except (InvalidSignature, ValueError):
        raise HpkeError(
            f"proof of encryption key {encryption_key_id(public)} ({suite[:80]}) does not"
            " verify under the signing key"
        ) from None


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True, slots=True)
class ProvedKey:
    """An encryption public key with its suite and its signing key's proof, as an
    enrollment sends it and a ``member.enroll`` leaf logs it."""

    suite: str
    public: bytes
    proof: bytes

    @property
    def key_id(self) -> str:
        return encryption_key_id(self.public)

    def to_fields(self) -> dict[str, str]:
        return {
            "encryption_suite": self.suite,
            "encryption_key": _b64(self.public),
            "encryption_proof": _b64(self.proof),
        }

    @classmethod
    def from_fields(cls, doc: dict[str, Any], what: str) -> ProvedKey | None:
        """The proved key of a leaf's fields; None when it has none; ``HpkeError`` when
        it has only some, or one is not base64."""
        names = ("encryption_suite", "encryption_key", "encryption_proof")
        present = [k for k in names if k in doc]
        if not present:
            return None
        if len(present) != 3 or not isinstance(doc["encryption_suite"], str):
            raise HpkeError(f"{what}: has {present}; an encryption key needs all of {names}")
        try:
            public, proof = (base64.b64decode(str(doc[k]), validate=True) for k in names[1:])
        except (binascii.Error, ValueError):
            raise HpkeError(f"{what}: encryption_key or encryption_proof is not base64") from None
        return cls(doc["encryption_suite"], public, proof)
