"""The one error base of the client package and its specialisations."""

from __future__ import annotations

__all__ = [
    "EXIT_ALARM",
    "EXIT_BAD_INPUT",
    "EXIT_REFUSED",
    "EXIT_UNREACHABLE",
    "CanonError",
    "EnvelopeError",
    "InputFileError",
    "IntegrityAlarm",
    "JsonBudgetError",
    "KeyFileError",
    "ModelError",
    "NoteError",
    "PatternRejected",
    "SighubError",
    "StixError",
    "UnknownKeyError",
]


# Exit codes of the ``sighub`` command, by the class of the error that ended it (1: any
# other failure).  Documented in the README; orchestrators and scripts branch on them.
EXIT_BAD_INPUT = 2  # a file, argument or stored document sighub cannot accept
EXIT_REFUSED = 3  # the hub answered with an error status (denied, invalid, ...)
EXIT_UNREACHABLE = 4  # no answer from the hub (down, wrong address, TLS mismatch)
EXIT_ALARM = 5  # integrity alarm: the hub or a relay served something that does not verify


class SighubError(Exception):
    """Base of every error sighub's client raises on purpose.  ``exit_code`` is what the
    ``sighub`` command exits with when this error ends it."""

    exit_code: int = 1


class ModelError(SighubError, ValueError):
    """An indicator or other model object was given an invalid field."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, obj: str, field: str, received: object, expected: str) -> None:
        self.obj, self.field, self.received, self.expected = obj, field, received, expected
        super().__init__(f"{obj}.{field}: received {received!r}, expected {expected}")


class CanonError(SighubError, ValueError):
    """A value cannot be canonicalized for its kind."""

    exit_code = EXIT_BAD_INPUT


class PatternRejected(SighubError, ValueError):
    """The pattern gate refused a regular expression."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, pattern: str, rule: str) -> None:
        self.pattern, self.rule = pattern, rule
        super().__init__(f"pattern {pattern!r} rejected: {rule}")


class StixError(SighubError, ValueError):
    """A STIX bundle or object does not follow STIX 2.1 or sighub's rules."""

    exit_code = EXIT_BAD_INPUT


class EnvelopeError(SighubError, ValueError):
    """An envelope is malformed, non-canonical, or its signature does not verify."""

    exit_code = EXIT_BAD_INPUT


class UnknownKeyError(EnvelopeError):
    """An envelope signed by a key the verifier does not hold: a hub tells a revoked key
    from a foreign one, a daemon refreshes its key directory before refusing."""

    WORDS = "signed by unknown key"

    def __init__(self, key_id: str) -> None:
        self.key_id = key_id
        super().__init__(f"envelope: {self.WORDS} {key_id!r}")


class KeyFileError(SighubError):
    """A key file is missing, malformed, or has unsafe permissions."""

    exit_code = EXIT_BAD_INPUT


class InputFileError(SighubError, ValueError):
    """An analyst CSV/JSONL file has a bad line; names file, line and field."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, path: str, line: int, field: str, message: str) -> None:
        self.path, self.line, self.field = path, line, field
        super().__init__(f"{path}:{line}: field {field!r}: {message}")


class JsonBudgetError(SighubError, ValueError):
    """Untrusted JSON over its parsing budget (size, depth, containers, token or number
    length) or not JSON at all: names what was read, the rule, what was received and what
    was expected."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, what: str, rule: str, received: str, expected: str) -> None:
        self.what, self.rule, self.received, self.expected = what, rule, received, expected
        super().__init__(f"{what}: {rule}: received {received}, expected {expected}")


class NoteError(SighubError, ValueError):
    """A C2SP signed note, verifier or signer key, checkpoint or cosignature that is
    malformed, over its parsing budget or does not verify: names what was read, the rule,
    what was received and what was expected.  A caller that got the note from a hub raises
    ``IntegrityAlarm`` from it when the hub should have served a valid one."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, what: str, rule: str, received: str, expected: str) -> None:
        self.what, self.rule, self.received, self.expected = what, rule, received, expected
        super().__init__(f"{what}: {rule}: received {received}, expected {expected}")


class IntegrityAlarm(SighubError):
    """The hub (or a relay) served something that does not verify: a forged, altered or
    unparseable envelope, or a history that contradicts what was seen before."""

    exit_code = EXIT_ALARM
