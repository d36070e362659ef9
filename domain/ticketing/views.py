"""Read models folded from a show's journal, shared by the processors' projections and the API.

`SeatMapView` is the live seat map: one status per seat and counts per zone, with `apply`
returning just what an event changed (the WebSocket delta). `OrderView` is one order as
its owner sees it. Both fold events only, so replaying the journal rebuilds them exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from domain.ticketing.errors import JournalError
from domain.ticketing.events import (
    ChargeRefunded,
    Event,
    HoldCancelled,
    HoldExpired,
    OrderPaid,
    OrderRefunded,
    PaymentAbandoned,
    PaymentRefused,
    PaymentStarted,
    QueueJoined,
    SeatlessEvent,
    SeatsHeld,
    ShowCreated,
    Ticket,
    WaitlistJoined,
    WaitlistLeft,
    WaitlistOffered,
)
from domain.ticketing.seating import seat_ids
from domain.ticketing.show import Order, OrderStatus, SeatStatus, Show


@dataclass(frozen=True, slots=True)
class ZoneCounts:
    capacity: int
    available: int
    held: int
    sold: int

    @classmethod
    def of(cls, capacity: int, held: int, sold: int) -> ZoneCounts:
        return cls(capacity=capacity, available=capacity - held - sold, held=held, sold=sold)


@dataclass(frozen=True, slots=True)
class SeatMapDelta:
    """The changes of events `from_version`+1 .. `version`: new seat statuses, new zone counts."""

    show_id: str
    from_version: int
    version: int
    seats: dict[str, SeatStatus]
    zones: dict[str, ZoneCounts]


def delta_between(old: SeatMapView, new: SeatMapView) -> SeatMapDelta:
    """The delta that takes a viewer of `old` to `new` (a later map of the same show): the
    seats and zones that differ, as `new` has them."""
    return SeatMapDelta(
        new.show_id,
        old.version,
        new.version,
        {seat: status for seat, status in new.seats.items() if old.seats.get(seat) != status},
        {name: counts for name, counts in new.zones.items() if old.zones.get(name) != counts},
    )


def merge_deltas(deltas: Iterable[SeatMapDelta]) -> SeatMapDelta:
    """One delta with the effect of `deltas` applied in order (for a slow viewer).

    The deltas must chain: each `from_version` is the previous `version`.
    """
    merged: SeatMapDelta | None = None
    for delta in deltas:
        if merged is None:
            merged = SeatMapDelta(
                delta.show_id,
                delta.from_version,
                delta.version,
                dict(delta.seats),
                dict(delta.zones),
            )
            continue
        if delta.from_version != merged.version or delta.show_id != merged.show_id:
            raise ValueError(
                f"delta {delta.from_version}->{delta.version} does not follow v{merged.version}"
            )
        merged.seats.update(delta.seats)
        merged.zones.update(delta.zones)
        merged = replace(merged, version=delta.version)
    if merged is None:
        raise ValueError("nothing to merge")
    return merged


class SeatMapView:
    """A show's seat map at `version`. `apply` changes it in place (one projection owns it)."""

    __slots__ = ("seats", "show_id", "version", "zones")

    def __init__(self) -> None:
        self.show_id = ""
        self.version = 0
        self.seats: dict[str, SeatStatus] = {}
        self.zones: dict[str, ZoneCounts] = {}

    @classmethod
    def from_events(cls, events: Iterable[Event]) -> SeatMapView:
        view = cls()
        for event in events:
            view.apply(event)
        return view

    @classmethod
    def from_show(cls, show: Show) -> SeatMapView:
        """The map as the decider's state has it (for checks, and to seed a projection)."""
        view = cls()
        view.show_id = show.show_id
        view.version = show.version
        view.seats = dict(show.seat_statuses())
        view.zones = {
            name: ZoneCounts.of(stock.capacity, stock.held, stock.sold)
            for name, stock in show.zone_stock.items()
        }
        return view

    def copy(self) -> SeatMapView:
        twin = SeatMapView()
        twin.show_id = self.show_id
        twin.version = self.version
        twin.seats = dict(self.seats)
        twin.zones = dict(self.zones)
        return twin

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SeatMapView):
            return NotImplemented
        return (self.show_id, self.version, self.seats, self.zones) == (
            other.show_id,
            other.version,
            other.seats,
            other.zones,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"SeatMapView({self.show_id!r}, version={self.version})"

    def apply(self, event: Event) -> SeatMapDelta | None:
        """Fold `event` in and return what it changed; None if it was already folded."""
        if event.version <= self.version:
            return None
        if event.version != self.version + 1 or (self.version and event.show_id != self.show_id):
            raise JournalError(
                f"seat map of {self.show_id!r} at v{self.version} cannot take "
                f"{type(event).__name__} v{event.version} of show {event.show_id}"
            )
        seats: dict[str, SeatStatus] = {}
        zones: dict[str, ZoneCounts] = {}
        match event:
            case ShowCreated():
                self.show_id = event.show_id
                seats = dict.fromkeys(seat_ids(event.sections), "available")
                zones = {zone.name: ZoneCounts.of(zone.capacity, 0, 0) for zone in event.zones}
            case SeatsHeld():
                seats, zones = self._change(event.seats, "held", event.zone, event.quantity, 0)
            case HoldCancelled() | HoldExpired():
                seats, zones = self._change(
                    event.seats, "available", event.zone, -event.quantity, 0
                )
            case OrderPaid():
                seats, zones = self._change(
                    event.seats, "sold", event.zone, -event.quantity, event.quantity
                )
            case OrderRefunded():
                seats, zones = self._change(
                    event.seats, "available", event.zone, 0, -event.quantity
                )
            case PaymentStarted() | PaymentAbandoned() | PaymentRefused() | ChargeRefunded():
                # Money only: the stream version moves, no seat or zone does.
                pass
            case WaitlistJoined() | WaitlistLeft() | WaitlistOffered() | QueueJoined():
                # The lines only: an offer's seats were taken by the SeatsHeld before it.
                pass
        self.seats.update(seats)
        self.zones.update(zones)
        self.version = event.version
        return SeatMapDelta(self.show_id, event.version - 1, event.version, seats, zones)

    def _change(
        self, seats: tuple[str, ...], status: SeatStatus, zone: str | None, held: int, sold: int
    ) -> tuple[dict[str, SeatStatus], dict[str, ZoneCounts]]:
        if zone is None:
            return dict.fromkeys(seats, status), {}
        counts = self.zones[zone]
        return {}, {zone: ZoneCounts.of(counts.capacity, counts.held + held, counts.sold + sold)}


@dataclass(frozen=True, slots=True)
class OrderView:
    """An order as its owner and the orders API see it; `version` is its last change."""

    order_id: str
    show_id: str
    user: str
    status: OrderStatus
    seats: tuple[str, ...]
    zone: str | None
    quantity: int
    expires_at: datetime
    total_cents: int
    tickets: tuple[Ticket, ...]
    held_at: datetime
    version: int

    @classmethod
    def of(cls, show_id: str, order: Order) -> OrderView:
        """The view of an order of the decider's state."""
        return cls(
            order_id=order.order_id,
            show_id=show_id,
            user=order.user,
            status=order.status,
            seats=order.seats,
            zone=order.zone,
            quantity=order.quantity,
            expires_at=order.expires_at,
            total_cents=order.total_cents,
            tickets=order.tickets,
            held_at=order.held_at,
            version=order.version,
        )


def apply_to_orders(orders: dict[str, OrderView], event: Event) -> OrderView | None:
    """Fold `event` into `orders` (in place) and return the order it changed, if any.

    Events an order has already seen (version <= its version) change nothing, so a
    projection may fold at-least-once deliveries blindly.
    """
    if isinstance(event, SeatsHeld):
        if event.order_id in orders:
            return None
        view = OrderView(
            order_id=event.order_id,
            show_id=event.show_id,
            user=event.user,
            status="held",
            seats=event.seats,
            zone=event.zone,
            quantity=event.quantity,
            expires_at=event.expires_at,
            total_cents=event.total_cents,
            tickets=(),
            held_at=event.held_at,
            version=event.version,
        )
    elif isinstance(event, SeatlessEvent):
        # No order changes as its owner sees it (a payment's bookkeeping is not shown).
        return None
    else:
        known = orders.get(event.order_id)
        if known is None:
            raise JournalError(f"{type(event).__name__} for unknown order {event.order_id}")
        if event.version <= known.version:
            return None
        match event:
            case HoldCancelled():
                view = replace(known, status="cancelled", version=event.version)
            case HoldExpired():
                view = replace(known, status="expired", version=event.version)
            case OrderPaid():
                view = replace(known, status="paid", tickets=event.tickets, version=event.version)
            case OrderRefunded():
                view = replace(known, status="refunded", version=event.version)
    orders[view.order_id] = view
    return view


def fold_orders(events: Iterable[Event]) -> dict[str, OrderView]:
    orders: dict[str, OrderView] = {}
    for event in events:
        apply_to_orders(orders, event)
    return orders
