"""Hub configuration: one TOML file (``DATA/hub.toml``) with documented defaults, typed by
msgspec Structs (one per section, unknown keys refused, values bounded), then
``SIGHUB_<SECTION>_<KEY>`` environment overrides validated the same way.

The rest of the hub reads ``HubConfig``: a frozen flat view whose attribute names are the
keys (they are unique across sections)."""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final

import msgspec

from sighub.client._errors import EXIT_BAD_INPUT, SighubError
from sighub.client._rules import PublishLimits

__all__ = [
    "DEFAULT_TOML",
    "RESTART_KEYS",
    "ConfigError",
    "ConfigFile",
    "HubConfig",
    "changes",
    "load_config",
]

DEFAULT_TOML: Final = """\
# sighub hub configuration.  Every key is optional; the values below are the defaults.
# Any key of a section can also be set with SIGHUB_<SECTION>_<KEY> in the environment
# (e.g. SIGHUB_LIMITS_MAX_TTL_DAYS=30), which wins over this file.  SIGHUP re-reads it:
# limits, rate, expiry and transparency change live; name, tls_names and [workers] need a restart.

# Name of this hub (recorded as a hop when envelopes are relayed to other hubs).
name = "sighub"
# Host names and IP addresses the server certificate is valid for.
tls_names = ["localhost", "127.0.0.1"]

[limits]
max_envelope_bytes = 4194304        # 4 MiB
max_indicators = 10000              # per bundle
max_ttl_days = 365                  # valid_until - valid_from, at most
max_string_chars = 1024             # description, names
max_clock_skew_seconds = 300        # how far ahead of the hub's clock a time may be
max_streams_per_member = 8          # open Sync streams per member (RESOURCE_EXHAUSTED past it)
sync_batch_envelopes = 64           # default envelopes per Sync batch
sync_batch_max_bytes = 262144       # per Sync message (or one envelope, if larger); a
                                    # stream that is not read pins about two messages
keepalive_seconds = 15              # empty batch on an idle follow stream

[rate]
publishes_per_minute = 120          # per member
burst = 30

[workers]
validation_workers = 1              # processes that verify and validate publishes (0: none)

[transparency]
checkpoint_interval_seconds = 60    # a new signed checkpoint at least this often while idle
                                    # (one follows every commit anyway): how stale a
                                    # member may find the newest one

[expiry]
sweep_seconds = 60                  # how often expired indicators leave the current state
"""

# Bounds: positive, and small enough that a typo (an extra few zeros) is an error rather
# than a hub that allocates or waits forever.
_Count = Annotated[int, msgspec.Meta(gt=0, le=1_000_000)]
_Bytes = Annotated[int, msgspec.Meta(gt=0, le=1 << 30)]
_Seconds = Annotated[float, msgspec.Meta(gt=0, le=86_400)]
_Name = Annotated[str, msgspec.Meta(min_length=1, max_length=253, pattern=r"^[^\x00-\x1f]+$")]


