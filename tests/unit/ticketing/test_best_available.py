"""Rules for "give me the best N seats"."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from domain.ticketing.commands import CreateShow, PlaceHold
from domain.ticketing.decider import decide, evolve
from domain.ticketing.errors import (
    InvalidQuantityError,
    NotEnoughSeatsError,
    UnknownSectionError,
)
from domain.ticketing.events import Event, SeatsHeld
from domain.ticketing.venue import Section

from .scenarios import HOLD, SHOW, T0, given, hold_expired, last, seats_held, show_created, when

WIDE = (Section("A", 3, 9, 100), Section("B", 2, 9, 50))


def best(order_id: str, quantity: int, section: str | None = None) -> PlaceHold:
    return PlaceHold.best(
        command_id=f"best-{order_id}",
        show_id=SHOW,
        user="bob",
        order_id=order_id,
        quantity=quantity,
        section=section,
    )


def seats_of(events: Sequence[Event]) -> tuple[str, ...]:
    return last(events, SeatsHeld).seats


def test_best_seats_are_adjacent_in_the_centre_of_row_1() -> None:
    show = given(show_created(sections=WIDE, zones=()))
    assert seats_of(when(show, best("o1", 3), T0)) == ("A-1-4", "A-1-5", "A-1-6")


def test_a_tie_for_the_centre_goes_to_the_left() -> None:
    show = given(show_created(sections=WIDE, zones=()))
    assert seats_of(when(show, best("o1", 2), T0)) == ("A-1-4", "A-1-5")


def test_the_run_nearest_the_centre_is_taken_when_the_centre_is_held() -> None:
    show = given(show_created(sections=WIDE, zones=()), seats_held("o1", "A-1-5", version=2))
    assert seats_of(when(show, best("o2", 3), T0)) == ("A-1-2", "A-1-3", "A-1-4")
    assert seats_of(when(show, best("o2", 4), T0)) == ("A-1-1", "A-1-2", "A-1-3", "A-1-4")


def test_rows_nearest_the_stage_come_first_then_later_sections() -> None:
    row_1_gapped = tuple(f"A-1-{n}" for n in (3, 6, 9))
    rows_2_and_3_full = tuple(f"A-{r}-{n}" for r in (2, 3) for n in range(1, 10))
    show = given(
        show_created(sections=WIDE, zones=()),
        seats_held("o1", *row_1_gapped, *rows_2_and_3_full[:3], version=2),
    )
    assert seats_of(when(show, best("o2", 3), T0)) == ("A-2-4", "A-2-5", "A-2-6")
    show = given(
        show_created(sections=WIDE, zones=()),
        seats_held("o1", *row_1_gapped, version=2),
        seats_held("o3", *rows_2_and_3_full, version=3),
    )
    assert seats_of(when(show, best("o2", 3), T0)) == ("B-1-4", "B-1-5", "B-1-6")


def test_a_section_can_be_asked_for() -> None:
    show = given(show_created(sections=WIDE, zones=()))
    events = when(show, best("o1", 2, section="B"), T0)
    assert seats_of(events) == ("B-1-4", "B-1-5")
    assert last(events, SeatsHeld).total_cents == 2 * 50


def test_without_a_long_enough_run_the_fewest_rows_are_used() -> None:
    tiny = (Section("A", 3, 5, 100),)
    show = given(
        show_created(sections=tiny, zones=()),
        # row 1 keeps 2 free, row 2 keeps 3 free (not adjacent), row 3 keeps 1 free
        seats_held(
            "o1",
            "A-1-2",
            "A-1-3",
            "A-1-4",
            "A-2-2",
            "A-2-4",
            "A-3-1",
            "A-3-2",
            "A-3-3",
            "A-3-4",
            version=2,
        ),
    )
    chosen = seats_of(when(show, best("o2", 5), T0))
    assert sorted(chosen) == sorted(("A-1-1", "A-1-5", "A-2-1", "A-2-3", "A-2-5"))


def test_not_enough_free_seats_is_refused() -> None:
    tiny = (Section("A", 1, 3, 100), Section("B", 1, 3, 100))
    show = given(show_created(sections=tiny, zones=()), seats_held("o1", "A-1-2", version=2))
    with pytest.raises(NotEnoughSeatsError) as rejected:
        when(show, best("o2", 3, section="A"), T0)
    assert (rejected.value.requested, rejected.value.available) == (3, 2)
    with pytest.raises(NotEnoughSeatsError):
        when(show, best("o2", 6), T0)


def test_lapsed_holds_count_as_free_and_are_expired_when_taken() -> None:
    old = seats_held("o1", "A-1-4", "A-1-5", "A-1-6", version=2)
    show = given(show_created(sections=WIDE, zones=()), old)
    now = T0 + HOLD
    events = when(show, best("o2", 3), now)
    assert events[0] == hold_expired(old, version=3, command_id="best-o2")
    assert seats_of(events) == ("A-1-4", "A-1-5", "A-1-6")


def test_lapsed_holds_also_count_in_the_fewest_rows_fallback() -> None:
    tiny = (Section("A", 2, 3, 100),)
    old = seats_held("o1", "A-1-2", version=2)
    show = given(
        show_created(sections=tiny, zones=()),
        old,
        seats_held("o2", "A-2-2", version=3, at=T0 + HOLD),
    )
    events = when(show, best("o3", 5), T0 + HOLD)
    assert events[0] == hold_expired(old, version=4, command_id="best-o3")
    assert sorted(seats_of(events)) == ["A-1-1", "A-1-2", "A-1-3", "A-2-1", "A-2-3"]


def test_an_unknown_section_is_refused() -> None:
    with pytest.raises(UnknownSectionError):
        when(given(show_created()), best("o1", 2, section="Z"), T0)


@pytest.mark.parametrize("quantity", [0, 51])
def test_best_available_quantity_is_1_to_50(quantity: int) -> None:
    with pytest.raises(InvalidQuantityError):
        when(given(show_created()), best("o1", quantity), T0)


def test_a_200000_seat_show_answers_best_available_from_the_front() -> None:
    arena = (Section("FLOOR", 100, 500, 9000), Section("UPPER", 300, 500, 4000))
    create = CreateShow("c", SHOW, "olga", "Arena", T0, 630, arena, ())
    show = evolve(None, decide(None, create, T0)[0])
    assert show.seats_total == 200_000
    for n in range(1, 4):
        for event in decide(show, best(f"o{n}", 8, section="UPPER"), T0):
            evolve(show, event)
    events = decide(show, best("o4", 8), T0)
    assert seats_of(events) == tuple(f"FLOOR-1-{n}" for n in range(247, 255))
    upper = [show.order(f"o{n}") for n in range(1, 4)]
    assert [order.seats[0] for order in upper if order] == [
        "UPPER-1-247",
        "UPPER-1-239",
        "UPPER-1-255",
    ]
