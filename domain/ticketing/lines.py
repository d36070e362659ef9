"""Deciding the lines: joining and leaving the waitlist, serving it, and the waiting room.

Serving the line: whenever places are freed (a cancel, a lapsed hold, a refund, a late
payment on a lapsed hold), the decider walks the waitlist before anything else may take
them. It gives the first waiting entry (in line order) that the free places can satisfy
its offer (best available within its section, its zone, or anywhere), then looks again
with what is left, until no waiting entry fits. An offer is a SeatsHeld of the entry's
user under the entry's `offer_order_id`, followed by WaitlistOffered.

A lapsed hold counts as freed at decision time: a serving pass counts every lapsed hold's
places as free, and when it makes offers it journals their HoldExpired first, so no timer
race lets anyone else take a place the line could use.

The invariant this keeps, checked by the properties: after every decision, no waiting
entry fits the free places as journaled. Whether an entry fits depends only on counts (best
available never fails while the area has enough free seats), so it is cheap to check and
monotone: taking places never makes an entry fit.

"Anywhere" means best available among the numbered seats if enough are free, else the
first zone (in declared order) with enough places; it never mixes seats and zones.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from domain.ticketing.commands import JoinQueue, JoinWaitlist, LeaveWaitlist
from domain.ticketing.errors import (
    AlreadyInLineError,
    AlreadyInQueueError,
    EntryExistsError,
    InvalidQuantityError,
    InvalidWaitlistError,
    NoQueueError,
    NotInLineError,
    NotWaitingError,
    OrderExistsError,
    QueuePassRequiredError,
    SeatsAvailableError,
    UnknownSectionError,
    UnknownZoneError,
)
from domain.ticketing.events import (
    Event,
    HoldCancelled,
    HoldExpired,
    OrderRefunded,
    QueueJoined,
    SeatsHeld,
    WaitlistJoined,
    WaitlistLeft,
    WaitlistOffered,
)
from domain.ticketing.holds import expiry
from domain.ticketing.show import Order, Show
from domain.ticketing.waitlist import ANYWHERE, MAX_WAITLIST_QUANTITY, WaitEntry


def _rfc3339(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


class Stock:
    """The free places as one decision sees them: as journaled, plus places it frees
    (`release`), minus places it gives away (`take`). Never touches the show."""

    __slots__ = ("_freed", "_taken", "section_free", "show", "zone_free")

    def __init__(self, show: Show) -> None:
        self.show = show
        self.section_free = [show.grid.section_free(i) for i in range(len(show.sections))]
        self.zone_free = {name: stock.available for name, stock in show.zone_stock.items()}
        # Taken seats counted free, and free seats counted taken (disjoint).
        self._freed: set[int] = set()
        self._taken: set[int] = set()

    def release(self, order: Order) -> None:
        """The order's places (held or sold) count as free."""
        if order.zone is not None:
            self.zone_free[order.zone] += order.quantity
            return
        for offset in order.offsets:
            self._freed.add(offset)
            self.section_free[self.show.grid.section_of(offset)] += 1

    def _take_seats(self, offsets: Iterable[int]) -> None:
        for offset in offsets:
            if offset in self._freed:
                self._freed.remove(offset)
            else:
                self._taken.add(offset)
            self.section_free[self.show.grid.section_of(offset)] -= 1

    def room(self, area: str) -> int:
        """The most places one request for `area` could get now."""
        if area == ANYWHERE:
            return max(sum(self.section_free), max(self.zone_free.values(), default=0))
        index = self.show.grid.section_index(area)
        return self.section_free[index] if index is not None else self.zone_free[area]

    def free_in(self, area: str) -> int:
        """Free places in `area` (anywhere: all seats and zone places), for messages."""
        if area == ANYWHERE:
            return sum(self.section_free) + sum(self.zone_free.values())
        return self.room(area)

    def take_for(self, entry: WaitEntry) -> tuple[tuple[str, ...], str | None, int]:
        """Give `entry` its places: (seats, zone, total_cents). It must fit."""
        grid = self.show.grid
        quantity = entry.quantity
        zone = entry.zone
        if entry.section is None and zone is None and sum(self.section_free) < quantity:
            zone = next(name for name, free in self.zone_free.items() if free >= quantity)
        if zone is not None:
            self.zone_free[zone] -= quantity
            return (), zone, self.show.zone_stock[zone].price_cents * quantity
        section = None if entry.section is None else grid.section_index(entry.section)
        offsets = grid.best_available(quantity, section, self._freed, self._taken)
        self._take_seats(offsets)
        seats = tuple(grid.seat_id(offset) for offset in offsets)
        return seats, None, sum(grid.price_of(offset) for offset in offsets)


