"""The relay's version checks on the hub's writer (``_relay._commit_one``), on a real
SQLite store: a relayed envelope is taken whenever one of its indicators is newer than what
the hub holds, and only those rows become the hub's state (members apply it row by row the
same way); one with nothing newer is stale; one revising another publisher's indicator is a
conflict that stores nothing."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from sighub.hub._relay import Outcome, Prepared, _commit_one
from sighub.hub._store import Store

PUB = "identity--00000000-0000-4000-8000-000000000001@sighub/industry"
OTHER = "identity--00000000-0000-4000-8000-000000000002@sighub/national"


@pytest.fixture
def hub(tmp_path: Path) -> Any:
    store = Store(tmp_path / "hub.db")
    store.migrate()
    with store.tx():
        store.set_meta("log_origin", "sighub/regional")
        store.conn.execute("INSERT INTO collabs (name, created) VALUES ('sg-csam', 'now')")
    yield SimpleNamespace(store=store)
    store.close()


def item(seq: int, rows: list[tuple[str, str]], publisher: str = PUB) -> Prepared:
    """An envelope relayed from the peer at ``seq``: ``rows`` are (indicator id, modified)."""
    raw = f"envelope {seq} {rows}".encode()
    ident, origin = publisher.split("@")
    hops = json.dumps([{"from": origin, "seq": seq}])
    full = [(i, "keyword", m, "2027-01-01T00:00:00.000Z", ident, 0) for i, m in rows]
    return Prepared(seq, hashlib.sha256(raw).hexdigest(), raw, "sg-csam", ident, origin,
                    "ed25519:00", hops, full)  # fmt: skip


def state(hub: Any) -> dict[str, Any]:
    rows = hub.store.all("SELECT id, modified, seq FROM indicators")
    bound = hub.store.all("SELECT identity, origin FROM relayed_identities ORDER BY identity")
    return {**{str(r[0]): (str(r[1]), int(r[2])) for r in rows}, "bound": bound}


T1, T2, T3 = "2026-11-28T10:00:00.000Z", "2026-11-28T11:00:00.000Z", "2026-11-28T12:00:00.000Z"


def test_partly_stale_envelope_relays_with_its_newer_rows_only(hub: Any) -> None:
    with hub.store.tx():
        assert _commit_one(hub, "p", item(1, [("x", T1), ("y", T1)]), T1)[0] is Outcome.RELAYED
        assert _commit_one(hub, "p", item(2, [("x", T3)]), T1)[0] is Outcome.RELAYED
        # a diamond's slower path: x at T2 is older than the T3 held, z is new
        done = _commit_one(hub, "p", item(3, [("x", T2), ("z", T2)]), T1)
    assert done[0] is Outcome.RELAYED
    got = state(hub)
    assert got["x"][0] == T3 and got["z"][0] == T2  # x kept its later version


def test_nothing_newer_is_stale_and_another_publisher_is_a_conflict(hub: Any) -> None:
    with hub.store.tx():
        _commit_one(hub, "p", item(1, [("x", T2)]), T1)
    before = (state(hub), hub.store.head())
    with hub.store.tx():
        stale = _commit_one(hub, "p", item(2, [("x", T1)]), T1)
        conflict = _commit_one(hub, "p", item(3, [("x", T3)], OTHER), T1)
    assert stale[0] is Outcome.STALE and "same or a later version" in stale[1]
    assert conflict[0] is Outcome.CONFLICT and PUB in conflict[1]
    assert (state(hub), hub.store.head()) == before  # nothing of either stored
