"""sighub client SDK: model, canon/1, blinding, pattern gate, STIX codec, envelopes."""

from client._blind import Blinder, CollabKey, blind
from client._canon import CANON_VERSION, Candidate, canonicalize, extract
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
from client._model import BLIND_SCHEME, Form, Indicator, Kind, Publisher, Tlp
from client._patterns import gate

__all__ = [
    "BLIND_SCHEME",
    "CANON_VERSION",
    "Blinder",
    "Candidate",
    "CanonError",
    "CollabKey",
    "EnvelopeError",
    "Form",
    "Indicator",
    "InputFileError",
    "KeyFileError",
    "Kind",
    "ModelError",
    "PatternRejected",
    "Publisher",
    "SighubError",
    "StixError",
    "Tlp",
    "blind",
    "canonicalize",
    "extract",
    "gate",
]
