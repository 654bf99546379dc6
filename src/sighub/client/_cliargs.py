"""What every ``sighub`` command shares: the connection options (``--hub``, ``--insecure``,
``--cred``) in the same place with the same environment defaults, ``--json``, and the
check that a ``--data`` directory holds what the command needs before it touches it.

A grouped command (``member enroll``, ``admin member list``) takes the connection options
both at the group level (``sighub member --insecure enroll ...``, kept for old scripts)
and after the leaf; the leaf's copy has no default, so a value given there wins."""

from __future__ import annotations

import argparse
import json
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Any, Final

from sighub.client._errors import EXIT_BAD_INPUT, SighubError

__all__ = [
    "ENV_ADMIN_CRED",
    "ENV_HUB",
    "ENV_INSECURE",
    "DataDirError",
    "Needs",
    "add_connection",
    "add_data",
    "add_json",
    "check_data",
    "emit",
    "env_flag",
]

ENV_HUB: Final = "SIGHUB_HUB"
ENV_INSECURE: Final = "SIGHUB_INSECURE"
ENV_ADMIN_CRED: Final = "SIGHUB_ADMIN_CRED"
_TRUE: Final = frozenset({"1", "true", "yes"})


class DataDirError(SighubError):
    """A ``--data``/``--cred`` directory is missing or is not what the command needs."""

    exit_code = EXIT_BAD_INPUT


class Needs(Enum):
    """What a command's data directory must hold: (files, how to get them)."""

    IDENTITY = (
        ("member.json", "signing.key"),
        "sighub member data",
        "run `sighub keygen --data {dir} --name NAME` first",
    )
    MEMBER = (
        ("hub.json",),
        "enrolled sighub member data",
        "run `sighub member enroll FILE --data {dir}` first",
    )
    HUB = (("hub.toml", "hub.db"), "sighub hub", "run `sighub hub init --data {dir}` first")
    ADMIN = (
        ("hub.json",),
        "sighub admin credential",
        "give the DATA/admin folder that `sighub hub init --data DATA` wrote",
    )

    def __init__(self, files: tuple[str, ...], what: str, fix: str) -> None:
        self.files, self.what, self.fix = files, what, fix


def env_flag(name: str) -> bool:
    """A boolean from the environment: only 1/true/yes (any case) turn it on, so a typo
    leaves the safe default (TLS) in place."""
    return os.environ.get(name, "").strip().lower() in _TRUE


def add_connection(
    p: argparse.ArgumentParser | Any, *, admin: bool = False, in_group: bool = False
) -> None:
    """``--hub`` and ``--insecure`` (and for the admin ``--cred``) on ``p``.  With
    ``in_group`` the options have no default, so the group-level value (which carries the
    environment default) stays unless the leaf gives one."""

    def default(value: object) -> object:
        return argparse.SUPPRESS if in_group else value

    if admin:
        p.add_argument(
            "--cred",
            default=default(os.environ.get(ENV_ADMIN_CRED)),
            metavar="DIR",
            help=f"admin credential folder, DATA/admin of the hub (default: ${ENV_ADMIN_CRED})",
        )
    p.add_argument(
        "--hub",
        default=default(os.environ.get(ENV_HUB)),
        metavar="HOST:PORT",
        help=f"hub address (default: ${ENV_HUB}, else the one in the credential)",
    )
    p.add_argument(
        "--insecure",
        action="store_true",
        default=default(env_flag(ENV_INSECURE)),
        help=f"plaintext with the bearer token, loopback hubs only (default: ${ENV_INSECURE})",
    )


def add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--json", action="store_true", help="print the result as one JSON document on stdout"
    )


def add_data(
    p: argparse.ArgumentParser,
    needs: Needs | None,
    *,
    into: Any = None,
    required: bool = True,
    help: str = "member data directory",
) -> None:
    """``--data DIR`` on ``p`` (or on its mutually exclusive group ``into``); ``needs``
    is checked by :func:`check_data` before the command runs (None: the command creates
    the directory)."""
    (into or p).add_argument("--data", required=required, metavar="DIR", help=help)
    p.set_defaults(data_needs=needs)


def _check_dir(path: Path, needs: Needs) -> None:
    if not path.is_dir():
        state = "is not a directory" if path.exists() else "no such directory"
        raise DataDirError(f"{path}: {state}; expected {needs.what}: {needs.fix.format(dir=path)}")
    missing = [f for f in needs.files if not (path / f).exists()]
    if missing:
        raise DataDirError(
            f"{path}: no {needs.what} here (missing {', '.join(missing)}); "
            f"{needs.fix.format(dir=path)}"
        )


def check_data(args: argparse.Namespace) -> None:
    """Refuse, with one line and exit code 2, a ``--data``/``--cred`` directory that
    does not hold what the command needs, before anything opens or creates a file in it."""
    needs = getattr(args, "data_needs", None)
    data = getattr(args, "data", None)
    if needs is not None and data is not None:
        _check_dir(Path(data), needs)
    if hasattr(args, "cred"):
        if not args.cred:
            raise DataDirError(
                f"admin: no credential given; pass --cred DIR (DATA/admin) or set ${ENV_ADMIN_CRED}"
            )
        _check_dir(Path(args.cred), Needs.ADMIN)


def emit(args: argparse.Namespace, doc: Any, *lines: str) -> None:
    """The command's result: ``doc`` as JSON with ``--json``, else the human ``lines``."""
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps(doc, sort_keys=True, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write("".join(line + "\n" for line in lines))
