"""Who may make a collaboration's key epochs, as the verified log shows it.

A member takes an epoch only from a steward the admin designated: the ``collab.steward``
leaf carries the admin's signature (``_grant.designate_steward``), which a member whose
credential pins the admin key checks, so a hub cannot make a steward of its own; a joiner
reads the designations from its own ``collab.join`` leaf (it sees no leaf of the
collaboration from before it joined).  A steward that leaves is no longer one.

Each ``collab.epoch`` leaf is judged when it is read, in log order: a first leaf from a
steward not designated at that point gives the epoch a flaw (its wraps are refused), and
each leaf whose steward is designated adds its sequence to those at which the wrap's
signing key must have been valid (``_steward.unwrap_all``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from sighub.client._grant import KeyChainError, check_designation
from sighub.client._logcheck import AlarmKind, LogAlarm

__all__ = ["LoggedEpoch", "StewardLog"]


@dataclass(frozen=True, slots=True)
class LoggedEpoch:
    """A steward's key epoch as its leaves show it: the commitment and steward of its first
    leaf, why its wraps are refused ("" for none), and the sequences of its leaves whose
    steward was designated then."""

    commitment: str
    steward: str
    flaw: str = ""
    seqs: tuple[int, ...] = ()

    def row(self, collab: str, epoch: int) -> tuple[Any, ...]:
        seqs = ",".join(str(s) for s in self.seqs)
        return (collab, epoch, self.commitment, self.steward, self.flaw, seqs)

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> LoggedEpoch:
        seqs = tuple(int(s) for s in str(row[3]).split(",") if s)
        return cls(str(row[0]), str(row[1]), str(row[2]), seqs)


def _forged(detail: str, seq: int, leaf: Mapping[str, Any]) -> LogAlarm:
    return LogAlarm(
        AlarmKind.FORGED_KEY, f"sequence {seq}: {detail}", {"sequence": seq, "leaf": dict(leaf)}
    )


class StewardLog:
    """The designated stewards and the stewards' epochs up to some sequence; ``apply``
    each collaboration leaf in log order, ``changed_*`` lists what to store."""

    def __init__(
        self,
        origin: str,
        admin_public: bytes | None,
        stewards: Mapping[str, set[str]] | None = None,
        epochs: Mapping[tuple[str, int], LoggedEpoch] | None = None,
    ) -> None:
        self.origin, self.admin_public = origin, admin_public
        self.stewards: dict[str, set[str]] = {c: set(m) for c, m in (stewards or {}).items()}
        self.epochs: dict[tuple[str, int], LoggedEpoch] = dict(epochs or {})
        self._changed_collabs: set[str] = set()
        self._changed_epochs: set[tuple[str, int]] = set()

    def apply(self, seq: int, leaf: Mapping[str, Any]) -> None:
        kind, collab = leaf.get("type"), str(leaf.get("collab"))
        if kind == "collab.steward":
            self._designate(seq, leaf, collab, str(leaf.get("member")), leaf.get("signature"))
        elif kind == "collab.join" and isinstance(leaf.get("stewards"), list):
            self._joined(seq, leaf, collab)
        elif kind == "collab.leave":
            self._set(collab, self.stewards.get(collab, set()) - {str(leaf.get("member"))})
        elif kind == "collab.epoch":
            self._epoch(seq, leaf, collab)

    def _check(self, seq: int, leaf: Mapping[str, Any], collab: str, member: str, sig: Any) -> None:
        """Refuse a designation the admin did not sign (only where the admin key is
        pinned: a member enrolled before key chains takes the log's word)."""
        if self.admin_public is None:
            return
        try:
            raw = base64.b64decode(str(sig), validate=True)
            check_designation(self.admin_public, self.origin, collab, member, raw)
        except (binascii.Error, ValueError, KeyChainError) as exc:
            raise _forged(
                f"steward designation of {member!r} for {collab!r}: {exc}", seq, leaf
            ) from None

    def _designate(
        self, seq: int, leaf: Mapping[str, Any], collab: str, member: str, sig: Any
    ) -> None:
        self._check(seq, leaf, collab, member, sig)
        self._set(collab, self.stewards.get(collab, set()) | {member})

    def _joined(self, seq: int, leaf: Mapping[str, Any], collab: str) -> None:
        """A join lists the designated stewards as of then: the whole set."""
        names, sigs = leaf.get("stewards"), leaf.get("steward_signatures")
        if not isinstance(names, list) or not isinstance(sigs, list) or len(names) != len(sigs):
            raise _forged("collab.join: stewards and steward_signatures differ in length", seq,
                          leaf)  # fmt: skip
        for name, sig in zip(names, sigs, strict=True):
            self._check(seq, leaf, collab, str(name), sig)
        self._set(collab, {str(n) for n in names})

    def _set(self, collab: str, members: set[str]) -> None:
        if members != self.stewards.get(collab, set()):
            self.stewards[collab] = members
            self._changed_collabs.add(collab)

    def _epoch(self, seq: int, leaf: Mapping[str, Any], collab: str) -> None:
        steward, epoch = leaf.get("steward"), leaf.get("epoch")
        if not isinstance(steward, str) or type(epoch) is not int:
            return  # a hub-made epoch: no steward, no wraps
        key = (collab, epoch)
        designated = steward in self.stewards.get(collab, set())
        old = self.epochs.get(key)
        if old is None:
            flaw = (
                ""
                if designated
                else f"its steward {steward!r} has no admin designation for {collab!r} in the"
                f" log at sequence {seq}"
            )
            self.epochs[key] = LoggedEpoch(
                str(leaf.get("commitment")), steward, flaw, (seq,) if designated else ()
            )
        elif designated and steward == old.steward:
            self.epochs[key] = replace(old, seqs=(*old.seqs, seq))
        else:
            return
        self._changed_epochs.add(key)

    def changed_stewards(self) -> list[tuple[str, set[str]]]:
        return [(c, self.stewards.get(c, set())) for c in sorted(self._changed_collabs)]

    def changed_epochs(self) -> list[tuple[Any, ...]]:
        return [self.epochs[k].row(*k) for k in sorted(self._changed_epochs)]

    def saved(self) -> None:
        self._changed_collabs.clear()
        self._changed_epochs.clear()
