"""C2SP signed notes (https://c2sp.org/signed-note): a text signed by one or more keys.

Wire form (every line ends in U+000A)::

    <text: one or more lines>
    <a blank line>
    — <key name> <base64(4-byte key ID || signature)>      (one or more such lines)

A key is named by the pair (key name, 32-bit key ID), where the key ID is the big-endian
first four bytes of ``SHA-256(name || 0x0A || signature type || public key)``, so the same
key material under another signature type has another ID.  Keys travel as text, in the
forms Go's ``golang.org/x/mod/sumdb/note`` reads and writes:

* verifier key (vkey): ``<name>+<hex key ID>+<base64(type || public key)>``;
* signer key, secret: ``PRIVATE+KEY+<name>+<hex key ID>+<base64(type || Ed25519 seed)>``.

Opening a note follows the spec: a signature whose name and key ID both match a known key
is verified, and one that fails rejects the whole note; signatures from unknown keys are
kept but trusted for nothing; a note with no verified signature is rejected.  Untrusted
bytes are parsed under a budget: the size, then the number of signature lines, are checked
before any per-line work.  Every failure is a ``NoteError``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import ClassVar, Final, Protocol, Self

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sighub.client._errors import NoteError

__all__ = [
    "ED25519",
    "MAX_NOTE_BYTES",
    "MAX_SIGNATURES",
    "Ed25519Signer",
    "Ed25519Verifier",
    "Note",
    "SeedKey",
    "Signature",
    "Signer",
    "VerifiedNote",
    "Verifier",
    "check_key_name",
    "decode_base64",
    "key_id",
    "open_note",
    "parse_key",
    "parse_note",
    "shown",
    "sign_note",
]

ED25519: Final = 0x01  # signature type of plain Ed25519 note signatures
# The spec asks verifiers to accept at least 16 signatures of up to ~5 kB (post-quantum);
# 100 is Go's limit, and 256 KiB holds 16 ML-DSA-44 cosignature lines with room to spare.
MAX_SIGNATURES: Final = 100
MAX_NOTE_BYTES: Final = 256 * 1024
MAX_KEY_CHARS: Final = 4096  # a vkey or signer key; an ML-DSA-44 vkey is ~1.8 k
_DASH: Final = "— "  # em dash U+2014, space: how every signature line starts
_CONTROL: Final = re.compile(r"[\x00-\x09\x0b-\x1f]")
_BAD_NAME: Final = re.compile(r"[\s+\x00-\x1f\x7f]")  # \s: every Unicode space
_HEX8: Final = re.compile(r"[0-9a-f]{8}")
_B64: Final = re.compile(r"[A-Za-z0-9+/]*={0,2}")


class Verifier(Protocol):
    """What ``open_note`` needs of a known key."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> int: ...

    def verify(self, message: bytes, signature: bytes) -> bool:
        """True if ``signature`` (the bytes after the key ID) is valid for ``message``."""
        ...


