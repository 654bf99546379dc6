"""The ``sighub`` console script: member commands from the client, operator commands from
the hub."""

from __future__ import annotations

import os

# gRPC's core writes its own log lines to stderr; keep them off unless the user asked
# (read when grpc is first imported, below).
os.environ.setdefault("GRPC_VERBOSITY", "NONE")
os.environ.setdefault("GRPC_TRACE", "")

import argparse
import asyncio
import sys
from datetime import timedelta
from pathlib import Path

from sighub import __version__
from sighub.client._cli import add_member_commands
from sighub.client._cliargs import Needs, add_data, add_json, check_data, emit, env_flag
from sighub.client._errors import EXIT_BAD_INPUT, SighubError
from sighub.client._observe import add_log_flags, add_metrics_flag, setup_logging
from sighub.client._stix import format_time
from sighub.hub._admin import add_admin_commands
from sighub.hub._backup import backup, restore
from sighub.hub._config import load_config
from sighub.hub._observe import Exposure
from sighub.hub._pki import SERVER_CERT, VALIDITY_LEAF, renew_server_cert
from sighub.hub._server import HubPaths, init_hub, serve

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sighub", description="Federated, signed, blinded signal sharing for T&S teams."
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"%(prog)s {__version__}",
        help="print the installed sighub version and exit",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    add_member_commands(sub)
    add_hub_commands(sub)
    add_admin_commands(sub)
    return parser


def cmd_hub_init(args: argparse.Namespace) -> int:
    names = args.tls_name or ["localhost", "127.0.0.1"]
    admin = init_hub(Path(args.data), args.name, args.address, names)
    emit(
        args,
        {"hub": args.name, "data": args.data, "address": args.address, "admin": str(admin)},
        f"hub {args.name!r} created in {args.data}",
        f"admin credential: {admin} (keep it safe: it administers the hub)",
    )
    return 0


def cmd_hub_serve(args: argparse.Namespace) -> int:
    exposure = Exposure(args.metrics_listen, args.health_listen, args.health_public)
    exposure.check()  # bad flags fail before anything is configured or opened
    setup_logging(args.log_level, args.log_format)
    asyncio.run(serve(Path(args.data), args.listen, args.insecure, exposure=exposure))
    return 0


def add_hub_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    hub = sub.add_parser("hub", help="run a hub").add_subparsers(dest="action", required=True)
    p = hub.add_parser("init", help="create a hub: CA, server certificate, admin credential")
    add_data(p, None, help="hub data directory to create")
    p.add_argument("--name", default="sighub", help="hub name, shown to members (default sighub)")
    p.add_argument("--address", default="127.0.0.1:7443", help="address members will dial")
    p.add_argument("--tls-name", action="append", help="server certificate name (repeatable)")
    add_json(p)
    p.set_defaults(func=cmd_hub_init)
    p = hub.add_parser("serve", help="serve a hub (mTLS; --insecure only on loopback)")
    add_data(p, Needs.HUB, help="hub data directory (from `sighub hub init`)")
    p.add_argument("--listen", default="127.0.0.1:7443", help="HOST:PORT (port 0: any free)")
    p.add_argument("--insecure", action="store_true", help="plaintext, loopback only")
    add_metrics_flag(p, " (sighub_hub_*)")
    p.add_argument(
        "--health-listen",
        default=os.environ.get("SIGHUB_HEALTH_LISTEN") or None,
        metavar="HOST:PORT",
        help="serve grpc.health.v1 only, in plaintext, for Kubernetes probes and "
        "grpc_health_probe (off by default; PORT alone binds 127.0.0.1; port 0: any free, "
        "printed; env SIGHUB_HEALTH_LISTEN)",
    )
    p.add_argument(
        "--health-public",
        action="store_true",
        default=env_flag("SIGHUB_HEALTH_PUBLIC"),
        help="allow --health-listen on a non-loopback address (it has no authentication; "
        "env SIGHUB_HEALTH_PUBLIC=1)",
    )
    add_log_flags(p)
    p.set_defaults(func=cmd_hub_serve)
    _add_lifecycle_commands(hub)


