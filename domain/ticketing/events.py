"""What happened to a show, as journaled. Immutable; never edited, only appended.

Every event carries `show_id`, `version` (the stream version once it is applied: ShowCreated
is 1, each later event one more) and `command_id` (the command that produced it, which is
how a redelivered command is recognised). Events that free or take seats name them (and the
zone and quantity), so views fold them without looking anything up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from domain.ticketing.queue import QueueSpec
from domain.ticketing.venue import Section, Zone


@dataclass(frozen=True, slots=True)
class Ticket:
    """`seat` is a seat id (`A-1-1`) or a zone place (`FLOOR#1`)."""

    ticket_id: str
    seat: str


@dataclass(frozen=True, slots=True)
class ShowCreated:
    show_id: str
    version: int
    command_id: str
    organizer: str
    name: str
    starts_at: datetime
    hold_seconds: int
    sections: tuple[Section, ...]
    zones: tuple[Zone, ...]
    created_at: datetime
    # A waiting room, and the seed that orders its early joiners: private until
    # `queue.opens_at` (read it through `Show.published_seed`), so never show this event
    # as it is to anyone but the decider before then.
    queue: QueueSpec | None = None
    queue_seed: str = ""


@dataclass(frozen=True, slots=True)
class SeatsHeld:
    """`seats` for a numbered hold, or `zone` for a zone hold; `quantity` counts either."""

    show_id: str
    version: int
    command_id: str
    order_id: str
    user: str
    seats: tuple[str, ...]
    zone: str | None
    quantity: int
    total_cents: int
    held_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class HoldCancelled:
    show_id: str
    version: int
    command_id: str
    order_id: str
    user: str
    seats: tuple[str, ...]
    zone: str | None
    quantity: int


@dataclass(frozen=True, slots=True)
class HoldExpired:
    show_id: str
    version: int
    command_id: str
    order_id: str
    user: str
    seats: tuple[str, ...]
    zone: str | None
    quantity: int
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class OrderPaid:
    show_id: str
    version: int
    command_id: str
    order_id: str
    user: str
    seats: tuple[str, ...]
    zone: str | None
    quantity: int
    charge_id: str
    amount_cents: int
    tickets: tuple[Ticket, ...]
    paid_at: datetime


@dataclass(frozen=True, slots=True)
class PaymentStarted:
    """The intent to charge `amount_cents` under the provider idempotency key `charge_key`.

    Journaled before any money moves. It stays open until the order is paid (OrderPaid), the
    charge is refused (PaymentRefused) or the intent is abandoned (PaymentAbandoned); the
    reconciler drives every open intent to one of those ends. Seats and order are unchanged.
    """

    show_id: str
    version: int
    command_id: str
    order_id: str
    user: str
    charge_key: str
    amount_cents: int
    started_at: datetime


@dataclass(frozen=True, slots=True)
class PaymentAbandoned:
    """An intent that ended without a charge: the provider voided `charge_key`."""

    show_id: str
    version: int
    command_id: str
    order_id: str
    user: str
    charge_key: str
    reason: str


@dataclass(frozen=True, slots=True)
class PaymentRefused:
    """A charge that bought nothing and must be refunded: the durable refund instruction.

    `reason` is the error code the payer is answered with (`hold_expired`, `order_not_held`,
    `payment_amount_mismatch`); `status` is the order's status after this command.
    """

    show_id: str
    version: int
    command_id: str
    order_id: str
    user: str
    charge_id: str
    amount_cents: int
    reason: str
    status: str


@dataclass(frozen=True, slots=True)
class OrderRefunded:
    """The seats are free again; the adapter refunds `charge_id` for `amount_cents`."""

    show_id: str
    version: int
    command_id: str
    order_id: str
    user: str
    seats: tuple[str, ...]
    zone: str | None
    quantity: int
    charge_id: str
    amount_cents: int


@dataclass(frozen=True, slots=True)
class ChargeRefunded:
    """The provider refunded `charge_id`, owed back since a PaymentRefused or OrderRefunded:
    that charge's saga has ended."""

    show_id: str
    version: int
    command_id: str
    order_id: str
    user: str
    charge_id: str
    amount_cents: int


@dataclass(frozen=True, slots=True)
class WaitlistJoined:
    """`position` is where the entry joined: 1 + the entries waiting then (the back)."""

    show_id: str
    version: int
    command_id: str
    entry_id: str
    user: str
    quantity: int
    section: str | None
    zone: str | None
    offer_order_id: str
    position: int
    joined_at: datetime


@dataclass(frozen=True, slots=True)
class WaitlistLeft:
    show_id: str
    version: int
    command_id: str
    entry_id: str
    user: str


@dataclass(frozen=True, slots=True)
class WaitlistOffered:
    """Freed places went to this entry: the SeatsHeld right before it (same command) is the
    offer, an ordinary held order of the entry's user. Its details are repeated here so a
    line projection needs nothing else for the `offered` frame."""

    show_id: str
    version: int
    command_id: str
    entry_id: str
    user: str
    order_id: str
    seats: tuple[str, ...]
    zone: str | None
    quantity: int
    total_cents: int
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class QueueJoined:
    """A fan entered the waiting room. `early`: before `opens_at` (position drawn then, from
    the seed); otherwise `position` is fixed now: every early joiner, then journal order."""

    show_id: str
    version: int
    command_id: str
    user: str
    early: bool
    position: int | None
    joined_at: datetime


Event = (
    ShowCreated
    | SeatsHeld
    | HoldCancelled
    | HoldExpired
    | OrderPaid
    | PaymentRefused
    | OrderRefunded
    | PaymentStarted
    | PaymentAbandoned
    | ChargeRefunded
    | WaitlistJoined
    | WaitlistLeft
    | WaitlistOffered
    | QueueJoined
)

# Events about the lines alone: no seat, zone count or order changes (an offer's hold is the
# SeatsHeld journaled with it), so the seat map and order folds only count their versions.
LineEvent = WaitlistJoined | WaitlistLeft | WaitlistOffered | QueueJoined

# Events about money alone: they change no seat, no zone count and no order as the views show
# it, so the seat map and order folds only count them into the stream version.
MoneyEvent = PaymentStarted | PaymentAbandoned | PaymentRefused | ChargeRefunded
# Events that take or free no seats or zone places (everything else carries `seats`, `zone`,
# `quantity` and `order_id`; WaitlistOffered names its offer's, already taken by SeatsHeld).
SeatlessEvent = ShowCreated | MoneyEvent | LineEvent

# The frozen dataclasses that appear inside commands and events, for a codec to register.
PART_TYPES: tuple[type[Section | Zone | Ticket | QueueSpec], ...] = (
    Section,
    Zone,
    Ticket,
    QueueSpec,
)

EVENT_TYPES: tuple[type[Event], ...] = (
    ShowCreated,
    SeatsHeld,
    HoldCancelled,
    HoldExpired,
    OrderPaid,
    PaymentRefused,
    OrderRefunded,
    PaymentStarted,
    PaymentAbandoned,
    ChargeRefunded,
    WaitlistJoined,
    WaitlistLeft,
    WaitlistOffered,
    QueueJoined,
)
