"""C2SP transparency-log checkpoints (https://c2sp.org/tlog-checkpoint) and their Ed25519
witness cosignatures (https://c2sp.org/tlog-cosignature, ``cosignature/v1``).

A checkpoint is a signed note (``_note``) whose text is::

    <origin>
    <tree size: decimal, no leading zero>
    <base64 of the 32-byte RFC 6962 root hash>
    <extension lines, optional, each non-empty>

A cosignature is a signature line of type 0x04: its key ID is
``SHA-256(name || 0x0A || 0x04 || public key)[:4]`` and its value is an 8-byte big-endian
POSIX time and the Ed25519 signature of ``"cosignature/v1\\ntime <time>\\n" || text``.  A
cosigner states that, at that time, this was the largest consistent tree it had seen for
the origin; the signed message covers any extension lines but the statement does not.

**The checkpoint's time.**  sighub wants each checkpoint to say when the hub signed it.
Neither spec has a field for that: the log's own signature (type 0x01) carries no time, and
timestamps in this ecosystem live in cosignatures, i.e. they are made by witnesses.  A hub
could cosign its own checkpoints, but signed-note says one key should not serve two
signature types, so that would need a second hub key.  sighub instead writes the time as
one extension line, ``sighub-time <POSIX seconds>`` (decimal, no leading zero, at most
2**63 - 1), which tlog-checkpoint permits (extension lines are opaque and optional):

* it is covered by the hub's log signature, and by every witness's cosignature message;
* readers that do not know it skip it: Go's ``tlog.ParseTree`` ignores lines after the
  third, transparency-dev's ``log.Checkpoint.Unmarshal`` returns them as opaque data;
* it is the hub's own claim.  The spec discourages extension lines because monitors cannot
  audit them, and no witness vouches for them, so a time that others back comes from the
  witnesses' cosignature timestamps, which ``open_checkpoint`` returns.

``Checkpoint.time`` reads that line and ``Checkpoint.with_time`` writes it.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import ClassVar, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sighub.client._errors import NoteError
from sighub.client._note import (
    ED25519,
    MAX_NOTE_BYTES,
    MAX_SIGNATURES,
    Note,
    SeedKey,
    Signature,
    Signer,
    Verifier,
    check_key_name,
    decode_base64,
    key_id,
    open_note,
    parse_key,
    shown,
    sign_note,
)

__all__ = [
    "COSIGNATURE_V1",
    "MAX_TIMESTAMP",
    "TIME_EXTENSION",
    "Checkpoint",
    "Cosignature",
    "CosignatureVerifier",
    "Cosigner",
    "OpenedCheckpoint",
    "cosignature_message",
    "cosignature_time",
    "open_checkpoint",
    "parse_checkpoint",
    "sign_checkpoint",
]

COSIGNATURE_V1: Final = 0x04  # signature type of timestamped Ed25519 cosignatures
MAX_TIMESTAMP: Final = 2**63 - 1  # tlog-cosignature's bound, kept for the time extension
MAX_SIZE: Final = 2**64 - 1  # tree sizes are uint64 in every implementation
TIME_EXTENSION: Final = "sighub-time"
_DECIMAL: Final = re.compile(r"0|[1-9][0-9]{0,19}")  # no leading zero; 20 digits >= 2**64
_HASH_BYTES: Final = 32
_TIMESTAMP_BYTES: Final = 8
_CONTROL: Final = re.compile(r"[\x00-\x1f]")


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _decimal(text: str, limit: int, what: str, rule: str) -> int:
    if _DECIMAL.fullmatch(text) is None or int(text) > limit:
        raise NoteError(what, rule, shown(text), f"a decimal 0..{limit} with no leading zero")
    return int(text)


def _check_line(line: str, what: str, rule: str) -> None:
    if not line:
        raise NoteError(what, rule, "an empty line", "a non-empty line")
    if _CONTROL.search(line):
        raise NoteError(what, rule, shown(line), "one line without control characters")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A log's tree head: ``origin`` names the log, ``size`` its leaf count, ``root`` its
    32-byte RFC 6962 root hash; ``extensions`` are optional non-empty extra lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line(self.origin, "checkpoint", "origin")
        if not 0 <= self.size <= MAX_SIZE:
            raise NoteError("checkpoint", "tree size", str(self.size), f"0..{MAX_SIZE}")
        if len(self.root) != _HASH_BYTES:
            raise NoteError("checkpoint", "root hash", f"{len(self.root)} bytes", "32 bytes")
        stamps = 0
        for line in self.extensions:
            _check_line(line, "checkpoint", "extension line")
            word, _, value = line.partition(" ")
            if word == TIME_EXTENSION:
                stamps += 1
                _decimal(value, MAX_TIMESTAMP, "checkpoint", f"{TIME_EXTENSION} line")
        if stamps > 1:
            raise NoteError(
                "checkpoint", f"{TIME_EXTENSION} line", f"{stamps} lines", "at most one"
            )

    @property
    def body(self) -> str:
        """The note text: origin, size, base64 root, extension lines, each ending in
        a newline."""
        head = f"{self.origin}\n{self.size}\n{_b64(self.root)}\n"
        return head + "".join(f"{line}\n" for line in self.extensions)

    @property
    def time(self) -> int | None:
        """The POSIX seconds of the ``sighub-time`` extension line, or None if absent."""
        for line in self.extensions:
            word, _, value = line.partition(" ")
            if word == TIME_EXTENSION:
                return int(value)
        return None

    def with_time(self, seconds: int) -> Checkpoint:
        """This checkpoint with its ``sighub-time`` line set to ``seconds`` (first among
        the extension lines, replacing any earlier one)."""
        if not 0 <= seconds <= MAX_TIMESTAMP:
            raise NoteError("checkpoint", "time", str(seconds), f"0..{MAX_TIMESTAMP}")
        rest = tuple(e for e in self.extensions if e.partition(" ")[0] != TIME_EXTENSION)
        stamp = f"{TIME_EXTENSION} {seconds}"
        return Checkpoint(self.origin, self.size, self.root, (stamp, *rest))


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a checkpoint note text (the part before the signatures).  Raise ``NoteError``
    if it has fewer than three lines, does not end in a newline, or a line is malformed:
    an empty origin, a size with a leading zero or over 2**64 - 1, a root hash that is not
    canonical base64 of 32 bytes, an empty extension line."""
    if not text.endswith("\n"):
        raise NoteError("checkpoint", "final newline", shown(text[-20:]), "a text ending in U+000A")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise NoteError("checkpoint", "layout", f"{len(lines)} lines", "origin, size, root hash")
    size = _decimal(lines[1], MAX_SIZE, "checkpoint", "tree size")
    root = decode_base64(lines[2], "checkpoint", "root hash")
    if len(root) != _HASH_BYTES:
        raise NoteError("checkpoint", "root hash", f"{len(root)} bytes", "32 bytes")
    return Checkpoint(lines[0], size, root, tuple(lines[3:]))