def first_fit(show: Show, stock: Stock, skip: set[int]) -> WaitEntry | None:
    """The earliest waiting entry `stock` can satisfy, passing over the seqs in `skip`."""
    line = show.line
    best: int | None = None
    rooms: dict[str, int] = {}
    for area, quantity, seqs in line.files():
        room = rooms.get(area)
        if room is None:
            room = rooms[area] = stock.room(area)
        if quantity > room:
            continue
        for seq in seqs:
            if seq in skip or not line.is_waiting(seq):
                continue
            if best is None or seq < best:
                best = seq
            break
    return None if best is None else line.at_seq(best)


def serve_line(
    show: Show, stock: Stock, now: datetime, command_id: str, version: int
) -> list[Event]:
    """Offers to the waiting entries `stock` satisfies, first fit in line order, as events
    from `version` + 1 on. Offers within one pass go in increasing line order: a pass only
    shrinks the stock, so whoever did not fit before the first offer never fits later."""
    events: list[Event] = []
    offered: set[int] = set()
    while (entry := first_fit(show, stock, offered)) is not None:
        seats, zone, total = stock.take_for(entry)
        expires_at = now + show.hold_for
        at = version + len(events)
        events.append(
            SeatsHeld(
                show_id=show.show_id,
                version=at + 1,
                command_id=command_id,
                order_id=entry.offer_order_id,
                user=entry.user,
                seats=seats,
                zone=zone,
                quantity=entry.quantity,
                total_cents=total,
                held_at=now,
                expires_at=expires_at,
            )
        )
        events.append(
            WaitlistOffered(
                show_id=show.show_id,
                version=at + 2,
                command_id=command_id,
                entry_id=entry.entry_id,
                user=entry.user,
                order_id=entry.offer_order_id,
                seats=seats,
                zone=zone,
                quantity=entry.quantity,
                total_cents=total,
                expires_at=expires_at,
            )
        )
        offered.add(entry.seq)
    return events


def lapsed_offers(show: Show, now: datetime, command_id: str) -> list[Event]:
    """HoldExpired for every lapsed hold, then the offers their places make, when there are
    any offers to make; nothing otherwise (the lapsed holds then wait for the timer or for
    whoever takes their places)."""
    if not show.line.waiting:
        return []
    lapsed = show.lapsed_holds(now)
    if not lapsed:
        return []
    stock = Stock(show)
    for order in lapsed:
        stock.release(order)
    offers = serve_line(show, stock, now, command_id, show.version + len(lapsed))
    if not offers:
        return []
    expiries: list[Event] = [
        expiry(order, show.show_id, command_id, show.version + n)
        for n, order in enumerate(lapsed, start=1)
    ]
    return expiries + offers


def then_serve(show: Show, events: list[Event], now: datetime, command_id: str) -> list[Event]:
    """`events` (a decision that may free places), followed by serving the line with what
    they free and with every lapsed hold (whose HoldExpired then joins them)."""
    if not show.line.waiting:
        return events
    stock = Stock(show)
    ended: set[str] = set()
    for event in events:
        if isinstance(event, HoldCancelled | HoldExpired | OrderRefunded):
            order = show.order(event.order_id)
            assert order is not None  # the decision was about an order of this show
            stock.release(order)
            ended.add(event.order_id)
    lapsed = [order for order in show.lapsed_holds(now) if order.order_id not in ended]
    for order in lapsed:
        stock.release(order)
    base = show.version + len(events)
    offers = serve_line(show, stock, now, command_id, base + len(lapsed))
    if not offers:
        return events
    expiries: list[Event] = [
        expiry(order, show.show_id, command_id, base + n) for n, order in enumerate(lapsed, 1)
    ]
    return [*events, *expiries, *offers]


# -- the waiting room -------------------------------------------------------------------------


def require_pass(show: Show, user: str, now: datetime) -> None:
    """On a queued show, only a fan holding a valid pass may hold or join the waitlist."""
    if show.room is None:
        return
    place = show.room.place(user, now)
    if place is None:
        raise QueuePassRequiredError(status="not_in_queue", position=None, admitted_at=None)
    if not place.has_pass:
        raise QueuePassRequiredError(
            status=place.status, position=place.position, admitted_at=_rfc3339(place.admitted_at)
        )


