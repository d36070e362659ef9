"""Ticketing rejections as domain values, each with the stable `code` of the public contract.

A raised TicketingError means the command changed nothing and journals nothing; the adapter
maps `code` (and `details()`) to the HTTP answer once, in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, ClassVar, TypeVar, dataclass_transform

_E = TypeVar("_E", bound="TicketingError")


class TicketingError(Exception):
    """Base of every ticketing rejection."""

    code: ClassVar[str] = "ticketing_error"

    def details(self) -> dict[str, object]:
        """The error's fields as JSON-ready values (tuples become lists)."""
        return {
            f.name: list(value) if isinstance(value, tuple) else value
            for f in fields(self)  # type: ignore[arg-type]
            for value in (getattr(self, f.name),)
        }

    @property
    def message(self) -> str:
        """What a person is told: a sentence, never the error's repr."""
        return _sentence(self.code.replace("_", " "))

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[object, ...]]:
        # Exception pickling replays `args`, which dataclass construction leaves empty.
        return (type(self), tuple(getattr(self, f.name) for f in fields(self)))  # type: ignore[arg-type]


def _sentence(text: str) -> str:
    """`text` as a sentence: capital first letter, one full stop at the end."""
    text = text.strip().rstrip(".")
    return (text[:1].upper() + text[1:] + ".") if text else "The command was refused."


def _listing(items: tuple[str, ...], most: int = 10) -> str:
    shown = ", ".join(items[:most])
    return shown if len(items) <= most else f"{shown} and {len(items) - most} more"


@dataclass_transform(frozen_default=True)
def _error(cls: type[_E]) -> type[_E]:
    """Make `cls` a frozen, slotted dataclass that still accepts exception notes.

    A frozen dataclass refuses every attribute assignment, but BaseException.add_note (used by
    pytest, hypothesis and ExceptionGroup reporting) must set `__notes__`.
    """
    frozen = dataclass(frozen=True, slots=True)(cls)
    refuse = frozen.__setattr__

    def set_attribute(self: BaseException, name: str, value: object) -> None:
        if name == "__notes__":
            BaseException.__setattr__(self, name, value)
        else:
            refuse(self, name, value)

    frozen.__setattr__ = set_attribute  # type: ignore[assignment]
    return frozen


@_error
class SeatsUnavailableError(TicketingError):
    code: ClassVar[str] = "seats_unavailable"
    seats: tuple[str, ...]

    def details(self) -> dict[str, object]:
        return {"unavailable": list(self.seats)}

    @property
    def message(self) -> str:
        return _sentence(f"These seats are not available: {_listing(self.seats)}")


@_error
class ZoneSoldOutError(TicketingError):
    code: ClassVar[str] = "zone_sold_out"
    zone: str
    requested: int
    available: int

    @property
    def message(self) -> str:
        return _sentence(
            f"Zone {self.zone} has {self.available} places left, not the {self.requested} asked"
        )


@_error
class NotEnoughSeatsError(TicketingError):
    code: ClassVar[str] = "not_enough_seats"
    requested: int
    available: int

    @property
    def message(self) -> str:
        return _sentence(
            f"Only {self.available} seats can be held together, not the {self.requested} asked"
        )


@_error
class UnknownSeatError(TicketingError):
    code: ClassVar[str] = "unknown_seat"
    seats: tuple[str, ...]

    @property
    def message(self) -> str:
        return _sentence(f"This show has no seat {_listing(self.seats)}")


@_error
class ShowNotFoundError(TicketingError):
    code: ClassVar[str] = "show_not_found"
    show_id: str

    @property
    def message(self) -> str:
        return _sentence(f"There is no show {self.show_id}")


@_error
class ShowExistsError(TicketingError):
    code: ClassVar[str] = "show_exists"
    show_id: str

    @property
    def message(self) -> str:
        return _sentence(f"Show {self.show_id} exists already")


@_error
class InvalidShowError(TicketingError):
    code: ClassVar[str] = "invalid_show"
    reason: str

    @property
    def message(self) -> str:
        return _sentence(f"The show is not valid: {self.reason}")


