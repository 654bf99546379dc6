"""Who may make a collaboration's key epochs, and who is in it, as the verified log shows.

A member takes an epoch only from a steward the admin designated: the ``collab.steward``
leaf carries the admin's designation (a nonce and a signature, ``_grant``), which a
member whose credential pins the admin key checks, so a hub cannot make a steward of its
own.  A steward that leaves is no longer one, and its designation is remembered as ended:
the same bytes logged again (a replay) are a forged-key alarm.  A joiner reads the
designations from its own ``collab.join`` leaf (it saw no leaf of the collaboration from
before it joined); a join only ever adds stewards, so a join leaf that omits one does not
drop it for members that saw it designated.

Each ``collab.epoch`` leaf is judged when it is read, in log order: a first leaf from a
steward not designated at that point gives the epoch a flaw (its wraps are refused), and
each leaf whose steward is designated adds the steward's signing keys valid at that point
to those a wrap of the epoch may be signed with (``_steward.unwrap_all``).

The members (joins and leaves) are kept too, so that a steward wraps a key only to members
its own log shows, never to whoever the hub names; ``complete`` says the log was read
from the collaboration's ``collab.add`` on, so that every member is known.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from sighub.client._grant import KeyChainError, check_designation
from sighub.client._keyring import forged

__all__ = ["CollabState", "LoggedEpoch", "StewardLog"]


@dataclass(frozen=True, slots=True)
class LoggedEpoch:
    """A steward's key epoch as its leaves show it: the commitment and steward of its first
    leaf, why its wraps are refused ("" for none), and the steward's signing keys valid at
    one of its leaves whose steward was designated then."""

    commitment: str
    steward: str
    flaw: str = ""
    keys: frozenset[str] = frozenset()

    def row(self) -> tuple[str, str, str, str]:
        return (self.commitment, self.steward, self.flaw, ",".join(sorted(self.keys)))

    @classmethod
    def from_row(cls, row: Iterable[Any]) -> LoggedEpoch:
        commitment, steward, flaw, keys = (str(x) for x in row)
        return cls(commitment, steward, flaw, frozenset(k for k in keys.split(",") if k))


@dataclass(slots=True)
class CollabState:
    """One collaboration as the log shows it: stewards -> their designation (base64),
    designations that ended, members, and whether the log was read from its start."""

    stewards: dict[str, str] = field(default_factory=dict)
    ended: set[str] = field(default_factory=set)
    members: set[str] = field(default_factory=set)
    complete: bool = False

    def to_json(self) -> str:
        return json.dumps(
            {"stewards": self.stewards, "ended": sorted(self.ended),
             "members": sorted(self.members), "complete": self.complete},
            sort_keys=True,
        )  # fmt: skip

    @classmethod
    def from_json(cls, text: str) -> CollabState:
        doc = json.loads(text)
        return cls(dict(doc["stewards"]), set(doc["ended"]), set(doc["members"]),
                   bool(doc["complete"]))  # fmt: skip


# The signing keys of a member valid at the leaf being read (from the key ring).
KeysOf = Callable[[str], Iterable[str]]


class StewardLog:
    """The collaborations' stewards, members and epochs up to some sequence; ``apply``
    each collaboration leaf in log order, ``changed_*`` lists what to store."""

    def __init__(
        self,
        origin: str,
        admin_public: bytes | None,
        collabs: Mapping[str, CollabState] | None = None,
        epochs: Mapping[tuple[str, int], LoggedEpoch] | None = None,
    ) -> None:
        self.origin, self.admin_public = origin, admin_public
        self.collabs: dict[str, CollabState] = dict(collabs or {})
        self.epochs: dict[tuple[str, int], LoggedEpoch] = dict(epochs or {})
        self._changed_collabs: set[str] = set()
        self._changed_epochs: set[tuple[str, int]] = set()
        self._checked: set[tuple[str, str, str]] = set()  # designations verified already

    def stewards(self, collab: str) -> set[str]:
        state = self.collabs.get(collab)
        return set(state.stewards) if state is not None else set()

    def _state(self, collab: str) -> CollabState:
        self._changed_collabs.add(collab)
        return self.collabs.setdefault(collab, CollabState())

    def apply(self, seq: int, leaf: Mapping[str, Any], keys_of: KeysOf) -> None:
        kind, collab = leaf.get("type"), str(leaf.get("collab"))
        member = str(leaf.get("member"))
        if kind == "collab.add":
            self.collabs[collab] = CollabState(complete=True)
            self._changed_collabs.add(collab)
        elif kind == "collab.steward":
            self._designate(seq, leaf, collab, member, leaf.get("signature"))
        elif kind == "collab.join":
            self._joined(seq, leaf, collab, member)
        elif kind == "collab.leave":
            state = self._state(collab)
            state.members.discard(member)
            ended = state.stewards.pop(member, None)
            if ended:
                state.ended.add(ended)
        elif kind == "collab.epoch":
            self._epoch(seq, leaf, collab, keys_of)

    def _check(self, seq: int, leaf: Mapping[str, Any], collab: str, member: str, sig: Any) -> str:
        """The designation, checked: never one that ended (a replay), and signed by the
        admin where the admin key is pinned (a member enrolled before key chains takes the
        log's word)."""
        text = str(sig)
        if text in self.collabs.get(collab, CollabState()).ended and text:
            raise forged(
                f"steward designation of {member!r} for {collab!r} ended when it left;"
                " logged again, it is a replay",
                seq,
                leaf,
            )
        if self.admin_public is None or (collab, member, text) in self._checked:
            return text
        try:
            raw = base64.b64decode(text, validate=True)
            check_designation(self.admin_public, self.origin, collab, member, raw)
        except (binascii.Error, ValueError, KeyChainError) as exc:
            raise forged(
                f"steward designation of {member!r} for {collab!r}: {exc}", seq, leaf
            ) from None
        self._checked.add((collab, member, text))
        return text

    def _designate(
        self, seq: int, leaf: Mapping[str, Any], collab: str, member: str, sig: Any
    ) -> None:
        text = self._check(seq, leaf, collab, member, sig)
        self._state(collab).stewards[member] = text

    def _joined(self, seq: int, leaf: Mapping[str, Any], collab: str, member: str) -> None:
        """A join adds its member, and the stewards it lists (never removes one)."""
        names, sigs = leaf.get("stewards", []), leaf.get("steward_signatures", [])
        if not isinstance(names, list) or not isinstance(sigs, list) or len(names) != len(sigs):
            raise forged("collab.join: stewards and steward_signatures differ in length", seq,
                          leaf)  # fmt: skip
        pairs = zip(names, sigs, strict=True)
        checked = {str(n): self._check(seq, leaf, collab, str(n), s) for n, s in pairs}
        state = self._state(collab)
        state.members.add(member)
        for name, text in checked.items():
            state.stewards.setdefault(name, text)

    def _epoch(self, seq: int, leaf: Mapping[str, Any], collab: str, keys_of: KeysOf) -> None:
        steward, epoch = leaf.get("steward"), leaf.get("epoch")
        if not isinstance(steward, str) or type(epoch) is not int:
            return  # a hub-made epoch: no steward, no wraps
        key = (collab, epoch)
        designated = steward in self.stewards(collab)
        keys = frozenset(keys_of(steward)) if designated else frozenset()
        old = self.epochs.get(key)
        if old is None:
            flaw = (
                ""
                if designated
                else f"its steward {steward!r} has no admin designation for {collab!r} in the"
                f" log at sequence {seq}"
            )
            self.epochs[key] = LoggedEpoch(str(leaf.get("commitment")), steward, flaw, keys)
        elif designated and steward == old.steward and not keys <= old.keys:
            self.epochs[key] = replace(old, keys=old.keys | keys)
        else:
            return
        self._changed_epochs.add(key)

    def changed_collabs(self) -> list[tuple[str, str]]:
        return [(c, self.collabs[c].to_json()) for c in sorted(self._changed_collabs)]

    def changed_epochs(self) -> list[tuple[Any, ...]]:
        return [(*k, *self.epochs[k].row()) for k in sorted(self._changed_epochs)]

    def saved(self) -> None:
        self._changed_collabs.clear()
        self._changed_epochs.clear()
