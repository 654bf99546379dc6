"""Peerings on this hub (step 1 of federation, docs/federation.md): the admin-signed
record, this hub's enrollment into the peer as a member with role ``peer``, and the
``peer.add`` / ``peer.status`` leaves.  Relaying is not here.

Adding a peering has three steps, so that the network call to the peer never holds the
hub's writer thread: ``check_add`` (every refusal, on the writer), ``enroll`` (this hub
enrolls at the peer with the enrollment file the peer's admin issued; its credential goes
to ``DATA/peers/NAME``, 0700) and ``commit_add`` (the record and its leaf, on the writer,
after the same checks again).  A failure at any step leaves nothing behind: no row, no
leaf, no directory.

A peering whose peer dials in (``dial_in``, ``_tunnel``) cannot enroll now: this hub cannot
reach the peer.  Its enrollment file is kept (0600) in ``DATA/peers/NAME`` instead, and the
relay enrolls through the tunnel when the peer first dials in (``_relay``), then deletes
it.  Such a peering needs this hub's member of the same name with role ``peer``: the peer
hub's credential here, which opens the tunnel."""

from __future__ import annotations

import base64
import binascii
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from sighub.client import _json
from sighub.client._enroll import EnrollmentFile, enroll
from sighub.client._errors import JsonBudgetError, SighubError
from sighub.client._grant import KeyChainError, check_peering, decode_public
from sighub.client._leaves import peer_add, peer_status
from sighub.client._model import Tlp
from sighub.hub._errors import HubError
from sighub.hub._peering import CEILINGS, Direction, Peering, parse_mapping

if TYPE_CHECKING:
    from sighub.hub._hub import Hub

__all__ = ["PEERS_DIR", "PeerBook", "PendingPeer"]

PEERS_DIR: Final = "peers"  # in the hub's data directory: one member credential per peer
ENROLLMENT_FILE: Final = "enrollment.json"  # a dial-in peering's, until it is spent
MAX_ENROLLMENT_BYTES: Final = 64 * 1024  # an enrollment file is about 5 KB


@dataclass(frozen=True, slots=True)
class PendingPeer:
    """A peering that passed every check, before this hub enrolled at the peer."""

    peering: Peering
    enrollment: bytes
    actor: str


