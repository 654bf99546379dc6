"""Who may make key epochs, and who is in a collaboration, as a member reads it from the
log (``_stewardlog``): only a steward the admin designated, judged at each epoch leaf in
log order, under the keys it held then; an ended designation is never taken again."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sighub.client._grant import designate_steward
from sighub.client._leaves import (
    collab_add,
    collab_membership,
    collab_steward,
    parse_leaf,
    steward_epoch,
)
from sighub.client._logcheck import AlarmKind, LogAlarm
from sighub.client._stewardlog import CollabState, LoggedEpoch, StewardLog

ADMIN = Ed25519PrivateKey.generate()
ADMIN_PUBLIC = ADMIN.public_key().public_bytes_raw()
ORIGIN = "hub.example/log"
C = "sg-csam"
KEYS = {"stew": ["ed25519:aa"], "a": ["ed25519:bb"]}


def _keys(member: str) -> list[str]:
    return KEYS.get(member, [])


def _sig(member: str, collab: str = C, key: Ed25519PrivateKey = ADMIN) -> str:
    return base64.b64encode(designate_steward(key, ORIGIN, collab, member)).decode()


def _epoch(epoch: int, steward: str) -> dict[str, object]:
    return parse_leaf(steward_epoch(C, epoch, "ab" * 32, steward, "cd" * 32))


def _apply(log: StewardLog, seq: int, leaf: bytes | dict[str, object]) -> None:
    log.apply(seq, parse_leaf(leaf) if isinstance(leaf, bytes) else leaf, _keys)


def test_an_epoch_counts_only_from_a_designated_steward() -> None:
    log = StewardLog(ORIGIN, ADMIN_PUBLIC)
    _apply(log, 4, collab_add(C))
    _apply(log, 5, _epoch(0, "stew"))  # before any designation: a hub's own steward
    assert "no admin designation" in log.epochs[(C, 0)].flaw
    _apply(log, 6, collab_steward(C, "stew", _sig("stew")))
    _apply(log, 7, _epoch(1, "stew"))
    KEYS["stew"].append("ed25519:cc")  # rotated: a later wrap of epoch 1, to a joiner
    try:
        _apply(log, 9, _epoch(1, "stew"))
    finally:
        KEYS["stew"].pop()
    assert log.epochs[(C, 1)] == LoggedEpoch(
        "ab" * 32, "stew", "", frozenset({"ed25519:aa", "ed25519:cc"})
    )
    _apply(log, 10, collab_membership(C, "stew", False))
    _apply(log, 11, _epoch(1, "stew"))  # after it left: no key added
    _apply(log, 12, _epoch(2, "stew"))
    assert "no admin designation" in log.epochs[(C, 2)].flaw
    assert [c for c, _ in log.changed_collabs()] == [C]
    rows = log.changed_epochs()
    assert [r[:2] for r in rows] == [(C, 0), (C, 1), (C, 2)]
    assert LoggedEpoch.from_row(rows[1][2:]) == log.epochs[(C, 1)]
    state = CollabState.from_json(log.changed_collabs()[0][1])
    assert state.complete and state.stewards == {} and len(state.ended) == 1


def test_an_ended_designation_logged_again_is_a_replay() -> None:
    """A steward that left is no steward; its designation's bytes logged again (alone, or
    in a join leaf) are a forged-key alarm.  A new designation (a fresh nonce) is taken."""
    log = StewardLog(ORIGIN, ADMIN_PUBLIC)
    first = _sig("stew")
    _apply(log, 1, collab_steward(C, "stew", first))
    _apply(log, 2, collab_membership(C, "stew", False))
    for leaf in (
        collab_steward(C, "stew", first),
        collab_membership(C, "late", True, 3, [("stew", first)]),
    ):
        with pytest.raises(LogAlarm, match="replay") as alarm:
            _apply(log, 3, leaf)
        assert alarm.value.kind is AlarmKind.FORGED_KEY
    assert log.stewards(C) == set()
    _apply(log, 4, collab_steward(C, "stew", _sig("stew")))
    assert log.stewards(C) == {"stew"}


def test_a_join_adds_stewards_and_members_and_never_drops_one() -> None:
    log = StewardLog(ORIGIN, ADMIN_PUBLIC)
    join = collab_membership(C, "late", True, 3, [("a", _sig("a")), ("stew", _sig("stew"))])
    _apply(log, 20, join)
    assert log.stewards(C) == {"a", "stew"} and log.collabs[C].members == {"late"}
    _apply(log, 21, _epoch(4, "stew"))
    assert log.epochs[(C, 4)].flaw == ""
    _apply(log, 22, collab_membership(C, "other", True, 3, [("a", _sig("a"))]))  # omits stew
    _apply(log, 23, collab_membership(C, "more", True, 3))  # from before designations
    assert log.stewards(C) == {"a", "stew"}
    assert log.collabs[C].members == {"late", "other", "more"}
    assert not log.collabs[C].complete  # its collab.add was not read


@pytest.mark.parametrize(
    "leaf",
    [
        collab_steward(C, "stew", _sig("stew", key=Ed25519PrivateKey.generate())),
        collab_steward(C, "stew", _sig("mallory")),  # another member's designation
        collab_steward(C, "stew", _sig("stew", collab="other")),  # another collaboration's
        collab_steward(C, "stew", ""),
        collab_steward(C, "stew", "not base64!"),
        collab_steward(C, "stew", base64.b64encode(b"\x00" * 80).decode()),
        collab_membership(C, "late", True, 3, [("stew", _sig("a"))]),
    ],
)
def test_a_designation_the_admin_did_not_sign_is_a_forged_key_alarm(leaf: bytes) -> None:
    log = StewardLog(ORIGIN, ADMIN_PUBLIC)
    with pytest.raises(LogAlarm) as alarm:
        _apply(log, 30, leaf)
    assert alarm.value.kind is AlarmKind.FORGED_KEY and "steward designation" in str(alarm.value)
    assert log.stewards(C) == set() and log.changed_collabs() == []


def test_a_join_whose_lists_differ_in_length_is_an_alarm() -> None:
    doc = json.loads(collab_membership(C, "late", True, 3, [("stew", _sig("stew"))]))
    doc["steward_signatures"] = []
    with pytest.raises(LogAlarm, match="differ in length"):
        _apply(StewardLog(ORIGIN, ADMIN_PUBLIC), 31, doc)


def test_without_a_pinned_admin_key_the_log_is_taken_at_its_word() -> None:
    """A member enrolled before key chains cannot check the signature: it still refuses an
    epoch from a member the log never named a steward."""
    log = StewardLog(ORIGIN, None)
    _apply(log, 1, collab_steward(C, "stew", ""))
    _apply(log, 2, _epoch(0, "stew"))
    _apply(log, 3, _epoch(1, "mallory"))
    assert log.epochs[(C, 0)].flaw == "" and log.epochs[(C, 1)].flaw
