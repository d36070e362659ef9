"""The state of one show, folded from its journal, owned by its single writer.

`evolve` changes a Show in place (the processor that owns a show's partition is its only
writer, and copying 200,000 seats per event would cap throughput far below what a sale
needs); `decide` only reads it. Use `copy()` to keep a state you mean to compare or revisit.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from domain.ticketing.errors import JournalError
from domain.ticketing.events import Event, ShowCreated, Ticket
from domain.ticketing.queue import QueuePlace, WaitingRoom
from domain.ticketing.seating import SeatGrid
from domain.ticketing.venue import Section, Zone
from domain.ticketing.waitlist import WaitEntry, Waitlist

OrderStatus = Literal["held", "paid", "cancelled", "expired", "refunded"]
SeatStatus = Literal["available", "held", "sold"]


@dataclass(frozen=True, slots=True)
class Order:
    """One order of the show. `quantity` counts seats or zone places."""

    order_id: str
    user: str
    status: OrderStatus
    seats: tuple[str, ...]
    zone: str | None
    quantity: int
    total_cents: int
    held_at: datetime
    expires_at: datetime
    held_version: int
    version: int
    charge_id: str | None = None
    tickets: tuple[Ticket, ...] = ()
    # Where `seats` sit in the SeatGrid, so releasing them needs no parsing.
    offsets: tuple[int, ...] = ()
    # The provider idempotency key of the open payment intent (PaymentStarted not yet ended
    # by OrderPaid, PaymentRefused or PaymentAbandoned), and how many intents have ended:
    # the next intent's key is derived from that count, so keys never repeat.
    payment_key: str | None = None
    payment_attempts: int = 0

    def next_payment_key(self) -> str:
        """The key of the open intent, or of the next one: one key per intent, never reused."""
        return self.payment_key or f"{self.order_id}:{self.payment_attempts + 1}"

    def lapsed(self, now: datetime) -> bool:
        """Held, but its time is up: free for everyone else from `expires_at` on."""
        return self.status == "held" and self.expires_at <= now


@dataclass(frozen=True, slots=True)
class ZoneStock:
    capacity: int
    price_cents: int
    held: int = 0
    sold: int = 0

    @property
    def available(self) -> int:
        return self.capacity - self.held - self.sold


# (expires_at, held_version, order_id) of every held order, sorted: the prefix up to `now`
# is exactly the holds that have run out, found by bisection without touching the rest.
_ExpiryEntry = tuple[datetime, int, str]


class Show:
    """A show's layout, seats, zones, orders, expiry index and processed commands.

    Memory: besides the seats (about 3 bytes each plus a dict entry per taken seat), one
    Order per order and the show's own journal with an index from command id to its events,
    so a redelivered command gets the very same answer however old it is. That grows with
    the show's traffic (one or a few events per hold, cancel, payment, refund or expiry)
    and is dropped with the show.
    """

    __slots__ = (
        "_expiry",
        "_journal",
        "_orders",
        "_outcomes",
        "_owed",
        "created_at",
        "grid",
        "hold_seconds",
        "line",
        "name",
        "organizer",
        "room",
        "sections",
        "show_id",
        "starts_at",
        "version",
        "zone_stock",
        "zones",
    )

    def __init__(self, created: ShowCreated) -> None:
        self.show_id = created.show_id
        self.organizer = created.organizer
        self.name = created.name
        self.starts_at = created.starts_at
        self.hold_seconds = created.hold_seconds
        self.sections: tuple[Section, ...] = created.sections
        self.zones: tuple[Zone, ...] = created.zones
        self.created_at = created.created_at
        self.version = 0
        self.grid = SeatGrid(created.sections)
        self.zone_stock: dict[str, ZoneStock] = {
            zone.name: ZoneStock(capacity=zone.capacity, price_cents=zone.price_cents)
            for zone in created.zones
        }
        self._orders: dict[str, Order] = {}
        self._expiry: list[_ExpiryEntry] = []
        # Every event folded so far, and per command the versions of the events it caused:
        # the answer to a redelivered command is a slice of the journal.
        self._journal: list[Event] = []
        self._outcomes: dict[str, tuple[int, int]] = {}
        # Charges the journal owes back (PaymentRefused, OrderRefunded) whose ChargeRefunded
        # is not journaled yet: charge_id -> (order_id, amount_cents).
        self._owed: dict[str, tuple[str, int]] = {}
        # The online waitlist, and the waiting room of a queued show (None: sells to all).
        self.line = Waitlist()
        self.room: WaitingRoom | None = (
            None if created.queue is None else WaitingRoom(created.queue, created.queue_seed)
        )

    @property
    def hold_for(self) -> timedelta:
        return timedelta(seconds=self.hold_seconds)

    def copy(self) -> Show:
        """An independent state: later evolves of either leave the other as it was."""
        twin = Show.__new__(Show)
        for name in Show.__slots__:
            setattr(twin, name, getattr(self, name))
        twin.grid = self.grid.copy()
        twin.zone_stock = dict(self.zone_stock)
        twin._orders = dict(self._orders)
        twin._expiry = list(self._expiry)
        twin._journal = list(self._journal)
        twin._outcomes = dict(self._outcomes)
        twin._owed = dict(self._owed)
        twin.line = self.line.copy()
        twin.room = None if self.room is None else self.room.copy()
        return twin

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Show):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in Show.__slots__)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Show({self.show_id!r}, version={self.version})"

    # -- reading ----------------------------------------------------------------------------

    def outcome_of(self, command_id: str) -> tuple[Event, ...] | None:
        """The events a command already produced, or None if it produced none yet.

        `decide` answers a redelivered command with exactly these; since their versions are
        <= `version`, the adapter knows not to journal them again.
        """
        span = self._outcomes.get(command_id)
        return None if span is None else tuple(self._journal[span[0] - 1 : span[1]])

    def event_at(self, version: int) -> Event | None:
        return self._journal[version - 1] if 1 <= version <= len(self._journal) else None

    def events(self, after: int = 0) -> list[Event]:
        """The journal as folded into this state, from version `after` + 1."""
        return self._journal[after:]

    def order(self, order_id: str) -> Order | None:
        return self._orders.get(order_id)

    def orders(self) -> Iterator[Order]:
        return iter(self._orders.values())

    def refund_owed(self, charge_id: str) -> tuple[str, int] | None:
        """(order_id, amount_cents) of a charge owed back and not yet refunded, else None."""
        return self._owed.get(charge_id)

    def refunds_owed(self) -> dict[str, tuple[str, int]]:
        return dict(self._owed)

    def lapsed_holds(self, now: datetime) -> list[Order]:
        """Held orders whose time is up, soonest-expired first."""
        end = bisect_right(self._expiry, now, key=lambda entry: entry[0])
        return [self._orders[order_id] for _, _, order_id in self._expiry[:end]]

    def queue_place(self, user: str, now: datetime) -> QueuePlace | None:
        """The user's place in the waiting room at `now`; None if not queued or no room."""
        return None if self.room is None else self.room.place(user, now)

    def published_seed(self, now: datetime) -> str | None:
        """The waiting room's seed once `opens_at` has come; None before, or without a room."""
        return None if self.room is None else self.room.seed(now)

    def live_entry(self, user: str, now: datetime) -> WaitEntry | None:
        """The user's live entry in the line: waiting, or offered while the offer is still
        held at `now`. One per user; joining again returns it."""
        entry = self.line.latest_of(user)
        if entry is None or entry.status == "left":
            return None
        if entry.status == "offered":
            order = self._orders.get(entry.order_id or "")
            if order is None or order.status != "held" or order.lapsed(now):
                return None
        return entry

    @property
    def seats_total(self) -> int:
        """Numbered seats plus zone places."""
        return self.grid.seat_count + sum(zone.capacity for zone in self.zones)

    @property
    def seats_available(self) -> int:
        """Free seats and zone places as journaled (a lapsed hold counts until HoldExpired)."""
        return self.grid.free_count + sum(stock.available for stock in self.zone_stock.values())

    def seat_statuses(self) -> Iterator[tuple[str, SeatStatus]]:
        """Every seat with its journaled status, in layout order."""
        for seat, owner in self.grid.seats():
            if owner is None:
                yield seat, "available"
            else:
                yield seat, "sold" if self._orders[owner].status == "paid" else "held"

    # -- changing (only evolve calls these) -------------------------------------------------

    def add_order(self, order: Order) -> None:
        self._orders[order.order_id] = order
        insort(self._expiry, (order.expires_at, order.held_version, order.order_id))
        if order.zone is None:
            self.grid.take(order.offsets, order.order_id)
        else:
            stock = self.zone_stock[order.zone]
            self.zone_stock[order.zone] = replace(stock, held=stock.held + order.quantity)

    def end_hold(
        self,
        order: Order,
        status: OrderStatus,
        version: int,
        charge_id: str | None = None,
        tickets: tuple[Ticket, ...] = (),
    ) -> None:
        """A held order is cancelled, expired or paid (paid keeps its seats, now sold)."""
        entry = (order.expires_at, order.held_version, order.order_id)
        del self._expiry[bisect_left(self._expiry, entry)]
        if order.zone is not None:
            stock = self.zone_stock[order.zone]
            sold = order.quantity if status == "paid" else 0
            self.zone_stock[order.zone] = replace(
                stock, held=stock.held - order.quantity, sold=stock.sold + sold
            )
        elif status != "paid":
            self.grid.release(order.offsets)
        self._orders[order.order_id] = replace(
            order, status=status, version=version, charge_id=charge_id, tickets=tickets
        )

    def refund(self, order: Order, version: int) -> None:
        if order.zone is not None:
            stock = self.zone_stock[order.zone]
            self.zone_stock[order.zone] = replace(stock, sold=stock.sold - order.quantity)
        else:
            self.grid.release(order.offsets)
        self._orders[order.order_id] = replace(order, status="refunded", version=version)

    def open_payment(self, order: Order, charge_key: str) -> None:
        self._orders[order.order_id] = replace(order, payment_key=charge_key)

    def close_payment(self, order_id: str, charge_key: str | None = None) -> None:
        """End the order's open intent (only if it is `charge_key`, when given)."""
        order = self._orders[order_id]
        if order.payment_key is None or charge_key not in (None, order.payment_key):
            return
        self._orders[order_id] = replace(
            order, payment_key=None, payment_attempts=order.payment_attempts + 1
        )

    def owe_refund(self, charge_id: str, order_id: str, amount_cents: int) -> None:
        self._owed[charge_id] = (order_id, amount_cents)

    def settle_refund(self, charge_id: str) -> None:
        self._owed.pop(charge_id, None)

    def record(self, event: Event) -> None:
        """Count the event into the version and remember it as its command's outcome."""
        self.version = event.version
        self._journal.append(event)
        span = self._outcomes.get(event.command_id)
        self._outcomes[event.command_id] = (
            event.version if span is None else span[0],
            event.version,
        )

    def offsets(self, seats: tuple[str, ...]) -> tuple[int, ...]:
        offsets = []
        for seat in seats:
            offset = self.grid.locate(seat)
            if offset is None:
                raise JournalError(f"the journal names seat {seat!r}, which this show lacks")
            offsets.append(offset)
        return tuple(offsets)