class Signer(Protocol):
    """What ``sign_note`` needs of a signing key."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> int: ...

    def sign(self, message: bytes) -> bytes:
        """The signature bytes (without the key ID) over ``message``."""
        ...


def shown(value: str, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters with the full length noted, so an error
    message about hostile input stays short."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}… ({len(value)} characters)"


def key_id(name: str, sig_type: int, public_key: bytes) -> int:
    """The C2SP key ID: the first four bytes of SHA-256(name || 0x0A || sig_type ||
    public_key) as a big-endian unsigned integer."""
    digest = hashlib.sha256(b"%s\n%c%s" % (name.encode("utf-8"), sig_type, public_key))
    return int.from_bytes(digest.digest()[:4], "big")


def check_key_name(name: str, what: str) -> str:
    """Return ``name`` if it is a valid key name (non-empty, no Unicode space, no ``+``, no
    control character); raise ``NoteError`` naming ``what`` otherwise."""
    if not name:
        raise NoteError(what, "key name", "an empty name", "a non-empty name")
    bad = _BAD_NAME.search(name)
    if bad:
        raise NoteError(
            what,
            "key name",
            f"{shown(name)} with U+{ord(bad.group()):04X} at position {bad.start()}",
            "no Unicode space, plus sign (U+002B) or control character",
        )
    return name


def decode_base64(text: str, what: str, rule: str) -> bytes:
    """Decode standard base64 (RFC 4648 section 4) in its one canonical spelling: padded,
    nothing outside the alphabet, unused bits zero.  Raise ``NoteError`` otherwise."""
    if _B64.fullmatch(text) is None or len(text) % 4:
        raise NoteError(what, rule, shown(text), "standard padded base64")
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error:
        raise NoteError(what, rule, shown(text), "standard padded base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise NoteError(what, rule, shown(text), "canonical base64 (unused bits zero)")
    return raw


def _encode_base64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _check_text(text: str, what: str) -> None:
    """A note text: ends with a newline, holds no control character but newline."""
    if not text.endswith("\n"):
        raise NoteError(what, "final newline", shown(text[-20:]), "a text ending in U+000A")
    bad = _CONTROL.search(text)
    if bad:
        raise NoteError(
            what,
            "control character",
            f"U+{ord(bad.group()):04X} at character {bad.start()}",
            "no control character but newline (U+000A)",
        )


def parse_key(
    text: str, what: str, *, private: bool, types: frozenset[int]
) -> tuple[str, int, int, bytes]:
    """Split a verifier key, or with ``private`` a signer key, into (name, key ID,
    signature type, key bytes), checking the type is in ``types``.  The key ID is returned
    as written; callers check it against the key.  Raise ``NoteError`` on any defect; for
    a signer key the error quotes nothing of the text, since a mangled key can put secret
    characters in any part."""
    if len(text) > MAX_KEY_CHARS:
        raise NoteError(what, "size limit", f"{len(text)} characters", f"<= {MAX_KEY_CHARS}")
    if not private:
        return _split_key(text, what, types)
    try:
        return _split_key(text, what, types, private=True)
    except NoteError as exc:
        raise NoteError(what, exc.rule, "text not shown (secret key)", exc.expected) from None


def _split_key(
    text: str, what: str, types: frozenset[int], *, private: bool = False
) -> tuple[str, int, int, bytes]:
    if private:
        parts = text.split("+", 4)
        if len(parts) != 5 or parts[0] != "PRIVATE" or parts[1] != "KEY":
            raise NoteError(what, "layout", "", "PRIVATE+KEY+<name>+<key ID>+<key>")
        name, hex_id, encoded = parts[2:]
    else:
        parts = text.split("+", 2)
        if len(parts) != 3:
            raise NoteError(
                what, "layout", f"{shown(text)} ({len(parts)} parts)", "<name>+<key ID>+<key>"
            )
        name, hex_id, encoded = parts
    check_key_name(name, what)
    if _HEX8.fullmatch(hex_id) is None:
        raise NoteError(what, "key ID", shown(hex_id), "8 lowercase hexadecimal digits")
    raw = decode_base64(encoded, what, "key")
    if not raw or raw[0] not in types:
        got = f"signature type 0x{raw[0]:02x}" if raw else "an empty key"
        wanted = " or ".join(f"0x{t:02x}" for t in sorted(types))
        raise NoteError(what, "signature type", got, f"signature type {wanted}")
    return name, int(hex_id, 16), raw[0], raw[1:]


def _raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True, slots=True)
class Ed25519Verifier:
    """A known Ed25519 note key (signature type 0x01)."""

    name: str
    public_key: bytes
    key_id: int = field(init=False)
    _key: Ed25519PublicKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_key_name(self.name, "Ed25519 verifier")
        if len(self.public_key) != 32:
            raise NoteError(
                "Ed25519 verifier", "public key", f"{len(self.public_key)} bytes", "32 bytes"
            )
        object.__setattr__(self, "key_id", key_id(self.name, ED25519, self.public_key))
        object.__setattr__(self, "_key", Ed25519PublicKey.from_public_bytes(self.public_key))

    @classmethod
    def from_vkey(cls, vkey: str) -> Ed25519Verifier:
        """The verifier of a type-0x01 vkey; raise ``NoteError`` if it is malformed, of
        another type, or its key ID does not match its name and key."""
        name, stated, _, raw = parse_key(
            vkey, "verifier key", private=False, types=frozenset({ED25519})
        )
        if len(raw) != 32:
            raise NoteError("verifier key", "Ed25519 key", f"{len(raw)} bytes", "32 bytes")
        verifier = cls(name, raw)
        if verifier.key_id != stated:
            raise NoteError(
                "verifier key", "key ID", f"{stated:08x}", f"{verifier.key_id:08x} (from key)"
            )
        return verifier

    @property
    def vkey(self) -> str:
        """The verifier key text, ``<name>+<hex key ID>+<base64(0x01 || key)>``."""
        raw = _encode_base64(bytes([ED25519]) + self.public_key)
        return f"{self.name}+{self.key_id:08x}+{raw}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """True if ``signature`` is this key's Ed25519 signature of ``message``."""
        if len(signature) != 64:
            return False
        try:
            self._key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True, slots=True)
