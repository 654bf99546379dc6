"""``sighub admin ...``: the operator's commands, over gRPC with the admin credential."""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Final, TypeAlias, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from google.protobuf.timestamp_pb2 import Timestamp

from sighub.client._cliargs import add_connection
from sighub.client._enroll import EnrollmentFile
from sighub.client._envelope import key_id
from sighub.client._errors import EXIT_BAD_INPUT, SighubError
from sighub.client._grant import (
    ADMIN_SIGNING_KEY,
    KeyChainError,
    admin_public_key,
    attest_key,
    decode_public,
    designate_steward,
    issue_grant,
    load_admin_key,
    peering_statement,
    sign_peering,
)
from sighub.client._keys import read_secret, write_secret
from sighub.client._leaves import MAX_EARLIER_EPOCHS
from sighub.client._proto import admin_pb2, admin_pb2_grpc, types_pb2
from sighub.client._rpc import (
    MEMBER_STATUS,
    ROLE,
    Credential,
    HubClient,
    answer_time,
    call,
    open_channel,
    to_timestamp,
)
from sighub.client._stix import format_time
from sighub.hub._peering import (
    CEILINGS,
    MAX_HOPS,
    NAME_RE,
    PEER_DIRECTION,
    PEER_STATUS,
    Direction,
)

__all__ = ["add_admin_commands"]

T = TypeVar("T")
PAGE_MAX: Final = 1000  # the hub's largest page (admin.proto)


class AdminArgumentError(SighubError):
    """An admin command's argument the hub would refuse, caught before asking it."""

    exit_code = EXIT_BAD_INPUT


