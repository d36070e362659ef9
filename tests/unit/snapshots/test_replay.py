"""How replay --verify words a difference, and which live changes it forgives: those past
the point of the journal the replay read."""

from __future__ import annotations

from dataclasses import replace

from domain.ticketing.events import Event, ShowCreated
from domain.ticketing.views import SeatMapView, fold_orders
from snapshots.orders import ShowListing
from snapshots.replay import describe_seatmap_differences, order_differences, replay_schema
from tests.unit.snapshots.journals import sale

JOURNAL = sale("show-a", 200, seed=4)


def listing_of(journal: list[Event], partition: int, offset: int) -> ShowListing:
    created = journal[0]
    assert isinstance(created, ShowCreated)
    return ShowListing.of(created, partition, offset)


def test_equal_seat_maps_have_no_difference() -> None:
    view = SeatMapView.from_events(JOURNAL)
    assert describe_seatmap_differences(view, view.copy()) == []


def test_seat_and_zone_differences_are_named() -> None:
    expected = SeatMapView.from_events(JOURNAL)
    actual = expected.copy()
    actual.seats["A-1-1"] = "sold" if expected.seats["A-1-1"] != "sold" else "available"
    floor = actual.zones["FLOOR"]
    actual.zones["FLOOR"] = replace(floor, held=floor.held + 1)

    found = describe_seatmap_differences(expected, actual)

    assert len(found) == 2
    assert "1 seat(s) differ: A-1-1" in found[0]
    assert "zone FLOOR" in found[1]


def test_a_tampered_order_is_a_difference_field_by_field() -> None:
    orders = fold_orders(JOURNAL)
    victim = next(o for o in orders.values() if o.status == "paid")
    live = {**orders, victim.order_id: replace(victim, status="cancelled")}

    found = order_differences(orders, live, {"show-a": len(JOURNAL)}, {}, {0: 10**6})

    assert found == [f"order {victim.order_id}: status live 'cancelled' != journal 'paid'"]


def test_missing_and_unknown_orders_are_differences() -> None:
    orders = fold_orders(JOURNAL)
    gone = next(iter(orders))
    stray = replace(orders[gone], order_id="o-stray")
    live = {**{k: v for k, v in orders.items() if k != gone}, "o-stray": stray}

    found = order_differences(orders, live, {"show-a": len(JOURNAL)}, {}, {0: 10**6})

    assert found == [
        f"order {gone}: journaled, missing from the live orders",
        "order o-stray: in the live orders, never held in the journal",
    ]


def test_live_orders_past_the_cut_have_moved_on_and_are_not_differences() -> None:
    cut = 120
    replayed = fold_orders(JOURNAL[:cut])
    live = fold_orders(JOURNAL)
    later_show = sale("show-b", 20, seed=5)
    live.update(fold_orders(later_show))
    listed = {"show-b": listing_of(later_show, partition=1, offset=500)}

    found = order_differences(replayed, live, {"show-a": cut}, listed, {0: 1000, 1: 400})

    assert found == []


def test_replay_schemas_are_named_by_time_and_never_collide() -> None:
    names = {replay_schema() for _ in range(20)}
    assert len(names) == 20
    assert all(name.startswith("replay_") for name in names)
