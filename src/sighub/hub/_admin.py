"""``sighub admin ...``: the operator's commands, over gRPC with the admin credential."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeAlias, TypeVar

from google.protobuf.json_format import MessageToDict

from sighub.client._cliargs import add_connection
from sighub.client._enroll import EnrollmentFile
from sighub.client._keys import write_secret
from sighub.client._proto import admin_pb2, admin_pb2_grpc
from sighub.client._rpc import Credential, call, open_channel

__all__ = ["add_admin_commands"]

T = TypeVar("T")


def _out(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")


class _Admin:
    """The admin stub, its credential, and the address that errors name."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.cred = Credential.load(Path(args.cred))
        self.address = args.hub or self.cred.hub
        self.stub = admin_pb2_grpc.AdminStub(open_channel(self.cred, args.insecure, args.hub))

    def call(self, fn: Callable[[], T]) -> T:
        return call(fn, self.address)


def _show(msg: Any) -> None:
    _out(MessageToDict(msg, preserving_proto_field_name=True))


def cmd_member(args: argparse.Namespace) -> int:
    admin = _Admin(args)
    stub = admin.stub
    if args.action == "add":
        r = admin.call(
            lambda: stub.AddMember(
                admin_pb2.AddMemberRequest(
                    name=args.name, roles=[x for x in args.roles.split(",") if x]
                ),
                timeout=30,
            )
        )
        ca = (Path(args.cred) / "tls" / "ca.pem").read_bytes()
        ef = EnrollmentFile(
            admin.address,
            args.name,
            r.enrollment_token,
            ca,
            admin.cred.hub_public_key,
            r.enrollment_cert_pem,
            r.enrollment_key_pem,
        )
        out = Path(args.out or f"{args.name}.enroll.json")
        write_secret(out, ef.to_json().encode())  # the token is a secret until used
        member = MessageToDict(r.member, preserving_proto_field_name=True)
        if args.json:  # one document: the member and where its enrollment file went
            _out({"member": member, "enrollment_file": str(out)})
            return 0
        _out(member)
        sys.stdout.write(f"enrollment file written to {out} (one-time token; mode 0600)\n")
        return 0
    if args.action == "list":
        _show(admin.call(lambda: stub.ListMembers(admin_pb2.ListMembersRequest(), timeout=30)))
        return 0
    if args.action == "revoke-key":
        req = admin_pb2.RevokeKeyRequest(member=args.name, key_id=args.key_id)
        _show(admin.call(lambda: stub.RevokeMemberKey(req, timeout=30)))
        return 0
    method = {
        "show": stub.ShowMember,
        "suspend": stub.SuspendMember,
        "resume": stub.ResumeMember,
        "remove": stub.RemoveMember,
    }[args.action]
    _show(admin.call(lambda: method(admin_pb2.MemberRef(name=args.name), timeout=30)))
    return 0


def cmd_collab(args: argparse.Namespace) -> int:
    admin = _Admin(args)
    stub = admin.stub
    if args.action in ("join", "leave"):
        method = stub.JoinCollab if args.action == "join" else stub.LeaveCollab
        req = admin_pb2.MembershipRequest(collaboration=args.collab, member=args.member)
        _show(admin.call(lambda: method(req, timeout=30)))
        return 0
    change = stub.AddCollab if args.action == "add" else stub.RotateCollabKey
    _show(admin.call(lambda: change(admin_pb2.CollabRef(name=args.collab), timeout=30)))
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    admin = _Admin(args)
    req = admin_pb2.AuditRequest(member=args.member or "", since=args.since or "", limit=args.limit)
    _show(admin.call(lambda: admin.stub.Audit(req, timeout=30)))
    return 0


_Sub: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _leaf(actions: _Sub, name: str, help: str) -> argparse.ArgumentParser:
    """An admin command: the connection options also after it (they win over the
    group-level ones), and --json (admin output is always JSON; accepted for symmetry)."""
    p: argparse.ArgumentParser = actions.add_parser(name, help=help, description=help)
    add_connection(p, admin=True, in_group=True)
    p.add_argument(
        "--json",
        action="store_true",
        help="one JSON document on stdout (admin output is JSON either way)",
    )
    return p


def _add_member_group(groups: _Sub) -> None:
    member = groups.add_parser("member", help="add, list, show, suspend, resume, remove members")
    actions = member.add_subparsers(dest="action", required=True)
    p = _leaf(actions, "add", "add a member and write its enrollment file")
    p.add_argument("name", help="member name (e.g. platform-a)")
    p.add_argument(
        "--roles", required=True, help="comma-separated: publisher,subscriber,admin,peer"
    )
    p.add_argument("--out", help="enrollment file (default NAME.enroll.json)")
    _leaf(actions, "list", "list members, their roles, status and keys")
    for action, help in (
        ("show", "show one member"),
        ("suspend", "suspend a member: its requests are refused until resumed"),
        ("resume", "resume a suspended member"),
        ("remove", "remove a member: its keys are revoked as of now"),
    ):
        _leaf(actions, action, help).add_argument("name", help="member name")
    p = _leaf(actions, "revoke-key", "revoke a member's signing key")
    p.add_argument("name", help="member name")
    p.add_argument("key_id", help="the key id to revoke (ed25519:...)")
    member.set_defaults(func=cmd_member)


def _add_collab_group(groups: _Sub) -> None:
    collab = groups.add_parser("collab", help="add collaborations, rotate keys, membership")
    actions = collab.add_subparsers(dest="action", required=True)
    _leaf(actions, "add", "create a collaboration and its first blinding key").add_argument(
        "collab", help="collaboration name (e.g. sg-csam)"
    )
    _leaf(actions, "rotate-key", "start a new blinding-key epoch").add_argument(
        "collab", help="collaboration name"
    )
    for action, help in (
        ("join", "add a member to a collaboration"),
        ("leave", "take a member out of a collaboration"),
    ):
        p = _leaf(actions, action, help)
        p.add_argument("collab", help="collaboration name")
        p.add_argument("member", help="member name")
    collab.set_defaults(func=cmd_collab)


def add_admin_commands(sub: _Sub) -> None:
    admin = sub.add_parser(
        "admin",
        help="administer a hub (needs the admin credential)",
        description="Connection options go here or after the command; the latter win.",
    )
    add_connection(admin, admin=True)
    groups = admin.add_subparsers(dest="group", required=True)
    _add_member_group(groups)
    _add_collab_group(groups)
    p = _leaf(groups, "audit", "read the audit log, newest first")
    p.add_argument("--member", help="only this member's entries")
    p.add_argument("--since", help="RFC 3339 time, e.g. 2026-11-01T00:00:00.000Z")
    p.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    p.set_defaults(func=cmd_audit)
