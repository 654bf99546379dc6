"""The indicator model: frozen dataclasses and enums, validated on construction."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Final

from sighub.client._errors import ModelError, PatternRejected
from sighub.client._patterns import gate

__all__ = [
    "BLIND_SCHEME",
    "CANON_VERSION",
    "CANON_VERSIONS",
    "TLP_CEILINGS",
    "Form",
    "Indicator",
    "Kind",
    "Publisher",
    "Tlp",
    "holds_keys",
    "now_ms",
    "tlp_crosses",
]

CANON_VERSION: Final = "canon/1"
# Every canon version an indicator may name: canon/1 and canon/2 are both in force while
# publishers move to canon/2 (the matcher blinds a text under each version it holds).
CANON_VERSIONS: Final = ("canon/1", "canon/2")
BLIND_SCHEME: Final = "blake2b-128"
MAX_DESCRIPTION: Final = 1024
MAX_LABEL: Final = 64
MAX_LABELS: Final = 16
MAX_PATTERN: Final = 256

_COLLAB_RE: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_DIGEST_RE: Final = re.compile(r"[0-9a-f]{32}")
_LABEL_RE: Final = re.compile(r"[a-z0-9][a-z0-9._:-]*")
# STIX identifiers carry a lowercase RFC 4122 UUID in its canonical 8-4-4-4-12 form.
_STIX_ID_RE: Final = re.compile(
    r"([a-z][a-z0-9-]*)--[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
)


class Kind(StrEnum):
    """What an indicator's value is, which decides how canon/1 folds it and where in a
    text it is looked for."""

    HASHTAG = "hashtag"
    KEYWORD = "keyword"
    EMOJI = "emoji"
    URL = "url"
    PAYMENT = "payment"


class Form(StrEnum):
    """How an indicator's value travels: ``blinded`` (a keyed digest of the canonical
    value, matched by digest) or ``pattern`` (a gated regular expression run over the
    text as its canon version folds it)."""

    BLINDED = "blinded"
    PATTERN = "pattern"


class Tlp(StrEnum):
    """TLP 2.0 levels, least restrictive first: ``red`` hits stay inside the platform,
    ``amber+strict`` inside the organisation."""

    CLEAR = "clear"
    GREEN = "green"
    AMBER = "amber"
    AMBER_STRICT = "amber+strict"
    RED = "red"


# The ceilings a peering between hubs may set, in the order they compare: red is never one,
# since red never leaves its hub.
TLP_CEILINGS: Final = (Tlp.CLEAR, Tlp.GREEN, Tlp.AMBER, Tlp.AMBER_STRICT)


def holds_keys(roles: Iterable[str]) -> bool:
    """Whether a member with ``roles`` holds collaboration keys: every member but a peer
    hub's relay (role ``peer`` alone), which relays envelopes and never matches."""
    return set(roles) != {"peer"}


def tlp_crosses(tlp: Tlp, ceiling: Tlp) -> bool:
    """Whether an indicator of ``tlp`` may cross a peering whose ceiling is ``ceiling``
    (the relay and every member apply this one rule): red never; amber+strict only where
    the ceiling names it; otherwise at or below the ceiling."""
    if tlp not in TLP_CEILINGS or ceiling not in TLP_CEILINGS:
        return False
    if tlp is Tlp.AMBER_STRICT:
        return ceiling is Tlp.AMBER_STRICT
    return TLP_CEILINGS.index(tlp) <= TLP_CEILINGS.index(ceiling)


def check_stix_id(obj: str, name: str, value: object, stix_type: str) -> str:
    """Validate a STIX identifier ``TYPE--UUID`` of the given type."""
    expected = f"'{stix_type}--' followed by a UUID"
    m = _STIX_ID_RE.fullmatch(value) if isinstance(value, str) else None
    if m is None or m.group(1) != stix_type:
        raise ModelError(obj, name, value, expected)
    return value  # type: ignore[return-value]


def check_collab(obj: str, value: object) -> str:
    if not isinstance(value, str) or not _COLLAB_RE.fullmatch(value):
        raise ModelError(obj, "collaboration", value, "a slug of [a-z0-9-], 1-63 chars")
    return value


def _check_time(obj: str, name: str, value: object) -> datetime:
    if type(value) is datetime and value.tzinfo is UTC and not value.microsecond % 1000:
        return value  # the common case, decided without calling utcoffset()
    if (
        not isinstance(value, datetime)
        or value.utcoffset() != timedelta(0)
        or value.microsecond % 1000
    ):
        raise ModelError(obj, name, value, "a UTC datetime with millisecond precision")
    return value


