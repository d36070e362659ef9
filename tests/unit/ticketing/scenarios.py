"""Given/when/then vocabulary for ticketing rules: a small show and event builders.

The show: section A (3 rows x 4 seats, 50.00), section B (2 rows x 3 seats, 25.00) and
zone FLOOR (5 places, 30.00); holds last 600 s.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from domain.ticketing.commands import Command
from domain.ticketing.decider import decide, fold
from domain.ticketing.events import (
    Event,
    HoldCancelled,
    HoldExpired,
    OrderPaid,
    OrderRefunded,
    SeatsHeld,
    ShowCreated,
)
from domain.ticketing.show import Show
from domain.ticketing.tickets import issue_tickets
from domain.ticketing.venue import Section, Zone

SHOW = "show-1"
T0 = datetime(2030, 5, 1, 18, 0, tzinfo=UTC)
HOLD = timedelta(seconds=600)
SECTIONS = (Section("A", 3, 4, 5000), Section("B", 2, 3, 2500))
ZONES = (Zone("FLOOR", 5, 3000),)
PRICES = {"A": 5000, "B": 2500, "FLOOR": 3000}

_Kind = TypeVar("_Kind")


def seconds(n: float) -> timedelta:
    return timedelta(seconds=n)


def show_created(
    sections: tuple[Section, ...] = SECTIONS, zones: tuple[Zone, ...] = ZONES
) -> ShowCreated:
    return ShowCreated(
        show_id=SHOW,
        version=1,
        command_id="create",
        organizer="olga",
        name="Night at the Opera",
        starts_at=T0 + timedelta(days=30),
        hold_seconds=int(HOLD.total_seconds()),
        sections=sections,
        zones=zones,
        created_at=T0 - timedelta(days=1),
    )


def seats_held(
    order_id: str,
    *seats: str,
    version: int,
    user: str = "alice",
    at: datetime = T0,
    command_id: str | None = None,
    total: int | None = None,
) -> SeatsHeld:
    if total is None:
        total = sum(PRICES[seat.split("-")[0]] for seat in seats)
    return SeatsHeld(
        show_id=SHOW,
        version=version,
        command_id=command_id or f"hold-{order_id}",
        order_id=order_id,
        user=user,
        seats=seats,
        zone=None,
        quantity=len(seats),
        total_cents=total,
        held_at=at,
        expires_at=at + HOLD,
    )


def zone_held(
    order_id: str,
    quantity: int,
    *,
    version: int,
    user: str = "alice",
    at: datetime = T0,
    command_id: str | None = None,
) -> SeatsHeld:
    return SeatsHeld(
        show_id=SHOW,
        version=version,
        command_id=command_id or f"hold-{order_id}",
        order_id=order_id,
        user=user,
        seats=(),
        zone="FLOOR",
        quantity=quantity,
        total_cents=PRICES["FLOOR"] * quantity,
        held_at=at,
        expires_at=at + HOLD,
    )


def hold_expired(held: SeatsHeld, *, version: int, command_id: str) -> HoldExpired:
    return HoldExpired(
        show_id=SHOW,
        version=version,
        command_id=command_id,
        order_id=held.order_id,
        user=held.user,
        seats=held.seats,
        zone=held.zone,
        quantity=held.quantity,
        expires_at=held.expires_at,
    )


def hold_cancelled(held: SeatsHeld, *, version: int, command_id: str) -> HoldCancelled:
    return HoldCancelled(
        show_id=SHOW,
        version=version,
        command_id=command_id,
        order_id=held.order_id,
        user=held.user,
        seats=held.seats,
        zone=held.zone,
        quantity=held.quantity,
    )


def order_paid(
    held: SeatsHeld, *, version: int, command_id: str, charge_id: str, at: datetime
) -> OrderPaid:
    return OrderPaid(
        show_id=SHOW,
        version=version,
        command_id=command_id,
        order_id=held.order_id,
        user=held.user,
        seats=held.seats,
        zone=held.zone,
        quantity=held.quantity,
        charge_id=charge_id,
        amount_cents=held.total_cents,
        tickets=issue_tickets(held.order_id, held.seats, held.zone, held.quantity),
        paid_at=at,
    )


def order_refunded(
    held: SeatsHeld, *, version: int, command_id: str, charge_id: str
) -> OrderRefunded:
    return OrderRefunded(
        show_id=SHOW,
        version=version,
        command_id=command_id,
        order_id=held.order_id,
        user=held.user,
        seats=held.seats,
        zone=held.zone,
        quantity=held.quantity,
        charge_id=charge_id,
        amount_cents=held.total_cents,
    )


def given(*events: Event) -> Show:
    """The show after `events` (the journal so far), starting from ShowCreated."""
    show = fold(events)
    assert show is not None
    return show


def last(events: Sequence[Event], kind: type[_Kind]) -> _Kind:
    """The decisive (last) event of a decision, checked to be a `kind`."""
    assert events, "expected events, got none"
    event = events[-1]
    assert isinstance(event, kind), f"expected {kind.__name__}, got {event!r}"
    return event


def only(events: Sequence[Event], kind: type[_Kind]) -> _Kind:
    assert len(events) == 1, f"expected one event, got {events!r}"
    return last(events, kind)


def when(show: Show | None, command: Command, now: datetime) -> list[Event]:
    """Decide `command`, checking the rule every decision keeps: the state is untouched."""
    before = None if show is None else show.copy()
    try:
        return decide(show, command, now)
    finally:
        assert show == before, "decide must never change the state"