def sign_checkpoint(checkpoint: Checkpoint, *signers: Signer) -> bytes:
    """The signed note of ``checkpoint`` by ``signers`` (the log's key first)."""
    return sign_note(Note(checkpoint.body), *signers).encode()


def cosignature_message(body: str, timestamp: int) -> bytes:
    """What a cosignature/v1 signs: ``cosignature/v1``, ``time <timestamp>`` and the
    checkpoint's note text (signature lines excluded)."""
    return f"cosignature/v1\ntime {timestamp}\n{body}".encode()


def cosignature_time(signature: Signature) -> int:
    """The POSIX seconds a cosignature was made at (its first 8 bytes after the key ID).
    Raise ``NoteError`` if it is too short to be a cosignature or the time is over
    2**63 - 1.  This reads the time only: it does not verify the signature."""
    if len(signature.value) < _TIMESTAMP_BYTES + 64:
        raise NoteError(
            "cosignature",
            "length",
            f"{len(signature.value)} bytes after the key ID",
            "an 8-byte time and a 64-byte signature",
        )
    seconds = int.from_bytes(signature.value[:_TIMESTAMP_BYTES], "big")
    if seconds > MAX_TIMESTAMP:
        raise NoteError("cosignature", "time", str(seconds), f"<= {MAX_TIMESTAMP}")
    return seconds


def _raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


_COSIGNER_TYPES: Final = frozenset({ED25519, COSIGNATURE_V1})


def _cosigner_key(text: str, what: str, private: bool) -> tuple[str, int, int, bytes]:
    """Parse a cosigner's vkey or signer key and check its stated ID against the type it
    was written with.  Type 0x01 is accepted as transparency-dev's witness tooling does:
    witness lists often give Ed25519 vkeys; the cosignature key ID is then recomputed."""
    name, stated, sig_type, raw = parse_key(text, what, private=private, types=_COSIGNER_TYPES)
    if len(raw) != 32:
        raise NoteError(what, "Ed25519 key", f"{len(raw)} bytes", "32 bytes")
    public = _raw_public(Ed25519PrivateKey.from_private_bytes(raw)) if private else raw
    if stated != key_id(name, sig_type, public):
        expected = f"{key_id(name, sig_type, public):08x} (from key)"
        raise NoteError(what, "key ID", f"{stated:08x}", expected)
    return name, stated, sig_type, raw


