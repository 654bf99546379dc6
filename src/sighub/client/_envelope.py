"""Signed envelopes: a bundle's exact RFC 8785 (JCS) bytes plus one Ed25519 signature.

Wire form (itself JCS-canonical JSON)::

    {"payload": BASE64(bundle bytes), "payloadType": PAYLOAD_TYPE,
     "signatures": [{"keyid": KEYID, "sig": BASE64(signature)}]}

The signature covers DSSE's pre-authentication encoding
``"DSSEv1" SP len(type) SP type SP len(body) SP body``: the payload type is bound into
what is signed and lengths make the encoding unambiguous.  Hubs and relays store and
forward the envelope bytes; they never re-serialize them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson
import pybase64
import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sighub.client import _json
from sighub.client._errors import EnvelopeError, JsonBudgetError, UnknownKeyError

__all__ = [
    "PAYLOAD_TYPE",
    "Envelope",
    "canonical_json",
    "decode_payload",
    "key_id",
    "open_envelope",
    "pae",
    "public_key_bytes",
    "seal",
    "signing_key_id",
]

PAYLOAD_TYPE: Final = "application/vnd.sighub.stix-bundle+json; version=1"
MAX_ENVELOPE_BYTES: Final = 4 * 1024 * 1024
_KEYS: Final = frozenset({"payload", "payloadType", "signatures"})
_MAX_SAFE_INT: Final = 2**53
_PREFIX: Final = b'{"payload":"'
# The only canonical shape of what follows the payload: keys sorted, no whitespace, one
# signature.  (The payload itself is found with a byte search: base64 holds no quote.)
_TAIL_RE: Final = re.compile(
    rb'","payloadType":"([^"\\]*)",'
    rb'"signatures":\[\{"keyid":"([a-z0-9:]{1,80})","sig":"([A-Za-z0-9+/]*={0,2})"\}\]\}'
)


def public_key_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    """The key id an envelope names its signer by: ``ed25519:`` and the first 16 bytes of
    SHA-256 of the raw 32-byte public key, in hex."""
    return "ed25519:" + hashlib.sha256(public_key_bytes(key)).hexdigest()[:32]


def pae(payload_type: str, body: bytes) -> bytes:
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)


def _jcs_domain(value: Any) -> bool:
    """True if ``value`` holds only what json.dumps writes exactly as RFC 8785 does: str
    keys below U+E000 (so code-point order is UTF-16 order), strings, bools, None, lists and
    integers of magnitude below 2**53.  Floats are left to the rfc8785 library."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            for k in v:
                if not isinstance(k, str) or (k and max(k) >= "\ue000"):
                    return False
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, int) and not isinstance(v, bool):
            if abs(v) >= _MAX_SAFE_INT:
                return False
        elif not isinstance(v, (str, bool)) and v is not None:
            return False
    return True


def canonical_json(value: Any) -> bytes:
    """RFC 8785 (JCS) bytes of ``value``.

    For sighub's own documents (strings, integers, lists, objects with ASCII keys) JCS
    output equals ``json.dumps`` with sorted keys, no whitespace and raw UTF-8, which is
    five times faster than the pure-Python ``rfc8785`` library; anything outside that
    domain goes to ``rfc8785``.  Tests compare both byte for byte on generated bundles.
    """
    if _jcs_domain(value):
        try:
            return _dumps(value)
        except _OutsideDomain:
            pass
    return rfc8785.dumps(value)


@dataclass(frozen=True, slots=True)
class Envelope:
    """A verified envelope: who signed it and the exact payload bytes."""

    raw: bytes
    key_id: str
    payload: bytes
    payload_type: str

    @property
    def id(self) -> str:
        """SHA-256 of the exact envelope bytes, hex: names it everywhere, stops relay loops
        (computed when asked: a syncing member verifies a million without needing it)."""
        return hashlib.sha256(self.raw).hexdigest()


