"""``SyncService.GetHistory``: a collaboration's envelopes from before a member joined it.

A member syncs the whole log in order and receives the envelopes of the collaborations it
is in at the time each batch is served.  One that joins a collaboration later has a
cursor past that collaboration's earlier envelopes, which Sync would never send again.
Its daemon asks for them here: by number (each envelope's leaf numbers it within its
collaboration), before the member's own join leaf, each with an inclusion proof in a tree
whose signed checkpoint the member holds, so the hub can neither make one up nor leave
one out unseen.
"""

from __future__ import annotations

from typing import Final

from sighub.client._logcheck import MAX_ENVELOPE_NUMBER
from sighub.hub._errors import HubError
from sighub.hub._store import TLOG, EnvelopeRow, Store

__all__ = ["HISTORY_PAGE", "history"]

HISTORY_PAGE: Final = 256  # envelopes per answer, at most


def history(
    store: Store,
    collab: str,
    after_n: int,
    before_seq: int,
    tree_size: int,
    page: int,
    max_bytes: int,
) -> list[tuple[EnvelopeRow, list[bytes]]]:
    """The page of ``collab``'s envelopes numbered after ``after_n`` and logged before
    ``before_seq``, each with its inclusion proof in the tree of ``tree_size``."""
    size = store.head()
    if not 0 < before_seq <= tree_size <= size:
        raise HubError.invalid(
            f"GetHistory: received before_sequence={before_seq} tree_size={tree_size};"
            f" expected 0 < before_sequence <= tree_size <= {size} (the log's size)"
        )
    if after_n > MAX_ENVELOPE_NUMBER:
        raise HubError.invalid(
            f"GetHistory: received after_number={after_n}; expected at most {MAX_ENVELOPE_NUMBER}"
        )
    limit = min(page or HISTORY_PAGE, HISTORY_PAGE)  # the request's page_size, capped
    rows = store.history_rows(collab, after_n, before_seq, limit, max_bytes)
    return [(r, TLOG.inclusion_proof(store.conn, r.seq - 1, tree_size)) for r in rows]
