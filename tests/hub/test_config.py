"""The hub's typed configuration: sections validated as sections, every rejection names
the file (or the environment variable), the section and the key."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import msgspec
import pytest

from sighub.hub._config import (
    DEFAULT_TOML,
    RESTART_KEYS,
    SECTIONS,
    ConfigError,
    ConfigFile,
    HubConfig,
    changes,
    load_config,
)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hub.toml"
    path.write_text(text)
    return path


def _edit(key: str, value: str) -> str:
    text, n = re.subn(rf"^{key} = \S+", f"{key} = {value}", DEFAULT_TOML, flags=re.M)
    assert n == 1, key
    return text


def _refused(path: Path, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, env or {})
    assert info.value.exit_code == 2
    return str(info.value)


def test_default_file_is_the_defaults_one_key_per_line(tmp_path: Path) -> None:
    assert load_config(_write(tmp_path, DEFAULT_TOML), {}) == HubConfig.defaults()
    assert load_config(tmp_path / "missing.toml", {}) == HubConfig.defaults()
    # tests (and operators' scripts) edit `key = value` lines: every key has exactly one
    keys = [f.name for f in dataclasses.fields(HubConfig)]
    for key in keys:
        assert len(re.findall(rf"^{key} = \S+", DEFAULT_TOML, flags=re.M)) == 1, key
    sectioned = [k for s in SECTIONS.values() for k in s.__struct_fields__]
    assert sorted(keys) == sorted(["name", "tls_names", *sectioned])  # the flat view is total


def test_values_are_read_by_section(tmp_path: Path) -> None:
    text = _edit("max_ttl_days", "30").replace("burst = 30", "burst = 5")
    config = load_config(_write(tmp_path, text), {})
    assert (config.max_ttl_days, config.burst) == (30, 5)
    config = load_config(_write(tmp_path, _edit("keepalive_seconds", "2")), {})
    assert config.keepalive_seconds == 2.0 and isinstance(config.keepalive_seconds, float)


def test_key_in_the_wrong_section_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, DEFAULT_TOML + "max_ttl_days = 30\n")  # lands in [expiry]
    message = _refused(path)
    assert str(path) in message
    assert "[expiry] max_ttl_days: unknown key" in message
    assert "belongs in [limits]" in message
    message = _refused(_write(tmp_path, "max_indicators = 5\n"))  # top level
    assert "unknown top-level key 'max_indicators'" in message and "belongs in [limits]" in message


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[limits]\nmax_indicatorz = 5\n", "[limits] max_indicatorz: unknown key"),
        ("nmae = 'x'\n", "unknown top-level key 'nmae'"),
        ("[limitz]\nmax_indicators = 5\n", "unknown top-level key 'limitz'"),
        ("limits = 5\n", "[limits] must be a table"),
        ("[limits]\nmax_indicators = '5'\n", "[limits] max_indicators = '5': expected `int`, got"),
        ("[limits]\nmax_indicators = true\n", "max_indicators = True: expected `int`, got `bool`"),
        ("[rate]\nburst = 1.5\n", "[rate] burst = 1.5: expected `int`, got `float`"),
        ("[limits]\nmax_indicators = -1\n", "[limits] max_indicators = -1: expected `int` >= 1"),
        ("[limits]\nmax_ttl_days = 0\n", "[limits] max_ttl_days = 0: expected `int` >= 1"),
        ("[limits]\nmax_ttl_days = 36500\n", "max_ttl_days = 36500: expected `int` <= 3650"),
        ("[expiry]\nsweep_seconds = -2.5\n", "[expiry] sweep_seconds = -2.5: expected `float`"),
        ("[limits]\nkeepalive_seconds = inf\n", "keepalive_seconds = inf: expected `float` <="),
        ("[limits]\nkeepalive_seconds = nan\n", "keepalive_seconds = nan: expected `float` > 0"),
        ("[workers]\nvalidation_workers = -1\n", "validation_workers = -1: expected `int` >= 0"),
        ("tls_names = []\n", "tls_names = []: expected `array` of length >= 1"),
        ("tls_names = [1]\n", "tls_names = [1]: expected `str`, got `int`"),
        ("name = ''\n", "name = '': expected `str` of length >= 1"),
        ("[limits\n", "not valid TOML"),
    ],
)
def test_rejections_name_file_section_key(tmp_path: Path, text: str, words: str) -> None:
    path = _write(tmp_path, text)
    message = _refused(path)
    assert message.startswith(f"{path}: ") and words in message


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, _edit("max_ttl_days", "90"))
    env = {
        "SIGHUB_LIMITS_MAX_TTL_DAYS": "30",
        "SIGHUB_RATE_BURST": "5",
        "SIGHUB_RATE_PUBLISHES_PER_MINUTE": "1.5",
        "SIGHUB_EXPIRY_SWEEP_SECONDS": "2",
        "SIGHUB_WORKERS_VALIDATION_WORKERS": "0",
        "SIGHUB_LOG_LEVEL": "debug",  # another option's variable: not a section's
    }
    config = load_config(path, env)
    assert (config.max_ttl_days, config.burst, config.publishes_per_minute) == (30, 5, 1.5)
    assert (config.sweep_seconds, config.validation_workers) == (2.0, 0)
    assert load_config(path, {}).max_ttl_days == 90


@pytest.mark.parametrize(
    ("var", "value", "words"),
    [
        ("SIGHUB_RATE_BURST", "-5", "[rate] burst: expected `int` >= 1"),
        ("SIGHUB_RATE_BURST", "five", "[rate] burst: expected `int`, got `str`"),
        ("SIGHUB_RATE_BURST", "5\nname = 'x'", "[rate] burst: expected `int`, got `str`"),
        ("SIGHUB_LIMITS_MAX_TTL_DAYS", "30.0", "expected `int`, got `float`"),
        ("SIGHUB_LIMITS_MAX_TTL_DAYZ", "30", "[limits] has no key 'max_ttl_dayz'"),
        ("SIGHUB_EXPIRY_MAX_TTL_DAYS", "30", "[expiry] has no key 'max_ttl_days'"),
    ],
)
def test_bad_environment_values_name_the_variable(
    tmp_path: Path, var: str, value: str, words: str
) -> None:
    message = _refused(_write(tmp_path, DEFAULT_TOML), {var: value})
    assert message.startswith(f"environment variable {var}") and words in message


def test_file_errors_come_before_environment(tmp_path: Path) -> None:
    path = _write(tmp_path, "[limits]\nmax_indicators = 0\n")
    message = _refused(path, {"SIGHUB_LIMITS_MAX_INDICATORS": "5"})
    assert message.startswith(str(path))  # the file must be right on its own


def test_changes_and_restart_keys() -> None:
    old = HubConfig.defaults()
    file = msgspec.convert({"name": "other", "limits": {"max_indicators": 3}}, ConfigFile)
    new = HubConfig.of(file)
    assert changes(old, new) == {"name": ("sighub", "other"), "max_indicators": (10_000, 3)}
    assert {"name", "tls_names", "validation_workers"} == RESTART_KEYS
    assert changes(old, old) == {}