def seal(bundle: Mapping[str, Any], key: Ed25519PrivateKey) -> bytes:
    """Canonicalize ``bundle`` (RFC 8785) once, sign it with ``key`` (Ed25519 over the
    DSSE pre-authentication encoding) and return the envelope's exact bytes, the ones
    hubs store and relay.  Raises ``EnvelopeError`` for a bundle outside the canonical
    JSON domain or over the envelope size limit."""
    try:
        body = canonical_json(bundle)
    except rfc8785.CanonicalizationError as exc:
        raise EnvelopeError(f"bundle: not canonical JSON (RFC 8785): {exc}") from None
    sig = key.sign(pae(PAYLOAD_TYPE, body))
    raw = _envelope_bytes(body, key_id(key.public_key()), sig)
    if len(raw) > MAX_ENVELOPE_BYTES:
        raise EnvelopeError(
            f"envelope: {len(raw)} bytes, expected at most {MAX_ENVELOPE_BYTES}; split the bundle"
        )
    return raw


def _envelope_bytes(body: bytes, kid: str, sig: bytes) -> bytes:
    # Written out directly: with base64 values, an ASCII key id and the fixed payload type
    # this IS the JCS form (a test checks it against canonical_json).
    return b'{"payload":"%s","payloadType":"%s","signatures":[{"keyid":"%s","sig":"%s"}]}' % (
        pybase64.b64encode(body),
        PAYLOAD_TYPE.encode(),
        kid.encode(),
        base64.b64encode(sig),
    )


def _b64(value: bytes, field: str) -> bytes:
    try:
        data = pybase64.b64decode(value, validate=True)  # alphabet and padding, SIMD
    except (binascii.Error, ValueError):
        raise EnvelopeError(f"envelope.{field}: not valid base64") from None
    tail = len(data) % 3
    # Only the last quantum can be encoded in more than one way (its unused bits).
    if tail and base64.b64encode(data[-tail:]) != value[-4:]:
        raise EnvelopeError(f"envelope.{field}: non-canonical base64 encoding")
    return data


def _diagnose(raw: bytes) -> EnvelopeError:
    """Why ``raw`` is not a canonical envelope, as precisely as can be said."""
    try:
        doc = _json.loads(raw, _json.ENVELOPE, "envelope")
    except JsonBudgetError as exc:
        return EnvelopeError(f"not JSON within budget: {exc}")
    if not isinstance(doc, dict) or set(doc) != _KEYS:
        got = sorted(doc) if isinstance(doc, dict) else type(doc).__name__
        return EnvelopeError(f"envelope: keys {got}, expected {sorted(_KEYS)}")
    sigs = doc["signatures"]
    if not isinstance(sigs, list) or len(sigs) != 1:
        return EnvelopeError("envelope.signatures: expected exactly one signature")
    if not isinstance(sigs[0], dict) or set(sigs[0]) != {"keyid", "sig"}:
        return EnvelopeError("envelope.signatures[0]: expected exactly keyid and sig")
    return EnvelopeError("envelope: bytes are not RFC 8785 canonical JSON")


def _split(raw: bytes) -> tuple[str, str, int, re.Match[bytes]]:
    """(payload type, key id, end of the payload, match) of a canonical envelope's bytes;
    EnvelopeError for bytes that are not one (size, exact JCS shape, payload type)."""
    if len(raw) > MAX_ENVELOPE_BYTES:
        raise EnvelopeError(f"envelope: {len(raw)} bytes, expected at most {MAX_ENVELOPE_BYTES}")
    end = raw.find(b'"', len(_PREFIX))
    m = _TAIL_RE.fullmatch(raw, end) if raw.startswith(_PREFIX) and end > 0 else None
    if m is None:
        raise _diagnose(raw)
    payload_type = m.group(1).decode("ascii", "replace")
    if payload_type != PAYLOAD_TYPE:
        raise EnvelopeError(f"envelope.payloadType: {payload_type!r}, expected {PAYLOAD_TYPE!r}")
    return payload_type, m.group(2).decode("ascii"), end, m


