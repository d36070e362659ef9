"""Rules for what happens to an order after its hold: cancel, expire, pay, refund."""

from __future__ import annotations

import hashlib

import pytest

from domain.ticketing.commands import CancelHold, ConfirmPayment, ExpireHolds, RefundOrder
from domain.ticketing.errors import (
    HoldExpiredError,
    NotOrderOwnerError,
    OrderNotFoundError,
    OrderNotHeldError,
    OrderNotPaidError,
    PaymentAmountMismatchError,
)
from domain.ticketing.events import OrderPaid, PaymentRefused, Ticket
from domain.ticketing.payments import refusal_error
from domain.ticketing.tickets import ticket_id

from .scenarios import (
    HOLD,
    SHOW,
    T0,
    given,
    hold_cancelled,
    hold_expired,
    only,
    order_paid,
    order_refunded,
    seats_held,
    seconds,
    show_created,
    when,
    zone_held,
)

HELD = seats_held("o1", "A-1-1", "A-1-2", version=2)
ZONE_HELD = zone_held("z1", 2, version=3)


def cancel(order_id: str = "o1", user: str = "alice") -> CancelHold:
    return CancelHold(command_id=f"cancel-{order_id}", show_id=SHOW, user=user, order_id=order_id)


def pay(
    order_id: str = "o1",
    user: str = "alice",
    charge: str = "ch-1",
    amount: int = 10_000,
    command_id: str = "pay-1",
) -> ConfirmPayment:
    return ConfirmPayment(
        command_id=command_id,
        show_id=SHOW,
        user=user,
        order_id=order_id,
        charge_id=charge,
        amount_cents=amount,
    )


def refund(order_id: str = "o1", user: str = "alice") -> RefundOrder:
    return RefundOrder(command_id=f"refund-{order_id}", show_id=SHOW, user=user, order_id=order_id)


def refused(reason: str, status: str, version: int, amount: int = 10_000) -> PaymentRefused:
    return PaymentRefused(
        show_id=SHOW,
        version=version,
        command_id="pay-1",
        order_id="o1",
        user="alice",
        charge_id="ch-1",
        amount_cents=amount,
        reason=reason,
        status=status,
    )


PAID = order_paid(HELD, version=3, command_id="pay-1", charge_id="ch-1", at=T0 + seconds(60))


# -- cancelling ------------------------------------------------------------------------------


def test_the_owner_cancels_a_running_hold_and_its_seats_are_free_again() -> None:
    show = given(show_created(), HELD)
    events = when(show, cancel(), T0 + seconds(10))
    assert events == [hold_cancelled(HELD, version=3, command_id="cancel-o1")]
    after = given(show_created(), HELD, *events)
    assert dict(after.seat_statuses())["A-1-1"] == "available"
    assert after.order("o1") is not None
    assert after.order("o1").status == "cancelled"  # type: ignore[union-attr]


def test_cancelling_a_zone_hold_gives_its_places_back() -> None:
    show = given(show_created(), HELD, ZONE_HELD)
    (cancelled,) = when(show, cancel("z1"), T0)
    assert given(show_created(), HELD, ZONE_HELD, cancelled).zone_stock["FLOOR"].available == 5


def test_only_the_owner_may_cancel() -> None:
    with pytest.raises(NotOrderOwnerError):
        when(given(show_created(), HELD), cancel(user="mallory"), T0)


def test_an_unknown_order_is_not_found() -> None:
    with pytest.raises(OrderNotFoundError):
        when(given(show_created(), HELD), cancel("nope"), T0)
    with pytest.raises(OrderNotFoundError):
        when(given(show_created(), HELD), pay("nope"), T0)
    with pytest.raises(OrderNotFoundError):
        when(given(show_created(), HELD), refund("nope"), T0)


def test_only_a_running_hold_can_be_cancelled() -> None:
    with pytest.raises(OrderNotHeldError) as paid:
        when(given(show_created(), HELD, PAID), cancel(), T0)
    assert paid.value.status == "paid"
    with pytest.raises(OrderNotHeldError) as lapsed:
        when(given(show_created(), HELD), cancel(), T0 + HOLD)
    assert lapsed.value.status == "expired"


# -- expiring --------------------------------------------------------------------------------


def test_the_timer_expires_every_hold_that_ran_out_soonest_first() -> None:
    later = seats_held("o2", "B-1-1", version=4, at=T0 + seconds(30))
    show = given(show_created(), HELD, ZONE_HELD, later)
    tick = ExpireHolds(command_id="tick-1", show_id=SHOW)
    assert when(show, tick, T0 + HOLD + seconds(1)) == [
        hold_expired(HELD, version=5, command_id="tick-1"),
        hold_expired(ZONE_HELD, version=6, command_id="tick-1"),
    ]


def test_the_timer_journals_nothing_when_no_hold_ran_out() -> None:
    zone = zone_held("z1", 2, version=4)
    show = given(show_created(), HELD, PAID, zone)
    tick = ExpireHolds(command_id="tick", show_id=SHOW)
    assert when(show, tick, T0 + HOLD - seconds(1)) == []
    assert when(show, tick, T0 + HOLD * 5) == [hold_expired(zone, version=5, command_id="tick")]


# -- paying ----------------------------------------------------------------------------------


