"""``sighub collab rekey`` and ``sighub collab status``: a steward making its
collaborations' key epochs, and who holds which epoch."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from sighub.client._cliargs import Needs, add_connection, add_data, add_json, emit
from sighub.client._daemon import SyncDaemon
from sighub.client._local import LOCAL_DB, LocalStore
from sighub.client._rpc import Credential, HubClient
from sighub.client._steward import plan
from sighub.client._stewardlog import LoggedEpoch

__all__ = ["add_collab_commands"]


def cmd_collab(args: argparse.Namespace) -> int:
    if args.action == "rekey":
        return _rekey(args)
    return _status(args)


def _rekey(args: argparse.Namespace) -> int:
    daemon = SyncDaemon(Path(args.data), args.insecure, args.hub)
    try:
        done = daemon.rekey(args.collab, force_new=args.new)
    finally:
        daemon.close()
    if not done.recipients:
        line = f"{done.collab}: epoch {done.epoch} is wrapped to every member; nothing to do"
    elif done.new:
        line = (
            f"{done.collab}: new epoch {done.epoch} made here and wrapped to"
            f" {len(done.recipients)} members ({', '.join(done.recipients)}); the hub holds"
            f" only the wraps (log sequence {done.sequence})"
        )
    else:
        line = (
            f"{done.collab}: epoch {done.epoch} wrapped to {', '.join(done.recipients)}"
            " (members that joined since)"
        )
    for epoch, names in done.earlier:
        line += f"; earlier epoch {epoch} wrapped to {', '.join(names)} (the policy)"
    for problem in done.problems:
        line += f"; NOT DONE: {problem}"
    doc = {"collab": done.collab, "epoch": done.epoch, "new": done.new,
           "recipients": list(done.recipients), "sequence": done.sequence,
           "earlier": [{"epoch": e, "recipients": list(n)} for e, n in done.earlier],
           "problems": list(done.problems)}  # fmt: skip
    emit(args, doc, line)
    return 0


def _status(args: argparse.Namespace) -> int:
    data = Path(args.data)
    cred = Credential.load(data)
    if args.hub:
        cred = replace(cred, hub=args.hub)
    store = LocalStore(data / LOCAL_DB)
    try:
        held = {(c, e) for c, e, _ in store.collab_keys()}
        logged = {k: LoggedEpoch.from_row(v) for k, v in store.log_epochs().items()}
    finally:
        store.close()
    docs: list[dict[str, Any]] = []
    lines: list[str] = []
    with HubClient.connect(cred, args.insecure) as hub:
        if args.collab:
            names = [args.collab]
        else:
            wraps, missing = hub.wraps()
            names = sorted({c for c, _ in held} | {w.collab for w in wraps} |
                           {m.collab for m in missing})  # fmt: skip
        for name in names:
            status = hub.collab_status(name)
            due, to = plan(status, logged) if status.stewards else (False, [])
            epochs: list[dict[str, Any]] = [
                {"epoch": e.epoch, "steward": e.steward or None, "holders": list(e.holders),
                 "held_here": (name, e.epoch) in held, "created": e.created_at.isoformat()}
                for e in status.epochs
            ]  # fmt: skip
            docs.append({"collab": name, "stewards": list(status.stewards),
                         "members": [m for m, _ in status.members], "epochs": epochs,
                         "rekey_due": bool(status.stewards) and (due or bool(to))})  # fmt: skip
            who = ", ".join(status.stewards) or "the hub (no stewards)"
            lines.append(f"{name}: keys made by {who}")
            for e in epochs:
                maker = e["steward"] or "the hub"
                mine = "held here" if e["held_here"] else "not held here"
                lines.append(
                    f"  epoch {e['epoch']} by {maker}: wrapped to"
                    f" {', '.join(e['holders']) or '(hub-made: no wraps)'}; {mine}"
                )
            if docs[-1]["rekey_due"]:
                lines.append(
                    f"  rekey due ({'new epoch' if due else 'wraps for ' + ', '.join(to)}):"
                    f" steward runs `sighub collab rekey {name}`"
                )
    emit(args, {"collabs": docs}, *lines)
    return 0


def add_collab_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    collab = sub.add_parser(
        "collab", help="collaboration keys: make a new epoch as steward, see who holds each"
    )
    actions = collab.add_subparsers(dest="action", required=True)
    p = actions.add_parser(
        "rekey",
        help="as a steward: sync, then make a new key epoch wrapped to every current member"
        " (when there is none, the current one is hub-made, or a holder left), or wrap the"
        " current epoch to members that joined since",
    )
    p.add_argument("collab", help="collaboration name")
    p.add_argument("--new", action="store_true", help="make a new epoch even if none is due")
    add_data(p, Needs.MEMBER)
    add_connection(p)
    add_json(p)
    p = actions.add_parser("status", help="a collaboration's epochs and who holds each")
    p.add_argument("collab", nargs="?", default="", help="collaboration (default: all of yours)")
    add_data(p, Needs.MEMBER)
    add_connection(p)
    add_json(p)
    collab.set_defaults(func=cmd_collab)