def open_envelope(raw: bytes, keys: Mapping[str, Ed25519PublicKey]) -> Envelope:
    """Verify ``raw`` against ``keys`` (key id -> public key) and return what it holds.

    Checks size, canonical form (exact JCS shape), payload type, canonical base64, a
    known key id and the signature.  Any failure raises EnvelopeError.  Whether the payload
    is a valid canonical sighub bundle is ``decode_bundle``'s job.
    """
    payload_type, kid, end, m = _split(raw)
    key = keys.get(kid)
    if key is None:
        raise UnknownKeyError(kid)
    body = _b64(raw[len(_PREFIX) : end], "payload")
    sig = _b64(m.group(3), "sig")
    try:
        key.verify(sig, pae(payload_type, body))
    except InvalidSignature:
        raise EnvelopeError(f"envelope: signature does not verify under key {kid!r}") from None
    return Envelope(raw, kid, body, payload_type)


def signing_key_id(raw: bytes) -> str:
    """The key id an envelope names, from its form alone (nothing verified)."""
    return _split(raw)[1]


class _OutsideDomain(Exception):
    """The payload holds a value whose JCS form json.dumps does not produce."""


def _no_float(text: str) -> float:
    raise _OutsideDomain(text)


def _no_constant(text: str) -> Any:
    raise _OutsideDomain(text)  # NaN and Infinity: the budgeted parser refuses them


def _safe_int(text: str) -> int:
    if len(text) > 17:  # beyond 2**53 whatever it holds; long ones must not reach int()
        raise _OutsideDomain(text)
    value = int(text)
    if abs(value) >= _MAX_SAFE_INT:
        raise _OutsideDomain(text)
    return value


def decode_payload(envelope: Envelope) -> Any:
    """The payload as JSON, refusing bytes that are not its canonical (JCS) form.

    The parser hooks prove the document inside ``canonical_json``'s fast domain while
    parsing (no floats, no large integers); a byte scan rules out keys at or above U+E000.
    Outside that domain, the rfc8785 library decides.  The payload is untrusted: it is
    parsed under ``_json.PAYLOAD`` (depth, containers, token and number length), so a
    document nested 2,000 deep or holding a 5,000-digit number is an EnvelopeError too.
    """
    body = envelope.payload
    what = "envelope.payload"
    try:
        _json.check(body, _json.PAYLOAD, what)
        try:
            if not body.isascii() and _HIGH_UTF8_RE.search(body) is not None:
                raise _OutsideDomain("non-BMP-safe text")
            doc = json.loads(
                body, parse_float=_no_float, parse_int=_safe_int, parse_constant=_no_constant
            )
            canonical = _dumps(doc)
        except _OutsideDomain:
            doc = _json.loads_checked(body, _json.PAYLOAD, what)  # checked above
            canonical = rfc8785.dumps(doc)
    except JsonBudgetError as exc:
        raise EnvelopeError(str(exc)) from None
    except (UnicodeDecodeError, json.JSONDecodeError, rfc8785.CanonicalizationError) as exc:
        raise EnvelopeError(f"{what}: not JSON ({exc})") from None
    if canonical != body:
        raise EnvelopeError("envelope.payload: not RFC 8785 canonical JSON")
    return doc


def _dumps(value: Any) -> bytes:
    """Sorted keys, no whitespace, raw UTF-8: JCS inside canonical_json's domain (orjson
    writes strings exactly as RFC 8785 does; tests compare it with the rfc8785 library)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except (orjson.JSONEncodeError, TypeError):  # lone surrogates and the like
        raise _OutsideDomain("unencodable value") from None


# UTF-8 lead bytes of U+E000 and above: keys made of those could sort differently.
_HIGH_UTF8_RE: Final = re.compile(rb"[\xee-\xf4]")