class SeedKey:
    """An Ed25519 private key kept as its 32-byte ``seed`` (secret: left out of ``repr``)
    under a key ``name``, with the note key ID of its signature type; ``skey`` is the
    text to store (with mode 0600).  Raises ``NoteError`` for a bad name or seed."""

    name: str
    seed: bytes = field(repr=False)
    key_id: int = field(init=False)
    public_key: bytes = field(init=False)
    _key: Ed25519PrivateKey = field(init=False, repr=False, compare=False)
    ROLE: ClassVar[str] = "Ed25519 signer"
    SIGNATURE_TYPE: ClassVar[int] = ED25519

    def __post_init__(self) -> None:
        check_key_name(self.name, self.ROLE)
        if len(self.seed) != 32:
            raise NoteError(self.ROLE, "seed", f"{len(self.seed)} bytes", "32 bytes")
        key = Ed25519PrivateKey.from_private_bytes(self.seed)
        object.__setattr__(self, "_key", key)
        object.__setattr__(self, "public_key", _raw_public(key))
        object.__setattr__(self, "key_id", key_id(self.name, self.SIGNATURE_TYPE, self.public_key))

    @classmethod
    def generate(cls, name: str) -> Self:
        """A new random key named ``name``."""
        return cls(name, Ed25519PrivateKey.generate().private_bytes_raw())

    @property
    def skey(self) -> str:
        """The secret signer key text, ``PRIVATE+KEY+<name>+<hex ID>+<base64(type || seed)>``."""
        raw = _encode_base64(bytes([self.SIGNATURE_TYPE]) + self.seed)
        return f"PRIVATE+KEY+{self.name}+{self.key_id:08x}+{raw}"


@dataclass(frozen=True, slots=True)
class Ed25519Signer(SeedKey):
    """An Ed25519 note signing key (signature type 0x01)."""

    @classmethod
    def from_skey(cls, skey: str) -> Ed25519Signer:
        """The signer of a type-0x01 signer key; raise ``NoteError`` (which never quotes
        the secret) if it is malformed or its key ID does not match."""
        name, stated, _, seed = parse_key(
            skey, "signer key", private=True, types=frozenset({ED25519})
        )
        if len(seed) != 32:
            raise NoteError("signer key", "Ed25519 seed", f"{len(seed)} bytes", "32 bytes")
        signer = cls(name, seed)
        if signer.key_id != stated:
            raise NoteError(
                "signer key", "key ID", f"{stated:08x}", f"{signer.key_id:08x} (from key)"
            )
        return signer

    @property
    def verifier(self) -> Ed25519Verifier:
        return Ed25519Verifier(self.name, self.public_key)

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message`` (deterministic, RFC 8032)."""
        return self._key.sign(message)


@dataclass(frozen=True, slots=True)
class Signature:
    """One signature line: the key's name and ID and the signature bytes after the ID."""

    name: str
    key_id: int
    value: bytes

    def __post_init__(self) -> None:
        check_key_name(self.name, "signature")
        if not 0 <= self.key_id < 2**32:
            raise NoteError("signature", "key ID", str(self.key_id), "0 <= key ID < 2**32")
        if not self.value:
            raise NoteError("signature", "value", "no bytes", "at least one byte")

    @property
    def line(self) -> str:
        """``— <name> <base64(key ID || value)>`` and a newline."""
        raw = _encode_base64(self.key_id.to_bytes(4, "big") + self.value)
        return f"{_DASH}{self.name} {raw}\n"


@dataclass(frozen=True, slots=True)
class Note:
    """A note text (ending in a newline) and its signatures, verified or not."""

    text: str
    signatures: tuple[Signature, ...] = ()

    def __post_init__(self) -> None:
        _check_text(self.text, "note text")

    def with_signatures(self, *signatures: Signature) -> Note:
        """This note with ``signatures`` appended; an existing signature by the same
        (name, key ID) as a new one is dropped, as Go's ``note.Sign`` does."""
        new = {(s.name, s.key_id) for s in signatures}
        kept = tuple(s for s in self.signatures if (s.name, s.key_id) not in new)
        return Note(self.text, kept + signatures)

    def encode(self) -> bytes:
        """The signed note's bytes; raise ``NoteError`` if it has no signature."""
        if not self.signatures:
            raise NoteError("signed note", "signatures", "none", "at least one signature")
        lines = "".join(s.line for s in self.signatures)
        return f"{self.text}\n{lines}".encode()


