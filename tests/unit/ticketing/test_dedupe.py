"""Rules for redelivered commands: the first answer, again, and nothing acts twice."""

from __future__ import annotations

import pytest

from domain.ticketing.commands import ConfirmPayment, CreateShow, PlaceHold
from domain.ticketing.decider import decide, evolve
from domain.ticketing.errors import SeatsUnavailableError
from domain.ticketing.events import SeatsHeld

from .scenarios import (
    HOLD,
    SECTIONS,
    SHOW,
    T0,
    ZONES,
    given,
    last,
    seats_held,
    show_created,
    when,
)

HOLD_O1 = PlaceHold.of_seats(
    command_id="key-1", show_id=SHOW, user="alice", order_id="o1", seats=("A-1-1",)
)


def test_a_redelivered_hold_returns_its_first_events_and_holds_nothing_more() -> None:
    show = given(show_created())
    first = decide(show, HOLD_O1, T0)
    for event in first:
        evolve(show, event)
    before = show.copy()
    again = when(show, HOLD_O1, T0 + HOLD * 2)
    assert again == first
    assert show == before
    assert all(event.version <= show.version for event in again)  # how the adapter tells
    assert show.outcome_of("key-1") == tuple(first)


def test_the_same_command_id_gets_the_first_answer_even_with_another_body() -> None:
    show = given(show_created(), seats_held("o1", "A-1-1", version=2, command_id="key-1"))
    changed = PlaceHold.of_seats(
        command_id="key-1", show_id=SHOW, user="alice", order_id="o9", seats=("B-1-1",)
    )
    assert when(show, changed, T0) == [seats_held("o1", "A-1-1", version=2, command_id="key-1")]


def test_a_redelivered_late_payment_returns_the_refusal_again() -> None:
    show = given(show_created(), seats_held("o1", "A-1-1", version=2))
    late = ConfirmPayment("pay", SHOW, "alice", "o1", "ch", 5000)
    events = decide(show, late, T0 + HOLD)
    for event in events:
        evolve(show, event)
    assert when(show, late, T0 + HOLD * 3) == events
    assert len(events) == 2


def test_a_redelivered_show_creation_returns_show_created() -> None:
    create = CreateShow("create", SHOW, "olga", "Night at the Opera", T0, 600, SECTIONS, ZONES)
    show = given(show_created())
    assert when(show, create, T0) == [show_created()]


def test_a_rejected_command_leaves_no_trace_and_is_decided_afresh() -> None:
    show = given(show_created(), seats_held("o1", "A-1-1", version=2))
    retry = PlaceHold.of_seats(
        command_id="key-2", show_id=SHOW, user="bob", order_id="o2", seats=("A-1-1",)
    )
    with pytest.raises(SeatsUnavailableError):
        when(show, retry, T0)
    assert show.outcome_of("key-2") is None
    assert last(when(show, retry, T0 + HOLD), SeatsHeld).order_id == "o2"


def test_a_command_that_changed_nothing_is_not_remembered() -> None:
    show = given(show_created())
    assert show.outcome_of("never-sent") is None
    assert show.outcome_of("create") == (show_created(),)
