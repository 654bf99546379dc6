"""sighub client SDK.

The foundation every member and the hub share: the indicator model, canon/1
canonicalization and candidate extraction, blinding, the pattern gate, the STIX 2.1 codec,
signed envelopes, member key files and analyst input; and what a platform runs: ``Member``
(publish, revoke, sync, match), the sync daemon, the local ``Matcher`` and sinks.
Everything public is listed in ``__all__``; modules whose names start with an underscore
are private.
"""

from sighub.client._analyst import AnalystRow, read_rows, to_indicators
from sighub.client._blind import BlindedText, Blinder, CollabKey, blind
from sighub.client._canon import CANON_VERSION, Candidate, canonicalize, extract
from sighub.client._daemon import SyncDaemon, SyncReport
from sighub.client._envelope import Envelope, decode_payload, key_id, open_envelope, seal
from sighub.client._errors import (
    CanonError,
    EnvelopeError,
    InputFileError,
    KeyFileError,
    ModelError,
    PatternRejected,
    SighubError,
    StixError,
    UnknownKeyError,
)
from sighub.client._keys import MemberFiles, MemberIdentity
from sighub.client._local import StoredIndicator
from sighub.client._matcher import LiveMatcher, Match, Matcher
from sighub.client._member import Member
from sighub.client._model import BLIND_SCHEME, Form, Indicator, Kind, Publisher, Tlp, now_ms
from sighub.client._patterns import gate
from sighub.client._rpc import HubClient, HubRejected, PublishResult
from sighub.client._sinks import JsonlSink, MatcherSink, Sink
from sighub.client._stix import Bundle, build_bundle, parse_bundle, revoke

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
    "HubClient",
    "HubRejected",
    "Indicator",
    "InputFileError",
    "JsonlSink",
    "KeyFileError",
    "Kind",
    "LiveMatcher",
    "Match",
    "Matcher",
    "MatcherSink",
    "Member",
    "MemberFiles",
    "MemberIdentity",
    "ModelError",
    "PatternRejected",
    "PublishResult",
    "Publisher",
    "SighubError",
    "Sink",
    "StixError",
    "StoredIndicator",
    "SyncDaemon",
    "SyncReport",
    "Tlp",
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
    "read_rows",
    "revoke",
    "seal",
    "to_indicators",
]
