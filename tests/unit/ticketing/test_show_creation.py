"""Rules for putting a show on sale."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from domain.ticketing.commands import CancelHold, CreateShow, ExpireHolds
from domain.ticketing.errors import InvalidShowError, ShowExistsError, ShowNotFoundError
from domain.ticketing.events import ShowCreated
from domain.ticketing.venue import Section, Zone

from .scenarios import HOLD, SECTIONS, SHOW, T0, ZONES, given, only, show_created, when

CREATE = CreateShow(
    command_id="create",
    show_id=SHOW,
    organizer="olga",
    name="Night at the Opera",
    starts_at=T0 + timedelta(days=30),
    hold_seconds=int(HOLD.total_seconds()),
    sections=SECTIONS,
    zones=ZONES,
)
CREATED_AT = T0 - timedelta(days=1)


def test_creating_a_show_journals_it_as_version_1() -> None:
    assert when(None, CREATE, CREATED_AT) == [show_created()]


def test_a_show_starts_with_every_seat_and_place_available() -> None:
    show = given(show_created())
    assert show.version == 1
    assert show.seats_total == show.seats_available == 3 * 4 + 2 * 3 + 5
    assert dict(show.seat_statuses())["B-2-3"] == "available"


def test_start_time_is_stored_in_utc() -> None:
    paris = timezone(timedelta(hours=2))
    local = replace(CREATE, starts_at=datetime(2030, 6, 1, 20, 0, tzinfo=paris))
    created = only(when(None, local, CREATED_AT), ShowCreated)
    assert created.starts_at.utcoffset() == timedelta(0)
    assert created.starts_at == local.starts_at


def test_a_show_id_can_be_created_only_once() -> None:
    with pytest.raises(ShowExistsError):
        when(given(show_created()), replace(CREATE, command_id="create-again"), T0)


def test_commands_for_a_show_that_does_not_exist_are_show_not_found() -> None:
    with pytest.raises(ShowNotFoundError):
        when(None, ExpireHolds(command_id="tick", show_id=SHOW), T0)
    with pytest.raises(ShowNotFoundError):
        when(
            given(show_created()),
            CancelHold(command_id="c", show_id="other-show", user="alice", order_id="o1"),
            T0,
        )


A = Section("A", 1, 1, 100)
BAD_LAYOUTS = {
    "no sections and no zones": ((), ()),
    "lowercase name": ((Section("a", 1, 1, 100),), ()),
    "name too long": ((Section("ABCDEFGHI", 1, 1, 100),), ()),
    "empty name": ((Section("", 1, 1, 100),), ()),
    "dash in name": ((Section("A-1", 1, 1, 100),), ()),
    "duplicate section": ((A, A), ()),
    "section and zone share a name": ((A,), (Zone("A", 10, 100),)),
    "zero rows": ((Section("A", 0, 10, 100),), ()),
    "zero seats per row": ((Section("A", 10, 0, 100),), ()),
    "zero capacity": ((), (Zone("FLOOR", 0, 100),)),
    "negative price": ((Section("A", 1, 1, -1),), ()),
    "negative zone price": ((), (Zone("FLOOR", 1, -1),)),
    "over 200,000 seats": ((Section("A", 1000, 150, 1), Section("B", 1000, 51, 1)), ()),
    "over 50 zones": ((), tuple(Zone(f"Z{n}", 1, 1) for n in range(51))),
}


@pytest.mark.parametrize("layout", BAD_LAYOUTS.values(), ids=BAD_LAYOUTS.keys())
def test_a_bad_layout_is_an_invalid_show(
    layout: tuple[tuple[Section, ...], tuple[Zone, ...]],
) -> None:
    sections, zones = layout
    with pytest.raises(InvalidShowError):
        when(None, replace(CREATE, sections=sections, zones=zones), T0)


def test_exactly_200000_seats_and_50_zones_are_allowed() -> None:
    sections = (Section("A", 1000, 150, 1), Section("B", 1000, 50, 1))
    zones = tuple(Zone(f"Z{n}", 1, 1) for n in range(50))
    created = only(when(None, replace(CREATE, sections=sections, zones=zones), T0), ShowCreated)
    assert given(created).seats_total == 200_000 + 50


@pytest.mark.parametrize(
    "change",
    [
        {"hold_seconds": 0},
        {"name": ""},
        {"name": "   "},
        {"starts_at": datetime(2030, 6, 1, 20, 0)},
    ],
    ids=["hold_seconds below 1", "empty name", "blank name", "naive start time"],
)
def test_other_bad_show_settings_are_an_invalid_show(change: dict[str, object]) -> None:
    with pytest.raises(InvalidShowError):
        when(None, replace(CREATE, **change), T0)  # type: ignore[arg-type]
