"""``sighub republish --canon 2``: an analyst file published under canon/1 moves to canon/2
through a real hub; the canon/1 versions it replaces are revoked (patterns too: a canon/2
pattern runs over canon/2-folded text), and a subscriber's matcher then fires on what only
canon/2 reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sighub.client._local import LOCAL_DB, LocalStore
from sighub.client._matcher import Matcher
from sighub.client._member import Member as Sdk
from sighub.hub._cli import main

FILE = """kind,value,form,ttl,confidence,description,tlp,labels
keyword,s3ller,,30d,80,seller self-label (synthetic),amber,seller-term
keyword,menu in bio,,30d,60,menu pointer (synthetic),amber,menu-pointer
url,carrd.co/prices,,30d,60,price page (synthetic),amber,menu-pointer
payment,t[a-z]{3}-[0-9]{4},pattern,30d,50,code shape (synthetic),amber,code
"""


def _fired(data: Path, text: str) -> set[str]:
    store = LocalStore(data / LOCAL_DB)
    try:
        m = Matcher.from_store(store)
        return {h.description for x in m.scan(text) for h in x.hits}
    finally:
        store.close()


def _by_canon(data: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, int]:
    """Indicators in force per canon version, as ``sighub status --json`` prints them."""
    capsys.readouterr()
    assert main(["status", "--data", str(data), "--json"]) == 0
    counts: dict[str, int] = json.loads(capsys.readouterr().out)["by_canon"]
    return counts


def test_republish_moves_a_file_to_canon2(
    world: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hub, pub, sub = world["hub"], world["pub"], world["sub"]
    path = tmp_path / "file.csv"
    path.write_text(FILE)
    me = Sdk(pub.data, address=hub.address)
    first = me.publish_file(path, "sg-csam")
    assert first.indicators == 4
    me.sync_once()
    reader = Sdk(sub.data, address=hub.address)
    reader.sync_once()
    assert _fired(sub.data, "m3nu 1n b10 at carrd[.]co/prices") == set()
    assert _fired(sub.data, "tabc-1234 tᴀbc-5678") == {"code shape (synthetic)"}
    assert _fired(sub.data, "tᴀbc-5678") == set()  # canon/1 leaves small capitals
    before = _by_canon(sub.data, capsys)
    assert before.get("canon/1", 0) >= 4

    done = me.republish(path, "sg-csam", "canon/2")
    assert done.published.indicators == 4 and done.replaced == 4
    assert done.revoked is not None and done.revoked.indicators == 4
    reader.sync_once()
    # `sighub status` counts the move: four rows left canon/1 for canon/2
    after = _by_canon(sub.data, capsys)
    assert after.get("canon/1", 0) == before["canon/1"] - 4
    assert after.get("canon/2", 0) == before.get("canon/2", 0) + 4
    store = LocalStore(sub.data / LOCAL_DB)
    try:
        rows = store.conn.execute(
            "SELECT form, canon, revoked FROM indicators WHERE publisher_name = 'pub'"
            " AND description LIKE '%(synthetic)'"
        ).fetchall()
    finally:
        store.close()
    assert sorted(rows) == sorted(
        [("blinded", "canon/1", 1)] * 3 + [("blinded", "canon/2", 0)] * 3
        + [("pattern", "canon/1", 1), ("pattern", "canon/2", 0)]
    )  # fmt: skip
    assert _fired(sub.data, "m3nu 1n b10 at carrd[.]co/prices") == {
        "menu pointer (synthetic)",
        "price page (synthetic)",
    }
    assert _fired(sub.data, "se11er") == {"seller self-label (synthetic)"}
    assert _fired(sub.data, "tᴀbc-5678") == {"code shape (synthetic)"}

    # Again: the canon/1 versions are gone, so there is nothing left to revoke.
    me.sync_once()
    argv = ["republish", str(path), "--collab", "sg-csam", "--canon", "2", "--data",
            str(pub.data), "--hub", hub.address, "--json"]  # fmt: skip
    capsys.readouterr()
    assert main(argv) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["canon"] == "canon/2" and again["indicators"] == 0  # a repeat moves nothing
    assert again["already_in_force"] == 4 and again["envelope_id"] is None
    assert again["revoked"] == 0 and again["revoke_envelope_id"] is None