@dataclass(frozen=True, slots=True)
class CosignatureVerifier:
    """A known witness key for Ed25519 cosignature/v1 (signature type 0x04)."""

    name: str
    public_key: bytes
    key_id: int = field(init=False)
    _key: Ed25519PublicKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_key_name(self.name, "cosignature verifier")
        if len(self.public_key) != 32:
            raise NoteError(
                "cosignature verifier", "public key", f"{len(self.public_key)} bytes", "32 bytes"
            )
        object.__setattr__(self, "key_id", key_id(self.name, COSIGNATURE_V1, self.public_key))
        object.__setattr__(self, "_key", Ed25519PublicKey.from_public_bytes(self.public_key))

    @classmethod
    def from_vkey(cls, vkey: str) -> CosignatureVerifier:
        """The verifier of a type-0x04 vkey, or of a type-0x01 vkey taken as the same key
        used for cosignatures.  Raise ``NoteError`` if it is malformed, of another type, or
        its key ID does not match."""
        name, _, _, raw = _cosigner_key(vkey, "cosigner verifier key", private=False)
        return cls(name, raw)

    @property
    def vkey(self) -> str:
        """The type-0x04 verifier key text."""
        raw = _b64(bytes([COSIGNATURE_V1]) + self.public_key)
        return f"{self.name}+{self.key_id:08x}+{raw}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """True if ``signature`` (8-byte time || Ed25519 signature) is this key's
        cosignature/v1 of the checkpoint text ``message``, at a time <= 2**63 - 1."""
        if len(signature) != _TIMESTAMP_BYTES + 64:
            return False
        seconds = int.from_bytes(signature[:_TIMESTAMP_BYTES], "big")
        if seconds > MAX_TIMESTAMP:
            return False
        signed = b"cosignature/v1\ntime %d\n%s" % (seconds, message)
        try:
            self._key.verify(signature[_TIMESTAMP_BYTES:], signed)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True, slots=True)
class Cosigner(SeedKey):
    """A witness's Ed25519 cosigning key (signature type 0x04)."""

    ROLE: ClassVar[str] = "cosigner"
    SIGNATURE_TYPE: ClassVar[int] = COSIGNATURE_V1

    @classmethod
    def from_skey(cls, skey: str) -> Cosigner:
        """The cosigner of a type-0x04 (or type-0x01) signer key; raise ``NoteError``
        (never quoting the secret) if it is malformed or its key ID does not match."""
        name, _, _, seed = _cosigner_key(skey, "cosigner key", private=True)
        return cls(name, seed)

    @property
    def verifier(self) -> CosignatureVerifier:
        return CosignatureVerifier(self.name, self.public_key)

    def cosign(self, checkpoint: Checkpoint, timestamp: int) -> Signature:
        """This key's cosignature/v1 of ``checkpoint`` at POSIX second ``timestamp``
        (0..2**63 - 1, else ``NoteError``); add it with ``Note.with_signatures``."""
        if not 0 <= timestamp <= MAX_TIMESTAMP:
            raise NoteError("cosignature", "time", str(timestamp), f"0..{MAX_TIMESTAMP}")
        signed = self._key.sign(cosignature_message(checkpoint.body, timestamp))
        return Signature(self.name, self.key_id, timestamp.to_bytes(8, "big") + signed)


@dataclass(frozen=True, slots=True)
class Cosignature:
    """A verified cosignature: the witness's name and key ID and the time it signed at."""

    name: str
    key_id: int
    time: int


@dataclass(frozen=True, slots=True)
class OpenedCheckpoint:
    """A checkpoint whose log signature verified, the note as read (every signature line,
    known or not) and the cosignatures of known witnesses, all of which verified."""

    checkpoint: Checkpoint
    note: Note
    cosignatures: tuple[Cosignature, ...]


def open_checkpoint(
    data: bytes,
    log: Verifier,
    cosigners: Iterable[CosignatureVerifier] = (),
    *,
    origin: str | None = None,
    max_bytes: int = MAX_NOTE_BYTES,
    max_signatures: int = MAX_SIGNATURES,
) -> OpenedCheckpoint:
    """Verify a signed checkpoint: ``log`` must have signed it, each signature by one of
    ``cosigners`` must verify, other signatures are ignored, and with ``origin`` the origin
    line must equal it.  Raise ``NoteError`` otherwise or if the note or checkpoint is
    malformed or over budget.  Deciding whether enough witnesses cosigned, and whether
    their times are recent, is the caller's policy."""
    cosigners = tuple(cosigners)
    witnesses = {(c.name, c.key_id) for c in cosigners}
    opened = open_note(
        data,
        [log, *cosigners],
        max_bytes=max_bytes,
        max_signatures=max_signatures,
    )
    if not any(s.name == log.name and s.key_id == log.key_id for s in opened.verified):
        raise NoteError(
            "checkpoint",
            "log signature",
            f"no signature by {log.name}+{log.key_id:08x}",
            "a signature by the log's key",
        )
    checkpoint = parse_checkpoint(opened.text)
    if origin is not None and checkpoint.origin != origin:
        raise NoteError("checkpoint", "origin", shown(checkpoint.origin), repr(origin))
    cosignatures = tuple(
        Cosignature(s.name, s.key_id, cosignature_time(s))
        for s in opened.verified
        if (s.name, s.key_id) in witnesses
    )
    return OpenedCheckpoint(checkpoint, opened.note, cosignatures)
