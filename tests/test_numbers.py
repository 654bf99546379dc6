"""Envelope numbers per collaboration (``_numbers``): a gap, a repeat or an unnumbered
envelope after numbered ones is a withheld-envelope alarm; joins and leaves of the member
itself set and forget the reference."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sighub.client import _leaves
from sighub.client._logcheck import AlarmKind, BatchChange, BatchLeaf, LogAlarm
from sighub.client._numbers import EnvelopeNumbers


def _env(seq: int, n: int, collab: str = "sg") -> BatchChange:
    return BatchChange(seq, collab, b"e%d" % seq, n)


def _join(seq: int, n: int | None, member: str = "me", collab: str = "sg") -> BatchLeaf:
    return BatchLeaf(seq, _leaves.collab_membership(collab, member, True, n), None)


def _leave(seq: int, member: str = "me", collab: str = "sg") -> BatchLeaf:
    return BatchLeaf(seq, _leaves.collab_membership(collab, member, False), None)


def _alarm(
    numbers: EnvelopeNumbers, changes: list[BatchChange], leaves: list[BatchLeaf]
) -> dict[str, object]:
    with pytest.raises(LogAlarm) as err:
        numbers.check(changes, leaves)
    assert err.value.kind is AlarmKind.WITHHELD
    return err.value.evidence


def test_contiguous_numbers_pass_and_are_kept() -> None:
    numbers = EnvelopeNumbers("me")
    numbers.check([_env(3, 1), _env(5, 2)], [_join(1, 0), BatchLeaf(4, None, b"\0" * 32)])
    assert numbers.last == {"sg": 2}
    numbers.check([_env(9, 3)], [])
    assert numbers.last == {"sg": 3}


def test_a_gap_names_the_missing_numbers() -> None:
    evidence = _alarm(EnvelopeNumbers("me", {"last": {"sg": 4}}), [_env(9, 7)], [])
    assert evidence["missing"] == [5, 6] and evidence["sequence"] == 9


def test_a_repeat_and_an_unnumbered_envelope_after_numbered_ones() -> None:
    assert _alarm(EnvelopeNumbers("me", {"last": {"sg": 4}}), [_env(9, 4)], [])["received"] == 4
    assert _alarm(EnvelopeNumbers("me", {"last": {"sg": 4}}), [_env(9, 0)], [])["received"] == 0


def test_unnumbered_then_numbered_starts_at_one() -> None:
    numbers = EnvelopeNumbers("me")
    numbers.check([_env(2, 0), _env(3, 0), _env(4, 1)], [])
    assert numbers.last == {"sg": 1}
    assert _alarm(EnvelopeNumbers("me", {"last": {"sg": 0}}), [_env(4, 2)], [])["missing"] == [1]


def test_the_join_leaf_counts_what_came_before_it() -> None:
    # history received from number 3 on, then the join says the collaboration had 5
    evidence = _alarm(EnvelopeNumbers("me"), [_env(4, 3)], [_join(8, 5)])
    assert evidence["missing"] == [4, 5] and evidence["sequence"] == 8
    # nothing before it: the join sets the reference, strict from then on, and the five
    # envelopes before it are history to fetch
    numbers = EnvelopeNumbers("me")
    numbers.check([], [_join(8, 5)])
    assert numbers.history == {"sg": (8, 5, 0)}
    numbers.fetched("sg", 3)
    assert numbers.history == {"sg": (8, 5, 3)}
    numbers.fetched("sg", 5)
    assert numbers.history == {}
    assert _alarm(numbers, [_env(12, 7)], [])["missing"] == [6]


def test_history_is_the_numbers_below_the_first_received() -> None:
    """Joined while the cursor was past envelopes 1..2: 3 and 4 arrive (served to a member
    of the collaboration), then the join leaf counts 4: 1..2 are history."""
    numbers = EnvelopeNumbers("me")
    numbers.check([_env(5, 3), _env(6, 4)], [_join(7, 4)])
    assert numbers.history == {"sg": (7, 2, 0)} and numbers.last == {"sg": 4}
    again = EnvelopeNumbers("me", numbers.to_json())  # stored and read back
    assert again.history == numbers.history and again.last == numbers.last
    # a member that received the whole history has none to fetch
    whole = EnvelopeNumbers("me")
    whole.check([_env(2, 1), _env(3, 2)], [_join(4, 2)])
    assert whole.history == {}


def test_leaving_forgets_and_other_members_events_do_not_count() -> None:
    numbers = EnvelopeNumbers("me", {"last": {"sg": 2}})
    numbers.check([_env(9, 8)], [_leave(3), _join(4, 5, member="other")])
    assert numbers.last == {"sg": 8}
    # a join from before numbering (no count) forgets too
    numbers.check([_env(20, 30)], [_join(15, None)])
    assert numbers.last == {"sg": 30}


def test_collaborations_are_numbered_apart() -> None:
    numbers = EnvelopeNumbers("me", {"last": {"a": 1, "b": 7}})
    numbers.check([_env(2, 2, "a"), _env(3, 8, "b"), _env(4, 3, "a")], [])
    assert numbers.last == {"a": 3, "b": 8}


@given(st.lists(st.integers(1, 5), min_size=1, max_size=30), st.data())
def test_any_dropped_envelope_is_caught_at_the_next(steps: list[int], data: st.DataObject) -> None:
    """An honest stream passes; the same stream with one envelope left out (not the last)
    raises at the envelope after it."""
    changes = [_env(i + 1, i + 1) for i in range(len(steps) + 1)]
    EnvelopeNumbers("me", {"last": {"sg": 0}}).check(changes, [])
    dropped = data.draw(st.integers(0, len(changes) - 2))
    with pytest.raises(LogAlarm, match=f"numbered {dropped + 1}"):
        EnvelopeNumbers("me", {"last": {"sg": 0}}).check(
            changes[:dropped] + changes[dropped + 1 :], []
        )


def test_a_hub_naming_made_up_collaborations_cannot_grow_the_state() -> None:
    from sighub.client._numbers import MAX_COLLABS

    numbers = EnvelopeNumbers("me")
    numbers.check([_env(i + 1, 0, f"c{i}") for i in range(MAX_COLLABS)], [])
    with pytest.raises(LogAlarm, match=f"more than {MAX_COLLABS}") as err:
        numbers.check([_env(MAX_COLLABS + 1, 1, "one-more")], [])
    assert err.value.kind is AlarmKind.MALFORMED and len(numbers.last) == MAX_COLLABS
