"""The order-statistics tree behind "position of entry E": checked against a plain list."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.ticketing.ranks import RankTree


def test_positions_close_up_when_someone_ahead_leaves() -> None:
    line = RankTree()
    slots = [line.append() for _ in range(5)]
    assert slots == [1, 2, 3, 4, 5]
    line.remove(2)
    assert [line.rank(slot) for slot in (1, 3, 4, 5)] == [1, 2, 3, 4]
    assert len(line) == 4 and line.size == 5
    assert list(line) == [1, 3, 4, 5]
    assert line.select(2) == 3


def test_a_slot_that_left_has_no_rank_and_cannot_leave_twice() -> None:
    line = RankTree()
    line.append()
    line.remove(1)
    assert 1 not in line
    with pytest.raises(KeyError):
        line.rank(1)
    with pytest.raises(KeyError):
        line.remove(1)
    with pytest.raises(IndexError):
        line.select(1)


def test_a_copy_is_independent_and_equal_until_changed() -> None:
    line = RankTree()
    for _ in range(3):
        line.append()
    twin = line.copy()
    assert twin == line
    twin.remove(1)
    assert twin != line and line.rank(3) == 3 and twin.rank(3) == 2


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.just(-1), st.integers(0, 200)), max_size=300))
def test_ranks_match_counting_the_present_slots_ahead(script: list[int]) -> None:
    """-1 appends; n removes the present slot at index n (mod how many there are)."""
    line = RankTree()
    present: list[int] = []
    for step in script:
        if step < 0 or not present:
            present.append(line.append())
        else:
            line.remove(present.pop(step % len(present)))
        assert len(line) == len(present)
    assert list(line) == present
    for position, slot in enumerate(present, start=1):
        assert line.rank(slot) == position == line.count_upto(slot)
        assert line.select(position) == slot
    assert [line.count_upto(slot) for slot in range(line.size + 1)] == [
        sum(1 for p in present if p <= slot) for slot in range(line.size + 1)
    ]