class PeerBook:
    """The peerings of ``hub``: every method but ``enroll`` runs on the writer thread."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.folder = hub.store.path.parent / PEERS_DIR
        self._adding: set[str] = set()  # names between check_add and commit_add/discard
        self._lock = threading.Lock()

    # -- reading ----------------------------------------------------------------------
    def peer(self, name: str) -> Peering:
        p = self.hub.store.peering(name)
        if p is None:
            raise HubError.not_found(f"peering {name!r} does not exist")
        return p

    def peers(self) -> list[Peering]:
        return self.hub.store.peerings()

    def data(self, name: str) -> Path:
        """Where this hub's credential as a member of peer ``name`` lives."""
        return self.folder / name

    # -- adding -----------------------------------------------------------------------
    def add_peer(
        self,
        actor: str,
        name: str,
        enrollment: bytes,
        collabs: list[str],
        direction: str,
        max_hops: int,
        tlp_ceiling: str,
        signature: bytes,
        address: str = "",
        dial_in: bool = False,
    ) -> Peering:
        """All three steps in the calling thread (the service splits them)."""
        pending = self.check_add(
            actor, name, enrollment, collabs, direction, max_hops, tlp_ceiling, signature,
            address, dial_in,
        )  # fmt: skip
        try:
            self.enroll(pending)
            return self.commit_add(pending)
        except BaseException:
            self.discard(pending)
            raise

    def check_add(
        self,
        actor: str,
        name: str,
        enrollment: bytes,
        collabs: list[str],
        direction: str,
        max_hops: int,
        tlp_ceiling: str,
        signature: bytes,
        address: str = "",
        dial_in: bool = False,
    ) -> PendingPeer:
        """The peering as the admin signed it, or the refusal: INVALID_ARGUMENT for a field
        (a red ceiling, a bad map, max_hops out of range, an enrollment file that is not
        one), PERMISSION_DENIED for a signature that does not verify under the admin key
        this hub pins, FAILED_PRECONDITION for a peering with this hub itself or a file
        for a member without role ``peer``, ALREADY_EXISTS for a name or peer origin taken,
        NOT_FOUND for a local collaboration that does not exist.  With ``dial_in``:
        FAILED_PRECONDITION for a direction other than pull, or without an active member
        ``name`` with role ``peer`` (the peer's credential here, which dials in)."""
        ef = self._enrollment_file(name, enrollment)
        _check_roles(name, ef)
        p = Peering(
            name,
            ef.log_origin,
            self._log_key(name, ef),
            address or ef.hub,
            tuple(sorted(parse_mapping(name, m) for m in collabs)),
            _direction(name, direction),
            max_hops,
            _ceiling(name, tlp_ceiling),
            "active",
            signature,
            0,
            dial_in,
        )
        self._check_signature(p)
        if dial_in:
            self._check_dialer(name)
        self._check_new(p)
        with self._lock:
            if name in self._adding:
                raise HubError.exists(f"peering {name!r} is being added by another request")
            self._adding.add(name)
        return PendingPeer(p, enrollment, actor)

    def enroll(self, pending: PendingPeer) -> None:
        """Enroll this hub at the peer as the member the enrollment file names; its
        credential goes to ``DATA/peers/NAME`` (0700).  The file is written 0600 beside it
        for ``_enroll.enroll`` and deleted after.  FAILED_PRECONDITION when the peer
        refuses or cannot be reached (nothing is kept).  A dial-in peering only keeps the
        file (``ENROLLMENT_FILE``): the relay enrolls through the tunnel."""
        p = pending.peering
        self.folder.mkdir(mode=0o700, exist_ok=True)
        target = self.data(p.name)
        if target.exists():  # no row (check_add): a crash between enroll and commit left it
            shutil.rmtree(target)
        target.mkdir(mode=0o700)
        if p.dial_in:
            _write_private(target / ENROLLMENT_FILE, pending.enrollment)
            return
        temporary = self.folder / f".{p.name}.enroll.json"
        temporary.unlink(missing_ok=True)
        _write_private(temporary, pending.enrollment)
        try:
            enroll(temporary, target, address=p.address)
        except SighubError as exc:
            shutil.rmtree(target, ignore_errors=True)
            raise HubError.precondition(
                f"peering {p.name!r}: enrolling at {p.origin} ({p.address}) failed: {exc}"
            ) from None
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
        finally:
            temporary.unlink(missing_ok=True)

    def commit_add(self, pending: PendingPeer) -> Peering:
        """Store the record and log its ``peer.add`` leaf, checked again (another change
        may have come in while this hub enrolled)."""
        p = pending.peering
        self._check_new(p)
        store, now = self.hub.store, self.hub.now()
        with store.tx():
            seq = store.append_leaf(
                "peer.add",
                peer_add(
                    p.name, p.origin, p.log_key, p.address, p.collabs, p.direction.value,
                    p.max_hops, p.tlp_ceiling.value, p.signature,
                ),
            )  # fmt: skip
            stored = Peering(
                p.name, p.origin, p.log_key, p.address, p.collabs, p.direction, p.max_hops,
                p.tlp_ceiling, p.status, p.signature, seq, p.dial_in,
            )  # fmt: skip
            store.add_peering(stored, now)
            dial = {"dial_in": True} if p.dial_in else {}
            store.audit(now, pending.actor, "peer.add", p.name, origin=p.origin, **dial)
        with self._lock:
            self._adding.discard(p.name)
        return stored

    def discard(self, pending: PendingPeer) -> None:
        """Forget a pending peering that will not be stored, and its credential."""
        name = pending.peering.name
        if self.hub.store.peering(name) is None:
            shutil.rmtree(self.data(name), ignore_errors=True)
        with self._lock:
            self._adding.discard(name)

    # -- status -----------------------------------------------------------------------
    def suspend_peer(self, actor: str, name: str) -> Peering:
        return self._set_status(actor, name, "suspended", ("active",))

    def resume_peer(self, actor: str, name: str) -> Peering:
        return self._set_status(actor, name, "active", ("suspended",))

    def remove_peer(self, actor: str, name: str) -> Peering:
        """Remove for good: the record stays (its name stays taken), this hub's credential
        at the peer is deleted (the peer's admin removes the member on its side)."""
        done = self._set_status(actor, name, "removed", ("active", "suspended"))
        shutil.rmtree(self.data(name), ignore_errors=True)
        return done

    def _set_status(self, actor: str, name: str, status: str, allowed: tuple[str, ...]) -> Peering:
        p = self.peer(name)
        if p.status not in allowed:
            raise HubError.precondition(
                f"peering {name!r} is {p.status}; can be made {status} only when"
                f" {' or '.join(allowed)}"
            )
        store, now = self.hub.store, self.hub.now()
        with store.tx():
            store.set_peering_status(name, status)
            store.append_leaf("peer.status", peer_status(name, status))
            action = {"active": "resume", "suspended": "suspend", "removed": "remove"}[status]
            store.audit(now, actor, f"peer.{action}", name)
        return self.peer(name)

    # -- checks -----------------------------------------------------------------------
    def _check_dialer(self, name: str) -> None:
        """A dial-in peering's member: the peer's credential here, which opens the tunnel."""
        m = self.hub.store.member(name)  # pending is fine: the peer may enroll later
        if m is None or m.status not in ("active", "pending") or "peer" not in m.roles:
            found = (
                "no such member"
                if m is None
                else f"member {name!r} is {m.status} with roles {list(m.roles)}"
            )
            raise HubError.precondition(
                f"peering {name!r}: dial_in needs a member {name!r} with role peer (active or"
                " pending)"
                f" here (the peer's hub dials in with its credential); {found}: run `sighub"
                f" admin member add {name} --roles peer` and give the file to the peer's admin"
            )

    def _enrollment_file(self, name: str, raw: bytes) -> EnrollmentFile:
        if len(raw) > MAX_ENROLLMENT_BYTES:
            raise HubError.invalid(
                f"peering {name!r}: enrollment file of {len(raw)} bytes; expected at most"
                f" {MAX_ENROLLMENT_BYTES}"
            )
        try:
            ef = EnrollmentFile.parse(raw, f"peering {name!r}: enrollment file")
        except SighubError as exc:
            raise HubError.invalid(str(exc)) from None
        if not ef.log_origin or not ef.hub_public_key:
            raise HubError.invalid(
                f"peering {name!r}: the enrollment file names no log origin or log key; the"
                " peer's hub must have a transparency log (a file from `sighub admin member"
                " add` on a current hub)"
            )
        return ef

    @staticmethod
    def _log_key(name: str, ef: EnrollmentFile) -> bytes:
        try:
            return decode_public(ef.hub_public_key, f"peering {name!r}: the peer's log key")
        except KeyChainError as exc:
            raise HubError.invalid(str(exc)) from None

    def _check_signature(self, p: Peering) -> None:
        admin = self.hub.admin_key()
        if admin is None:
            raise HubError.precondition(
                f"peering {p.name!r}: this hub pins no admin key, so its clients could not"
                " verify a peering; a hub needs one to peer"
            )
        try:
            check_peering(admin, p.statement(), p.signature, p.name)
        except KeyChainError as exc:
            raise HubError.denied(
                f"{exc}: the admin signs the record as sent (peer, origin and log key from"
                " the enrollment file, address, map, direction, max hops, ceiling)"
            ) from None

    def _check_new(self, p: Peering) -> None:
        store = self.hub.store
        own_key = store.meta("hub_public_key") or ""
        if p.origin == self.hub.log_origin() or base64.b64encode(p.log_key).decode() == own_key:
            raise HubError.precondition(
                f"peering {p.name!r}: origin {p.origin!r} is this hub's own log; no peering"
                " with itself"
            )
        if store.peering(p.name) is not None:
            raise HubError.exists(f"peering {p.name!r} already exists")
        other = store.live_peering_by_origin(p.origin)
        if other is not None:
            raise HubError.exists(
                f"peering {p.name!r}: the hub of {p.origin!r} is already peered as {other!r}"
            )
        missing = [local for _, local in p.collabs if not store.collab_exists(local)]
        if missing:
            raise HubError.not_found(
                f"peering {p.name!r}: local collaborations {missing} do not exist; create"
                " them first (`sighub admin collab add`)"
            )