@_error
class OrderNotFoundError(TicketingError):
    code: ClassVar[str] = "order_not_found"
    order_id: str

    @property
    def message(self) -> str:
        return _sentence("There is no such order")


@_error
class OrderExistsError(TicketingError):
    """A hold reused an order id of this show under another command id."""

    code: ClassVar[str] = "order_exists"
    order_id: str

    @property
    def message(self) -> str:
        return _sentence("That order id is taken; place the hold again")


@_error
class OrderNotHeldError(TicketingError):
    code: ClassVar[str] = "order_not_held"
    order_id: str
    status: str

    @property
    def message(self) -> str:
        return _sentence(f"The order is {self.status}, not held")


@_error
class OrderNotPaidError(TicketingError):
    code: ClassVar[str] = "order_not_paid"
    order_id: str
    status: str

    @property
    def message(self) -> str:
        return _sentence(f"The order is {self.status}, not paid")


@_error
class HoldExpiredError(TicketingError):
    code: ClassVar[str] = "hold_expired"
    order_id: str

    @property
    def message(self) -> str:
        return _sentence("The hold ran out")


@_error
class NotOrderOwnerError(TicketingError):
    code: ClassVar[str] = "not_order_owner"
    order_id: str

    @property
    def message(self) -> str:
        return _sentence("That order is someone else's")


@_error
class PaymentAmountMismatchError(TicketingError):
    """The charge does not match the order total; the charge is refunded, the hold kept."""

    code: ClassVar[str] = "payment_amount_mismatch"
    order_id: str
    amount_cents: int

    @property
    def message(self) -> str:
        return _sentence(f"A charge of {self.amount_cents} cents does not match the order's total")


@_error
class TooManySeatsError(TicketingError):
    code: ClassVar[str] = "too_many_seats"
    requested: int
    limit: int

    @property
    def message(self) -> str:
        return _sentence(f"A hold takes at most {self.limit} seats, not {self.requested}")


@_error
class DuplicateSeatError(TicketingError):
    code: ClassVar[str] = "duplicate_seat"
    seats: tuple[str, ...]

    @property
    def message(self) -> str:
        return _sentence(f"A seat is asked for twice: {_listing(self.seats)}")


@_error
class InvalidQuantityError(TicketingError):
    code: ClassVar[str] = "invalid_quantity"
    quantity: int

    @property
    def message(self) -> str:
        return _sentence(f"{self.quantity} is not a number of places that can be held")


@_error
class InvalidHoldError(TicketingError):
    """A hold must ask for exactly one of: seats, zone + quantity, best available."""

    code: ClassVar[str] = "invalid_hold"
    reason: str

    @property
    def message(self) -> str:
        return _sentence(f"The hold is not valid: {self.reason}")


@_error
class UnknownZoneError(TicketingError):
    code: ClassVar[str] = "unknown_zone"
    zone: str

    @property
    def message(self) -> str:
        return _sentence(f"This show has no zone {self.zone}")


@_error
class UnknownSectionError(TicketingError):
    code: ClassVar[str] = "unknown_section"
    section: str

    @property
    def message(self) -> str:
        return _sentence(f"This show has no section {self.section}")


# -- lines: the waitlist and the waiting room ------------------------------------------------


@_error
class SeatsAvailableError(TicketingError):
    """Nobody queues in front of free places: a hold of the request would succeed now."""

    code: ClassVar[str] = "seats_available"
    available: int

    @property
    def message(self) -> str:
        return _sentence(
            f"{self.available} places are free for this request; hold them instead of waiting"
        )


@_error
class AlreadyInLineError(TicketingError):
    """The user already has a live entry in this show's line (waiting, or offered with the
    offer still held). Not a failure to the user: the adapter answers 200 with the entry,
    which the details are (the contract's entry body minus show_id)."""

    code: ClassVar[str] = "already_in_line"
    entry_id: str
    status: str
    position: int | None
    quantity: int
    section: str | None
    zone: str | None
    order_id: str | None

    @property
    def message(self) -> str:
        return _sentence("You are in this line already")