@dataclass(frozen=True, slots=True)
class VerifiedNote:
    """An opened note: ``note`` holds every signature read, ``verified`` those made by a
    known key (all of which verified)."""

    note: Note
    verified: tuple[Signature, ...]

    @property
    def text(self) -> str:
        return self.note.text


def _parse_line(line: str, number: int) -> Signature:
    what = f"signature line {number}"
    if not line.startswith(_DASH):
        raise NoteError("signed note", what, shown(line), "'— <key name> <base64>'")
    name, space, encoded = line[len(_DASH) :].partition(" ")
    if not space:
        raise NoteError("signed note", what, shown(line), "'— <key name> <base64>'")
    check_key_name(name, f"signed note: {what}")
    raw = decode_base64(encoded, "signed note", what)
    if len(raw) < 5:
        raise NoteError("signed note", what, f"{len(raw)} bytes", "a 4-byte key ID and a signature")
    return Signature(name, int.from_bytes(raw[:4], "big"), raw[4:])


def parse_note(
    data: bytes, *, max_bytes: int = MAX_NOTE_BYTES, max_signatures: int = MAX_SIGNATURES
) -> Note:
    """Parse a signed note without verifying it.  Raise ``NoteError`` if it is over
    ``max_bytes`` or ``max_signatures``, not UTF-8, holds a control character other than
    newline, or is not a text, a blank line and well-formed signature lines."""
    if len(data) > max_bytes:
        raise NoteError("signed note", "size limit", f"{len(data)} bytes", f"<= {max_bytes}")
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NoteError(
            "signed note", "UTF-8", f"invalid byte at offset {exc.start}", "valid UTF-8"
        ) from None
    _check_text(text, "signed note")
    split = text.rfind("\n\n")
    if split < 0:
        raise NoteError(
            "signed note", "layout", "no blank line", "text, a blank line, signature lines"
        )
    block = text[split + 2 :]
    if not block:
        raise NoteError(
            "signed note", "signatures", "nothing after the blank line", "a signature line"
        )
    count = block.count("\n")
    if count > max_signatures:
        raise NoteError("signed note", "signature limit", f"{count} lines", f"<= {max_signatures}")
    lines = block[:-1].split("\n")
    signatures = tuple(_parse_line(line, i) for i, line in enumerate(lines, 1))
    return Note(text[: split + 1], signatures)


def sign_note(note: Note | str, *signers: Signer) -> Note:
    """``note`` (or a bare text) signed by each of ``signers`` over its text; a signature
    it had from one of their keys is replaced.  Raise ``NoteError`` if the text is not a
    valid note text or a signer's name is invalid."""
    if isinstance(note, str):
        note = Note(note)
    message = note.text.encode("utf-8")
    return note.with_signatures(*(Signature(s.name, s.key_id, s.sign(message)) for s in signers))


def open_note(
    data: bytes,
    verifiers: Iterable[Verifier],
    *,
    max_bytes: int = MAX_NOTE_BYTES,
    max_signatures: int = MAX_SIGNATURES,
) -> VerifiedNote:
    """Parse a signed note (as ``parse_note``) and verify each signature whose name and
    key ID match one of ``verifiers``.  Raise ``NoteError`` if the note is malformed, two
    verifiers share a name and key ID, a known key's signature fails, or no signature is
    by a known key.  Signatures by unknown keys are returned in ``note`` only."""
    known: dict[tuple[str, int], Verifier] = {}
    for verifier in verifiers:
        pair = (verifier.name, verifier.key_id)
        if known.setdefault(pair, verifier) != verifier:
            raise NoteError(
                "verifier set",
                "ambiguous key",
                f"two keys named {verifier.name}+{verifier.key_id:08x}",
                "one key per name and key ID",
            )
    note = parse_note(data, max_bytes=max_bytes, max_signatures=max_signatures)
    message = note.text.encode("utf-8")
    verified = []
    for number, sig in enumerate(note.signatures, 1):
        key = known.get((sig.name, sig.key_id))
        if key is None:
            continue
        if not key.verify(message, sig.value):
            raise NoteError(
                "signed note",
                f"signature line {number}",
                f"a signature by {sig.name}+{sig.key_id:08x} that does not verify",
                "a valid signature",
            )
        verified.append(sig)
    if not verified:
        names = ", ".join(f"{n}+{k:08x}" for n, k in known)
        raise NoteError(
            "signed note",
            "verification",
            f"{len(note.signatures)} signatures, none by a known key",
            f"a signature by one of: {names}" if names else "a known key (none was given)",
        )
    return VerifiedNote(note, tuple(verified))