def test_paying_a_running_hold_sells_its_seats_with_one_ticket_each() -> None:
    show = given(show_created(), HELD)
    events = when(show, pay(), T0 + seconds(60))
    assert events == [PAID]
    assert refusal_error(events) is None
    assert PAID.tickets == (
        Ticket(ticket_id("o1", "A-1-1"), "A-1-1"),
        Ticket(ticket_id("o1", "A-1-2"), "A-1-2"),
    )
    sold = given(show_created(), HELD, PAID)
    assert dict(sold.seat_statuses())["A-1-2"] == "sold"


def test_ticket_ids_are_derived_from_the_order_and_seat() -> None:
    expected = hashlib.sha256(b"o1:A-1-1").hexdigest()[:24]
    assert ticket_id("o1", "A-1-1") == expected
    assert ticket_id("o1", "A-1-1") != ticket_id("o2", "A-1-1")


def test_a_paid_zone_order_gets_one_ticket_per_place() -> None:
    show = given(show_created(), HELD, ZONE_HELD)
    paid = only(when(show, pay("z1", amount=6000), T0), OrderPaid)
    assert [ticket.seat for ticket in paid.tickets] == ["FLOOR#1", "FLOOR#2"]
    stock = given(show_created(), HELD, ZONE_HELD, paid).zone_stock["FLOOR"]
    assert (stock.held, stock.sold, stock.available) == (0, 2, 3)


def test_a_payment_after_the_hold_ran_out_is_refused_refunded_and_the_order_expires() -> None:
    show = given(show_created(), HELD)
    events = when(show, pay(), T0 + HOLD)
    assert events == [
        hold_expired(HELD, version=3, command_id="pay-1"),
        refused("hold_expired", "expired", version=4),
    ]
    assert refusal_error(events) == HoldExpiredError(order_id="o1")
    after = given(show_created(), HELD, *events)
    assert after.order("o1").status == "expired"  # type: ignore[union-attr]
    assert dict(after.seat_statuses())["A-1-1"] == "available"


def test_a_payment_for_an_already_expired_order_is_refused_and_refunded() -> None:
    show = given(show_created(), HELD, hold_expired(HELD, version=3, command_id="tick"))
    events = when(show, pay(), T0 + HOLD)
    assert events == [refused("hold_expired", "expired", version=4)]
    assert refusal_error(events) == HoldExpiredError(order_id="o1")


def test_a_payment_for_a_cancelled_order_is_refused_and_refunded() -> None:
    show = given(show_created(), HELD, hold_cancelled(HELD, version=3, command_id="c"))
    events = when(show, pay(), T0)
    assert events == [refused("order_not_held", "cancelled", version=4)]
    assert refusal_error(events) == OrderNotHeldError(order_id="o1", status="cancelled")


def test_a_second_charge_for_a_paid_order_is_refused_and_refunded() -> None:
    show = given(show_created(), HELD, PAID)
    refusal = only(when(show, pay(charge="ch-2", command_id="pay-2"), T0), PaymentRefused)
    assert (refusal.charge_id, refusal.reason) == ("ch-2", "order_not_held")


def test_the_same_charge_confirmed_again_changes_nothing() -> None:
    show = given(show_created(), HELD, PAID)
    assert when(show, pay(command_id="pay-again"), T0) == []


def test_a_charge_that_does_not_match_the_total_is_refunded_and_the_hold_kept() -> None:
    show = given(show_created(), HELD)
    events = when(show, pay(amount=9_999), T0)
    assert events == [refused("payment_amount_mismatch", "held", version=3, amount=9_999)]
    assert refusal_error(events) == PaymentAmountMismatchError(order_id="o1", amount_cents=9_999)
    assert given(show_created(), HELD, *events).order("o1").status == "held"  # type: ignore[union-attr]


def test_only_the_owner_may_pay() -> None:
    with pytest.raises(NotOrderOwnerError):
        when(given(show_created(), HELD), pay(user="mallory"), T0)


# -- refunding -------------------------------------------------------------------------------


def test_refunding_a_paid_order_frees_its_seats() -> None:
    show = given(show_created(), HELD, PAID)
    events = when(show, refund(), T0 + seconds(90))
    assert events == [order_refunded(HELD, version=4, command_id="refund-o1", charge_id="ch-1")]
    after = given(show_created(), HELD, PAID, *events)
    assert after.order("o1").status == "refunded"  # type: ignore[union-attr]
    assert dict(after.seat_statuses())["A-1-1"] == "available"


def test_refunding_a_zone_order_gives_its_places_back() -> None:
    paid = order_paid(ZONE_HELD, version=4, command_id="pz", charge_id="chz", at=T0)
    show = given(show_created(), HELD, ZONE_HELD, paid)
    (refunded,) = when(show, refund("z1"), T0)
    after = given(show_created(), HELD, ZONE_HELD, paid, refunded)
    assert after.zone_stock["FLOOR"].available == 5


def test_only_a_paid_order_can_be_refunded() -> None:
    with pytest.raises(OrderNotPaidError) as rejected:
        when(given(show_created(), HELD), refund(), T0)
    assert rejected.value.status == "held"


def test_only_the_owner_may_ask_for_a_refund() -> None:
    with pytest.raises(NotOrderOwnerError):
        when(given(show_created(), HELD, PAID), refund(user="mallory"), T0)
