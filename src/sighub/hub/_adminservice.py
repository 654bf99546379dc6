"""``AdminService``: the operator's RPCs, and their wire <-> model conversion (readable
role names, RFC 3339 times, typed audit details, opaque page tokens)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import re
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, Final, TypeVar

from google.protobuf.timestamp_pb2 import Timestamp

from sighub.client._proto import (
    admin_pb2,
    admin_pb2_grpc,
    types_pb2,
)
from sighub.client._rpc import MEMBER_STATUS, ROLE, WireEnum, from_timestamp
from sighub.client._stix import format_time
from sighub.client._tls import key_pem
from sighub.hub._errors import HubError
from sighub.hub._peering import PEER_DIRECTION, PEER_STATUS, Peering
from sighub.hub._peers import PendingPeer
from sighub.hub._pki import issue_enrollment
from sighub.hub._relay import RelayState
from sighub.hub._service import Services, _rpc, _timestamp

__all__ = ["AdminService"]

T = TypeVar("T")
_MS: Final = timedelta(milliseconds=1)
log = logging.getLogger("sighub.hub")


def _since(ts: Timestamp, where: str) -> str:
    """A request's Timestamp as the store's text: millisecond precision, rounded up so
    that "at or after" keeps its meaning."""
    try:
        when = from_timestamp(ts)
        return format_time(when + _MS if ts.nanos % 1_000_000 else when)
    except (ValueError, OverflowError):
        raise HubError.invalid(
            f"{where}: received seconds={ts.seconds} nanos={ts.nanos}; expected a time "
            "from 0001-01-01 to 9999-12-31"
        ) from None


def _roles(values: Sequence[int], where: str) -> list[str]:
    """Requested roles by name; the zero and unknown numbers are INVALID_ARGUMENT."""
    try:
        return ROLE.names_of(values, where)
    except ValueError as exc:
        raise HubError.invalid(str(exc)) from None


def _role_values(names: Sequence[str]) -> list[types_pb2.Role.ValueType]:
    return [ROLE.values[n] for n in names]


# Stored audit detail keys -> AuditDetail fields (the hub's writes in _hub.py).
_AUDIT_SCALARS: Final = {
    "key_id": "key_id",
    "previous_key_id": "previous_key_id",
    "cert_serial": "cert_serial",
    "previous_cert_serial": "previous_cert_serial",
    "collab": "collaboration",
    "epoch": "key_epoch",
    "envelope": "envelope_id",
    "seq": "log_sequence",
    "indicators": "indicators",
    "revoked": "revoked_indicators",
    "wraps": "wraps",
    "new": "new_epoch",
    "suite": "suite",
    "signing_key_id": "signing_key_id",
    "earlier_epochs": "earlier_epochs",
    "origin": "origin",
    "dial_in": "dial_in",
}


def _audit_detail(text: str, sequence: int) -> admin_pb2.AuditDetail:
    """A stored detail (JSON object) as its typed message.  A key this table does not know
    is logged, not sent: the message has no place for it."""
    detail = admin_pb2.AuditDetail()
    for key, value in json.loads(text).items():
        if value is None:
            continue
        if key == "roles":
            detail.roles.extend(ROLE.values[r] for r in value if r in ROLE.values)
        elif key == "stewards":
            detail.stewards.extend(value)
        elif key == "not_after":
            detail.cert_not_after.CopyFrom(_timestamp(value))
        elif key in _AUDIT_SCALARS:
            setattr(detail, _AUDIT_SCALARS[key], value)
        else:
            log.warning("audit entry %d: detail %r has no AuditDetail field", sequence, key)
    return detail


# Page sizes of ListMembers and Audit (the contract's numbers, in admin.proto).
PAGE_DEFAULT: Final = 100
PAGE_MAX: Final = 1000
_MEMBER_POSITION: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_AUDIT_POSITION: Final = re.compile(r"[1-9][0-9]{0,17}")  # below 2**63: an SQLite integer


def _page_size(requested: int) -> int:
    return min(requested or PAGE_DEFAULT, PAGE_MAX)


def _page_token(rpc: str, position: str) -> str:
    """Opaque to clients: the RPC and where its last page ended, base64url."""
    return base64.urlsafe_b64encode(f"{rpc}:{position}".encode()).decode().rstrip("=")


def _page_position(rpc: str, token: str, pattern: re.Pattern[str]) -> str | None:
    """Where the page a token asks for starts (None for the first page);
    INVALID_ARGUMENT for a token this RPC did not hand out."""
    if not token:
        return None
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, ValueError):
        text = ""
    kind, _, position = text.partition(":")
    if kind != rpc or not pattern.fullmatch(position):
        shown = token if len(token) <= 40 else token[:40] + "..."
        raise HubError.invalid(
            f"{rpc}: page_token {shown!r} is not one this RPC returned; expected empty or "
            "a previous response's next_page_token, unchanged"
        )
    return position


def peering_message(p: Peering) -> admin_pb2.Peering:
    return admin_pb2.Peering(
        name=p.name,
        origin=p.origin,
        log_key=p.log_key,
        address=p.address,
        collaborations=[admin_pb2.CollabMapping(remote=r, local=loc) for r, loc in p.collabs],
        direction=PEER_DIRECTION.values[p.direction.value],
        max_hops=p.max_hops,
        tlp_ceiling=p.tlp_ceiling.value,
        status=PEER_STATUS.values[p.status],
        signature=p.signature,
        since=p.since,
        dial_in=p.dial_in,
    )


def relay_message(r: RelayState, counts: dict[str, int]) -> admin_pb2.RelayState:
    return admin_pb2.RelayState(
        peer=r.peer, state=r.state, cursor=r.cursor, head=r.head, lag=r.lag,
        last_batch=r.last_batch, error=r.error, counts=counts, push=r.push,
        push_connections=r.push_connections,
    )  # fmt: skip


def _wire_name(enum: WireEnum[Any], value: int, where: str) -> str:
    """A request's enum value by readable name; the zero and unknown numbers are
    INVALID_ARGUMENT."""
    try:
        return enum.name(value, where)
    except ValueError as exc:
        raise HubError.invalid(str(exc)) from None


# -- the services ---------------------------------------------------------------------------
class AdminService(admin_pb2_grpc.AdminServiceServicer):
    def __init__(self, s: Services) -> None:
        self.s = s

    def _admin(self, context: Any) -> str:
        m = self.s.identify(context)
        self.s.hub.require(m, "admin")
        return m.name

    def _member(self, name: str) -> admin_pb2.Member:
        store = self.s.hub.store
        m = store.member(name)
        if m is None:
            raise HubError.not_found(f"member {name!r} does not exist")
        return admin_pb2.Member(
            name=m.name,
            identity=m.identity,
            roles=_role_values(m.roles),
            status=MEMBER_STATUS.values[m.status],
            collaborations=store.member_collabs(name),
            key_ids=[k[0] for k in store.member_keys(name) if k[3] is None],
            created_at=_timestamp(m.created),
        )

    def _collab(self, name: str) -> admin_pb2.Collaboration:
        store = self.s.hub.store
        row = store.one("SELECT created FROM collabs WHERE name=?", name)
        if row is None:
            raise HubError.not_found(f"collaboration {name!r} does not exist")
        return admin_pb2.Collaboration(
            name=name,
            members=store.collab_members(name),
            key_epoch=store.collab_epoch(name) or 0,
            created_at=_timestamp(row[0]),
            stewards=store.stewards(name),
            earlier_epochs=store.earlier_epochs(name),
        )

    async def _change(self, fn: Callable[[], T]) -> T:
        result = await self.s.run(fn)
        self.s.committed()  # most changes are log leaves
        await self.s.notify()  # streams re-check who may still read what
        return result

    @_rpc
    async def AddMember(
        self, request: admin_pb2.AddMemberRequest, context: Any
    ) -> admin_pb2.AddMemberResponse:
        def work() -> admin_pb2.AddMemberResponse:
            actor = self._admin(context)
            roles = _roles(request.roles, f"member {request.name!r}: roles")
            m, token = self.s.hub.add_member(actor, request.name, roles)
            cert, key = issue_enrollment(self.s.hub.ca_key, self.s.hub.ca_pem, m.name)
            return admin_pb2.AddMemberResponse(
                member=self._member(m.name),
                enrollment_token=token,
                enrollment_cert_pem=cert,
                enrollment_key_pem=key_pem(key),
            )

        return await self._change(work)

    @_rpc
    async def ListMembers(
        self, request: admin_pb2.ListMembersRequest, context: Any
    ) -> admin_pb2.ListMembersResponse:
        def work() -> admin_pb2.ListMembersResponse:
            self._admin(context)
            after = _page_position("ListMembers", request.page_token, _MEMBER_POSITION)
            size = _page_size(request.page_size)
            rows = self.s.hub.store.members(after or "", size + 1)
            page = rows[:size]
            more = len(rows) > size
            return admin_pb2.ListMembersResponse(
                members=[self._member(m.name) for m in page],
                next_page_token=_page_token("ListMembers", page[-1].name) if more else "",
            )

        return await self.s.run(work)

    @_rpc
    async def ShowMember(
        self, request: admin_pb2.ShowMemberRequest, context: Any
    ) -> admin_pb2.ShowMemberResponse:
        def work() -> admin_pb2.ShowMemberResponse:
            self._admin(context)
            return admin_pb2.ShowMemberResponse(member=self._member(request.name))

        return await self.s.run(work)

    @_rpc
    async def SuspendMember(
        self, request: admin_pb2.SuspendMemberRequest, context: Any
    ) -> admin_pb2.SuspendMemberResponse:
        def work() -> admin_pb2.SuspendMemberResponse:
            m = self.s.hub.set_status(self._admin(context), request.name, "suspended")
            return admin_pb2.SuspendMemberResponse(member=self._member(m.name))

        return await self._change(work)

    @_rpc
    async def ResumeMember(
        self, request: admin_pb2.ResumeMemberRequest, context: Any
    ) -> admin_pb2.ResumeMemberResponse:
        def work() -> admin_pb2.ResumeMemberResponse:
            m = self.s.hub.set_status(self._admin(context), request.name, "active")
            return admin_pb2.ResumeMemberResponse(member=self._member(m.name))

        return await self._change(work)

    @_rpc
    async def RemoveMember(
        self, request: admin_pb2.RemoveMemberRequest, context: Any
    ) -> admin_pb2.RemoveMemberResponse:
        def work() -> admin_pb2.RemoveMemberResponse:
            m = self.s.hub.remove_member(self._admin(context), request.name)
            return admin_pb2.RemoveMemberResponse(member=self._member(m.name))

        return await self._change(work)

    @_rpc
    async def RevokeMemberKey(
        self, request: admin_pb2.RevokeMemberKeyRequest, context: Any
    ) -> admin_pb2.RevokeMemberKeyResponse:
        def work() -> admin_pb2.RevokeMemberKeyResponse:
            m = self.s.hub.revoke_key(self._admin(context), request.member, request.key_id)
            return admin_pb2.RevokeMemberKeyResponse(member=self._member(m.name))

        return await self._change(work)

    @_rpc
    async def AttestMemberKey(
        self, request: admin_pb2.AttestMemberKeyRequest, context: Any
    ) -> admin_pb2.AttestMemberKeyResponse:
        def work() -> admin_pb2.AttestMemberKeyResponse:
            m = self.s.hub.attest_key(
                self._admin(context), request.member, request.attestation, request.signature
            )
            return admin_pb2.AttestMemberKeyResponse(member=self._member(m.name))

        return await self._change(work)

    @_rpc
    async def AddCollab(
        self, request: admin_pb2.AddCollabRequest, context: Any
    ) -> admin_pb2.AddCollabResponse:
        def work() -> admin_pb2.AddCollabResponse:
            name = self.s.hub.add_collab(
                self._admin(context),
                request.name,
                list(request.stewards),
                list(request.steward_signatures),
                request.earlier_epochs,
                request.keys_from_peer,
            )
            return admin_pb2.AddCollabResponse(collaboration=self._collab(name))

        return await self._change(work)

    @_rpc
    async def AddCollabSteward(
        self, request: admin_pb2.AddCollabStewardRequest, context: Any
    ) -> admin_pb2.AddCollabStewardResponse:
        def work() -> admin_pb2.AddCollabStewardResponse:
            name = self.s.hub.add_steward(
                self._admin(context), request.collaboration, request.member, request.signature
            )
            return admin_pb2.AddCollabStewardResponse(collaboration=self._collab(name))

        return await self._change(work)

    @_rpc
    async def SetCollabPolicy(
        self, request: admin_pb2.SetCollabPolicyRequest, context: Any
    ) -> admin_pb2.SetCollabPolicyResponse:
        def work() -> admin_pb2.SetCollabPolicyResponse:
            name = self.s.hub.set_collab_policy(
                self._admin(context), request.collaboration, request.earlier_epochs
            )
            return admin_pb2.SetCollabPolicyResponse(collaboration=self._collab(name))

        return await self._change(work)

    @_rpc
    async def JoinCollab(
        self, request: admin_pb2.JoinCollabRequest, context: Any
    ) -> admin_pb2.JoinCollabResponse:
        def work() -> admin_pb2.JoinCollabResponse:
            name = self.s.hub.join(self._admin(context), request.collaboration, request.member)
            return admin_pb2.JoinCollabResponse(collaboration=self._collab(name))

        return await self._change(work)

    @_rpc
    async def LeaveCollab(
        self, request: admin_pb2.LeaveCollabRequest, context: Any
    ) -> admin_pb2.LeaveCollabResponse:
        def work() -> admin_pb2.LeaveCollabResponse:
            name = self.s.hub.leave(self._admin(context), request.collaboration, request.member)
            return admin_pb2.LeaveCollabResponse(collaboration=self._collab(name))

        return await self._change(work)

    @_rpc
    async def RotateCollabKey(
        self, request: admin_pb2.RotateCollabKeyRequest, context: Any
    ) -> admin_pb2.RotateCollabKeyResponse:
        def work() -> admin_pb2.RotateCollabKeyResponse:
            self.s.hub.rotate_collab_key(self._admin(context), request.name)
            return admin_pb2.RotateCollabKeyResponse(collaboration=self._collab(request.name))

        return await self._change(work)

    @_rpc
    async def Audit(self, request: admin_pb2.AuditRequest, context: Any) -> admin_pb2.AuditResponse:
        def work() -> admin_pb2.AuditResponse:
            self._admin(context)
            before = _page_position("Audit", request.page_token, _AUDIT_POSITION)
            since = _since(request.since, "Audit: since") if request.HasField("since") else ""
            size = _page_size(request.page_size)
            rows = self.s.hub.audit_log(
                request.member, since, size + 1, None if before is None else int(before)
            )
            page = rows[:size]
            more = len(rows) > size
            return admin_pb2.AuditResponse(
                entries=[
                    admin_pb2.AuditEntry(
                        sequence=int(r[0]),
                        at=_timestamp(str(r[1])),
                        actor=str(r[2]),
                        action=str(r[3]),
                        target=str(r[4]),
                        detail=_audit_detail(str(r[5]), int(r[0])),
                    )
                    for r in page
                ],
                next_page_token=_page_token("Audit", str(page[-1][0])) if more else "",
            )

        return await self.s.run(work)

    @_rpc
    async def AddPeer(
        self, request: admin_pb2.AddPeerRequest, context: Any
    ) -> admin_pb2.AddPeerResponse:
        peers = self.s.hub.peers

        def check() -> PendingPeer:
            return peers.check_add(
                self._admin(context),
                request.name,
                request.enrollment,
                [f"{m.remote}={m.local}" for m in request.collaborations],
                _wire_name(
                    PEER_DIRECTION, request.direction, f"peering {request.name!r}: direction"
                ),
                request.max_hops,
                request.tlp_ceiling,
                request.signature,
                request.address,
                request.dial_in,
            )

        pending = await self.s.run(check)
        try:
            # the network call to the peer, off the writer thread: publishes go on meanwhile
            await asyncio.to_thread(peers.enroll, pending)
            done = await self._change(lambda: peers.commit_add(pending))
        except BaseException:
            await self.s.run(lambda: peers.discard(pending))
            raise
        await self._relays_changed()
        return admin_pb2.AddPeerResponse(peering=peering_message(done))

    async def _relays_changed(self) -> None:
        """Start or stop relays after a peering changed (a hub serving without relays, as
        in tests of the admin service alone, has none)."""
        if self.s.relays is not None:
            await self.s.relays.refresh()

    def _relay(self, name: str) -> admin_pb2.RelayState | None:
        """``name``'s relay as it runs, with its counts as stored (writer thread)."""
        relays = self.s.relays
        if relays is None or not relays.known(name):
            return None
        return relay_message(relays.state(name), self.s.hub.store.relay_counts(name))

    @_rpc
    async def ListPeers(
        self, request: admin_pb2.ListPeersRequest, context: Any
    ) -> admin_pb2.ListPeersResponse:
        def work() -> admin_pb2.ListPeersResponse:
            self._admin(context)
            peerings = self.s.hub.peers.peers()
            relays = [r for r in map(self._relay, (p.name for p in peerings)) if r is not None]
            return admin_pb2.ListPeersResponse(
                peerings=[peering_message(p) for p in peerings], relays=relays
            )

        return await self.s.run(work)

    @_rpc
    async def ShowPeer(
        self, request: admin_pb2.ShowPeerRequest, context: Any
    ) -> admin_pb2.ShowPeerResponse:
        def work() -> admin_pb2.ShowPeerResponse:
            self._admin(context)
            return admin_pb2.ShowPeerResponse(
                peering=peering_message(self.s.hub.peers.peer(request.name)),
                relay=self._relay(request.name),
            )

        return await self.s.run(work)

    @_rpc
    async def SetPeerStatus(
        self, request: admin_pb2.SetPeerStatusRequest, context: Any
    ) -> admin_pb2.SetPeerStatusResponse:
        def work() -> admin_pb2.SetPeerStatusResponse:
            actor = self._admin(context)
            peers = self.s.hub.peers
            status = _wire_name(PEER_STATUS, request.status, f"peering {request.name!r}: status")
            change = {"active": peers.resume_peer, "suspended": peers.suspend_peer,
                      "removed": peers.remove_peer}[status]  # fmt: skip
            return admin_pb2.SetPeerStatusResponse(
                peering=peering_message(change(actor, request.name))
            )

        relays = self.s.relays
        stopping = relays if request.status != PEER_STATUS.values["active"] else None
        held = stopping is not None
        if stopping is not None:  # before any await: no other call's refresh restarts it
            stopping.hold(request.name)
        try:
            if stopping is not None:
                await self.s.run(lambda: self._admin(context))  # only an admin stops a relay
                await stopping.stop(request.name)
            done = await self._change(work)
            if relays is not None and stopping is None:  # resumed: the operator's word
                relays.acknowledge(request.name)
            return done
        finally:
            if relays is not None:
                await relays.refresh(release=request.name if held else None)
