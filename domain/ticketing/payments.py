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
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from domain.ticketing.commands import ConfirmPayment, RefundOrder
from domain.ticketing.errors import (
    HoldExpiredError,
    OrderNotHeldError,
    OrderNotPaidError,
    PaymentAmountMismatchError,
    TicketingError,
)
from domain.ticketing.events import Event, OrderPaid, OrderRefunded, PaymentRefused
from domain.ticketing.holds import expiry, owned_order
from domain.ticketing.show import Show
from domain.ticketing.tickets import issue_tickets


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
