"""Withheld envelopes, caught by their numbers.

Each envelope's log leaf holds its number within its collaboration: 1, 2, 3, ... with no
gap (``_leaves.envelope_leaf``), and a member's ``collab.join`` leaf holds how many the
collaboration had at the join.  A member sees the leaves of collaborations it is not in
as bare hashes, so a hub could pass one envelope of the member's own collaboration off as
such a hash.  The numbers close that: the next envelope of that collaboration the member
receives (or its own join leaf) is numbered past the withheld ones, and the gap is an
alarm.  A hub cannot renumber to hide it: the numbers are in the leaves, which every
member of the collaboration receives and checks the same way.

What the member knows per collaboration (``last``): the number of the last envelope it
received, 0 after an unnumbered one (logged before numbering: the next numbered one is 1),
or nothing (no reference yet: the first one received is taken as it comes, kept in
``first``, and checked at the member's join leaf).  Its own ``collab.leave`` forgets the
collaboration; its own ``collab.join`` sets the count.  An envelope withheld after a
collaboration's last is seen only when the next one arrives.

History: a member that joins a collaboration after its cursor passed some of the
collaboration's envelopes never receives them from Sync.  Its join leaf says how many
there were; the numbers below the first one it received (all of them, if it received
none) are recorded in ``history`` as (join sequence, up to number, fetched so far), which
the daemon fetches with ``GetHistory``, each with an inclusion proof.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Final

from sighub.client._leaves import LeafError, parse_leaf
from sighub.client._logcheck import AlarmKind, BatchChange, BatchLeaf, LogAlarm

__all__ = ["MAX_COLLABS", "SHOWN", "EnvelopeNumbers"]

SHOWN: Final = 20  # missing numbers named in an alarm; the count says the rest
# Collaborations numbered per member: far above any member's, and a bound on what a hub
# naming made-up collaborations in its changes can make this state (and local.db) hold.
MAX_COLLABS: Final = 4096


class EnvelopeNumbers:
    """The numbering state per collaboration (stored with the log state, ``to_json``),
    checked against each batch."""

    def __init__(self, member: str, state: dict[str, Any] | None = None) -> None:
        self.member = member
        state = state or {}
        self.last: dict[str, int] = {str(k): int(v) for k, v in state.get("last", {}).items()}
        self.first: dict[str, int] = {str(k): int(v) for k, v in state.get("first", {}).items()}
        self.history: dict[str, tuple[int, int, int]] = {
            str(k): (int(v[0]), int(v[1]), int(v[2])) for k, v in state.get("history", {}).items()
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "last": self.last,
            "first": self.first,
            "history": {k: list(v) for k, v in self.history.items()},
        }

    def fetched(self, collab: str, number: int) -> None:
        """History of ``collab`` fetched up to ``number``; done when it reaches the end."""
        before, upto, _ = self.history[collab]
        if number >= upto:
            del self.history[collab]
        else:
            self.history[collab] = (before, upto, number)

    def check(self, changes: Sequence[BatchChange], leaves: Sequence[BatchLeaf]) -> None:
        """Take one verified batch in sequence order; raise ``LogAlarm`` (withheld) at a
        gap, a repeat, or an unnumbered envelope after numbered ones."""
        events = sorted(self._own(leaves), key=lambda e: e[0])
        at = 0
        for c in changes:
            while at < len(events) and events[at][0] < c.sequence:
                self._membership(*events[at])
                at += 1
            self._take(c)
        for event in events[at:]:
            self._membership(*event)

    def _own(self, leaves: Sequence[BatchLeaf]) -> Iterator[tuple[int, dict[str, Any]]]:
        """This member's own join and leave leaves (full: it is in the collaboration)."""
        for x in leaves:
            if x.leaf is None or b'"collab.' not in x.leaf:
                continue
            try:
                doc = parse_leaf(x.leaf)
            except LeafError:
                continue  # reported as malformed by the directory watch
            if doc["type"] in ("collab.join", "collab.leave") and doc.get("member") == self.member:
                yield x.sequence, doc

    def _membership(self, seq: int, doc: dict[str, Any]) -> None:
        collab, n = str(doc.get("collab")), doc.get("n")
        first = self.first.pop(collab, None)
        if doc["type"] == "collab.leave" or type(n) is not int:
            self.last.pop(collab, None)  # out of it, or a join from before numbering
            return
        last = self.last.get(collab)
        if last is not None and last != n:
            raise _withheld(seq, collab, last, n, "this member's join, which counts")
        missed = n if last is None else (first - 1 if first else 0)
        if missed > 0:  # envelopes before this member's cursor: fetched as history
            self.history[collab] = (seq, missed, 0)
        self.last[collab] = n

    def _take(self, c: BatchChange) -> None:
        last = self.last.get(c.collab)
        if last is None and len(self.last) >= MAX_COLLABS:
            raise LogAlarm(
                AlarmKind.MALFORMED,
                f"sequence {c.sequence}: envelopes of more than {MAX_COLLABS}"
                " collaborations delivered to one member",
                {"sequence": c.sequence, "collab": c.collab[:200]},
            )
        if c.n == 0:
            if last:
                raise LogAlarm(
                    AlarmKind.WITHHELD,
                    f"sequence {c.sequence}: an unnumbered envelope of {c.collab!r} after"
                    f" number {last}: the hub serves envelopes outside the numbering",
                    {"sequence": c.sequence, "collab": c.collab, "last": last, "received": 0},
                )
            self.last[c.collab] = 0
            return
        if last is not None and c.n != last + 1:
            raise _withheld(c.sequence, c.collab, last, c.n - 1, f"envelope number {c.n}")
        if last is None:
            self.first[c.collab] = c.n  # taken as it came: checked at the join
        self.last[c.collab] = c.n


def _withheld(seq: int, collab: str, last: int, upto: int, what: str) -> LogAlarm:
    """The alarm for ``what`` (at ``seq``), which says ``collab`` had ``upto`` envelopes
    where this member received up to number ``last``."""
    evidence: dict[str, object] = {"sequence": seq, "collab": collab, "last": last}
    if upto > last:
        evidence["missing"] = list(range(last + 1, min(upto, last + SHOWN) + 1))
        detail = f"{upto - last} envelope(s) numbered {last + 1}..{upto} never delivered"
    else:
        evidence["received"] = upto + 1
        detail = "a number that repeats or goes back"
    return LogAlarm(
        AlarmKind.WITHHELD,
        f"sequence {seq}: {what} of {collab!r} after number {last}: {detail}; the hub"
        " withheld envelopes from this member (served as hashes or left out)",
        evidence,
    )
