"""The publish rules, in one place: the hub applies them to every publish and the analyst
reader applies them offline, so a file that bundles cleanly is not refused later for a
rule the bundler did not know (only the hub's own configuration can be stricter).

Every function is pure and returns a ``Problem`` (or None): which field, what was
received, what was expected.  The caller adds who it is about (a file and line, or an
indicator id) and how to refuse (an InputFileError, or a gRPC status)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sighub.client._model import Indicator
from sighub.client._stix import format_time

__all__ = [
    "DEFAULT_LIMITS",
    "Problem",
    "PublishLimits",
    "ahead_problem",
    "count_problem",
    "envelope_problem",
    "expiry_problem",
    "indicator_problem",
    "lifetime_problem",
    "string_problem",
]


@dataclass(frozen=True, slots=True)
class PublishLimits:
    """What a hub accepts.  The defaults are the hub's (``sighub/hub/_config.py``, ``[limits]``);
    an operator may configure a hub lower, and that hub then refuses with its own figure."""

    max_ttl_days: int = 365  # valid_until - valid_from, at most
    max_string_chars: int = 1024  # description
    max_indicators: int = 10_000  # per bundle
    max_clock_skew_seconds: int = 300  # how far ahead of the clock a time may be
    max_envelope_bytes: int = 4 * 1024 * 1024


DEFAULT_LIMITS: Final = PublishLimits()


@dataclass(frozen=True, slots=True)
class Problem:
    field: str  # the indicator's field (or "indicators", "envelope")
    received: str
    expected: str

    @property
    def detail(self) -> str:
        """The problem without the field name, for callers that name the field apart."""
        return f"received {self.received}, expected {self.expected}"

    def __str__(self) -> str:
        return f"{self.field}: {self.detail}"


def expiry_problem(valid_until: datetime, now: datetime) -> Problem | None:
    if valid_until > now:
        return None
    return Problem(
        "valid_until",
        f"{format_time(valid_until)}, which is in the past",
        f"a time after {format_time(now)}",
    )


def lifetime_problem(
    valid_from: datetime, valid_until: datetime, limits: PublishLimits
) -> Problem | None:
    life = valid_until - valid_from
    if life <= timedelta(days=limits.max_ttl_days):
        return None
    return Problem(
        "valid_until",
        f"a lifetime of {life.days} days ({format_time(valid_from)} to {format_time(valid_until)})",
        f"at most {limits.max_ttl_days} days",
    )


def ahead_problem(
    field: str, value: datetime, now: datetime, limits: PublishLimits
) -> Problem | None:
    """A time from the future: a publisher's clock may run ahead of the hub's by at most
    the skew, and no more (a revision dated in 9999 could never be superseded)."""
    skew = limits.max_clock_skew_seconds
    if value - now <= timedelta(seconds=skew):
        return None
    return Problem(
        field, format_time(value), f"at most {skew} s ahead of the clock ({format_time(now)})"
    )


def string_problem(field: str, text: str, limits: PublishLimits) -> Problem | None:
    if len(text) <= limits.max_string_chars:
        return None
    return Problem(field, f"{len(text)} characters", f"at most {limits.max_string_chars}")


def count_problem(count: int, limits: PublishLimits) -> Problem | None:
    if count <= limits.max_indicators:
        return None
    return Problem(
        "indicators", f"{count} indicators", f"at most {limits.max_indicators} per bundle"
    )


def envelope_problem(size: int, limits: PublishLimits) -> Problem | None:
    if size <= limits.max_envelope_bytes:
        return None
    return Problem("envelope", f"{size} bytes", f"at most {limits.max_envelope_bytes} bytes")


_TIMES: Final = ("created", "modified", "valid_from")


def indicator_problem(ind: Indicator, limits: PublishLimits, now: datetime) -> Problem | None:
    """The first rule ``ind`` breaks, judged at ``now``; None if it breaks none.  (Rules
    that need the hub's records, such as known key epochs, stay with the hub.)"""
    if not ind.revoked:  # a revocation may arrive after the indicator expired
        problem = expiry_problem(ind.valid_until, now)
        if problem is not None:
            return problem
    problem = lifetime_problem(ind.valid_from, ind.valid_until, limits)
    for name in _TIMES:
        if problem is not None:
            return problem
        problem = ahead_problem(name, getattr(ind, name), now, limits)
    return problem or string_problem("description", ind.description, limits)
