"""The ``sighub`` console script: member commands from the client, operator commands from
the hub."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from client import SighubError
from client._cli import add_member_commands
from hub._admin import add_admin_commands
from hub._server import init_hub, serve

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sighub", description="Federated, signed, blinded signal sharing for T&S teams."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    add_member_commands(sub)
    add_hub_commands(sub)
    add_admin_commands(sub)
    return parser


def cmd_hub_init(args: argparse.Namespace) -> int:
    names = args.tls_name or ["localhost", "127.0.0.1"]
    admin = init_hub(Path(args.data), args.name, args.address, names)
    sys.stdout.write(f"hub {args.name!r} created in {args.data}\n")
    sys.stdout.write(f"admin credential: {admin} (keep it safe: it administers the hub)\n")
    return 0


def cmd_hub_serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(serve(Path(args.data), args.listen, args.insecure))
    return 0


def add_hub_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    hub = sub.add_parser("hub", help="run a hub").add_subparsers(dest="action", required=True)
    p = hub.add_parser("init", help="create a hub: CA, server certificate, admin credential")
    p.add_argument("--data", required=True)
    p.add_argument("--name", default="sighub")
    p.add_argument("--address", default="127.0.0.1:7443", help="address members will dial")
    p.add_argument("--tls-name", action="append", help="server certificate name (repeatable)")
    p.set_defaults(func=cmd_hub_init)
    p = hub.add_parser("serve", help="serve a hub (mTLS; --insecure only on loopback)")
    p.add_argument("--data", required=True)
    p.add_argument("--listen", default="127.0.0.1:7443", help="HOST:PORT (port 0: any free)")
    p.add_argument("--insecure", action="store_true", help="plaintext, loopback only")
    p.set_defaults(func=cmd_hub_serve)


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
