"""sighub client SDK.

The foundation every member and the hub share: the indicator model, canon/1
canonicalization and candidate extraction, blinding, the pattern gate, the STIX 2.1 codec,
signed envelopes, member key files and analyst input.  Everything public is listed in
``__all__``; modules whose names start with an underscore are private.
"""

from client._analyst import AnalystRow, read_rows, to_indicators
from client._blind import BlindedText, Blinder, CollabKey, blind
from client._canon import CANON_VERSION, Candidate, canonicalize, extract
from client._envelope import Envelope, decode_payload, key_id, open_envelope, seal
from client._errors import (
    CanonError,
    EnvelopeError,
    InputFileError,
    KeyFileError,
    ModelError,
    PatternRejected,
    SighubError,
    StixError,
)
from client._keys import MemberFiles, MemberIdentity
from client._model import BLIND_SCHEME, Form, Indicator, Kind, Publisher, Tlp, now_ms
from client._patterns import gate
from client._stix import Bundle, build_bundle, parse_bundle, revoke

__all__ = [
    "BLIND_SCHEME",
    "CANON_VERSION",
    "AnalystRow",
    "BlindedText",
    "Blinder",
    "Bundle",
    "Candidate",
    "CanonError",
    "CollabKey",
    "Envelope",
    "EnvelopeError",
    "Form",
    "Indicator",
    "InputFileError",
    "KeyFileError",
    "Kind",
    "MemberFiles",
    "MemberIdentity",
    "ModelError",
    "PatternRejected",
    "Publisher",
    "SighubError",
    "StixError",
    "Tlp",
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
    "read_rows",
    "revoke",
    "seal",
    "to_indicators",
]
