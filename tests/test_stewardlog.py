"""Who may make key epochs, as a member reads it from the log (``_stewardlog``): only a
steward the admin designated, judged at each epoch leaf in log order."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sighub.client._grant import designate_steward
from sighub.client._leaves import collab_membership, collab_steward, parse_leaf, steward_epoch
from sighub.client._logcheck import AlarmKind, LogAlarm
from sighub.client._stewardlog import LoggedEpoch, StewardLog

ADMIN = Ed25519PrivateKey.generate()
ADMIN_PUBLIC = ADMIN.public_key().public_bytes_raw()
ORIGIN = "hub.example/log"
C = "sg-csam"


def _sig(member: str, collab: str = C, key: Ed25519PrivateKey = ADMIN) -> str:
    return base64.b64encode(designate_steward(key, ORIGIN, collab, member)).decode()


def _epoch(epoch: int, steward: str) -> dict[str, object]:
    return parse_leaf(steward_epoch(C, epoch, "ab" * 32, steward, "cd" * 32))


def test_an_epoch_counts_only_from_a_designated_steward() -> None:
    log = StewardLog(ORIGIN, ADMIN_PUBLIC)
    log.apply(5, _epoch(0, "stew"))  # before any designation: a hub's own steward
    assert "no admin designation" in log.epochs[(C, 0)].flaw
    log.apply(6, parse_leaf(collab_steward(C, "stew", _sig("stew"))))
    log.apply(7, _epoch(1, "stew"))
    log.apply(9, _epoch(1, "stew"))  # a later wrap of epoch 1, to a joiner
    assert log.epochs[(C, 1)] == LoggedEpoch("ab" * 32, "stew", "", (7, 9))
    log.apply(10, parse_leaf(collab_membership(C, "stew", False)))
    log.apply(11, _epoch(1, "stew"))  # after it left: that leaf adds no sequence
    log.apply(12, _epoch(2, "stew"))
    assert log.epochs[(C, 1)].seqs == (7, 9)
    assert "no admin designation" in log.epochs[(C, 2)].flaw
    assert [c for c, _ in log.changed_stewards()] == [C]
    rows = log.changed_epochs()
    assert [r[:2] for r in rows] == [(C, 0), (C, 1), (C, 2)]
    assert LoggedEpoch.from_row(rows[1][2:]) == log.epochs[(C, 1)]


def test_a_joiner_learns_the_stewards_from_its_join_leaf() -> None:
    log = StewardLog(ORIGIN, ADMIN_PUBLIC)
    join = collab_membership(C, "late", True, 3, [("a", _sig("a")), ("stew", _sig("stew"))])
    log.apply(20, parse_leaf(join))
    assert log.stewards[C] == {"a", "stew"}
    log.apply(21, _epoch(4, "stew"))
    assert log.epochs[(C, 4)].flaw == ""
    bare = collab_membership(C, "other", True, 3)  # a join from before designations
    log.apply(22, parse_leaf(bare))
    assert log.stewards[C] == {"a", "stew"}


@pytest.mark.parametrize(
    "leaf",
    [
        collab_steward(C, "stew", _sig("stew", key=Ed25519PrivateKey.generate())),
        collab_steward(C, "stew", _sig("mallory")),  # another member's designation
        collab_steward(C, "stew", _sig("stew", collab="other")),  # another collaboration's
        collab_steward(C, "stew", ""),
        collab_steward(C, "stew", "not base64!"),
        collab_membership(C, "late", True, 3, [("stew", _sig("a"))]),
    ],
)
def test_a_designation_the_admin_did_not_sign_is_a_forged_key_alarm(leaf: bytes) -> None:
    log = StewardLog(ORIGIN, ADMIN_PUBLIC)
    with pytest.raises(LogAlarm) as alarm:
        log.apply(30, parse_leaf(leaf))
    assert alarm.value.kind is AlarmKind.FORGED_KEY and "steward designation" in str(alarm.value)
    assert log.stewards == {} and log.changed_stewards() == []


def test_a_join_whose_lists_differ_in_length_is_an_alarm() -> None:
    doc = json.loads(collab_membership(C, "late", True, 3, [("stew", _sig("stew"))]))
    doc["steward_signatures"] = []
    with pytest.raises(LogAlarm, match="differ in length"):
        StewardLog(ORIGIN, ADMIN_PUBLIC).apply(31, doc)


def test_without_a_pinned_admin_key_the_log_is_taken_at_its_word() -> None:
    """A member enrolled before key chains cannot check designations: it still refuses an
    epoch from a member the log never named a steward."""
    log = StewardLog(ORIGIN, None)
    log.apply(1, parse_leaf(collab_steward(C, "stew", "")))
    log.apply(2, _epoch(0, "stew"))
    log.apply(3, _epoch(1, "mallory"))
    assert log.epochs[(C, 0)].flaw == "" and log.epochs[(C, 1)].flaw
