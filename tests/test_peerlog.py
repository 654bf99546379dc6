"""The peerings a member reads from its hub's verified log (``_peerlog``): each ``peer.add``
checked against the admin's signature, status changes only as the hub makes them, and
every leaf an honest hub never writes an alarm that changes nothing."""

from __future__ import annotations

import base64
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from sighub.client._envelope import canonical_json
from sighub.client._grant import peering_statement, sign_peering
from sighub.client._leaves import parse_leaf, peer_add, peer_status
from sighub.client._local import LocalStore
from sighub.client._logcheck import AlarmKind, LogAlarm
from sighub.client._model import Tlp
from sighub.client._peerlog import LoggedPeer, PeerDirection, PeerLog, PeerStatus

ADMIN = Ed25519PrivateKey.generate()
ADMIN_PUBLIC = ADMIN.public_key().public_bytes_raw()
ORIGIN = "sighub/regional-hub"  # this member's hub
INDUSTRY = "sighub/industry-hub"
KEYS = {o: Ed25519PrivateKey.generate().public_key().public_bytes_raw()
        for o in (INDUSTRY, "sighub/hotline-hub", ORIGIN)}  # fmt: skip
A_COLLAB, B_COLLAB = "sg-csam", "sg-local"


def _add(
    name: str = "industry",
    origin: str = INDUSTRY,
    *,
    mapping: tuple[tuple[str, str], ...] = ((A_COLLAB, B_COLLAB),),
    direction: str = "pull",
    max_hops: int = 3,
    ceiling: str = "amber",
    admin: Ed25519PrivateKey = ADMIN,
    key: bytes | None = None,
    after: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A peer.add leaf's fields, signed by ``admin``; ``after`` changes fields once signed."""
    log_key = KEYS[origin] if key is None else key
    address = "127.0.0.1:7443"
    statement = peering_statement(
        name, origin, log_key, address, mapping, direction, max_hops, ceiling
    )
    signature = sign_peering(admin, statement)
    doc = parse_leaf(
        peer_add(name, origin, log_key, address, mapping, direction, max_hops, ceiling, signature)
    )
    return {**doc, **(after or {})}


def _status(name: str, status: str) -> dict[str, Any]:
    return parse_leaf(peer_status(name, status))


def test_a_peering_and_its_status_changes_are_kept() -> None:
    log = PeerLog(ORIGIN, ADMIN_PUBLIC)
    log.apply(7, _add(mapping=((A_COLLAB, B_COLLAB), ("sg-spam", "sg-junk")), max_hops=4,
                      ceiling="green", direction="both"))  # fmt: skip
    peer = log.peer("industry")
    assert peer == LoggedPeer(
        "industry", INDUSTRY, KEYS[INDUSTRY], "127.0.0.1:7443",
        ((A_COLLAB, B_COLLAB), ("sg-spam", "sg-junk")), PeerDirection.BOTH, 4, Tlp.GREEN,
        PeerStatus.ACTIVE, 7, 0,
    )  # fmt: skip
    assert log.live() == [peer] and log.by_origin(INDUSTRY) == peer
    assert log.log_keys() == {INDUSTRY: KEYS[INDUSTRY]}
    assert log.remote_for(B_COLLAB, INDUSTRY) == A_COLLAB
    assert log.remote_for("sg-junk", INDUSTRY) == "sg-spam"
    assert log.remote_for("sg-other", INDUSTRY) is None
    assert log.remote_for(B_COLLAB, "sighub/hotline-hub") is None
    assert log.is_active(INDUSTRY) and not log.is_active("sighub/hotline-hub")
    assert peer.local_collab(A_COLLAB) == B_COLLAB and peer.local_collab(B_COLLAB) is None
    (row,) = log.changed()
    assert LoggedPeer.from_row(row) == peer
    log.saved()
    assert log.changed() == []
    log.apply(9, _status("industry", "suspended"))
    assert log.peer("industry") == replace(peer, status=PeerStatus.SUSPENDED, status_seq=9)
    assert log.live() == [log.peer("industry")]  # suspended is still live
    assert not log.is_active(INDUSTRY)  # but carries no new key epoch
    log.apply(10, _status("industry", "active"))
    assert log.is_active(INDUSTRY)
    log.apply(12, _status("industry", "removed"))
    assert not log.is_active(INDUSTRY)
    removed = log.peer("industry")
    assert removed is not None and (removed.status, removed.status_seq) == ("removed", 12)
    assert log.live() == [] and log.by_origin(INDUSTRY) == removed
    assert log.log_keys() == {INDUSTRY: KEYS[INDUSTRY]}  # still verifies what it relayed
    assert log.remote_for(B_COLLAB, INDUSTRY) == A_COLLAB
    assert log.remote_for(B_COLLAB, INDUSTRY, at=11) == A_COLLAB
    assert log.remote_for(B_COLLAB, INDUSTRY, at=13) is None  # relayed after its removal
    assert log.remote_for(B_COLLAB, INDUSTRY, at=7) is None  # before it was logged
    assert [LoggedPeer.from_row(r) for r in log.changed()] == [removed]


def test_the_same_hub_peered_again_under_another_name() -> None:
    """Removal frees the peer hub, not the name: the new peering is the one ``by_origin``
    gives, its key the one ``log_keys`` pins, and both maps still resolve."""
    log = PeerLog(ORIGIN, ADMIN_PUBLIC)
    log.apply(3, _add())
    log.apply(4, _status("industry", "removed"))
    new_key = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    log.apply(8, _add("industry-two", mapping=(("sg-new", "sg-fresh"),), key=new_key))
    assert log.by_origin(INDUSTRY) == log.peer("industry-two")
    assert log.log_keys() == {INDUSTRY: new_key}
    assert [p.name for p in log.live()] == ["industry-two"]
    assert [p.name for p in log.peers()] == ["industry", "industry-two"]
    assert log.remote_for("sg-fresh", INDUSTRY) == "sg-new"
    assert log.remote_for(B_COLLAB, INDUSTRY) == A_COLLAB  # the removed one's map
    assert log.remote_for(B_COLLAB, INDUSTRY, at=9) is None
    assert log.remote_for("sg-fresh", INDUSTRY, at=5) is None


# -- what an honest hub never logs ---------------------------------------------------------
_OTHER_ADMIN = Ed25519PrivateKey.generate()


def _live_industry(log: PeerLog) -> None:
    log.apply(3, _add())


def _removed_industry(log: PeerLog) -> None:
    log.apply(3, _add())
    log.apply(4, _status("industry", "removed"))


def _nothing(log: PeerLog) -> None:
    pass


_RESIGNED = _add(max_hops=5)


@pytest.mark.parametrize(
    ("before", "leaf", "kind", "words"),
    [
        # signed by another key than the admin's, and a signature over other fields
        (_nothing, _add(admin=_OTHER_ADMIN), AlarmKind.FORGED_KEY, "does not verify"),
        (
            _nothing,
            _add(max_hops=6, after={"signature": _RESIGNED["signature"]}),
            AlarmKind.FORGED_KEY,
            "does not verify",
        ),
        (
            _nothing,
            _add(after={"tlp_ceiling": "amber+strict"}),
            AlarmKind.FORGED_KEY,
            "does not verify",
        ),
        (_nothing, _add(after={"address": "127.0.0.1:1"}), AlarmKind.FORGED_KEY, "does not verify"),
        (_live_industry, _add(), AlarmKind.PEERING, "added it at sequence 3 (now active)"),
        (_removed_industry, _add(), AlarmKind.PEERING, "(now removed)"),
        (_live_industry, _add("again"), AlarmKind.PEERING, "already peered as 'industry'"),
        (_nothing, _add("myself", ORIGIN), AlarmKind.PEERING, "never peers with itself"),
        (_nothing, _status("ghost", "suspended"), AlarmKind.PEERING, "never added"),
        (
            _removed_industry,
            _status("industry", "active"),
            AlarmKind.PEERING,
            "from removed (sequence 4) to active",
        ),
        (_removed_industry, _status("industry", "removed"), AlarmKind.PEERING, "from removed"),
        (
            _live_industry,
            _status("industry", "active"),
            AlarmKind.PEERING,
            "from active (sequence 3) to active",
        ),
        (_live_industry, _status("industry", "gone"), AlarmKind.MALFORMED, "'gone'"),
        (_nothing, _add(after={"tlp_ceiling": "red"}), AlarmKind.MALFORMED, "red never crosses"),
        (_nothing, _add(max_hops=0), AlarmKind.MALFORMED, "max_hops"),
        (_nothing, _add(max_hops=17), AlarmKind.MALFORMED, "max_hops"),
        (_nothing, _add(direction="sideways"), AlarmKind.MALFORMED, "direction"),
        (_nothing, _add(after={"log_key": "not base64!"}), AlarmKind.MALFORMED, "not base64"),
        (
            _nothing,
            _add(after={"log_key": base64.b64encode(b"k" * 31).decode()}),
            AlarmKind.MALFORMED,
            "31 bytes",
        ),
        (_nothing, _add(after={"collabs": []}), AlarmKind.MALFORMED, "collabs"),
        (_nothing, _add(after={"collabs": ["b=x", "a=y"]}), AlarmKind.MALFORMED, "sorted"),
        (_nothing, _add(after={"collabs": ["a=x", "b=x"]}), AlarmKind.MALFORMED, "mapped once"),
        (_nothing, _add(after={"collabs": ["Bad Name=x"]}), AlarmKind.MALFORMED, "mapping"),
        (_nothing, _add(after={"origin": "industry-hub"}), AlarmKind.MALFORMED, "origin"),
        (_nothing, _add(after={"address": "no port"}), AlarmKind.MALFORMED, "address"),
        (_nothing, _add(after={"peer": "Industry"}), AlarmKind.MALFORMED, "peer"),
    ],
)
def test_a_leaf_an_honest_hub_never_writes_is_an_alarm_that_changes_nothing(
    tmp_path: Path, before: Any, leaf: dict[str, Any], kind: AlarmKind, words: str
) -> None:
    store = LocalStore(tmp_path / "local.db")
    log = PeerLog(ORIGIN, ADMIN_PUBLIC)
    before(log)
    with store.tx():
        store.put_log_peers(log.changed())
    log.saved()
    peers, rows = log.peers(), store.log_peers()
    with pytest.raises(LogAlarm) as alarm:
        log.apply(20, leaf)
    assert alarm.value.kind is kind and words in str(alarm.value), str(alarm.value)
    assert "sequence 20" in str(alarm.value) and alarm.value.evidence["sequence"] == 20
    assert f"{leaf['peer']!r}" in str(alarm.value)  # names the peering
    assert log.peers() == peers and log.changed() == []
    with store.tx():
        store.put_log_peers(log.changed())
    assert store.log_peers() == rows
    store.close()


def test_without_a_pinned_admin_key_the_log_is_taken_at_its_word() -> None:
    """A member enrolled before key chains cannot check the signature; it still refuses
    what no hub logs (a name added twice)."""
    log = PeerLog(ORIGIN, None)
    log.apply(1, _add(admin=_OTHER_ADMIN))
    assert log.peer("industry") is not None
    with pytest.raises(LogAlarm, match="added it at sequence 1"):
        log.apply(2, _add())


def test_the_origin_pinned_on_first_use_is_never_peered() -> None:
    """Before the origin is known (a credential from before the log) the check waits;
    the guard sets it from the first checkpoint."""
    log = PeerLog("", ADMIN_PUBLIC)
    log.apply(1, _add("myself", ORIGIN))
    log = PeerLog("", ADMIN_PUBLIC)
    log.origin = ORIGIN
    with pytest.raises(LogAlarm, match="itself"):
        log.apply(1, _add("myself", ORIGIN))


def test_other_leaves_are_not_this_logs() -> None:
    log = PeerLog(ORIGIN, ADMIN_PUBLIC)
    log.apply(1, parse_leaf(canonical_json({"v": 1, "type": "collab.add", "collab": "x"})))
    assert log.peers() == [] and log.changed() == []


def test_local_db_keeps_and_clears_the_records(tmp_path: Path) -> None:
    log = PeerLog(ORIGIN, ADMIN_PUBLIC)
    log.apply(3, _add())
    log.apply(5, _add("hotline", "sighub/hotline-hub", ceiling="clear", direction="push"))
    log.apply(6, _status("industry", "suspended"))
    store = LocalStore(tmp_path / "local.db")
    with store.tx():
        store.put_log_peers(log.changed())
    store.close()
    store = LocalStore(tmp_path / "local.db")  # opened again: the rows are there
    again = PeerLog(ORIGIN, ADMIN_PUBLIC, (LoggedPeer.from_row(r) for r in store.log_peers()))
    assert again.peers() == log.peers() and again.changed() == []
    assert again.log_keys() == log.log_keys()
    with store.tx():
        store.clear_log_keys()
    assert store.log_peers() == []
    store.close()


# -- any history the hub could write, and any leaf it could not ------------------------------
_NAMES = ("industry", "hotline", "extra")
_ORIGINS = (INDUSTRY, "sighub/hotline-hub", ORIGIN)
_STEPS = st.one_of(
    st.tuples(st.just("add"), st.sampled_from(_NAMES), st.sampled_from(_ORIGINS)),
    st.tuples(
        st.just("status"), st.sampled_from(_NAMES), st.sampled_from([s.value for s in PeerStatus])
    ),
)
_ALLOWED = {("active", "suspended"), ("suspended", "active"), ("active", "removed"),
            ("suspended", "removed")}  # fmt: skip
# One signed leaf per (name, origin): signing is the slow part of an example.
_LEAVES = {(n, o): _add(n, o) for n in _NAMES for o in _ORIGINS}


@settings(max_examples=150, deadline=None)
@given(steps=st.lists(_STEPS, max_size=14))
def test_any_sequence_of_leaves_matches_the_hubs_rules(steps: list[tuple[str, str, str]]) -> None:
    """Against a model of the hub's rules: each leaf the hub could log is taken, each one it
    could not is an alarm that changes nothing; the rows stored rebuild the same log."""
    log = PeerLog(ORIGIN, ADMIN_PUBLIC)
    model: dict[str, tuple[str, str, int, int]] = {}  # name -> (origin, status, seq, at)
    for seq, (kind, name, arg) in enumerate(steps, start=1):
        before = log.peers()
        if kind == "add":
            taken = name in model or arg == ORIGIN
            taken |= any(o == arg and s != "removed" for o, s, _, _ in model.values())
            leaf, ok = _LEAVES[(name, arg)], not taken
        else:
            leaf = _status(name, arg)
            ok = name in model and (model[name][1], arg) in _ALLOWED
        if not ok:
            with pytest.raises(LogAlarm):
                log.apply(seq, leaf)
            assert log.peers() == before
            continue
        log.apply(seq, leaf)
        if kind == "add":
            model[name] = (arg, "active", seq, 0)
        else:
            model[name] = (model[name][0], arg, model[name][2], seq)
        got = {p.name: (p.origin, p.status.value, p.seq, p.status_seq) for p in log.peers()}
        assert got == model
    for origin in {o for o, _, _, _ in model.values()}:
        found = log.by_origin(origin)
        live = [n for n, (o, s, _, _) in model.items() if o == origin and s != "removed"]
        assert found is not None and (found.name in live if live else found.live is False)
        assert log.log_keys()[origin] == KEYS[origin]
    assert set(log.log_keys()) == {o for o, _, _, _ in model.values()}
    rebuilt = PeerLog(ORIGIN, ADMIN_PUBLIC, (LoggedPeer.from_row(r) for r in log.changed()))
    assert rebuilt.peers() == log.peers()
