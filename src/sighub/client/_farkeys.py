"""Collaboration keys that span hubs (``docs/federation.md``, "As built: collaboration keys
across hubs"): one key per epoch, made by a steward on the collaboration's origin hub and held by
its members on every hub.

The steward wraps each epoch to the members of the other hubs too: their memberships and
encryption keys reach its hub's log as copies (``_farlog``), and it names each as
``member@origin`` (``_wraps.far_recipient``).  Its hub logs those wraps as ``collab.wrap``
leaves, which the relays copy, with the epoch leaf, to the members' hubs; a member opens a
wrap from its own verified log, checked as a member of the origin hub would check it: the
epoch leaf's steward designated there, the wrap signed under that steward's key as the
origin's copied directory holds it, the secret matching the commitment.  It keeps the
secret under its own hub's name for the collaboration (through its peerings' maps, and
those of the hubs between, as the copied peering records give them: any number of hops).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from sighub.client._farlog import FarLog
from sighub.client._hpke import EncryptionKey
from sighub.client._model import holds_keys
from sighub.client._steward import open_wrap
from sighub.client._wraps import Recipient, WrapError, far_recipient

__all__ = ["far_recipients", "far_unwrap"]

log = logging.getLogger("sighub.steward")


def far_recipients(far: FarLog, collab: str) -> dict[str, Recipient]:
    """The members of ``collab`` (this hub's name) on each hub its peerings map it to, any
    number of hops away (``FarLog.names_at``, through active peerings only: this hub
    refuses wraps across a suspended one), by ``member@origin``, with their current
    encryption keys as that hub's copied directory shows them; a relay (role peer only), a
    member without a usable key and one suspended there (as on this hub, it is wrapped the
    current epoch once resumed) are not recipients."""
    out: dict[str, Recipient] = {}
    for origin, remote in sorted(far.names_at(collab, active=True).items()):
        view, ring = far.stewards.get(origin), far.rings.get(origin)
        state = view.collabs.get(remote) if view is not None else None
        if state is None or ring is None:
            continue
        for member in sorted(state.members):
            if not holds_keys(far.roles.get((origin, member), ())):
                continue  # a relay of a peer hub: it never matches
            if far.statuses.get((origin, member), "active") != "active":
                continue
            logged = ring.encryption_key(member)
            if logged is not None:
                name = far_recipient(member, origin)
                out[name] = Recipient(name, *logged)
    return out


def far_unwrap(
    far: FarLog,
    member: str,
    keys: dict[str, EncryptionKey],
    have: Iterable[tuple[str, int]],
) -> tuple[list[tuple[str, int, bytes]], list[str]]:
    """(local collab, epoch, secret) of each wrap a steward of another hub made for
    ``member`` of this hub that this member does not hold yet and that checks; and why
    each refused one was refused.  A wrap whose collaboration no live peering maps, or
    whose epoch leaf or steward key is not copied yet, waits.  The collaboration's local
    name is found through the chain of peerings (``FarLog.local_name``)."""
    held = set(have)
    me = far_recipient(member, far.here)
    got: list[tuple[str, int, bytes]] = []
    refused: list[str] = []
    names: dict[tuple[str, str], str | None] = {}  # (origin, its name) -> the local one
    owners: dict[str, str | None] = {}  # local collab -> the hub its keys come from
    for (origin, remote, epoch, recipient), w in sorted(far.wraps.items()):
        if recipient != me:
            continue
        if (origin, remote) not in names:
            names[(origin, remote)] = far.local_name(remote, origin)
        local = names[(origin, remote)]
        if local is None or (local, epoch) in held:
            continue
        view, ring = far.stewards.get(origin), far.rings.get(origin)
        logged = view.epochs.get((remote, epoch)) if view is not None else None
        if logged is None or ring is None or ring.get(w.signing_key_id) is None:
            continue
        if local not in owners:
            owners[local] = far.key_origin(local)
        if origin != owners[local]:  # its epoch leaf is here: so is some hub's, first
            why = (
                f"{w.what}: {local!r} takes its keys from {owners[local]!r}, whose epoch"
                f" reached this hub first; a wrap from {origin!r} is refused"
            )
            log.error("wrap refused: %s", why)
            refused.append(why)
            continue
        try:
            secret = open_wrap(w, me, keys, ring, logged)
        except WrapError as exc:
            log.error("wrap from %s refused: %s", origin, exc)
            refused.append(f"{origin}: {exc}")
            continue
        got.append((local, epoch, secret))
        held.add((local, epoch))
    return got, refused