class _Section(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class Limits(_Section, frozen=True):
    max_envelope_bytes: _Bytes = 4 * 1024 * 1024
    max_indicators: _Count = 10_000
    max_ttl_days: Annotated[int, msgspec.Meta(gt=0, le=3650)] = 365
    max_string_chars: _Count = 1024
    max_clock_skew_seconds: Annotated[int, msgspec.Meta(gt=0, le=86_400)] = 300
    max_streams_per_member: Annotated[int, msgspec.Meta(gt=0, le=10_000)] = 8
    sync_batch_envelopes: Annotated[int, msgspec.Meta(gt=0, le=1000)] = 64
    sync_batch_max_bytes: _Bytes = 256 * 1024
    keepalive_seconds: _Seconds = 15.0


class Rate(_Section, frozen=True):
    publishes_per_minute: Annotated[float, msgspec.Meta(gt=0, le=1_000_000)] = 120.0
    burst: _Count = 30


class Workers(_Section, frozen=True):
    validation_workers: Annotated[int, msgspec.Meta(ge=0, le=64)] = 1


class Expiry(_Section, frozen=True):
    sweep_seconds: _Seconds = 60.0


class Transparency(_Section, frozen=True):
    checkpoint_interval_seconds: _Seconds = 60.0


class ConfigFile(_Section, frozen=True):
    """The file's shape: top-level keys, then one table per section."""

    name: _Name = "sighub"
    tls_names: Annotated[list[_Name], msgspec.Meta(min_length=1, max_length=100)] = msgspec.field(
        default_factory=lambda: ["localhost", "127.0.0.1"]
    )
    limits: Limits = msgspec.field(default_factory=Limits)
    rate: Rate = msgspec.field(default_factory=Rate)
    workers: Workers = msgspec.field(default_factory=Workers)
    expiry: Expiry = msgspec.field(default_factory=Expiry)
    transparency: Transparency = msgspec.field(default_factory=Transparency)


SECTIONS: Final[dict[str, type[_Section]]] = {
    "limits": Limits,
    "rate": Rate,
    "workers": Workers,
    "expiry": Expiry,
    "transparency": Transparency,
}
ENV_PREFIX: Final = "SIGHUB_"
# Keys a running hub cannot take on SIGHUP: the certificate's names, the hub's name
# (recorded in hops) and the validation process pool are fixed at start.
RESTART_KEYS: Final = frozenset({"name", "tls_names", "validation_workers"})


class ConfigError(SighubError):
    """The configuration file or a SIGHUB_* variable holds a value the hub cannot take."""

    exit_code = EXIT_BAD_INPUT


@dataclasses.dataclass(frozen=True, slots=True)
class HubConfig:
    """The flat view the hub reads: every key of every section as an attribute."""

    name: str
    tls_names: tuple[str, ...]
    max_envelope_bytes: int
    max_indicators: int
    max_ttl_days: int
    max_string_chars: int
    max_clock_skew_seconds: int
    max_streams_per_member: int
    sync_batch_envelopes: int
    sync_batch_max_bytes: int
    keepalive_seconds: float
    publishes_per_minute: float
    burst: int
    validation_workers: int
    sweep_seconds: float
    checkpoint_interval_seconds: float

    @classmethod
    def of(cls, file: ConfigFile) -> HubConfig:
        flat: dict[str, Any] = {"name": file.name, "tls_names": tuple(file.tls_names)}
        for section in SECTIONS:
            flat.update(msgspec.structs.asdict(getattr(file, section)))
        return cls(**flat)

    @classmethod
    def defaults(cls) -> HubConfig:
        return cls.of(ConfigFile())

    @property
    def publish_limits(self) -> PublishLimits:
        """The publish rules' limits (``sighub.client._rules``) as this hub sets them."""
        names = (f.name for f in dataclasses.fields(PublishLimits))
        return PublishLimits(**{name: getattr(self, name) for name in names})


def changes(old: HubConfig, new: HubConfig) -> dict[str, tuple[Any, Any]]:
    """The keys whose value differs: {key: (old, new)}."""
    return {
        f.name: (getattr(old, f.name), getattr(new, f.name))
        for f in dataclasses.fields(HubConfig)
        if getattr(old, f.name) != getattr(new, f.name)
    }


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> HubConfig:
    """Read ``path`` (defaults if it does not exist), then apply SIGHUB_<SECTION>_<KEY>
    variables from ``environ`` (default: the process environment).  Fails closed: an
    unknown key, a key in the wrong section, a wrong type or an out-of-range value raises
    ConfigError naming the file (or the variable), the section and the key."""
    doc = _read(path)
    try:
        file = msgspec.convert(doc, ConfigFile, strict=True)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{path}: {_describe(exc, doc)}") from None
    overrides = _environment(os.environ if environ is None else environ)
    for section, key, var, raw in overrides:
        current = msgspec.structs.asdict(getattr(file, section))
        current[key] = _env_value(raw)
        try:
            value = msgspec.convert(current, SECTIONS[section], strict=True)
        except msgspec.ValidationError as exc:
            rule = _MESSAGE.match(str(exc))
            raise ConfigError(
                f"environment variable {var}={raw!r}: [{section}] {key}: "
                f"{_lower(rule.group(1) if rule else str(exc))}"
            ) from None
        file = msgspec.structs.replace(file, **{section: value})
    return HubConfig.of(file)


def _read(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None


def _environment(environ: Mapping[str, str]) -> list[tuple[str, str, str, str]]:
    """(section, key, variable, raw value) for each SIGHUB_<SECTION>_<KEY> variable; a
    variable under a section's prefix that names no key of it is an error (a typo must
    not be silently ignored)."""
    out = []
    for var in sorted(environ):
        for section, struct in SECTIONS.items():
            prefix = f"{ENV_PREFIX}{section.upper()}_"
            if not var.startswith(prefix):
                continue
            key = var[len(prefix) :].lower()
            if key not in struct.__struct_fields__:
                known = ", ".join(prefix + k.upper() for k in struct.__struct_fields__)
                raise ConfigError(
                    f"environment variable {var}: [{section}] has no key {key!r}; "
                    f"expected one of {known}"
                )
            out.append((section, key, var, environ[var]))
    return out


def _env_value(raw: str) -> Any:
    """An environment value read as a TOML value (``30``, ``1.5``, ``"text"``); anything
    else stays a string, which the typed conversion then refuses for a number key."""
    if "\n" in raw or "\r" in raw:
        return raw
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


_MESSAGE: Final = re.compile(r"^(.*?)(?: - at `\$(.*)`)?$", re.S)
_UNKNOWN: Final = re.compile(r"^Object contains unknown field `(.*)`$", re.S)


def _lower(text: str) -> str:
    return text[:1].lower() + text[1:]


def _home(key: str) -> str:
    """Where ``key`` belongs, if it is a key of some section: a hint for misplaced keys."""
    for section, struct in SECTIONS.items():
        if key in struct.__struct_fields__:
            return f"; {key} belongs in [{section}]"
    return ""


def _describe(exc: msgspec.ValidationError, doc: dict[str, Any]) -> str:
    """msgspec's error as file-level words: section, key, what was received, expected."""
    found = _MESSAGE.match(str(exc))
    message, where = (found.group(1), found.group(2) or "") if found else (str(exc), "")
    parts = [p for p in re.split(r"\.|\[", where.lstrip(".")) if p]
    unknown = _UNKNOWN.match(message)
    if unknown:
        key = unknown.group(1)
        if not parts:
            return (
                f"unknown top-level key {key!r}; expected name, tls_names or a section "
                f"{', '.join(f'[{s}]' for s in SECTIONS)}{_home(key)}"
            )
        section = parts[0]
        known = ", ".join(SECTIONS[section].__struct_fields__) if section in SECTIONS else ""
        return f"[{section}] {key}: unknown key; expected one of {known}{_home(key)}"
    if parts and parts[0] in SECTIONS:
        if len(parts) == 1:
            return f"[{parts[0]}] must be a table of keys: {_lower(message)}"
        received = doc.get(parts[0], {}).get(parts[1])
        return f"[{parts[0]}] {parts[1]} = {received!r}: {_lower(message)}"
    key = parts[0] if parts else "(top level)"
    return f"{key} = {doc.get(key)!r}: {_lower(message)}"