def _out(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")


class _Admin:
    """The admin stub, its credential, and the address that errors name."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.cred = Credential.load(Path(args.cred))
        self.address = args.hub or self.cred.hub
        self.channel = open_channel(self.cred, args.insecure, args.hub)
        self.stub = admin_pb2_grpc.AdminServiceStub(self.channel)

    def log_origin(self) -> str:
        """The hub's log origin: from the admin credential, or, for one written before the
        log, the first line of the hub's checkpoint (a name; the key stays pinned)."""
        if self.cred.log_origin:
            return self.cred.log_origin
        note = self.call(lambda: HubClient(self.channel, self.address).checkpoint())
        return note.split(b"\n", 1)[0].decode("utf-8", "replace")

    def call(self, fn: Callable[[], T]) -> T:
        return call(fn, self.address)

    def signing_key(self, args: argparse.Namespace) -> Ed25519PrivateKey | None:
        """The admin signing key (``--admin-key``, by default the credential's
        ``admin-signing.key``), checked against the key the credential pins; None for a
        credential from before key chains that names none."""
        path = Path(args.admin_key) if args.admin_key else Path(args.cred) / ADMIN_SIGNING_KEY
        if not self.cred.admin_public_key and not args.admin_key:
            return None
        if not path.exists():
            raise AdminArgumentError(
                f"admin signing key {path}: not found; the hub requires keys chained to it"
                " (pass --admin-key PATH where it is kept)"
            )
        key = load_admin_key(path)
        if self.cred.admin_public_key and admin_public_key(key) != self.cred.admin_public_key:
            raise AdminArgumentError(
                f"admin signing key {path}: not the admin key this credential pins"
            )
        return key


# -- the wire as the operator reads it: readable names, RFC 3339 times ---------------------
def _time(ts: Timestamp) -> str:
    return format_time(answer_time(ts))


def _member_doc(m: admin_pb2.Member) -> dict[str, Any]:
    return {
        "name": m.name,
        "identity": m.identity,
        "roles": [ROLE.label(r) for r in m.roles],
        "status": MEMBER_STATUS.label(m.status),
        "collaborations": list(m.collaborations),
        "key_ids": list(m.key_ids),
        "created_at": _time(m.created_at),
    }


def _collab_doc(c: admin_pb2.Collaboration) -> dict[str, Any]:
    return {
        "name": c.name,
        "members": list(c.members),
        "key_epoch": c.key_epoch,
        "created_at": _time(c.created_at),
        "stewards": list(c.stewards),
        "earlier_epochs": c.earlier_epochs,
    }


def _detail_doc(detail: admin_pb2.AuditDetail) -> dict[str, Any]:
    """Only the fields the entry's action recorded."""
    out: dict[str, Any] = {}
    for field, value in detail.ListFields():
        if field.name == "roles":
            out["roles"] = [ROLE.label(r) for r in value]
        elif field.name == "stewards":
            out["stewards"] = list(value)
        elif isinstance(value, Timestamp):
            out[field.name] = _time(value)
        else:
            out[field.name] = value
    return out


def _entry_doc(e: admin_pb2.AuditEntry) -> dict[str, Any]:
    return {
        "sequence": e.sequence,
        "at": _time(e.at),
        "actor": e.actor,
        "action": e.action,
        "target": e.target,
        "detail": _detail_doc(e.detail),
    }


def _roles(text: str) -> list[types_pb2.Role.ValueType]:
    try:
        return [ROLE.value(x, "--roles") for x in text.split(",") if x]
    except ValueError as exc:
        raise AdminArgumentError(str(exc)) from None


def _since(text: str) -> Timestamp:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise AdminArgumentError(
            f"--since: received {text!r}; expected an RFC 3339 time with its offset, "
            "e.g. 2026-11-01T00:00:00Z"
        )
    return to_timestamp(when)


def _pages(fetch: Callable[[str], tuple[list[T], str]]) -> Iterator[T]:
    """Every item of a paged RPC: ``fetch(token)`` answers a page and the next token."""
    token = ""
    while True:
        items, following = fetch(token)
        yield from items
        if not following:
            return
        if following == token:
            raise SighubError(f"the hub answered page token {token!r} again; stopping")
        token = following


def _grant_fields(
    signing: Ed25519PrivateKey | None, origin: str, name: str, roles: list[str]
) -> tuple[str, str, str, str]:
    """The enrollment file's grant, its signature, the enrollment key and the pinned
    admin key (all empty without an admin signing key)."""
    if signing is None:
        return "", "", "", ""
    grant, signature, enrollment = issue_grant(signing, origin, name, roles)
    seed = enrollment.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return _b64(grant), _b64(signature), _b64(seed), admin_public_key(signing)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _attest(admin: _Admin, args: argparse.Namespace) -> admin_pb2.Member:
    """Sign the admin's attestation of ``args.key_id`` (a key id the member gave out of
    band) and have the hub log it."""
    signing = admin.signing_key(args)
    if signing is None:
        raise AdminArgumentError("attest: this admin credential pins no admin signing key")
    hub = HubClient(admin.channel, admin.address)
    keys = [k for k in admin.call(hub.key_directory) if k.key_id == args.key_id]
    if not keys or keys[0].member != args.name:
        raise AdminArgumentError(f"attest: the hub holds no key {args.key_id!r} of {args.name!r}")
    public = keys[0].public_key
    # The hub answered the public key: it must be the one the member's key id names.
    if key_id(Ed25519PublicKey.from_public_bytes(public)) != args.key_id:
        raise AdminArgumentError(
            f"attest: the hub answered a public key for {args.key_id!r} that the id does"
            " not name; do not attest it"
        )
    raw, signature = attest_key(signing, admin.log_origin(), args.name, public)
    req = admin_pb2.AttestMemberKeyRequest(member=args.name, attestation=raw, signature=signature)
    return admin.call(lambda: admin.stub.AttestMemberKey(req, timeout=30)).member


def cmd_member(args: argparse.Namespace) -> int:
    admin = _Admin(args)
    stub = admin.stub
    if args.action == "add":
        roles = _roles(args.roles)
        signing = admin.signing_key(args)  # before the hub is asked: a missing key changes nothing
        add = admin_pb2.AddMemberRequest(name=args.name, roles=roles)
        r = admin.call(lambda: stub.AddMember(add, timeout=30))
        ca = (Path(args.cred) / "tls" / "ca.pem").read_bytes()
        origin = admin.log_origin()
        ef = EnrollmentFile(
            admin.address,
            args.name,
            r.enrollment_token,
            ca,
            admin.cred.hub_public_key,
            r.enrollment_cert_pem,
            r.enrollment_key_pem,
            origin,
            # the roles as the hub stores them: each once (a grant over "publisher,
            # publisher" would never match the enrollment's leaf)
            *_grant_fields(signing, origin, args.name, sorted({ROLE.label(x) for x in roles})),
        )
        out = Path(args.out or f"{args.name}.enroll.json")
        write_secret(out, ef.to_json().encode())  # the token is a secret until used
        member = _member_doc(r.member)
        if args.json:  # one document: the member and where its enrollment file went
            _out({"member": member, "enrollment_file": str(out)})
            return 0
        _out(member)
        sys.stdout.write(f"enrollment file written to {out} (one-time token; mode 0600)\n")
        return 0
    if args.action == "list":

        def page(token: str) -> tuple[list[admin_pb2.Member], str]:
            req = admin_pb2.ListMembersRequest(page_size=PAGE_MAX, page_token=token)
            r = admin.call(lambda: stub.ListMembers(req, timeout=30))
            return list(r.members), r.next_page_token

        _out({"members": [_member_doc(m) for m in _pages(page)]})
        return 0
    name = args.name
    if args.action == "attest":
        result = _attest(admin, args)
    elif args.action == "revoke-key":
        req = admin_pb2.RevokeMemberKeyRequest(member=name, key_id=args.key_id)
        result = admin.call(lambda: stub.RevokeMemberKey(req, timeout=30)).member
    elif args.action == "show":
        shown = admin_pb2.ShowMemberRequest(name=name)
        result = admin.call(lambda: stub.ShowMember(shown, timeout=30)).member
    elif args.action == "suspend":
        suspend = admin_pb2.SuspendMemberRequest(name=name)
        result = admin.call(lambda: stub.SuspendMember(suspend, timeout=30)).member
    elif args.action == "resume":
        resume = admin_pb2.ResumeMemberRequest(name=name)
        result = admin.call(lambda: stub.ResumeMember(resume, timeout=30)).member
    else:
        remove = admin_pb2.RemoveMemberRequest(name=name)
        result = admin.call(lambda: stub.RemoveMember(remove, timeout=30)).member
    _out(_member_doc(result))
    return 0


def _designations(
    admin: _Admin, args: argparse.Namespace, collab: str, stewards: list[str]
) -> list[bytes]:
    """The admin's designation of each steward (empty without an admin signing key)."""
    if not stewards:
        return []
    signing = admin.signing_key(args)
    if signing is None:
        return [b"" for _ in stewards]
    origin = admin.log_origin()
    return [designate_steward(signing, origin, collab, name) for name in stewards]


def _earlier(n: int) -> int:
    if not 0 <= n <= MAX_EARLIER_EPOCHS:
        raise AdminArgumentError(
            f"--earlier-epochs: received {n}; expected 0 to {MAX_EARLIER_EPOCHS}"
        )
    return n


def cmd_collab(args: argparse.Namespace) -> int:
    admin = _Admin(args)
    stub = admin.stub
    collab, member = args.collab, getattr(args, "member", "")
    if args.action == "steward":
        (signature,) = _designations(admin, args, collab, [member])
        request = admin_pb2.AddCollabStewardRequest(
            collaboration=collab, member=member, signature=signature
        )
        done = admin.call(lambda: stub.AddCollabSteward(request, timeout=30)).collaboration
    elif args.action == "policy":
        policy = admin_pb2.SetCollabPolicyRequest(
            collaboration=collab, earlier_epochs=_earlier(args.earlier_epochs)
        )
        done = admin.call(lambda: stub.SetCollabPolicy(policy, timeout=30)).collaboration
    elif args.action == "join":
        join = admin_pb2.JoinCollabRequest(collaboration=collab, member=member)
        done = admin.call(lambda: stub.JoinCollab(join, timeout=30)).collaboration
    elif args.action == "leave":
        leave = admin_pb2.LeaveCollabRequest(collaboration=collab, member=member)
        done = admin.call(lambda: stub.LeaveCollab(leave, timeout=30)).collaboration
    elif args.action == "add":
        signatures = _designations(admin, args, collab, args.steward)
        add = admin_pb2.AddCollabRequest(
            name=collab,
            stewards=args.steward,
            steward_signatures=signatures,
            earlier_epochs=_earlier(args.earlier_epochs),
            keys_from_peer=args.keys_from_peer,
        )
        done = admin.call(lambda: stub.AddCollab(add, timeout=30)).collaboration
    else:
        rotate = admin_pb2.RotateCollabKeyRequest(name=collab)
        done = admin.call(lambda: stub.RotateCollabKey(rotate, timeout=30)).collaboration
    _out(_collab_doc(done))
    return 0


def _peering_doc(p: admin_pb2.Peering) -> dict[str, Any]:
    return {
        "name": p.name,
        "origin": p.origin,
        "log_key": _b64(p.log_key),
        "address": p.address,
        "collabs": [f"{m.remote}={m.local}" for m in p.collaborations],
        "direction": PEER_DIRECTION.label(p.direction),
        "max_hops": p.max_hops,
        "tlp_ceiling": p.tlp_ceiling,
        "status": PEER_STATUS.label(p.status),
        "signature": _b64(p.signature),
        "since": p.since,
        "dial_in": p.dial_in,
    }


def _mappings(texts: list[str]) -> list[tuple[str, str]]:
    out = []
    for text in texts:
        remote, sep, local = text.partition("=")
        if not sep or not NAME_RE.fullmatch(remote) or not NAME_RE.fullmatch(local):
            raise AdminArgumentError(
                f"--map: received {text!r}; expected REMOTE=LOCAL, two collaboration names"
                " of [a-z0-9-]"
            )
        out.append((remote, local))
    return sorted(out)


def _add_peer(admin: _Admin, args: argparse.Namespace) -> admin_pb2.Peering:
    """Sign the peering on this machine, over the peer's origin and log key as the
    enrollment file names them, and have the hub enroll at the peer and log it."""
    if not 1 <= args.max_hops <= MAX_HOPS:
        raise AdminArgumentError(f"--max-hops: received {args.max_hops}; expected 1-{MAX_HOPS}")
    collabs = _mappings(args.map)
    path = Path(args.enrollment)
    raw = read_secret(path)  # the token in it is a secret: the file must be 0600
    ef = EnrollmentFile.parse(raw, str(path))
    if not ef.log_origin or not ef.hub_public_key:
        raise AdminArgumentError(
            f"{path}: names no log origin or log key; the peer's hub must have a"
            " transparency log to be peered with"
        )
    try:
        log_key = decode_public(ef.hub_public_key, f"{path}: hub_public_key")
    except KeyChainError as exc:
        raise AdminArgumentError(str(exc)) from None
    signing = admin.signing_key(args)
    if signing is None:
        raise AdminArgumentError(
            "peer add: this admin credential pins no admin signing key; the hub's clients"
            " verify a peering by the admin's signature"
        )
    address = args.address or ef.hub
    statement = peering_statement(
        args.name, ef.log_origin, log_key, address, collabs, args.direction, args.max_hops,
        args.tlp_ceiling,
    )  # fmt: skip
    req = admin_pb2.AddPeerRequest(
        name=args.name,
        enrollment=raw,
        collaborations=[admin_pb2.CollabMapping(remote=r, local=loc) for r, loc in collabs],
        direction=PEER_DIRECTION.values[args.direction],
        max_hops=args.max_hops,
        tlp_ceiling=args.tlp_ceiling,
        address=args.address or "",
        signature=sign_peering(signing, statement),
        dial_in=args.dial_in,
    )
    # enrolling at the peer takes a round trip there as well
    return admin.call(lambda: admin.stub.AddPeer(req, timeout=90)).peering


def _relay_doc(r: admin_pb2.RelayState) -> dict[str, Any]:
    return {
        "peer": r.peer, "state": r.state, "cursor": r.cursor, "head": r.head, "lag": r.lag,
        "last_batch": r.last_batch, "error": r.error, "counts": dict(sorted(r.counts.items())),
        **({"push": r.push, "push_connections": r.push_connections} if r.push else {}),
    }  # fmt: skip


def _peer_status(admin: _Admin, args: argparse.Namespace) -> int:
    """Each relay's lag behind its peer and what it did: one peering's, or every one's."""
    if args.name:
        shown = admin_pb2.ShowPeerRequest(name=args.name)
        got = admin.call(lambda: admin.stub.ShowPeer(shown, timeout=30))
        status = PEER_STATUS.label(got.peering.status)
        relay = _relay_doc(got.relay) if got.HasField("relay") else None
        _out({"name": args.name, "status": status, "relay": relay})
        return 0
    listed = admin.call(lambda: admin.stub.ListPeers(admin_pb2.ListPeersRequest(), timeout=30))
    relays = {r.peer: _relay_doc(r) for r in listed.relays}
    _out({"peerings": [{"name": p.name, "status": PEER_STATUS.label(p.status),
                        "relay": relays.get(p.name)} for p in listed.peerings]})  # fmt: skip
    return 0


def cmd_peer(args: argparse.Namespace) -> int:
    admin = _Admin(args)
    stub = admin.stub
    if args.action == "status":
        return _peer_status(admin, args)
    if args.action == "list":
        listed = admin.call(lambda: stub.ListPeers(admin_pb2.ListPeersRequest(), timeout=30))
        _out({"peerings": [_peering_doc(p) for p in listed.peerings]})
        return 0
    if args.action == "add":
        done = _add_peer(admin, args)
    elif args.action == "show":
        shown = admin_pb2.ShowPeerRequest(name=args.name)
        done = admin.call(lambda: stub.ShowPeer(shown, timeout=30)).peering
    else:
        status = {"suspend": "suspended", "resume": "active", "remove": "removed"}[args.action]
        change = admin_pb2.SetPeerStatusRequest(name=args.name, status=PEER_STATUS.values[status])
        done = admin.call(lambda: stub.SetPeerStatus(change, timeout=30)).peering
    _out(_peering_doc(done))
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    if args.limit < 0:
        raise AdminArgumentError(f"--limit: received {args.limit}; expected 0 (all) or more")
    admin = _Admin(args)
    since = _since(args.since) if args.since else None
    left = args.limit or None  # None: every entry

    def page(token: str) -> tuple[list[admin_pb2.AuditEntry], str]:
        nonlocal left
        size = PAGE_MAX if left is None else min(left, PAGE_MAX)
        req = admin_pb2.AuditRequest(
            member=args.member or "", since=since, page_size=size, page_token=token
        )
        r = admin.call(lambda: admin.stub.Audit(req, timeout=30))
        entries = list(r.entries)[:size]
        if left is not None:
            left -= len(entries)
            if left <= 0:
                return entries, ""
        return entries, r.next_page_token

    _out({"entries": [_entry_doc(e) for e in _pages(page)]})
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
    _admin_key_option(p)
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
    p = _leaf(
        actions,
        "attest",
        "chain a member's existing signing key (enrolled before admin-signed grants) to the"
        " admin key; take the key id from the member, not from the hub",
    )
    p.add_argument("name", help="member name")
    p.add_argument("key_id", help="the member's key id, as `sighub status` shows it there")
    _admin_key_option(p)
    member.set_defaults(func=cmd_member)


def _admin_key_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--admin-key",
        help="the admin signing key (default: admin-signing.key in the credential folder;"
        " keep it off the hub's host)",
    )


