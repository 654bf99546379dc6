"""The one error base of the client package and its specialisations."""

from __future__ import annotations

__all__ = [
    "CanonError",
    "EnvelopeError",
    "InputFileError",
    "KeyFileError",
    "ModelError",
    "PatternRejected",
    "SighubError",
    "StixError",
    "UnknownKeyError",
]


class SighubError(Exception):
    """Base of every error sighub's client raises on purpose."""


class ModelError(SighubError, ValueError):
    """An indicator or other model object was given an invalid field."""

    def __init__(self, obj: str, field: str, received: object, expected: str) -> None:
        self.obj, self.field, self.received, self.expected = obj, field, received, expected
        super().__init__(f"{obj}.{field}: received {received!r}, expected {expected}")


class CanonError(SighubError, ValueError):
    """A value cannot be canonicalized for its kind."""


class PatternRejected(SighubError, ValueError):
    """The pattern gate refused a regular expression."""

    def __init__(self, pattern: str, rule: str) -> None:
        self.pattern, self.rule = pattern, rule
        super().__init__(f"pattern {pattern!r} rejected: {rule}")


class StixError(SighubError, ValueError):
    """A STIX bundle or object does not follow STIX 2.1 or sighub's rules."""


class EnvelopeError(SighubError, ValueError):
    """An envelope is malformed, non-canonical, or its signature does not verify."""


class UnknownKeyError(EnvelopeError):
    """An envelope signed by a key the verifier does not hold: a hub tells a revoked key
    from a foreign one, a daemon refreshes its key directory before refusing."""

    WORDS = "signed by unknown key"

    def __init__(self, key_id: str) -> None:
        self.key_id = key_id
        super().__init__(f"envelope: {self.WORDS} {key_id!r}")


class KeyFileError(SighubError):
    """A key file is missing, malformed, or has unsafe permissions."""


class InputFileError(SighubError, ValueError):
    """An analyst CSV/JSONL file has a bad line; names file, line and field."""

    def __init__(self, path: str, line: int, field: str, message: str) -> None:
        self.path, self.line, self.field = path, line, field
        super().__init__(f"{path}:{line}: field {field!r}: {message}")