@_error
class NotInLineError(TicketingError):
    code: ClassVar[str] = "not_in_line"
    show_id: str

    @property
    def message(self) -> str:
        return _sentence("You are not waiting in this show's line")


@_error
class NotWaitingError(TicketingError):
    """Leaving a line whose places already came: the offer is an order to pay or cancel."""

    code: ClassVar[str] = "not_waiting"
    entry_id: str
    status: str
    order_id: str | None

    @property
    def message(self) -> str:
        return _sentence(
            f"Your entry is {self.status}, not waiting; cancel its order to decline the offer"
        )


@_error
class EntryExistsError(TicketingError):
    """A join reused an entry id of this show under another command id."""

    code: ClassVar[str] = "entry_exists"
    entry_id: str

    @property
    def message(self) -> str:
        return _sentence("That entry id is taken; join again")


@_error
class InvalidWaitlistError(TicketingError):
    code: ClassVar[str] = "invalid_waitlist"
    reason: str

    @property
    def message(self) -> str:
        return _sentence(f"The waitlist request is not valid: {self.reason}")


@_error
class QueuePassRequiredError(TicketingError):
    """A queued show sells only to fans holding a valid pass. `status` is the fan's queue
    status (or `not_in_queue`); `admitted_at` an RFC 3339 time, None while unknown."""

    code: ClassVar[str] = "queue_pass_required"
    status: str
    position: int | None
    admitted_at: str | None

    @property
    def message(self) -> str:
        if self.status == "not_in_queue":
            return _sentence("This show sells through its waiting room; join the queue first")
        if self.status == "expired":
            return _sentence("Your pass for this show has expired")
        if self.admitted_at is None:
            return _sentence("Your place in the queue is drawn when the queue opens")
        return _sentence(f"You are number {self.position} in the queue, in at {self.admitted_at}")


@_error
class NoQueueError(TicketingError):
    code: ClassVar[str] = "no_queue"
    show_id: str

    @property
    def message(self) -> str:
        return _sentence(f"Show {self.show_id} has no waiting room")


@_error
class AlreadyInQueueError(TicketingError):
    """The fan is in the queue already. Not a failure to the fan: the adapter answers 200
    with the details, which are the contract's queue body minus show_id (RFC 3339 times)."""

    code: ClassVar[str] = "already_in_queue"
    status: str
    position: int | None
    admitted_at: str | None
    pass_expires_at: str | None

    @property
    def message(self) -> str:
        return _sentence("You are in this queue already")


@_error
class NotInQueueError(TicketingError):
    code: ClassVar[str] = "not_in_queue"
    show_id: str

    @property
    def message(self) -> str:
        return _sentence("You are not in this show's queue")


ERROR_TYPES: tuple[type[TicketingError], ...] = (
    SeatsUnavailableError,
    ZoneSoldOutError,
    NotEnoughSeatsError,
    UnknownSeatError,
    ShowNotFoundError,
    ShowExistsError,
    InvalidShowError,
    OrderNotFoundError,
    OrderExistsError,
    OrderNotHeldError,
    OrderNotPaidError,
    HoldExpiredError,
    NotOrderOwnerError,
    PaymentAmountMismatchError,
    TooManySeatsError,
    DuplicateSeatError,
    InvalidQuantityError,
    InvalidHoldError,
    UnknownZoneError,
    UnknownSectionError,
    SeatsAvailableError,
    AlreadyInLineError,
    NotInLineError,
    NotWaitingError,
    EntryExistsError,
    InvalidWaitlistError,
    QueuePassRequiredError,
    NoQueueError,
    AlreadyInQueueError,
    NotInQueueError,
)

ERRORS_BY_CODE: dict[str, type[TicketingError]] = {error.code: error for error in ERROR_TYPES}


class JournalError(Exception):
    """An event cannot follow the state it is folded into: a version gap, another show's
    event, an order or seat the show never had. That is a bug or lost data, never an answer
    to a user, so it is not a TicketingError.
    """
