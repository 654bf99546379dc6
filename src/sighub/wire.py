"""The wire: what every sighub implementation must compute byte for byte alike.

Detection code does not need this module (see :mod:`sighub`).  It is for whoever writes a
second implementation (another language, a peer hub, an auditor's checker) and for tools
that build or check bundles offline.  Each piece below has golden vectors under
``tests/vectors/`` in the repository, and the gRPC contract is ``proto/sighub/v1``.

1. **canon/1** (``CANON_VERSION``): ``canonicalize(kind, value)`` folds an analyst's value
   (NFKC, case, look-alike letters, leet, invisibles and separators, per kind) into the
   form that is blinded and compared; ``extract(text)`` yields the ``Candidate`` spans of
   a text that a matcher looks up.  Raises ``CanonError`` for a value that folds to
   nothing or is too long.  Vectors: ``canon-v1.jsonl``.  Both take ``version``:
   ``"canon/2"`` (``docs/canon-2.md``, vectors ``canon-v2.jsonl``) is in force beside it.
2. **Blinding** (``BLIND_SCHEME``, keyed BLAKE2b-128 personalised ``sighub.blind.v1``):
   ``blind(CollabKey, kind, canonical_value, canon_version)`` returns the hex digest
   (its data names the canon version) published in place
   of the value; a ``Blinder`` does the same for every candidate of a text at once
   (``BlindedText``).  Vectors: ``blind-v1.jsonl``.
3. **The pattern gate**: ``gate(pattern)`` returns ``pattern`` unchanged if it may be a
   pattern indicator: in the safe RE2 subset (no backreferences, bounded repeats and
   program size), else raises ``PatternRejected``.  Patterns run over canon/1-folded
   text, not over raw text.
4. **STIX 2.1**: ``build_bundle(publisher, indicators)`` returns the bundle (a ``dict``)
   with the sighub extension, TLP 2.0 markings and the publisher's identity;
   ``parse_bundle`` reads one back into the model and raises ``StixError`` for anything
   outside the profile; ``revoke(indicator, when)`` makes the revoked next version.
5. **Envelopes** (DSSE, RFC 8785 JSON): ``seal(bundle, key)`` signs a bundle with an
   Ed25519 key and returns the envelope's exact bytes, which hubs store and relay
   unchanged; ``open_envelope(raw, keys)`` checks the canonical form and the signature
   (by ``key_id``) and returns the ``Envelope``, raising ``EnvelopeError`` (or
   ``UnknownKeyError`` for a key the caller does not hold); ``decode_payload`` parses its
   bundle under the JSON budget.

``now_ms()`` is the current time at the millisecond precision every timestamp carries.
"""

from __future__ import annotations

from sighub.client._blind import BlindedText, Blinder, CollabKey, blind
from sighub.client._canon import CANON_VERSION, Candidate, canonicalize, extract
from sighub.client._envelope import Envelope, decode_payload, key_id, open_envelope, seal
from sighub.client._errors import (
    CanonError,
    EnvelopeError,
    PatternRejected,
    StixError,
    UnknownKeyError,
)
from sighub.client._model import BLIND_SCHEME, now_ms
from sighub.client._patterns import gate
from sighub.client._stix import Bundle, build_bundle, parse_bundle, revoke

__all__ = [
    "BLIND_SCHEME",
    "CANON_VERSION",
    "BlindedText",
    "Blinder",
    "Bundle",
    "Candidate",
    "CanonError",
    "CollabKey",
    "Envelope",
    "EnvelopeError",
    "PatternRejected",
    "StixError",
    "UnknownKeyError",
    "blind",
    "build_bundle",
    "canonicalize",
    "decode_payload",
    "extract",
    "gate",
    "key_id",
    "now_ms",
    "open_envelope",
    "parse_bundle",
    "revoke",
    "seal",
]
