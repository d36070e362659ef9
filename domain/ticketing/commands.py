"""What callers ask of a show. Every command carries `command_id`, the deduplication key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from domain.ticketing.queue import QueueSpec
from domain.ticketing.venue import Section, Zone


@dataclass(frozen=True, slots=True)
class CreateShow:
    """`queue`: sell only through a waiting room. Its `queue_seed` (which orders the early
    joiners) must be drawn by the adapter from a secure source (`secrets`), since the
    domain draws nothing; it is journaled and kept private until `queue.opens_at`."""

    command_id: str
    show_id: str
    organizer: str
    name: str
    starts_at: datetime
    hold_seconds: int
    sections: tuple[Section, ...]
    zones: tuple[Zone, ...]
    queue: QueueSpec | None = None
    queue_seed: str = ""


@dataclass(frozen=True, slots=True)
class PlaceHold:
    """Hold seats for `order_id`, all or nothing.

    Exactly one way of choosing must be used (build it with `of_seats`, `of_zone` or
    `best`): explicit `seats`; `zone` + `quantity`; or `best_available` + `quantity`,
    optionally limited to `section`.
    """

    command_id: str
    show_id: str
    user: str
    order_id: str
    seats: tuple[str, ...] = ()
    zone: str | None = None
    quantity: int = 0
    best_available: bool = False
    section: str | None = None

    @classmethod
    def of_seats(
        cls, *, command_id: str, show_id: str, user: str, order_id: str, seats: tuple[str, ...]
    ) -> PlaceHold:
        return cls(command_id, show_id, user, order_id, seats=seats)

    @classmethod
    def of_zone(
        cls,
        *,
        command_id: str,
        show_id: str,
        user: str,
        order_id: str,
        zone: str,
        quantity: int,
    ) -> PlaceHold:
        return cls(command_id, show_id, user, order_id, zone=zone, quantity=quantity)

    @classmethod
    def best(
        cls,
        *,
        command_id: str,
        show_id: str,
        user: str,
        order_id: str,
        quantity: int,
        section: str | None = None,
    ) -> PlaceHold:
        return cls(
            command_id,
            show_id,
            user,
            order_id,
            quantity=quantity,
            best_available=True,
            section=section,
        )


@dataclass(frozen=True, slots=True)
class CancelHold:
    command_id: str
    show_id: str
    user: str
    order_id: str


@dataclass(frozen=True, slots=True)
class ExpireHolds:
    """Sent by the timer: journal HoldExpired for every hold that has run out by `now`."""

    command_id: str
    show_id: str


@dataclass(frozen=True, slots=True)
class BeginPayment:
    """Journal the intent to charge the payer for a held order, before any money moves.

    The decider answers with PaymentStarted naming the provider's idempotency key
    (`charge_key`) and the amount to charge; while that intent is open, asking again names
    the same key, so no retry can charge twice.
    """

    command_id: str
    show_id: str
    user: str
    order_id: str


@dataclass(frozen=True, slots=True)
class AbandonPayment:
    """An open intent ends without a charge (a declined card, or a voided key).

    Sent only once the provider has refused `charge_key` for good (voided it), so no charge
    can ever appear under it; the next BeginPayment of the order gets a fresh key.
    """

    command_id: str
    show_id: str
    order_id: str
    charge_key: str
    reason: str


@dataclass(frozen=True, slots=True)
class RecordRefund:
    """The provider has refunded `charge_id`, which the journal owed back (PaymentRefused or
    OrderRefunded): the end of that charge's saga."""

    command_id: str
    show_id: str
    order_id: str
    charge_id: str


@dataclass(frozen=True, slots=True)
class ConfirmPayment:
    """The payment provider took `amount_cents` under `charge_id`; turn the hold into a sale.

    The charge already happened, so a refusal is journaled (PaymentRefused) rather than lost.
    """

    command_id: str
    show_id: str
    user: str
    order_id: str
    charge_id: str
    amount_cents: int


@dataclass(frozen=True, slots=True)
class RefundOrder:
    command_id: str
    show_id: str
    user: str
    order_id: str


@dataclass(frozen=True, slots=True)
class JoinWaitlist:
    """Wait in the show's line for `quantity` places: best available within `section`, or
    in `zone`, or (neither) anywhere.

    `entry_id` and `offer_order_id` are drawn by the adapter (random, like order ids): the
    entry's id, and the order id its offer will have when places come to it.
    """

    command_id: str
    show_id: str
    user: str
    entry_id: str
    offer_order_id: str
    quantity: int
    section: str | None = None
    zone: str | None = None


@dataclass(frozen=True, slots=True)
class LeaveWaitlist:
    """Leave the line: the user's waiting entry in this show."""

    command_id: str
    show_id: str
    user: str


@dataclass(frozen=True, slots=True)
class JoinQueue:
    """Enter the show's waiting room."""

    command_id: str
    show_id: str
    user: str


Command = (
    CreateShow
    | PlaceHold
    | CancelHold
    | ExpireHolds
    | BeginPayment
    | AbandonPayment
    | ConfirmPayment
    | RecordRefund
    | RefundOrder
    | JoinWaitlist
    | LeaveWaitlist
    | JoinQueue
)

COMMAND_TYPES: tuple[type[Command], ...] = (
    CreateShow,
    PlaceHold,
    CancelHold,
    ExpireHolds,
    BeginPayment,
    AbandonPayment,
    ConfirmPayment,
    RecordRefund,
    RefundOrder,
    JoinWaitlist,
    LeaveWaitlist,
    JoinQueue,
)
