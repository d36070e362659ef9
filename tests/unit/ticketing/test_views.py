"""Rules for the read models: the live seat map and the orders view."""

from __future__ import annotations

import pytest

from domain.ticketing.errors import JournalError
from domain.ticketing.events import PaymentRefused
from domain.ticketing.views import (
    OrderView,
    SeatMapDelta,
    SeatMapView,
    ZoneCounts,
    apply_to_orders,
    delta_between,
    fold_orders,
    merge_deltas,
)

from .scenarios import (
    HOLD,
    SHOW,
    T0,
    given,
    hold_expired,
    order_paid,
    order_refunded,
    seats_held,
    show_created,
    zone_held,
)

HELD = seats_held("o1", "A-1-1", "A-1-2", version=2)
ZONE = zone_held("z1", 2, version=3)
PAID = order_paid(HELD, version=4, command_id="pay", charge_id="ch", at=T0)
REFUSED = PaymentRefused(SHOW, 5, "pay-z", "z1", "alice", "ch-z", 6000, "order_not_held", "held")
EXPIRED = hold_expired(ZONE, version=6, command_id="tick")
REFUNDED = order_refunded(HELD, version=7, command_id="refund", charge_id="ch")
JOURNAL = (show_created(), HELD, ZONE, PAID, REFUSED, EXPIRED, REFUNDED)


def test_the_seat_map_starts_all_available() -> None:
    view = SeatMapView.from_events([show_created()])
    assert view.version == 1
    assert set(view.seats.values()) == {"available"}
    assert len(view.seats) == 3 * 4 + 2 * 3
    assert view.zones == {"FLOOR": ZoneCounts(capacity=5, available=5, held=0, sold=0)}


def test_each_event_yields_the_delta_of_what_it_changed() -> None:
    view = SeatMapView.from_events([show_created()])
    deltas = [view.apply(event) for event in JOURNAL[1:]]
    assert deltas == [
        SeatMapDelta(SHOW, 1, 2, {"A-1-1": "held", "A-1-2": "held"}, {}),
        SeatMapDelta(SHOW, 2, 3, {}, {"FLOOR": ZoneCounts(5, 3, 2, 0)}),
        SeatMapDelta(SHOW, 3, 4, {"A-1-1": "sold", "A-1-2": "sold"}, {}),
        SeatMapDelta(SHOW, 4, 5, {}, {}),
        SeatMapDelta(SHOW, 5, 6, {}, {"FLOOR": ZoneCounts(5, 5, 0, 0)}),
        SeatMapDelta(SHOW, 6, 7, {"A-1-1": "available", "A-1-2": "available"}, {}),
    ]


def test_the_seat_map_folded_from_the_journal_matches_the_state() -> None:
    for end in range(1, len(JOURNAL) + 1):
        assert SeatMapView.from_events(JOURNAL[:end]) == SeatMapView.from_show(
            given(*JOURNAL[:end])
        )


def test_an_event_already_in_the_seat_map_yields_no_delta() -> None:
    view = SeatMapView.from_events(JOURNAL[:3])
    assert view.apply(HELD) is None
    assert view.version == 3


def test_the_seat_map_refuses_a_gap() -> None:
    view = SeatMapView.from_events(JOURNAL[:2])
    with pytest.raises(JournalError):
        view.apply(PAID)


def test_merged_deltas_equal_applying_them_in_turn() -> None:
    view = SeatMapView.from_events([show_created()])
    deltas = [view.apply(event) for event in JOURNAL[1:]]
    merged = merge_deltas(delta for delta in deltas if delta is not None)
    assert (merged.from_version, merged.version) == (1, 7)
    assert merged.seats == {"A-1-1": "available", "A-1-2": "available"}
    assert merged.zones == {"FLOOR": ZoneCounts(5, 5, 0, 0)}
    replayed = SeatMapView.from_events([show_created()])
    replayed.seats.update(merged.seats)
    replayed.zones.update(merged.zones)
    replayed.version = merged.version
    assert replayed == view


def test_the_delta_between_two_maps_takes_a_viewer_from_one_to_the_other() -> None:
    # A viewer resuming through a process that kept no deltas: compare the maps instead.
    for cut in range(1, len(JOURNAL) + 1):
        old = SeatMapView.from_events(JOURNAL[:cut])
        new = SeatMapView.from_events(JOURNAL)
        delta = delta_between(old, new)
        assert (delta.from_version, delta.version) == (old.version, new.version)
        old.seats.update(delta.seats)
        old.zones.update(delta.zones)
        old.version = delta.version
        assert old == new
    same = SeatMapView.from_events(JOURNAL)
    assert delta_between(same, same.copy()).seats == {}


def test_deltas_merge_only_when_they_chain() -> None:
    first = SeatMapDelta(SHOW, 1, 2, {"A-1-1": "held"}, {})
    third = SeatMapDelta(SHOW, 3, 4, {"A-1-1": "sold"}, {})
    with pytest.raises(ValueError, match="does not follow"):
        merge_deltas([first, third])
    with pytest.raises(ValueError, match="nothing"):
        merge_deltas([])
    assert merge_deltas([first]) == first


def test_orders_fold_through_their_lifecycle() -> None:
    orders = fold_orders(JOURNAL)
    assert orders["o1"].status == "refunded"
    assert orders["o1"].tickets == PAID.tickets
    assert orders["o1"].version == 7
    assert orders["z1"].status == "expired"
    assert orders["z1"].zone == "FLOOR"
    assert orders["z1"].quantity == 2


def test_the_orders_folded_from_the_journal_match_the_state() -> None:
    for end in range(1, len(JOURNAL) + 1):
        show = given(*JOURNAL[:end])
        assert fold_orders(JOURNAL[:end]) == {
            order.order_id: OrderView.of(SHOW, order) for order in show.orders()
        }


def test_an_order_event_returns_the_changed_order_once() -> None:
    orders = fold_orders(JOURNAL[:3])
    changed = apply_to_orders(orders, PAID)
    assert changed is not None
    assert changed.status == "paid"
    assert apply_to_orders(orders, PAID) is None
    assert apply_to_orders(orders, REFUSED) is None
    assert apply_to_orders(orders, show_created()) is None


def test_the_order_view_shows_when_the_hold_runs_out() -> None:
    view = fold_orders(JOURNAL[:2])["o1"]
    assert view.expires_at == T0 + HOLD
    assert view.total_cents == 10_000