def join_queue(show: Show, command: JoinQueue, now: datetime) -> list[Event]:
    room = show.room
    if room is None:
        raise NoQueueError(show_id=show.show_id)
    place = room.place(command.user, now)
    if place is not None:
        raise AlreadyInQueueError(
            status=place.status,
            position=place.position,
            admitted_at=_rfc3339(place.admitted_at),
            pass_expires_at=_rfc3339(place.pass_expires_at),
        )
    # Early only before opens_at and before anyone joined late: once late positions are
    # handed out they never move, whatever a skewed clock says afterwards.
    early = now < room.spec.opens_at and not room.early_closed
    return [
        QueueJoined(
            show_id=show.show_id,
            version=show.version + 1,
            command_id=command.command_id,
            user=command.user,
            early=early,
            position=None if early else room.early_count + room.late_count + 1,
            joined_at=now,
        )
    ]


# -- the waitlist -----------------------------------------------------------------------------


def _check_request(show: Show, command: JoinWaitlist) -> str:
    """The area the request asks for, after checking it could ever be satisfied."""
    if not 1 <= command.quantity <= MAX_WAITLIST_QUANTITY:
        raise InvalidQuantityError(quantity=command.quantity)
    if command.section is not None and command.zone is not None:
        raise InvalidWaitlistError(reason="ask for a section, a zone or neither, not both")
    if command.section is not None:
        index = show.grid.section_index(command.section)
        if index is None:
            raise UnknownSectionError(section=command.section)
        size = show.sections[index].seat_count
        if command.quantity > size:
            raise InvalidWaitlistError(
                reason=f"section {command.section} has only {size} seats in all"
            )
        return command.section
    if command.zone is not None:
        stock = show.zone_stock.get(command.zone)
        if stock is None:
            raise UnknownZoneError(zone=command.zone)
        if command.quantity > stock.capacity:
            raise InvalidWaitlistError(
                reason=f"zone {command.zone} has only {stock.capacity} places in all"
            )
        return command.zone
    largest = max(
        [show.grid.seat_count, *(zone.capacity for zone in show.zones)],
    )
    if command.quantity > largest:
        raise InvalidWaitlistError(reason=f"no area of this show has {command.quantity} places")
    return ANYWHERE


def join_waitlist(show: Show, command: JoinWaitlist, now: datetime) -> list[Event]:
    """WaitlistJoined at the back of the line; refused while the request fits right now
    (lapsed holds counting as free), and answered with the live entry if there is one."""
    live = show.live_entry(command.user, now)
    if live is not None:
        raise AlreadyInLineError(
            entry_id=live.entry_id,
            status=live.status,
            position=show.line.position(live.entry_id),
            quantity=live.quantity,
            section=live.section,
            zone=live.zone,
            order_id=live.order_id,
        )
    area = _check_request(show, command)
    if show.line.entry(command.entry_id) is not None:
        raise EntryExistsError(entry_id=command.entry_id)
    if show.order(command.offer_order_id) is not None:
        raise OrderExistsError(order_id=command.offer_order_id)
    stock = Stock(show)
    for order in show.lapsed_holds(now):
        stock.release(order)
    if stock.room(area) >= command.quantity:
        raise SeatsAvailableError(available=stock.free_in(area))
    return [
        WaitlistJoined(
            show_id=show.show_id,
            version=show.version + 1,
            command_id=command.command_id,
            entry_id=command.entry_id,
            user=command.user,
            quantity=command.quantity,
            section=command.section,
            zone=command.zone,
            offer_order_id=command.offer_order_id,
            position=show.line.waiting + 1,
            joined_at=now,
        )
    ]


def leave_waitlist(show: Show, command: LeaveWaitlist, now: datetime) -> list[Event]:
    """Leaving needs a waiting entry; an offered one is declined by cancelling its order."""
    entry = show.live_entry(command.user, now)
    if entry is None:
        raise NotInLineError(show_id=show.show_id)
    if entry.status != "waiting":
        raise NotWaitingError(entry_id=entry.entry_id, status=entry.status, order_id=entry.order_id)
    return [
        WaitlistLeft(
            show_id=show.show_id,
            version=show.version + 1,
            command_id=command.command_id,
            entry_id=entry.entry_id,
            user=entry.user,
        )
    ]
