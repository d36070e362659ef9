"""Deciding holds: placing them, cancelling them, and expiring the ones that ran out.

Time is judged by timestamps, not sweepers: a hold with `expires_at <= now` is free for
everyone else even before its HoldExpired is journaled. Whenever a decision hands such a
hold's seats or places to someone else, it journals that HoldExpired first, so the journal
never shows one seat in two live orders.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from domain.ticketing.commands import CancelHold, ExpireHolds, PlaceHold
from domain.ticketing.errors import (
    DuplicateSeatError,
    InvalidHoldError,
    InvalidQuantityError,
    NotOrderOwnerError,
    OrderExistsError,
    OrderNotFoundError,
    OrderNotHeldError,
    SeatsUnavailableError,
    TooManySeatsError,
    UnknownSeatError,
    UnknownSectionError,
    UnknownZoneError,
    ZoneSoldOutError,
)
from domain.ticketing.events import Event, HoldCancelled, HoldExpired, SeatsHeld
from domain.ticketing.show import Order, Show
from domain.ticketing.venue import MAX_SEATS_PER_HOLD


def owned_order(show: Show, order_id: str, user: str) -> Order:
    order = show.order(order_id)
    if order is None:
        raise OrderNotFoundError(order_id=order_id)
    if order.user != user:
        raise NotOrderOwnerError(order_id=order_id)
    return order


def expiry(order: Order, show_id: str, command_id: str, version: int) -> HoldExpired:
    return HoldExpired(
        show_id=show_id,
        version=version,
        command_id=command_id,
        order_id=order.order_id,
        user=order.user,
        seats=order.seats,
        zone=order.zone,
        quantity=order.quantity,
        expires_at=order.expires_at,
    )


def _check_quantity(quantity: int) -> None:
    if not 1 <= quantity <= MAX_SEATS_PER_HOLD:
        raise InvalidQuantityError(quantity=quantity)


def _choose_seats(show: Show, wanted: tuple[str, ...], now: datetime) -> tuple[list[int], set[str]]:
    """Offsets of explicitly requested seats, and the lapsed orders they come from."""
    if len(wanted) > MAX_SEATS_PER_HOLD:
        raise TooManySeatsError(requested=len(wanted), limit=MAX_SEATS_PER_HOLD)
    if len(set(wanted)) != len(wanted):
        repeated = tuple(seat for seat, n in Counter(wanted).items() if n > 1)
        raise DuplicateSeatError(seats=repeated)
    located = [show.grid.locate(seat) for seat in wanted]
    unknown = tuple(seat for seat, offset in zip(wanted, located, strict=True) if offset is None)
    if unknown:
        raise UnknownSeatError(seats=unknown)
    offsets = [offset for offset in located if offset is not None]
    lapsed: set[str] = set()
    unavailable: list[str] = []
    for seat, offset in zip(wanted, offsets, strict=True):
        owner = show.grid.owner(offset)
        if owner is None:
            continue
        holder = show.order(owner)
        if holder is not None and holder.lapsed(now):
            lapsed.add(owner)
        else:
            unavailable.append(seat)
    if unavailable:
        raise SeatsUnavailableError(seats=tuple(unavailable))
    return offsets, lapsed


def _choose_best(
    show: Show, quantity: int, section_name: str | None, now: datetime
) -> tuple[list[int], set[str]]:
    _check_quantity(quantity)
    section = None
    if section_name is not None:
        section = show.grid.section_index(section_name)
        if section is None:
            raise UnknownSectionError(section=section_name)
    also_free = [
        offset for order in show.lapsed_holds(now) if order.zone is None for offset in order.offsets
    ]
    offsets = show.grid.best_available(quantity, section, also_free)
    lapsed = {owner for offset in offsets if (owner := show.grid.owner(offset)) is not None}
    return offsets, lapsed


def _make_zone_room(show: Show, zone: str, quantity: int, now: datetime) -> set[str]:
    """The lapsed orders of `zone` to expire (soonest-expired first) so `quantity` fits."""
    _check_quantity(quantity)
    stock = show.zone_stock.get(zone)
    if stock is None:
        raise UnknownZoneError(zone=zone)
    lapsed = [order for order in show.lapsed_holds(now) if order.zone == zone]
    room = stock.available
    reclaimable = room + sum(order.quantity for order in lapsed)
    if quantity > reclaimable:
        raise ZoneSoldOutError(zone=zone, requested=quantity, available=reclaimable)
    freed: set[str] = set()
    for order in lapsed:
        if room >= quantity:
            break
        freed.add(order.order_id)
        room += order.quantity
    return freed


def _hold_mode(command: PlaceHold) -> str:
    modes = [
        name
        for name, used in (
            ("seats", bool(command.seats)),
            ("zone", command.zone is not None),
            ("best_available", command.best_available),
        )
        if used
    ]
    if len(modes) != 1:
        raise InvalidHoldError(reason="ask for exactly one of seats, zone, best_available")
    if command.section is not None and modes[0] != "best_available":
        raise InvalidHoldError(reason="section only narrows best_available")
    if modes[0] == "seats" and command.quantity:
        raise InvalidHoldError(reason="quantity does not go with explicit seats")
    return modes[0]


def place_hold(show: Show, command: PlaceHold, now: datetime) -> list[Event]:
    """SeatsHeld, preceded by HoldExpired for each lapsed hold it takes from."""
    mode = _hold_mode(command)
    if show.order(command.order_id) is not None:
        raise OrderExistsError(order_id=command.order_id)
    seats: tuple[str, ...] = ()
    if command.zone is not None:
        lapsed = _make_zone_room(show, command.zone, command.quantity, now)
        quantity = command.quantity
        total = show.zone_stock[command.zone].price_cents * quantity
    else:
        if mode == "seats":
            offsets, lapsed = _choose_seats(show, command.seats, now)
            seats = command.seats
        else:
            offsets, lapsed = _choose_best(show, command.quantity, command.section, now)
            seats = tuple(show.grid.seat_id(offset) for offset in offsets)
        quantity = len(seats)
        total = sum(show.grid.price_of(offset) for offset in offsets)

    expired = sorted(
        (order for order_id in lapsed if (order := show.order(order_id)) is not None),
        key=lambda order: (order.expires_at, order.held_version),
    )
    events: list[Event] = [
        expiry(order, show.show_id, command.command_id, show.version + n)
        for n, order in enumerate(expired, start=1)
    ]
    events.append(
        SeatsHeld(
            show_id=show.show_id,
            version=show.version + len(events) + 1,
            command_id=command.command_id,
            order_id=command.order_id,
            user=command.user,
            seats=seats,
            zone=command.zone,
            quantity=quantity,
            total_cents=total,
            held_at=now,
            expires_at=now + show.hold_for,
        )
    )
    return events


def cancel_hold(show: Show, command: CancelHold, now: datetime) -> list[Event]:
    """A hold can be cancelled only while it is still running; a lapsed one is not held."""
    order = owned_order(show, command.order_id, command.user)
    if order.status != "held" or order.lapsed(now):
        status = "expired" if order.status == "held" else order.status
        raise OrderNotHeldError(order_id=order.order_id, status=status)
    return [
        HoldCancelled(
            show_id=show.show_id,
            version=show.version + 1,
            command_id=command.command_id,
            order_id=order.order_id,
            user=order.user,
            seats=order.seats,
            zone=order.zone,
            quantity=order.quantity,
        )
    ]


def expire_holds(show: Show, command: ExpireHolds, now: datetime) -> list[Event]:
    """HoldExpired for every hold that ran out by `now`; nothing when none did."""
    return [
        expiry(order, show.show_id, command.command_id, show.version + n)
        for n, order in enumerate(show.lapsed_holds(now), start=1)
    ]