def cmd_hub_backup(args: argparse.Namespace) -> int:
    info = backup(Path(args.data), Path(args.to))
    emit(
        args,
        {
            "backup": str(info.path),
            "hub": info.hub_name,
            "head": info.head,
            "envelopes": info.envelopes,
            "members": info.members,
            "schema": info.schema,
            "bytes": info.size,
        },
        f"backed up hub {info.hub_name!r} from {args.data} to {info.path} (mode 0600)",
        f"log head sequence {info.head}, {info.envelopes} envelopes, {info.members} members, "
        f"schema {info.schema}, {info.size} bytes",
    )
    return 0


def cmd_hub_restore(args: argparse.Namespace) -> int:
    done = restore(Path(args.data), Path(args.source), args.allow_rollback)
    info = done.info
    if done.rollback:
        sys.stderr.write(
            f"WARNING: ROLLBACK: the log now ends at sequence {info.head}, not "
            f"{done.previous_head}; {(done.previous_head or 0) - info.head} envelopes are gone. "
            f"Every member whose cursor is past {info.head} is ahead of the log: the hub "
            "answers its sync with FAILED_PRECONDITION 'cursor ahead of log' until it "
            "re-syncs from scratch, and publishers must publish again what they sent after "
            "the backup.\n"
        )
    emit(
        args,
        {
            "restored": str(args.source),
            "data": str(args.data),
            "hub": info.hub_name,
            "head": info.head,
            "previous_head": done.previous_head,
            "rollback": done.rollback,
            "kept": [str(p) for p in done.kept],
        },
        f"restored {args.source} into {info.path}: log head sequence {info.head} "
        f"(was {'none' if done.previous_head is None else done.previous_head})",
        *(f"previous database kept as {p}" for p in done.kept),
    )
    return 0


def cmd_hub_renew_cert(args: argparse.Namespace) -> int:
    paths = HubPaths(Path(args.data))
    names = load_config(paths.config).tls_names
    serial, not_after = renew_server_cert(paths.pki, names, timedelta(days=args.days))
    emit(
        args,
        {
            "certificate": str(paths.pki / SERVER_CERT),
            "serial": serial,
            "names": list(names),
            "not_after": format_time(not_after),
        },
        f"server certificate {serial} for {', '.join(names)} written to "
        f"{paths.pki / SERVER_CERT}, valid until {format_time(not_after)}",
        "a running hub serves it to new connections after SIGHUP (or a restart)",
    )
    return 0


def _days(text: str) -> int:
    days = int(text) if text.isdigit() else 0
    if not 1 <= days <= VALIDITY_LEAF.days:
        raise argparse.ArgumentTypeError(f"{text!r}: expected 1 to {VALIDITY_LEAF.days} days")
    return days


def _add_lifecycle_commands(hub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = hub.add_parser(
        "backup", help="copy hub.db consistently (SQLite online backup), safe while serving"
    )
    add_data(p, Needs.HUB, help="hub data directory")
    p.add_argument(
        "--to",
        required=not os.environ.get("SIGHUB_BACKUP_TO"),
        default=os.environ.get("SIGHUB_BACKUP_TO"),
        metavar="FILE",
        help="backup file, written atomically with mode 0600 (env SIGHUB_BACKUP_TO)",
    )
    add_json(p)
    p.set_defaults(func=cmd_hub_backup)
    p = hub.add_parser(
        "restore", help="replace hub.db with a backup (hub stopped; never backwards silently)"
    )
    add_data(p, None, help="hub data directory (with its pki/ and hub-signing.key)")
    p.add_argument(
        "--from", dest="source", required=True, metavar="FILE", help="backup file to restore"
    )
    p.add_argument(
        "--allow-rollback",
        action="store_true",
        help="restore even when the backup's log ends before the current one (members "
        "whose cursors are past it must re-sync)",
    )
    add_json(p)
    p.set_defaults(func=cmd_hub_restore)
    p = hub.add_parser(
        "renew-cert", help="re-issue the server certificate from the CA (for tls_names)"
    )
    add_data(p, Needs.HUB, help="hub data directory")
    p.add_argument(
        "--days",
        type=_days,
        default=VALIDITY_LEAF.days,
        help=f"validity in days (default and most {VALIDITY_LEAF.days})",
    )
    add_json(p)
    p.set_defaults(func=cmd_hub_renew_cert)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_data(args)
        return int(args.func(args))
    except SighubError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return exc.exit_code
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        sys.stderr.write(f"error: {where}{exc.strerror or exc}\n")
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
