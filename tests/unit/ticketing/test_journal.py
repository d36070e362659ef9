"""Rules for the journal and the state folded from it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from domain.ticketing.decider import evolve, fold
from domain.ticketing.errors import JournalError

from .scenarios import HOLD, T0, given, hold_expired, seats_held, show_created


def test_evolve_updates_the_state_in_place_and_returns_it() -> None:
    show = given(show_created())
    assert evolve(show, seats_held("o1", "A-1-1", version=2)) is show
    assert show.version == 2


def test_a_copy_is_independent_of_the_state_it_was_taken_from() -> None:
    show = given(show_created(), seats_held("o1", "A-1-1", version=2))
    snapshot = show.copy()
    evolve(show, seats_held("o2", "A-1-2", version=3))
    assert snapshot.version == 2
    assert dict(snapshot.seat_statuses())["A-1-2"] == "available"
    assert snapshot == given(show_created(), seats_held("o1", "A-1-1", version=2))
    assert snapshot != show


def test_folding_the_same_journal_twice_gives_equal_states() -> None:
    held = seats_held("o1", "A-1-1", version=2)
    journal = (show_created(), held, hold_expired(held, version=3, command_id="tick"))
    assert fold(journal) == fold(journal)
    assert given(*journal).events() == list(journal)


def test_an_event_folded_again_changes_nothing() -> None:
    held = seats_held("o1", "A-1-1", version=2)
    show = given(show_created(), held)
    assert evolve(show, held) is show
    assert show == given(show_created(), held)


def test_an_event_conflicting_with_the_journal_is_refused() -> None:
    show = given(show_created(), seats_held("o1", "A-1-1", version=2))
    with pytest.raises(JournalError):
        evolve(show, seats_held("o2", "A-1-2", version=2))


def test_a_version_gap_is_refused() -> None:
    show = given(show_created())
    with pytest.raises(JournalError):
        evolve(show, seats_held("o1", "A-1-1", version=3))


def test_a_journal_starts_with_show_created() -> None:
    with pytest.raises(JournalError):
        evolve(None, seats_held("o1", "A-1-1", version=1))
    with pytest.raises(JournalError):
        evolve(None, replace(show_created(), version=2))


def test_an_event_of_another_show_is_refused() -> None:
    show = given(show_created())
    with pytest.raises(JournalError):
        evolve(show, replace(seats_held("o1", "A-1-1", version=2), show_id="other"))


def test_an_order_leaves_held_only_once() -> None:
    held = seats_held("o1", "A-1-1", version=2)
    show = given(show_created(), held, hold_expired(held, version=3, command_id="t1"))
    with pytest.raises(JournalError):
        evolve(show, hold_expired(held, version=4, command_id="t2"))


def test_lapsed_holds_are_found_by_their_expiry_time() -> None:
    show = given(
        show_created(),
        seats_held("o1", "A-1-1", version=2),
        seats_held("o2", "A-1-2", version=3, at=T0 + HOLD),
    )
    assert [order.order_id for order in show.lapsed_holds(T0 + HOLD)] == ["o1"]
    assert show.lapsed_holds(T0) == []
