"""``sighub admin ...``: the operator's commands, over gRPC with the admin credential."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToDict

from client._enroll import EnrollmentFile
from client._keys import write_secret
from client._proto import admin_pb2, admin_pb2_grpc
from client._rpc import Credential, call, open_channel

__all__ = ["add_admin_commands"]


def _out(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def _stub(args: argparse.Namespace) -> tuple[admin_pb2_grpc.AdminStub, Credential]:
    cred = Credential.load(Path(args.cred))
    return admin_pb2_grpc.AdminStub(open_channel(cred, args.insecure, args.hub)), cred


def _show(msg: Any) -> None:
    _out(MessageToDict(msg, preserving_proto_field_name=True))


def cmd_member(args: argparse.Namespace) -> int:
    stub, cred = _stub(args)
    if args.action == "add":
        r = call(
            lambda: stub.AddMember(
                admin_pb2.AddMemberRequest(
                    name=args.name, roles=[x for x in args.roles.split(",") if x]
                ),
                timeout=30,
            )
        )
        ca = (Path(args.cred) / "tls" / "ca.pem").read_bytes()
        ef = EnrollmentFile(
            args.hub or cred.hub,
            args.name,
            r.enrollment_token,
            ca,
            cred.hub_public_key,
            r.enrollment_cert_pem,
            r.enrollment_key_pem,
        )
        out = Path(args.out or f"{args.name}.enroll.json")
        write_secret(out, ef.to_json().encode())  # the token is a secret until used
        _show(r.member)
        sys.stdout.write(f"enrollment file written to {out} (one-time token; mode 0600)\n")
        return 0
    if args.action == "list":
        _show(call(lambda: stub.ListMembers(admin_pb2.ListMembersRequest(), timeout=30)))
        return 0
    if args.action == "revoke-key":
        _show(
            call(
                lambda: stub.RevokeMemberKey(
                    admin_pb2.RevokeKeyRequest(member=args.name, key_id=args.key_id), timeout=30
                )
            )
        )
        return 0
    method = {
        "show": stub.ShowMember,
        "suspend": stub.SuspendMember,
        "resume": stub.ResumeMember,
        "remove": stub.RemoveMember,
    }[args.action]
    _show(call(lambda: method(admin_pb2.MemberRef(name=args.name), timeout=30)))
    return 0


def cmd_collab(args: argparse.Namespace) -> int:
    stub, _ = _stub(args)
    if args.action in ("join", "leave"):
        method = stub.JoinCollab if args.action == "join" else stub.LeaveCollab
        req = admin_pb2.MembershipRequest(collaboration=args.collab, member=args.member)
        _show(call(lambda: method(req, timeout=30)))
        return 0
    change = stub.AddCollab if args.action == "add" else stub.RotateCollabKey
    _show(call(lambda: change(admin_pb2.CollabRef(name=args.collab), timeout=30)))
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    stub, _ = _stub(args)
    req = admin_pb2.AuditRequest(member=args.member or "", since=args.since or "", limit=args.limit)
    _show(call(lambda: stub.Audit(req, timeout=30)))
    return 0


def add_admin_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    admin = sub.add_parser("admin", help="administer a hub (needs the admin credential)")
    admin.add_argument("--cred", required=True, help="admin credential folder (DATA/admin)")
    admin.add_argument("--hub", help="hub address (default: the credential's)")
    admin.add_argument("--insecure", action="store_true", help="plaintext, loopback only")
    groups = admin.add_subparsers(dest="group", required=True)

    member = groups.add_parser("member", help="members").add_subparsers(
        dest="action", required=True
    )
    p = member.add_parser("add", help="add a member and write its enrollment file")
    p.add_argument("name")
    p.add_argument(
        "--roles", required=True, help="comma-separated: publisher,subscriber,admin,peer"
    )
    p.add_argument("--out", help="enrollment file (default NAME.enroll.json)")
    member.add_parser("list")
    for action in ("show", "suspend", "resume", "remove"):
        member.add_parser(action).add_argument("name")
    p = member.add_parser("revoke-key", help="revoke a member's signing key")
    p.add_argument("name")
    p.add_argument("key_id")
    admin_member = groups.choices["member"]
    admin_member.set_defaults(func=cmd_member)

    collab = groups.add_parser("collab", help="collaborations").add_subparsers(
        dest="action", required=True
    )
    collab.add_parser("add").add_argument("collab")
    collab.add_parser("rotate-key").add_argument("collab")
    for action in ("join", "leave"):
        p = collab.add_parser(action)
        p.add_argument("collab")
        p.add_argument("member")
    groups.choices["collab"].set_defaults(func=cmd_collab)

    p = groups.add_parser("audit", help="read the audit log, newest first")
    p.add_argument("--member")
    p.add_argument("--since", help="RFC 3339 time, e.g. 2026-11-01T00:00:00.000Z")
    p.add_argument("--limit", type=int, default=100)
    p.set_defaults(func=cmd_audit)
