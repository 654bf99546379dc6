"""Publish validation that needs no database: signature, canonical form, STIX and sighub
rules, hub limits.  Pure and picklable, so the hub runs it in worker processes while its
main process keeps serving and committing (the work is CPU-bound; threads would share one
core under the GIL)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sighub.client._envelope import decode_payload, open_envelope
from sighub.client._errors import EnvelopeError, StixError, UnknownKeyError
from sighub.client._model import Form, Indicator
from sighub.client._rules import PublishLimits, count_problem, indicator_problem
from sighub.client._stix import Bundle, format_time, parse_bundle

__all__ = ["Checked", "Plan", "Rejection", "check"]

Row = tuple[str, str, str, str, str, int]  # id, kind, modified, valid_until, publisher, revoked


@dataclass(frozen=True, slots=True)
class Plan:
    """What validation needs to know about the caller and the hub, read beforehand."""

    envelope_id: str  # SHA-256 of the exact bytes, computed once by the plan
    member: str
    identity: str
    collab: str
    keys: dict[str, bytes]  # the member's valid signing keys: key id -> raw public key
    revoked: dict[str, str]  # the member's revoked key ids -> when
    epochs: tuple[int, ...]
    limits: PublishLimits  # the hub's configured limits (sighub.client._rules applies them)
    now: datetime


@dataclass(frozen=True, slots=True)
class Checked:
    key_id: str
    rows: list[Row]
    ids: list[str]


@dataclass(frozen=True, slots=True)
class Rejection:
    status: str  # a grpc.StatusCode name
    message: str


def check(plan: Plan, raw: bytes) -> Checked | Rejection:
    try:
        keys = {kid: Ed25519PublicKey.from_public_bytes(pub) for kid, pub in plan.keys.items()}
        envelope = open_envelope(raw, keys)
    except UnknownKeyError as exc:
        return _key_rejection(plan, exc.key_id)
    except EnvelopeError as exc:
        return Rejection("INVALID_ARGUMENT", str(exc))
    try:
        bundle = parse_bundle(decode_payload(envelope))
    except (EnvelopeError, StixError) as exc:
        return Rejection("INVALID_ARGUMENT", f"bundle: {exc}")
    problem = _bundle_problem(plan, bundle)
    if problem is not None:
        return problem
    rows: list[Row] = []
    for ind in bundle.indicators:
        bad = _indicator_problem(plan, ind)
        if bad is not None:
            return Rejection("INVALID_ARGUMENT", f"indicator {ind.id}: {bad}")
        rows.append(
            (
                ind.id,
                ind.kind.value,
                format_time(ind.modified),
                format_time(ind.valid_until),
                ind.publisher.id,
                int(ind.revoked),
            )
        )
    return Checked(envelope.key_id, rows, [r[0] for r in rows])


def _key_rejection(plan: Plan, kid: str) -> Rejection:
    """A key the caller may not sign with: one it revoked, or none of its own."""
    if kid in plan.revoked:
        return Rejection(
            "PERMISSION_DENIED", f"envelope signed by key {kid}, revoked at {plan.revoked[kid]}"
        )
    return Rejection(
        "PERMISSION_DENIED",
        f"envelope signed by key {kid}, not a registered key of {plan.member!r}",
    )


def _bundle_problem(plan: Plan, bundle: Bundle) -> Rejection | None:
    if bundle.publisher.id != plan.identity:
        message = f"bundle publisher {bundle.publisher.id}: expected {plan.identity}, the caller"
        return Rejection("PERMISSION_DENIED", message)
    if bundle.collaboration != plan.collab:
        message = (
            f"bundle is for collaboration {bundle.collaboration!r}; the request names "
            f"{plan.collab!r}"
        )
        return Rejection("INVALID_ARGUMENT", message)
    too_many = count_problem(len(bundle.indicators), plan.limits)
    if too_many is not None:
        return Rejection("RESOURCE_EXHAUSTED", f"bundle: {too_many}")
    return None


def _indicator_problem(plan: Plan, ind: Indicator) -> str | None:
    """The shared publish rules (sighub.client._rules, also applied offline by the analyst
    reader), then the one that needs the hub's records: the collaboration's key epochs."""
    problem = indicator_problem(ind, plan.limits, plan.now)
    if problem is not None:
        return str(problem)
    if ind.form is Form.BLINDED and ind.key_epoch not in plan.epochs:
        return (
            f"key_epoch {ind.key_epoch}; collaboration {plan.collab!r} has epochs "
            f"{sorted(plan.epochs)}"
        )
    return None