def now_ms() -> datetime:
    """The current UTC time truncated to milliseconds, as STIX timestamps carry it."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond - now.microsecond % 1000)


@dataclass(frozen=True, slots=True)
class Publisher:
    """A member's STIX identity: ``id`` is ``identity--UUID``, ``name`` the member's name
    at its hub.  Raises ``ModelError`` for an id that is not a STIX identity id."""

    id: str
    name: str

    def __post_init__(self) -> None:
        check_stix_id("Publisher", "id", self.id, "identity")
        if not isinstance(self.name, str) or not 1 <= len(self.name) <= 128:
            raise ModelError("Publisher", "name", self.name, "a string of 1-128 chars")


@dataclass(frozen=True, slots=True)
class Indicator:
    """One shared signal, as published: a version of a STIX indicator.

    ``value`` is a 32-hex-digit digest (form ``blinded``) or a gated regular expression
    over the text as ``canon_version`` folds it (form ``pattern``).  A new version has the
    same ``id`` and a later ``modified``; ``revoked`` ends it.  Construction checks every
    field and raises ``ModelError`` naming the field, what was received and what was
    expected."""

    id: str
    kind: Kind
    form: Form
    value: str
    collaboration: str
    publisher: Publisher
    valid_from: datetime
    valid_until: datetime
    created: datetime
    modified: datetime
    key_epoch: int | None = None
    canon_version: str = CANON_VERSION
    scheme: str | None = BLIND_SCHEME
    confidence: int = 50
    labels: tuple[str, ...] = field(default_factory=tuple)
    description: str = ""
    tlp: Tlp = Tlp.AMBER
    revoked: bool = False

    def __post_init__(self) -> None:
        o = "Indicator"
        check_stix_id(o, "id", self.id, "indicator")
        if not isinstance(self.kind, Kind):
            raise ModelError(o, "kind", self.kind, f"one of {[k.value for k in Kind]}")
        if not isinstance(self.form, Form):
            raise ModelError(o, "form", self.form, f"one of {[f.value for f in Form]}")
        self._check_value()
        check_collab(o, self.collaboration)
        if not isinstance(self.publisher, Publisher):
            raise ModelError(o, "publisher", self.publisher, "a Publisher")
        for name in ("valid_from", "valid_until", "created", "modified"):
            _check_time(o, name, getattr(self, name))
        if self.valid_until <= self.valid_from:
            raise ModelError(o, "valid_until", self.valid_until, "later than valid_from")
        if self.modified < self.created:
            raise ModelError(o, "modified", self.modified, "not earlier than created")
        if self.canon_version not in CANON_VERSIONS:
            raise ModelError(o, "canon_version", self.canon_version, f"one of {CANON_VERSIONS}")
        conf = self.confidence
        if isinstance(conf, bool) or not isinstance(conf, int) or not 0 <= conf <= 100:
            raise ModelError(o, "confidence", conf, "an integer 0-100")
        self._check_labels()
        if not isinstance(self.description, str) or len(self.description) > MAX_DESCRIPTION:
            raise ModelError(o, "description", self.description, f"<= {MAX_DESCRIPTION} chars")
        if not isinstance(self.tlp, Tlp):
            raise ModelError(o, "tlp", self.tlp, f"one of {[t.value for t in Tlp]}")
        if not isinstance(self.revoked, bool):
            raise ModelError(o, "revoked", self.revoked, "a bool")

    def _check_value(self) -> None:
        o = "Indicator"
        if self.form is Form.BLINDED:
            if not isinstance(self.value, str) or not _DIGEST_RE.fullmatch(self.value):
                raise ModelError(o, "value", self.value, "32 lowercase hex digits (a digest)")
            if self.scheme != BLIND_SCHEME:
                raise ModelError(o, "scheme", self.scheme, repr(BLIND_SCHEME))
            epoch = self.key_epoch
            if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
                raise ModelError(o, "key_epoch", epoch, "an integer >= 0 for a blinded value")
            return
        if not isinstance(self.value, str) or not 1 <= len(self.value) <= MAX_PATTERN:
            raise ModelError(o, "value", self.value, f"a pattern of 1-{MAX_PATTERN} chars")
        if self.scheme is not None or self.key_epoch is not None:
            raise ModelError(o, "scheme", self.scheme, "None (and no key_epoch) for a pattern")
        try:
            gate(self.value)
        except PatternRejected as exc:
            raise ModelError(o, "value", self.value, f"a gated pattern ({exc.rule})") from None

    def _check_labels(self) -> None:
        labels = self.labels
        if not isinstance(labels, tuple) or len(labels) > MAX_LABELS:
            raise ModelError("Indicator", "labels", labels, f"a tuple of <= {MAX_LABELS}")
        for label in labels:
            if (
                not isinstance(label, str)
                or len(label) > MAX_LABEL
                or not _LABEL_RE.fullmatch(label)
            ):
                raise ModelError("Indicator", "labels", label, "a lowercase label [a-z0-9._:-]")