def _write_private(path: Path, data: bytes) -> None:
    """``data`` to a new file only this hub's user reads (an enrollment token is a secret)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _direction(name: str, text: str) -> Direction:
    try:
        return Direction(text)
    except ValueError:
        raise HubError.invalid(
            f"peering {name!r}: direction {text!r}; expected one of {[d.value for d in Direction]}"
        ) from None


def _ceiling(name: str, text: str) -> Tlp:
    if text not in CEILINGS:
        raise HubError.invalid(
            f"peering {name!r}: tlp_ceiling {text!r}; expected one of {list(CEILINGS)} (red"
            " never leaves its hub)"
        )
    return Tlp(text)


def _check_roles(name: str, ef: EnrollmentFile) -> None:
    """Refuse a file for a member without role ``peer``, when its grant says (a file
    without a grant cannot tell: the peer's hub refuses the relay's reads later)."""
    if not ef.grant:
        return
    try:
        raw = base64.b64decode(ef.grant, validate=True)
        doc = _json.loads(raw, _json.DOCUMENT, "enrollment grant")
    except (binascii.Error, ValueError, JsonBudgetError):
        raise HubError.invalid(
            f"peering {name!r}: the enrollment file's grant is not JSON"
        ) from None
    roles = doc.get("roles") if isinstance(doc, dict) else None
    if not isinstance(roles, list) or "peer" not in roles:
        raise HubError.precondition(
            f"peering {name!r}: the enrollment file is for member {ef.member!r} with roles"
            f" {roles}; a peering needs role peer (`sighub admin member add {ef.member}"
            " --roles peer` on the peer's hub)"
        )
