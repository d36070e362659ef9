"""Ticketing: shows, seats, zones, holds, payments and refunds as a pure decider.

`decide(state, command, now) -> events` and `evolve(state, event) -> state` live in
`decider`; the seat-map and order read models in `views`.
"""

from domain.ticketing.commands import (
    COMMAND_TYPES,
    AbandonPayment,
    BeginPayment,
    CancelHold,
    Command,
    ConfirmPayment,
    CreateShow,
    ExpireHolds,
    PlaceHold,
    RecordRefund,
    RefundOrder,
)
from domain.ticketing.decider import decide, evolve, fold
from domain.ticketing.errors import ERRORS_BY_CODE, JournalError, TicketingError
from domain.ticketing.events import (
    EVENT_TYPES,
    PART_TYPES,
    ChargeRefunded,
    Event,
    HoldCancelled,
    HoldExpired,
    OrderPaid,
    OrderRefunded,
    PaymentAbandoned,
    PaymentRefused,
    PaymentStarted,
    SeatsHeld,
    ShowCreated,
    Ticket,
)
from domain.ticketing.payments import refusal_error
from domain.ticketing.show import Order, Show
from domain.ticketing.venue import Section, Zone

__all__ = [
    "COMMAND_TYPES",
    "ERRORS_BY_CODE",
    "EVENT_TYPES",
    "PART_TYPES",
    "AbandonPayment",
    "BeginPayment",
    "CancelHold",
    "ChargeRefunded",
    "Command",
    "ConfirmPayment",
    "CreateShow",
    "Event",
    "ExpireHolds",
    "HoldCancelled",
    "HoldExpired",
    "JournalError",
    "Order",
    "OrderPaid",
    "OrderRefunded",
    "PaymentAbandoned",
    "PaymentRefused",
    "PaymentStarted",
    "PlaceHold",
    "RecordRefund",
    "RefundOrder",
    "SeatsHeld",
    "Section",
    "Show",
    "ShowCreated",
    "Ticket",
    "TicketingError",
    "Zone",
    "decide",
    "evolve",
    "fold",
    "refusal_error",
]
