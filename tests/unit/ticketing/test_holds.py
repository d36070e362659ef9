"""Rules for holding numbered seats."""

from __future__ import annotations

import pytest

from domain.ticketing.commands import PlaceHold
from domain.ticketing.errors import (
    DuplicateSeatError,
    InvalidHoldError,
    OrderExistsError,
    SeatsUnavailableError,
    TooManySeatsError,
    UnknownSeatError,
)
from domain.ticketing.events import SeatsHeld
from domain.ticketing.venue import Section

from .scenarios import (
    HOLD,
    SHOW,
    T0,
    given,
    hold_expired,
    only,
    order_paid,
    seats_held,
    seconds,
    show_created,
    when,
)


def hold(order_id: str, *seats: str, user: str = "bob") -> PlaceHold:
    return PlaceHold.of_seats(
        command_id=f"hold-{order_id}", show_id=SHOW, user=user, order_id=order_id, seats=seats
    )


def test_free_seats_are_held_for_hold_seconds_at_their_section_price() -> None:
    show = given(show_created())
    events = when(show, hold("o1", "A-1-1", "B-2-3", user="alice"), T0)
    assert events == [seats_held("o1", "A-1-1", "B-2-3", version=2)]
    held = only(events, SeatsHeld)
    assert held.total_cents == 5000 + 2500
    assert held.expires_at == T0 + HOLD


def test_held_seats_are_unavailable_to_others_until_the_hold_runs_out() -> None:
    show = given(show_created(), seats_held("o1", "A-1-1", "A-1-2", version=2))
    with pytest.raises(SeatsUnavailableError) as rejected:
        when(show, hold("o2", "A-1-2", "A-1-3", "A-1-1"), T0 + HOLD - seconds(1))
    assert rejected.value.seats == ("A-1-2", "A-1-1")
    assert rejected.value.details() == {"unavailable": ["A-1-2", "A-1-1"]}


def test_sold_seats_are_unavailable_even_after_the_hold_time() -> None:
    held = seats_held("o1", "A-1-1", version=2)
    show = given(
        show_created(),
        held,
        order_paid(held, version=3, command_id="pay", charge_id="ch1", at=T0 + seconds(5)),
    )
    with pytest.raises(SeatsUnavailableError):
        when(show, hold("o2", "A-1-1"), T0 + HOLD * 3)


def test_an_expired_hold_frees_its_seats_without_a_sweeper() -> None:
    old = seats_held("o1", "A-1-1", "A-1-2", version=2)
    show = given(show_created(), old)
    now = T0 + HOLD  # from expires_at on, the seat is free
    events = when(show, hold("o2", "A-1-2"), now)
    assert events == [
        hold_expired(old, version=3, command_id="hold-o2"),
        seats_held("o2", "A-1-2", version=4, user="bob", at=now),
    ]


def test_taking_from_several_lapsed_holds_expires_each_once_soonest_first() -> None:
    first = seats_held("o1", "A-1-1", version=2)
    second = seats_held("o2", "A-1-2", "A-1-3", version=3, at=T0 + seconds(10))
    show = given(show_created(), first, second)
    now = T0 + HOLD + seconds(30)
    events = when(show, hold("o3", "A-1-3", "A-1-1", "A-1-2"), now)
    assert events == [
        hold_expired(first, version=4, command_id="hold-o3"),
        hold_expired(second, version=5, command_id="hold-o3"),
        seats_held("o3", "A-1-3", "A-1-1", "A-1-2", version=6, user="bob", at=now),
    ]


def test_a_lapsed_hold_whose_seats_are_not_wanted_is_left_to_the_timer() -> None:
    show = given(show_created(), seats_held("o1", "A-1-1", version=2))
    events = when(show, hold("o2", "A-1-2"), T0 + HOLD)
    assert [type(event).__name__ for event in events] == ["SeatsHeld"]


@pytest.mark.parametrize(
    "seat",
    ["A-4-1", "A-1-5", "A-0-1", "C-1-1", "A-01-1", "A-1", "A-1-1-1", "a-1-1", "A-x-1", "", "A--1"],
)
def test_a_seat_the_show_does_not_have_is_unknown(seat: str) -> None:
    with pytest.raises(UnknownSeatError) as rejected:
        when(given(show_created()), hold("o1", "A-1-1", seat), T0)
    assert rejected.value.seats == (seat,)


def test_a_seat_asked_for_twice_is_a_duplicate() -> None:
    with pytest.raises(DuplicateSeatError) as rejected:
        when(given(show_created()), hold("o1", "A-1-1", "B-1-1", "A-1-1"), T0)
    assert rejected.value.seats == ("A-1-1",)


def test_a_hold_takes_at_most_50_seats() -> None:
    show = given(show_created(sections=(Section("A", 1, 60, 100),), zones=()))
    fifty = tuple(f"A-1-{n}" for n in range(1, 51))
    assert len(only(when(show, hold("o1", *fifty), T0), SeatsHeld).seats) == 50
    with pytest.raises(TooManySeatsError):
        when(show, hold("o2", *fifty, "A-1-51"), T0)


def test_a_hold_is_all_or_nothing() -> None:
    show = given(show_created(), seats_held("o1", "A-1-1", version=2))
    with pytest.raises(SeatsUnavailableError):
        when(show, hold("o2", "A-1-2", "A-1-1"), T0)
    assert dict(show.seat_statuses())["A-1-2"] == "available"


def test_an_order_id_is_used_once() -> None:
    show = given(show_created(), seats_held("o1", "A-1-1", version=2))
    with pytest.raises(OrderExistsError):
        when(
            show,
            PlaceHold.of_seats(
                command_id="another", show_id=SHOW, user="bob", order_id="o1", seats=("A-2-1",)
            ),
            T0,
        )


@pytest.mark.parametrize(
    "command",
    [
        PlaceHold("c", SHOW, "bob", "o1"),
        PlaceHold("c", SHOW, "bob", "o1", seats=("A-1-1",), zone="FLOOR", quantity=1),
        PlaceHold("c", SHOW, "bob", "o1", zone="FLOOR", quantity=1, best_available=True),
        PlaceHold("c", SHOW, "bob", "o1", seats=("A-1-1",), section="A"),
        PlaceHold("c", SHOW, "bob", "o1", seats=("A-1-1",), quantity=2),
    ],
    ids=["nothing", "seats and zone", "zone and best", "section without best", "seats+qty"],
)
def test_a_hold_asks_for_exactly_one_kind_of_seats(command: PlaceHold) -> None:
    with pytest.raises(InvalidHoldError):
        when(given(show_created()), command, T0)