def _earlier_option(p: argparse.ArgumentParser, default: int | None) -> None:
    p.add_argument(
        "--earlier-epochs",
        type=int,
        default=default,
        required=default is None,
        metavar="N",
        help="how many key epochs before the current one a joiner is wrapped, by the"
        " steward that made each, so it matches indicators published under them until they"
        f" expire (default {default or 0}: the current epoch only)",
    )


def _add_collab_group(groups: _Sub) -> None:
    collab = groups.add_parser("collab", help="add collaborations, rotate keys, membership")
    actions = collab.add_subparsers(dest="action", required=True)
    add = _leaf(actions, "add", "create a collaboration (and, without stewards, its first key)")
    add.add_argument("collab", help="collaboration name (e.g. sg-csam)")
    add.add_argument(
        "--steward",
        action="append",
        default=[],
        metavar="MEMBER",
        help="an active member whose client makes the collaboration's key epochs and wraps"
        " them to the members (repeatable; joined to it); the hub then never makes a key",
    )
    add.add_argument(
        "--keys-from-peer",
        action="store_true",
        help="its key epochs come from a steward on a peer hub (a collaboration that spans"
        " hubs, mapped by a peering): the hub makes none; not with --steward",
    )
    _admin_key_option(add)
    _earlier_option(add, 0)
    policy = _leaf(actions, "policy", "set which key epochs a joiner is wrapped")
    policy.add_argument("collab", help="collaboration name")
    _earlier_option(policy, None)
    _leaf(actions, "rotate-key", "start a new blinding-key epoch").add_argument(
        "collab", help="collaboration name"
    )
    for action, help in (
        ("join", "add a member to a collaboration"),
        ("leave", "take a member out of a collaboration"),
        ("steward", "make a member a steward (its client makes the keys from its first rekey)"),
    ):
        p = _leaf(actions, action, help)
        p.add_argument("collab", help="collaboration name")
        p.add_argument("member", help="member name")
        if action == "steward":
            _admin_key_option(p)
    collab.set_defaults(func=cmd_collab)


