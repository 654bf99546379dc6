"""A peering record: this hub's policy for another hub (docs/federation.md, "The peering
record").  The admin signs its statement (``_grant.peering_statement``) on the admin's
machine; the hub checks the signature against the admin key it pins and logs the record
as a ``peer.add`` leaf, so clients verify it as they verify enrollment grants."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sighub.client._grant import peering_statement
from sighub.client._model import TLP_CEILINGS, Tlp, tlp_crosses
from sighub.client._proto import admin_pb2
from sighub.client._rpc import WireEnum
from sighub.hub._errors import HubError

__all__ = [
    "CEILINGS",
    "MAX_HOPS",
    "MAX_MAPPINGS",
    "ORIGIN_RE",
    "PEER_DIRECTION",
    "PEER_STATUS",
    "PEER_STATUSES",
    "Direction",
    "Peering",
    "parse_mapping",
]

NAME_RE: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")  # as member and collaboration names
# A log origin as _store.log_origin writes it: no space, "+" or control character.
ORIGIN_RE: Final = re.compile(r"sighub/[^\s+\x00-\x1f\x7f]{1,200}")
_ADDRESS_RE: Final = re.compile(r"[^\s\x00-\x1f\x7f]{1,255}:[0-9]{1,5}")
MAX_HOPS: Final = 16
# 16 mappings of two 63-character names keep a peer.add leaf near 2.5 KB, well under
# _leaves.MAX_LEAF_BYTES.
MAX_MAPPINGS: Final = 16
PEER_STATUSES: Final = ("active", "suspended", "removed")
CEILINGS: Final = tuple(t.value for t in TLP_CEILINGS)
# The wire enums by readable name ("pull", "active"), for the service and the CLI alike.
PEER_DIRECTION: Final = WireEnum(admin_pb2.PeerDirection)
PEER_STATUS: Final = WireEnum(admin_pb2.PeerStatus)


class Direction(StrEnum):
    """Which way envelopes cross: ``pull`` (this hub follows the peer), ``push`` (this hub
    sends to it), ``both``."""

    PULL = "pull"
    PUSH = "push"
    BOTH = "both"


def _invalid(peer: str, field: str, received: object, expected: str) -> HubError:
    shown = repr(received)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return HubError.invalid(f"peering {peer!r}: {field} is {shown}; expected {expected}")


def parse_mapping(peer: str, text: str) -> tuple[str, str]:
    """One ``remote=local`` mapping; INVALID_ARGUMENT for anything else."""
    remote, sep, local = text.partition("=")
    if not sep or not NAME_RE.fullmatch(remote) or not NAME_RE.fullmatch(local):
        raise _invalid(
            peer, "a collaboration mapping", text, "REMOTE=LOCAL, two names of [a-z0-9-]"
        )
    return remote, local


@dataclass(frozen=True, slots=True)
class Peering:
    """A peering with the hub of log ``origin``, named ``name`` here.  ``collabs`` maps
    the peer's collaboration names to this hub's, sorted: a collaboration not listed never
    crosses.  ``since`` is the log sequence of its ``peer.add`` leaf (0 before it is
    logged).  ``dial_in``: the peer dials this hub (``_tunnel``) instead of this hub
    dialing it; only for direction pull, and not part of the signed record (it says how to
    connect, not what crosses)."""

    name: str
    origin: str
    log_key: bytes
    address: str
    collabs: tuple[tuple[str, str], ...]
    direction: Direction
    max_hops: int
    tlp_ceiling: Tlp
    status: str
    signature: bytes
    since: int
    dial_in: bool = False

    def __post_init__(self) -> None:
        name = self.name
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            raise HubError.invalid(
                f"peering name {name!r}: expected [a-z0-9-], 1-63 chars, starting with a"
                " letter or digit"
            )
        if not ORIGIN_RE.fullmatch(self.origin):
            raise _invalid(name, "origin", self.origin, "a log origin 'sighub/<hub name>'")
        if not isinstance(self.log_key, bytes) or len(self.log_key) != 32:
            raise _invalid(name, "log_key", self.log_key, "a 32-byte Ed25519 public key")
        try:
            Ed25519PublicKey.from_public_bytes(self.log_key)
        except ValueError:
            raise _invalid(name, "log_key", self.log_key, "an Ed25519 public key") from None
        if not _ADDRESS_RE.fullmatch(self.address):
            raise _invalid(name, "address", self.address, "HOST:PORT")
        self._check_collabs()
        if not isinstance(self.direction, Direction):
            raise _invalid(name, "direction", self.direction, f"one of {list(Direction)}")
        if type(self.max_hops) is not int or not 1 <= self.max_hops <= MAX_HOPS:
            raise _invalid(name, "max_hops", self.max_hops, f"an integer 1-{MAX_HOPS}")
        if not isinstance(self.tlp_ceiling, Tlp) or self.tlp_ceiling not in TLP_CEILINGS:
            raise _invalid(
                name, "tlp_ceiling", self.tlp_ceiling,
                f"one of {list(CEILINGS)} (red never leaves its hub)",
            )  # fmt: skip
        if self.status not in PEER_STATUSES:
            raise _invalid(name, "status", self.status, f"one of {list(PEER_STATUSES)}")
        if not isinstance(self.signature, bytes) or len(self.signature) != 64:
            raise _invalid(name, "signature", self.signature, "a 64-byte Ed25519 signature")
        if type(self.since) is not int or self.since < 0:
            raise _invalid(name, "since", self.since, "a log sequence (0 or more)")
        if self.dial_in and self.direction is not Direction.PULL:
            raise HubError.precondition(
                f"peering {name!r}: dial_in with direction {self.direction.value!r}; a peer"
                " that dials in is followed through its tunnel, so only direction pull (the"
                " peer's own record says push)"
            )

    def _check_collabs(self) -> None:
        pairs = self.collabs
        if not isinstance(pairs, tuple) or not 1 <= len(pairs) <= MAX_MAPPINGS:
            raise _invalid(self.name, "collabs", pairs, f"1-{MAX_MAPPINGS} remote=local mappings")
        for pair in pairs:
            if (
                not isinstance(pair, tuple)
                or len(pair) != 2
                or not all(isinstance(x, str) and NAME_RE.fullmatch(x) for x in pair)
            ):
                raise _invalid(self.name, "a collaboration mapping", pair, "(remote, local) names")
        if list(pairs) != sorted(pairs):
            raise _invalid(self.name, "collabs", pairs, "mappings sorted by remote name")
        for side, index in (("remote", 0), ("local", 1)):
            names = [p[index] for p in pairs]
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise _invalid(
                    self.name, f"collabs ({side} names)", twice,
                    f"each {side} collaboration mapped once",
                )  # fmt: skip

    def statement(self) -> bytes:
        """The canonical bytes the admin signs (``_grant.peering_statement``)."""
        return peering_statement(
            self.name, self.origin, self.log_key, self.address, self.collabs,
            self.direction.value, self.max_hops, self.tlp_ceiling.value,
        )  # fmt: skip

    def local_collab(self, remote: str) -> str | None:
        """This hub's collaboration for the peer's ``remote`` one; None: it does not cross."""
        for theirs, ours in self.collabs:
            if theirs == remote:
                return ours
        return None

    def tlp_allows(self, tlp: Tlp) -> bool:
        """Whether an indicator of ``tlp`` may cross (``_model.tlp_crosses``)."""
        return tlp_crosses(tlp, self.tlp_ceiling)
