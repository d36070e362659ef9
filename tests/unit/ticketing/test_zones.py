"""Rules for general-admission zones: counts, not seats."""

from __future__ import annotations

import pytest

from domain.ticketing.commands import PlaceHold
from domain.ticketing.errors import InvalidQuantityError, UnknownZoneError, ZoneSoldOutError
from domain.ticketing.events import SeatsHeld

from .scenarios import (
    HOLD,
    SHOW,
    T0,
    given,
    hold_expired,
    only,
    order_paid,
    show_created,
    when,
    zone_held,
)


def hold(order_id: str, quantity: int, zone: str = "FLOOR") -> PlaceHold:
    return PlaceHold.of_zone(
        command_id=f"hold-{order_id}",
        show_id=SHOW,
        user="alice",
        order_id=order_id,
        zone=zone,
        quantity=quantity,
    )


def test_zone_places_are_held_by_count_at_the_zone_price() -> None:
    events = when(given(show_created()), hold("o1", 3), T0)
    assert events == [zone_held("o1", 3, version=2)]
    assert only(events, SeatsHeld).total_cents == 3 * 3000


def test_a_zone_sells_out_when_held_and_sold_places_fill_it() -> None:
    first = zone_held("o1", 2, version=2)
    show = given(
        show_created(),
        first,
        order_paid(first, version=3, command_id="pay", charge_id="ch", at=T0),
        zone_held("o2", 2, version=4),
    )
    assert only(when(show, hold("o3", 1), T0), SeatsHeld).quantity == 1
    with pytest.raises(ZoneSoldOutError) as rejected:
        when(show, hold("o3", 2), T0)
    assert (rejected.value.requested, rejected.value.available) == (2, 1)


def test_a_lapsed_zone_hold_makes_room_and_is_expired_first() -> None:
    oldest = zone_held("o1", 2, version=2)
    newer = zone_held("o2", 2, version=3, at=T0 + HOLD / 2)
    show = given(show_created(), oldest, newer)
    now = T0 + HOLD * 2  # both lapsed; only as many are expired as the new hold needs
    events = when(show, hold("o3", 3), now)
    assert events == [
        hold_expired(oldest, version=4, command_id="hold-o3"),
        zone_held("o3", 3, version=5, at=now),
    ]


def test_lapsed_holds_count_as_room_only_once_their_time_is_up() -> None:
    show = given(show_created(), zone_held("o1", 4, version=2))
    with pytest.raises(ZoneSoldOutError):
        when(show, hold("o2", 2), T0 + HOLD / 2)


def test_a_zone_the_show_does_not_have_is_unknown() -> None:
    with pytest.raises(UnknownZoneError):
        when(given(show_created()), hold("o1", 1, zone="BALCONY"), T0)


@pytest.mark.parametrize("quantity", [0, -1, 51])
def test_a_zone_quantity_is_1_to_50(quantity: int) -> None:
    with pytest.raises(InvalidQuantityError):
        when(given(show_created()), hold("o1", quantity), T0)
