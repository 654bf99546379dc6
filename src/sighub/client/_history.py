"""Checking a page of a collaboration's history (``SyncService.GetHistory``) before any
of it is applied: the envelopes must be the collaboration's next numbers, logged before
the member's join, and each must be in the tree of a checkpoint the member verified.
Anything else is the hub lying (``LogAlarm``)."""

from __future__ import annotations

import base64
from collections.abc import Sequence

from sighub.client._leaves import envelope_leaf
from sighub.client._logcheck import AlarmKind, LogAlarm, SignedRoot
from sighub.client._merkle import ProofError, leaf_hash, verify_inclusion
from sighub.client._numbers import SHOWN
from sighub.client._rpc import Change

__all__ = ["verified_page"]


def verified_page(
    collab: str,
    have: int,
    upto: int,
    before: int,
    checkpoint: SignedRoot,
    entries: Sequence[tuple[Change, Sequence[bytes]]],
) -> list[Change]:
    """The envelopes of ``entries`` numbered ``have + 1`` on (at most up to ``upto``),
    each checked; raises ``LogAlarm`` at the first that fails, or for an empty page
    while numbers are missing."""
    if not entries:
        raise LogAlarm(
            AlarmKind.WITHHELD,
            f"history of {collab!r}: envelopes {have + 1}..{upto} from before this member"
            " joined were not served",
            {"collab": collab, "missing": list(range(have + 1, min(upto, have + SHOWN) + 1))},
        )
    out: list[Change] = []
    for change, proof in entries:
        if change.collaboration != collab or change.n != have + 1 or change.sequence >= before:
            raise LogAlarm(
                AlarmKind.WITHHELD,
                f"history of {collab!r}: received envelope {change.n} of"
                f" {change.collaboration!r} at sequence {change.sequence}; expected number"
                f" {have + 1} of {collab!r} before sequence {before}",
                {"collab": collab, "sequence": change.sequence, "received": change.n},
            )
        leaf = envelope_leaf(collab, change.envelope, change.n, change.hop_records)
        try:
            verify_inclusion(
                change.sequence - 1, checkpoint.size, leaf_hash(leaf), proof, checkpoint.root
            )
        except ProofError as exc:
            raise LogAlarm(
                AlarmKind.BAD_PROOF,
                f"history of {collab!r}: envelope {change.n} at sequence {change.sequence}"
                f" is not in the verified tree ({exc})",
                {
                    "collab": collab,
                    "sequence": change.sequence,
                    "proof": [base64.b64encode(h[:64]).decode() for h in proof[:128]],
                    "checkpoint": base64.b64encode(checkpoint.note).decode(),
                },
            ) from None
        out.append(change)
        have += 1
        if have >= upto:
            break
    return out
