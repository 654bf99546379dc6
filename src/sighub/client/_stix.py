"""STIX 2.1 codec: Indicator <-> STIX ``indicator`` objects, bundles, revocation.

Bundles are built and read as plain dicts (the ``stix2`` library is used by the tests as
an independent check, not here: it is far too slow for 10,000-indicator bundles).  Reading
is strict: only the object shapes sighub itself writes are accepted.
"""

from __future__ import annotations

import copy
import re
import uuid
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any, Final

from sighub.client._errors import ModelError, StixError
from sighub.client._model import (
    Form,
    Indicator,
    Kind,
    Publisher,
    Tlp,
    check_stix_id,
    now_ms,
)

__all__ = [
    "BLINDED_PREFIX",
    "BLINDED_SUFFIX",
    "SIGHUB_EXTENSION_ID",
    "TLP_MARKING_IDS",
    "Bundle",
    "blinded_pattern",
    "build_bundle",
    "folded_text",
    "format_time",
    "indicator_from_stix",
    "indicator_name",
    "indicator_to_stix",
    "new_indicator_id",
    "parse_bundle",
    "parse_time",
    "revoke",
]

TLP2_EXTENSION_ID: Final = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"
TLP_MARKING_IDS: Final = {
    Tlp.CLEAR: "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    Tlp.GREEN: "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    Tlp.AMBER: "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    Tlp.AMBER_STRICT: "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    Tlp.RED: "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}
_TLP_BY_ID: Final = {v: k for k, v in TLP_MARKING_IDS.items()}
# Fixed ids of sighub's own objects, UUIDv4 as STIX 2.1 says SDO and SMO ids should be.
SIGHUB_IDENTITY_ID: Final = "identity--73e9d80e-7007-4eb9-a136-19e12c8c768a"
SIGHUB_EXTENSION_ID: Final = "extension-definition--e082c072-d739-4b55-abb9-3c4bc8991a63"
_FIXED_TIME: Final = "2026-01-01T00:00:00.000Z"
# A blinded value is a STIX pattern over a custom observable, so any STIX consumer parses
# it (and matches nothing it does not blind itself); a pattern indicator is a regular
# expression in the PCRE vocabulary entry, run over canon-folded text (``pattern_text``).
PATTERN_TYPES: Final = {Form.BLINDED: "stix", Form.PATTERN: "pcre"}
BLINDED_PREFIX: Final = "[x-sighub-blinded:value = '"
BLINDED_SUFFIX: Final = "']"
_BLINDED_START: Final = len(BLINDED_PREFIX)
_BLINDED_END: Final = -len(BLINDED_SUFFIX)
_NAME_DESCRIPTION_CHARS: Final = 48
_TIME_RE: Final = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def _tlp_marking(tlp: Tlp) -> dict[str, Any]:
    return {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": TLP_MARKING_IDS[tlp],
        "created": "2022-10-01T00:00:00.000Z",
        "name": "TLP:" + tlp.value.upper(),
        "extensions": {
            TLP2_EXTENSION_ID: {"extension_type": "property-extension", "tlp_2_0": tlp.value}
        },
    }


SIGHUB_IDENTITY: Final = {
    "type": "identity",
    "spec_version": "2.1",
    "id": SIGHUB_IDENTITY_ID,
    "created": _FIXED_TIME,
    "modified": _FIXED_TIME,
    "name": "sighub project",
    "identity_class": "organization",
}
SIGHUB_EXTENSION: Final = {
    "type": "extension-definition",
    "spec_version": "2.1",
    "id": SIGHUB_EXTENSION_ID,
    "created_by_ref": SIGHUB_IDENTITY_ID,
    "created": _FIXED_TIME,
    "modified": _FIXED_TIME,
    "name": "sighub indicator properties",
    "description": "Kind, form, canonicalization, blinding and collaboration of a signal.",
    "schema": (
        "Properties: kind (hashtag|keyword|emoji|url|payment), form (blinded|pattern), "
        "canon_version (canon/1), scheme (blake2b-128, blinded only), key_epoch (integer, "
        "blinded only), pattern_text (canon/1-folded, pattern only), collaboration (slug). "
        "A blinded indicator's STIX pattern [x-sighub-blinded:value = '<hex>'] holds the "
        "keyed digest of the canonical value, matched only by members holding the "
        "collaboration key. A pcre pattern runs over text folded by canon_version "
        "(pattern_text), not over raw text."
    ),
    "version": "1.0.0",
    "extension_types": ["property-extension"],
}


def format_time(value: datetime) -> str:
    hit = _format_cache.get(value)
    if hit is None:
        utc = value.astimezone(UTC)
        hit = utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
        if len(_format_cache) > _TIME_CACHE_MAX:
            _format_cache.clear()
        _format_cache[value] = hit
    return hit


_format_cache: dict[datetime, str] = {}


def parse_time(value: object, where: str) -> datetime:
    """A STIX timestamp with exactly millisecond precision, as sighub writes them."""
    hit = _time_cache.get(value) if isinstance(value, str) else None
    if hit is not None:
        return hit
    if not isinstance(value, str) or not _TIME_RE.fullmatch(value):
        raise StixError(f"{where}: received {value!r}, expected YYYY-MM-DDTHH:MM:SS.sssZ")
    try:
        parsed = datetime.fromisoformat(value[:-1]).replace(tzinfo=UTC)
    except ValueError as exc:
        raise StixError(f"{where}: received {value!r}, not a valid time ({exc})") from None
    if len(_time_cache) > _TIME_CACHE_MAX:  # bundles repeat a handful of timestamps
        _time_cache.clear()
    _time_cache[value] = parsed
    return parsed


_TIME_CACHE_MAX: Final = 4096
_time_cache: dict[str, datetime] = {}


def _identity(publisher: Publisher) -> dict[str, Any]:
    return {
        "type": "identity",
        "spec_version": "2.1",
        "id": publisher.id,
        "created": _FIXED_TIME,
        "modified": _FIXED_TIME,
        "name": publisher.name,
        "identity_class": "organization",
    }


def blinded_pattern(digest: str) -> str:
    """The STIX pattern of a blinded value (hex digits need no escaping in a literal)."""
    return BLINDED_PREFIX + digest + BLINDED_SUFFIX


def folded_text(canon_version: str) -> str:
    """What a pattern indicator runs over, as its ``pattern_text`` says."""
    return canon_version + "-folded"


def indicator_name(kind: Kind, form: Form, description: str) -> str:
    """A neutral name, derived so that it round-trips: form, kind and the start of the
    description, never the value (a blinded value's clear text is not in the indicator,
    and a pattern would make every name unique, defeating the readers' shape cache)."""
    name = f"{form.value} {kind.value}"
    short = " ".join(description.split())
    if len(short) > _NAME_DESCRIPTION_CHARS:
        short = short[: _NAME_DESCRIPTION_CHARS - 1].rstrip() + "\u2026"
    return f"{name}: {short}" if short else name


def indicator_to_stix(ind: Indicator) -> dict[str, Any]:
    ext: dict[str, Any] = {
        "extension_type": "property-extension",
        "kind": ind.kind.value,
        "form": ind.form.value,
        "canon_version": ind.canon_version,
        "collaboration": ind.collaboration,
    }
    if ind.form is Form.BLINDED:
        ext["scheme"] = ind.scheme
        ext["key_epoch"] = ind.key_epoch
        pattern = blinded_pattern(ind.value)
    else:
        ext["pattern_text"] = folded_text(ind.canon_version)
        pattern = ind.value
    obj: dict[str, Any] = {
        "type": "indicator",
        "spec_version": "2.1",
        "id": ind.id,
        "created_by_ref": ind.publisher.id,
        "created": format_time(ind.created),
        "modified": format_time(ind.modified),
        "name": indicator_name(ind.kind, ind.form, ind.description),
        "description": ind.description,
        "indicator_types": ["malicious-activity"],
        "pattern": pattern,
        "pattern_type": PATTERN_TYPES[ind.form],
        "valid_from": format_time(ind.valid_from),
        "valid_until": format_time(ind.valid_until),
        "confidence": ind.confidence,
        "object_marking_refs": [TLP_MARKING_IDS[ind.tlp]],
        "extensions": {SIGHUB_EXTENSION_ID: ext},
    }
    if ind.labels:
        obj["labels"] = list(ind.labels)
    if ind.revoked:
        obj["revoked"] = True
    return obj


_INDICATOR_KEYS: Final = frozenset(
    [
        "type",
        "spec_version",
        "id",
        "created_by_ref",
        "created",
        "modified",
        "name",
        "description",
        "indicator_types",
        "pattern",
        "pattern_type",
        "valid_from",
        "valid_until",
        "confidence",
        "object_marking_refs",
        "extensions",
        "labels",
        "revoked",
    ]
)
_REQUIRED_KEYS: Final = ("valid_until", "name", "description")
_EXT_KEYS: Final = frozenset(
    [
        "extension_type",
        "kind",
        "form",
        "canon_version",
        "collaboration",
        "scheme",
        "key_epoch",
        "pattern_text",
    ]
)


def _enum(enum: type[Kind] | type[Form], value: object, where: str) -> Any:
    try:
        return enum(value)  # type: ignore[arg-type]  # any value: ValueError if unknown
    except ValueError:
        allowed = [e.value for e in enum]
        raise StixError(f"{where}: received {value!r}, expected one of {allowed}") from None


def _where(obj: dict[str, Any]) -> str:
    return f"indicator {obj.get('id')!r}"


def _time(obj: dict[str, Any], field: str) -> datetime:
    value = obj.get(field)
    hit = _time_cache.get(value) if isinstance(value, str) else None
    return hit if hit is not None else parse_time(value, f"{_where(obj)} {field}")


def indicator_from_stix(obj: dict[str, Any], publisher: Publisher) -> Indicator:
    """Read one STIX indicator written by ``publisher``; raise StixError if it is not one
    sighub accepts.  (Messages are built only on failure: hubs read thousands per bundle.)"""
    if not obj.keys() <= _INDICATOR_KEYS:
        extra = sorted(obj.keys() - _INDICATOR_KEYS)
        raise StixError(f"{_where(obj)}: unexpected properties {extra}")
    if obj.get("spec_version") != "2.1":
        raise StixError(f"{_where(obj)}: spec_version {obj.get('spec_version')!r}, expected '2.1'")
    if obj.get("created_by_ref") != publisher.id:
        raise StixError(
            f"{_where(obj)}: created_by_ref {obj.get('created_by_ref')!r}, expected the "
            f"publisher {publisher.id!r}"
        )
    for key in _REQUIRED_KEYS:
        if key not in obj:
            raise StixError(f"{_where(obj)}: {key} is required")
    exts = obj.get("extensions")
    ext = exts.get(SIGHUB_EXTENSION_ID) if isinstance(exts, dict) else None
    if not isinstance(ext, dict) or len(exts) != 1 or ext.keys() - _EXT_KEYS:  # type: ignore[arg-type]
        raise StixError(
            f"{_where(obj)}: expected exactly the sighub extension {SIGHUB_EXTENSION_ID}"
        )
    if ext.get("extension_type") != "property-extension":
        raise StixError(f"{_where(obj)}: extension_type must be 'property-extension'")
    form = _FORMS.get(_str(ext.get("form"))) or _enum(Form, ext.get("form"), f"{_where(obj)} form")
    if obj.get("pattern_type") != PATTERN_TYPES[form]:
        raise StixError(
            f"{_where(obj)}: pattern_type {obj.get('pattern_type')!r}, expected "
            f"{PATTERN_TYPES[form]!r} for form {form.value}"
        )
    marks = obj.get("object_marking_refs")
    if not isinstance(marks, list) or len(marks) != 1 or _str(marks[0]) not in _TLP_BY_ID:
        raise StixError(
            f"{_where(obj)}: object_marking_refs {marks!r}, expected one TLP 2.0 marking"
        )
    if obj.get("indicator_types") != ["malicious-activity"]:
        raise StixError(f"{_where(obj)}: indicator_types must be ['malicious-activity']")
    revoked = obj.get("revoked", False)
    if "revoked" in obj and revoked is not True:
        raise StixError(f"{_where(obj)}: revoked, when present, must be true")
    labels = obj.get("labels", [])
    if not isinstance(labels, list) or ("labels" in obj and not labels):
        raise StixError(f"{_where(obj)}: labels, when present, must be a non-empty list")
    kind = _KINDS.get(_str(ext.get("kind"))) or _enum(Kind, ext.get("kind"), f"{_where(obj)} kind")
    value = _digest(obj) if form is Form.BLINDED else obj.get("pattern")
    try:
        ind = Indicator(
            id=obj.get("id"),  # type: ignore[arg-type]
            kind=kind,
            form=form,
            value=value,  # type: ignore[arg-type]
            collaboration=ext.get("collaboration"),  # type: ignore[arg-type]
            publisher=publisher,
            valid_from=_time(obj, "valid_from"),
            valid_until=_time(obj, "valid_until"),
            created=_time(obj, "created"),
            modified=_time(obj, "modified"),
            key_epoch=ext.get("key_epoch"),
            canon_version=ext.get("canon_version"),  # type: ignore[arg-type]
            scheme=ext.get("scheme"),
            confidence=obj.get("confidence"),  # type: ignore[arg-type]
            labels=tuple(labels),
            description=obj.get("description", ""),
            tlp=_TLP_BY_ID[marks[0]],
            revoked=revoked,
        )
    except ModelError as exc:
        raise StixError(f"{_where(obj)}: {exc}") from None
    text = folded_text(ind.canon_version) if form is Form.PATTERN else None
    if ext.get("pattern_text") != text:
        expected = repr(text) if text else "absent for a blinded indicator"
        raise StixError(
            f"{_where(obj)}: pattern_text {ext.get('pattern_text')!r}, expected {expected}"
        )
    name = indicator_name(kind, form, ind.description)
    if obj.get("name") != name:
        raise StixError(f"{_where(obj)}: name {obj.get('name')!r}, expected {name!r}")
    return ind


def _digest(obj: dict[str, Any]) -> object:
    """The value inside a blinded indicator's pattern (the model checks it is a digest)."""
    pattern = obj.get("pattern")
    if (
        type(pattern) is str
        and len(pattern) >= _BLINDED_START - _BLINDED_END  # the prefix ends, the suffix starts
        and pattern.startswith(BLINDED_PREFIX)  # with a quote: they must not overlap
        and pattern.endswith(BLINDED_SUFFIX)
    ):
        return pattern[_BLINDED_START:_BLINDED_END]
    raise StixError(
        f"{_where(obj)}: pattern {pattern!r}, expected "
        f'"{BLINDED_PREFIX}<32 hex digits>{BLINDED_SUFFIX}" for a blinded indicator'
    )


def _str(value: object) -> str | None:
    """``value`` if it is a string, else None: a safe key for the lookup tables (an
    untrusted list or object there would raise TypeError, not a StixError)."""
    return value if isinstance(value, str) else None


_FORMS: Final[dict[object, Form]] = {f.value: f for f in Form}
_KINDS: Final[dict[object, Kind]] = {k.value: k for k in Kind}


@dataclass(frozen=True, slots=True)
class Bundle:
    """A parsed sighub bundle: one publisher, one collaboration, its indicators."""

    id: str
    publisher: Publisher
    collaboration: str
    indicators: tuple[Indicator, ...]


def _one_collaboration(indicators: list[Indicator] | tuple[Indicator, ...]) -> str:
    """The bundle rules shared by writing and reading: at least one indicator, one
    collaboration, no id twice."""
    if not indicators:
        raise StixError("bundle: expected at least one indicator")
    collabs = {i.collaboration for i in indicators}
    if len(collabs) != 1:
        raise StixError(f"bundle: indicators span collaborations {sorted(collabs)}, expected one")
    if len({i.id for i in indicators}) != len(indicators):
        raise StixError("bundle: an indicator id appears twice")
    return collabs.pop()


def build_bundle(
    publisher: Publisher, indicators: list[Indicator] | tuple[Indicator, ...]
) -> dict[str, Any]:
    """The STIX 2.1 bundle (a JSON-ready ``dict``) of ``indicators``, all by
    ``publisher`` and in one collaboration, with the publisher's identity, the sighub
    extension definition and the TLP markings used.  Raises ``StixError`` for mixed
    collaborations, another publisher's indicator, or none."""
    _one_collaboration(indicators)
    for ind in indicators:
        if ind.publisher != publisher:
            raise StixError(
                f"indicator {ind.id}: publisher {ind.publisher.id}, expected {publisher.id}"
            )
    tlps = sorted({i.tlp for i in indicators}, key=lambda t: TLP_MARKING_IDS[t])
    # Fresh copies: a caller may mutate the bundle it gets back.
    objects: list[dict[str, Any]] = [
        copy.deepcopy(SIGHUB_IDENTITY),
        copy.deepcopy(SIGHUB_EXTENSION),
        _identity(publisher),
    ]
    objects += [_tlp_marking(t) for t in tlps]
    objects += [indicator_to_stix(i) for i in indicators]
    return {"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": objects}


def parse_bundle(bundle: object) -> Bundle:
    """Read a bundle sighub wrote (a parsed JSON value) into a ``Bundle``.  Raises
    ``StixError`` naming the first thing that is wrong: anything outside sighub's STIX
    profile is refused, not skipped."""
    if (
        not isinstance(bundle, dict)
        or bundle.get("type") != "bundle"
        or set(bundle)
        != {
            "type",
            "id",
            "objects",
        }
    ):
        raise StixError("bundle: expected an object with exactly type='bundle', id, objects")
    try:
        bundle_id = check_stix_id("bundle", "id", bundle["id"], "bundle")
    except ModelError as exc:
        raise StixError(str(exc)) from None
    objects = bundle["objects"]
    if not isinstance(objects, list) or not all(isinstance(o, dict) for o in objects):
        raise StixError("bundle.objects: expected a list of objects")
    identities = [
        o for o in objects if o.get("type") == "identity" and o.get("id") != SIGHUB_IDENTITY_ID
    ]
    if len(identities) != 1:
        raise StixError(f"bundle: {len(identities)} publisher identities, expected exactly 1")
    publisher = _parse_identity(identities[0])
    indicators: list[Indicator] = []
    read = _BundleReader(publisher)
    for obj in objects:
        kind = obj.get("type")
        if kind == "indicator":
            indicators.append(read(obj))
        elif kind == "marking-definition":
            if (
                obj != _tlp_marking(_TLP_BY_ID.get(_str(obj.get("id")) or "", Tlp.CLEAR))
                or _str(obj.get("id")) not in _TLP_BY_ID
            ):
                raise StixError(
                    f"marking-definition {obj.get('id')!r}: expected an official TLP 2.0 marking"
                )
        elif kind == "extension-definition":
            if obj != SIGHUB_EXTENSION:
                raise StixError(
                    f"extension-definition {obj.get('id')!r}: expected sighub's, unchanged"
                )
        elif kind == "identity":
            if obj.get("id") == SIGHUB_IDENTITY_ID and obj != SIGHUB_IDENTITY:
                raise StixError("identity sighub project: expected it unchanged")
        else:
            raise StixError(f"bundle: object type {kind!r} is not accepted")
    collab = _one_collaboration(indicators)
    used = {TLP_MARKING_IDS[i.tlp] for i in indicators}
    present = {o["id"] for o in objects if o.get("type") == "marking-definition"}
    if used != present:
        raise StixError(f"bundle: marking definitions {sorted(present)}, expected {sorted(used)}")
    return Bundle(bundle_id, publisher, collab, tuple(indicators))


class _BundleReader:
    """``indicator_from_stix`` for the indicators of one bundle, with a shortcut: the
    indicators of a bundle usually differ only in ``id`` and ``pattern``.  The first of
    each shape (every other property, with the types of its numbers and containers, which
    is what makes equal shapes exact: ``1 == True == 1.0`` in Python) is read in full; the
    next ones of that shape copy it and check just their own id and value, with the
    model's own checks.  Tests compare both paths on valid and broken indicators."""

    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher
        self.seen: dict[tuple[Any, ...], Indicator] = {}

    def __call__(self, obj: dict[str, Any]) -> Indicator:
        key = _shape(obj)
        try:
            template = self.seen.get(key) if key is not None else None
        except TypeError:  # an unhashable value where sighub writes a string
            key = template = None
        if template is None:
            ind = indicator_from_stix(obj, self.publisher)
            if key is not None:
                self.seen[key] = ind
            return ind
        value = _digest(obj) if template.form is Form.BLINDED else obj.get("pattern")
        try:
            return _like(template, obj.get("id"), value)
        except ModelError as exc:
            raise StixError(f"{_where(obj)}: {exc}") from None


def _shape(obj: dict[str, Any]) -> tuple[Any, ...] | None:
    """Everything of an indicator object but its id and pattern, exactly; None when it is
    not shaped like one sighub writes (the full reader then says what is wrong).  The name
    derives from the shape alone (kind, form, description), so it is checked once a shape."""
    exts = obj.get("extensions")
    ext = exts.get(SIGHUB_EXTENSION_ID) if type(exts) is dict and len(exts) == 1 else None
    if type(ext) is not dict:
        return None
    labels, marks, types = (
        obj.get("labels"),
        obj.get("object_marking_refs"),
        obj.get("indicator_types"),
    )
    confidence, revoked, epoch = obj.get("confidence"), obj.get("revoked"), ext.get("key_epoch")
    return (
        tuple(obj),
        tuple(ext.items()),
        type(epoch),
        obj.get("spec_version"),
        obj.get("created_by_ref"),
        obj.get("created"),
        obj.get("modified"),
        obj.get("valid_from"),
        obj.get("valid_until"),
        obj.get("pattern_type"),
        obj.get("name"),
        obj.get("description"),
        confidence,
        type(confidence),
        revoked,
        type(revoked),
        type(labels),
        tuple(labels) if type(labels) is list else labels,
        type(marks),
        tuple(marks) if type(marks) is list else marks,
        type(types),
        tuple(types) if type(types) is list else types,
    )


def _like(template: Indicator, ind_id: object, value: object) -> Indicator:
    """``template`` with another id and value, both checked as ``Indicator`` checks them
    (every other field is the template's, already checked)."""
    check_stix_id("Indicator", "id", ind_id, "indicator")
    new = object.__new__(Indicator)
    for name in _INDICATOR_FIELDS:
        object.__setattr__(new, name, getattr(template, name))
    object.__setattr__(new, "id", ind_id)
    object.__setattr__(new, "value", value)
    new._check_value()
    return new


_INDICATOR_FIELDS: Final = tuple(f.name for f in fields(Indicator))


def _parse_identity(obj: dict[str, Any]) -> Publisher:
    try:
        publisher = Publisher(obj.get("id"), obj.get("name"))  # type: ignore[arg-type]
    except ModelError as exc:
        raise StixError(f"identity: {exc}") from None
    if obj != _identity(publisher):
        raise StixError(f"identity {publisher.id!r}: unexpected properties or values")
    return publisher


def revoke(ind: Indicator, when: datetime | None = None) -> Indicator:
    """The revoked next version of ``ind``: same id, ``revoked: true``, ``modified`` at
    ``when`` (default: now).  Raises ``StixError`` when ``ind`` is already revoked or
    ``when`` is not after its ``modified``."""
    if ind.revoked:
        raise StixError(f"indicator {ind.id}: already revoked")
    modified = when or now_ms()
    if modified <= ind.modified:
        raise StixError(
            f"indicator {ind.id}: revocation time {format_time(modified)} must be after "
            f"modified {format_time(ind.modified)}"
        )
    return replace(ind, revoked=True, modified=modified)


def new_indicator_id() -> str:
    return f"indicator--{uuid.uuid4()}"
