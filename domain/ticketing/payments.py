"""Deciding payments and refunds.

A ConfirmPayment arrives after the provider has already taken the money, so refusing it
must not lose that money: for an existing order of the payer, every refusal is journaled as
PaymentRefused (the durable instruction to refund `charge_id`) instead of raised. The
adapter journals the events as usual, refunds the charge, and answers with
`refusal_error(events)`: 409 `hold_expired` for a hold that ran out (the order becomes
`expired`, its HoldExpired journaled first if the timer had not yet), 409 `order_not_held`
for a cancelled, refunded or already-paid order. Only when there is no such order of the
payer (`order_not_found`, `not_order_owner`) does decide raise, and then the adapter must
refund the charge itself.

The saga around it: BeginPayment journals the intent (PaymentStarted, with the provider's
idempotency key) before any charge; the charge's outcome is journaled by ConfirmPayment
(OrderPaid or PaymentRefused) or, when the provider voided the key with no charge under it,
by AbandonPayment (PaymentAbandoned); a charge owed back (PaymentRefused, OrderRefunded)
ends with RecordRefund (ChargeRefunded) once the provider refunded it. The reconciler drives
every open intent and every owed refund to its end.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from domain.ticketing.commands import (
    AbandonPayment,
    BeginPayment,
    ConfirmPayment,
    RecordRefund,
    RefundOrder,
)
from domain.ticketing.errors import (
    HoldExpiredError,
    OrderNotFoundError,
    OrderNotHeldError,
    OrderNotPaidError,
    PaymentAmountMismatchError,
    TicketingError,
)
from domain.ticketing.events import (
    ChargeRefunded,
    Event,
    OrderPaid,
    OrderRefunded,
    PaymentAbandoned,
    PaymentRefused,
    PaymentStarted,
)
from domain.ticketing.holds import expiry, owned_order
from domain.ticketing.show import Show
from domain.ticketing.tickets import issue_tickets

# The command ids of the saga's later steps derive from what they settle, so the API's copy
# and the reconciler's copy of a step are one command to the decider (the second gets the
# first one's answer) and a step is never decided twice.


def confirm_command_id(charge_id: str) -> str:
    return f"pay-confirm:{charge_id}"


def abandon_command_id(charge_key: str) -> str:
    return f"pay-abandon:{charge_key}"


def refund_command_id(charge_id: str) -> str:
    return f"pay-refunded:{charge_id}"


def begin_payment(show: Show, command: BeginPayment, now: datetime) -> list[Event]:
    """The intent to charge, journaled before any money moves; refused as ConfirmPayment
    would be, so a payer told 409 was never charged."""
    order = owned_order(show, command.order_id, command.user)
    if order.status == "expired" or order.lapsed(now):
        raise HoldExpiredError(order_id=order.order_id)
    if order.status != "held":
        raise OrderNotHeldError(order_id=order.order_id, status=order.status)
    return [
        PaymentStarted(
            show_id=show.show_id,
            version=show.version + 1,
            command_id=command.command_id,
            order_id=order.order_id,
            user=order.user,
            charge_key=order.next_payment_key(),
            amount_cents=order.total_cents,
            started_at=now,
        )
    ]


def abandon_payment(show: Show, command: AbandonPayment, now: datetime) -> list[Event]:
    """End an open intent whose key the provider voided; nothing if it has ended already."""
    order = show.order(command.order_id)
    if order is None:
        raise OrderNotFoundError(order_id=command.order_id)
    if order.payment_key != command.charge_key:
        return []
    return [
        PaymentAbandoned(
            show_id=show.show_id,
            version=show.version + 1,
            command_id=command.command_id,
            order_id=order.order_id,
            user=order.user,
            charge_key=command.charge_key,
            reason=command.reason,
        )
    ]


def record_refund(show: Show, command: RecordRefund, now: datetime) -> list[Event]:
    """Journal the end of a refund the journal owed; nothing for one already recorded."""
    owed = show.refund_owed(command.charge_id)
    if owed is None:
        return []
    order_id, amount_cents = owed
    order = show.order(order_id)
    assert order is not None  # owed refunds name orders of this show
    return [
        ChargeRefunded(
            show_id=show.show_id,
            version=show.version + 1,
            command_id=command.command_id,
            order_id=order_id,
            user=order.user,
            charge_id=command.charge_id,
            amount_cents=amount_cents,
        )
    ]


def confirm_payment(show: Show, command: ConfirmPayment, now: datetime) -> list[Event]:
    order = owned_order(show, command.order_id, command.user)
    version = show.version + 1

    def refused(reason: str, status: str, at_version: int) -> PaymentRefused:
        return PaymentRefused(
            show_id=show.show_id,
            version=at_version,
            command_id=command.command_id,
            order_id=order.order_id,
            user=order.user,
            charge_id=command.charge_id,
            amount_cents=command.amount_cents,
            reason=reason,
            status=status,
        )

    if order.status == "held":
        if order.lapsed(now):
            return [
                expiry(order, show.show_id, command.command_id, version),
                refused(HoldExpiredError.code, "expired", version + 1),
            ]
        if command.amount_cents != order.total_cents:
            return [refused(PaymentAmountMismatchError.code, "held", version)]
        return [
            OrderPaid(
                show_id=show.show_id,
                version=version,
                command_id=command.command_id,
                order_id=order.order_id,
                user=order.user,
                seats=order.seats,
                zone=order.zone,
                quantity=order.quantity,
                charge_id=command.charge_id,
                amount_cents=command.amount_cents,
                tickets=issue_tickets(order.order_id, order.seats, order.zone, order.quantity),
                paid_at=now,
            )
        ]
    if order.status == "expired":
        return [refused(HoldExpiredError.code, "expired", version)]
    if order.status == "paid" and order.charge_id == command.charge_id:
        # The same charge confirmed under a new command id: it already bought this order.
        return []
    return [refused(OrderNotHeldError.code, order.status, version)]


def refusal_error(events: Iterable[Event]) -> TicketingError | None:
    """The error to answer a ConfirmPayment with, when its events refused the payment."""
    for event in events:
        if isinstance(event, PaymentRefused):
            if event.reason == HoldExpiredError.code:
                return HoldExpiredError(order_id=event.order_id)
            if event.reason == PaymentAmountMismatchError.code:
                return PaymentAmountMismatchError(
                    order_id=event.order_id, amount_cents=event.amount_cents
                )
            return OrderNotHeldError(order_id=event.order_id, status=event.status)
    return None


def refund_order(show: Show, command: RefundOrder, now: datetime) -> list[Event]:
    order = owned_order(show, command.order_id, command.user)
    if order.status != "paid" or order.charge_id is None:
        raise OrderNotPaidError(order_id=order.order_id, status=order.status)
    return [
        OrderRefunded(
            show_id=show.show_id,
            version=show.version + 1,
            command_id=command.command_id,
            order_id=order.order_id,
            user=order.user,
            seats=order.seats,
            zone=order.zone,
            quantity=order.quantity,
            charge_id=order.charge_id,
            amount_cents=order.total_cents,
        )
    ]
