"""The ``sighub`` console script: member commands from the client, operator commands from
the hub."""

from __future__ import annotations

import argparse
import sys

from client import SighubError
from client._cli import add_member_commands

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sighub", description="Federated, signed, blinded signal sharing for T&S teams."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    add_member_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except SighubError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    except OSError as exc:
        sys.stderr.write(f"error: {exc.filename or ''}: {exc.strerror or exc}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