def _add_peer_group(groups: _Sub) -> None:
    peer = groups.add_parser(
        "peer",
        help="peer with other hubs: add, list, show, status, suspend, resume, remove peerings",
    )
    actions = peer.add_subparsers(dest="action", required=True)
    add = _leaf(
        actions,
        "add",
        "peer with another hub: this hub enrolls there with the enrollment file that hub's"
        " admin issued for it (role peer) and logs the record, signed here",
    )
    add.add_argument("name", help="this hub's name for the peer (e.g. regional-hub)")
    add.add_argument(
        "--enrollment",
        required=True,
        metavar="FILE",
        help="the enrollment file from `sighub admin member add NAME --roles peer` on the peer",
    )
    add.add_argument(
        "--map",
        action="append",
        required=True,
        metavar="REMOTE=LOCAL",
        help="a collaboration that crosses: the peer's name for it and this hub's"
        " (repeatable; a collaboration not mapped never crosses)",
    )
    add.add_argument(
        "--direction",
        choices=[d.value for d in Direction],
        default=Direction.PULL.value,
        help="pull: this hub follows the peer; push: it sends to the peer (it dials the"
        " peer, whose relay pulls through that connection); both (default pull)",
    )
    add.add_argument(
        "--dial-in",
        action="store_true",
        help="the peer dials this hub (its peering says push): for a peer this hub cannot"
        " reach; needs this hub's member of the same NAME with role peer, and direction pull",
    )
    add.add_argument(
        "--max-hops",
        type=int,
        default=3,
        metavar="N",
        help=f"an envelope that has passed this many hubs is not taken (1-{MAX_HOPS}; default 3)",
    )
    add.add_argument(
        "--tlp-ceiling",
        choices=CEILINGS,
        default="amber",
        help="the highest TLP that crosses (default amber; red never leaves its hub)",
    )
    add.add_argument(
        "--address", metavar="HOST:PORT", help="where the peer serves (default: the file's)"
    )
    _admin_key_option(add)
    _leaf(actions, "list", "list peerings, their policy and status")
    status = _leaf(actions, "status", "each relay's lag behind its peer and what it relayed")
    status.add_argument("name", nargs="?", help="one peering (default: every one)")
    for action, help in (
        ("show", "show one peering"),
        ("suspend", "suspend a peering until resumed"),
        ("resume", "resume a suspended peering"),
        ("remove", "remove a peering for good (this hub's credential at the peer is deleted)"),
    ):
        _leaf(actions, action, help).add_argument("name", help="the peering's name")
    peer.set_defaults(func=cmd_peer)


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
    _add_peer_group(groups)
    p = _leaf(groups, "audit", "read the audit log, newest first")
    p.add_argument("--member", help="only this member's entries")
    p.add_argument("--since", help="RFC 3339 time, e.g. 2026-11-01T00:00:00.000Z")
    p.add_argument("--limit", type=int, default=100, help="at most this many (default 100; 0: all)")
    p.set_defaults(func=cmd_audit)
