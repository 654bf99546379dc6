"""Hub configuration: one TOML file (``DATA/hub.toml``) with documented defaults."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Final

from client import SighubError

__all__ = ["DEFAULT_TOML", "HubConfig", "load_config"]

DEFAULT_TOML: Final = """\
# sighub hub configuration.  Every key is optional; the values below are the defaults.

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
sync_batch_max_bytes = 8388608      # 8 MiB per Sync message
keepalive_seconds = 15              # empty batch on an idle follow stream

[rate]
publishes_per_minute = 120          # per member
burst = 30

[workers]
validation_workers = 1              # processes that verify and validate publishes (0: none)

[expiry]
sweep_seconds = 60                  # how often expired indicators leave the current state
"""


@dataclass(frozen=True, slots=True)
class HubConfig:
    name: str = "sighub"
    tls_names: tuple[str, ...] = ("localhost", "127.0.0.1")
    max_envelope_bytes: int = 4 * 1024 * 1024
    max_indicators: int = 10_000
    max_ttl_days: int = 365
    max_string_chars: int = 1024
    max_clock_skew_seconds: int = 300
    max_streams_per_member: int = 8
    sync_batch_envelopes: int = 64
    sync_batch_max_bytes: int = 8 * 1024 * 1024
    keepalive_seconds: float = 15.0
    publishes_per_minute: float = 120.0
    burst: int = 30
    sweep_seconds: float = 60.0
    validation_workers: int = 1


_SECTIONS: Final = {"limits", "rate", "expiry", "workers"}


def load_config(path: Path) -> HubConfig:
    """Read ``path``; unknown keys and wrongly typed values are errors (fail closed)."""
    try:
        doc = tomllib.loads(path.read_text()) if path.exists() else {}
    except tomllib.TOMLDecodeError as exc:
        raise SighubError(f"{path}: not valid TOML ({exc})") from None
    flat: dict[str, Any] = {}
    for key, value in doc.items():
        if key in _SECTIONS and isinstance(value, dict):
            flat.update(value)
        else:
            flat[key] = value
    known = {f.name: f for f in fields(HubConfig)}
    config = HubConfig()
    for key, raw in flat.items():
        value = raw
        if key not in known:
            raise SighubError(f"{path}: unknown setting {key!r}; expected one of {sorted(known)}")
        default = getattr(config, key)
        if isinstance(default, tuple):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise SighubError(f"{path}: {key} must be a list of strings")
            value = tuple(value)
        elif isinstance(default, float) and isinstance(value, int):
            value = float(value)
        positive = key != "validation_workers"
        if type(value) is not type(default) or (
            isinstance(value, (int, float)) and (value <= 0 if positive else value < 0)
        ):
            raise SighubError(
                f"{path}: {key} = {value!r}; expected a positive {type(default).__name__}"
            )
        config = replace(config, **{key: value})
    return config
