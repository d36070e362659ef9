"""Rules of the payment saga: the intent before the charge, its one end, and owed refunds.

BeginPayment journals PaymentStarted (the provider idempotency key and the amount) before any
money moves; the intent ends with OrderPaid, PaymentRefused or PaymentAbandoned; a charge owed
back (PaymentRefused, OrderRefunded) ends with ChargeRefunded.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from domain.ticketing.commands import (
    AbandonPayment,
    BeginPayment,
    ConfirmPayment,
    RecordRefund,
    RefundOrder,
)
from domain.ticketing.errors import (
    HoldExpiredError,
    NotOrderOwnerError,
    OrderNotFoundError,
    OrderNotHeldError,
)
from domain.ticketing.events import (
    ChargeRefunded,
    Event,
    PaymentAbandoned,
    PaymentRefused,
    PaymentStarted,
)
from domain.ticketing.views import SeatMapView, fold_orders
from producers.registries import TICKETING

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
)

HELD = seats_held("o1", "A-1-1", "A-1-2", version=2)


def begin(command_id: str = "begin-1", user: str = "alice", order_id: str = "o1") -> BeginPayment:
    return BeginPayment(command_id=command_id, show_id=SHOW, user=user, order_id=order_id)


def started(key: str = "o1:1", version: int = 3, command_id: str = "begin-1") -> PaymentStarted:
    return PaymentStarted(
        show_id=SHOW,
        version=version,
        command_id=command_id,
        order_id="o1",
        user="alice",
        charge_key=key,
        amount_cents=HELD.total_cents,
        started_at=T0 + seconds(5),
    )


def abandoned(key: str = "o1:1", version: int = 4) -> PaymentAbandoned:
    return PaymentAbandoned(
        show_id=SHOW,
        version=version,
        command_id=f"abandon-{key}",
        order_id="o1",
        user="alice",
        charge_key=key,
        reason="payment_declined",
    )


def abandon(key: str = "o1:1") -> AbandonPayment:
    return AbandonPayment(
        command_id=f"abandon-{key}",
        show_id=SHOW,
        order_id="o1",
        charge_key=key,
        reason="payment_declined",
    )


def confirm(charge: str = "ch-1", command_id: str = "confirm-ch-1") -> ConfirmPayment:
    return ConfirmPayment(
        command_id=command_id,
        show_id=SHOW,
        user="alice",
        order_id="o1",
        charge_id=charge,
        amount_cents=HELD.total_cents,
    )


def record_refund(charge: str = "ch-1") -> RecordRefund:
    return RecordRefund(
        command_id=f"refunded-{charge}", show_id=SHOW, order_id="o1", charge_id=charge
    )


# -- the intent ------------------------------------------------------------------------------


def test_a_payment_starts_by_journaling_its_key_and_the_amount_to_charge() -> None:
    show = given(show_created(), HELD)
    assert when(show, begin(), T0 + seconds(5)) == [started()]
    after = given(show_created(), HELD, started())
    assert after.order("o1").payment_key == "o1:1"  # type: ignore[union-attr]


def test_asking_again_while_the_intent_is_open_names_the_same_key() -> None:
    show = given(show_created(), HELD, started())
    again = only(when(show, begin("begin-2"), T0 + seconds(6)), PaymentStarted)
    assert again.charge_key == "o1:1"
    assert again.version == 4


def test_after_an_abandoned_intent_the_next_one_gets_a_fresh_key() -> None:
    show = given(show_created(), HELD, started(), abandoned())
    assert only(when(show, begin("begin-2"), T0), PaymentStarted).charge_key == "o1:2"


def test_a_lapsed_hold_is_refused_before_any_charge_and_journals_nothing() -> None:
    show = given(show_created(), HELD)
    with pytest.raises(HoldExpiredError):
        when(show, begin(), T0 + HOLD)
    expired = given(show_created(), HELD, hold_expired(HELD, version=3, command_id="tick"))
    with pytest.raises(HoldExpiredError):
        when(expired, begin(), T0 + HOLD)


def test_only_a_held_order_of_the_payer_can_start_a_payment() -> None:
    cancelled = given(show_created(), HELD, hold_cancelled(HELD, version=3, command_id="c"))
    with pytest.raises(OrderNotHeldError) as not_held:
        when(cancelled, begin(), T0)
    assert not_held.value.status == "cancelled"
    paid = given(
        show_created(), HELD, order_paid(HELD, version=3, command_id="p", charge_id="c", at=T0)
    )
    with pytest.raises(OrderNotHeldError) as already:
        when(paid, begin(), T0)
    assert already.value.status == "paid"
    with pytest.raises(NotOrderOwnerError):
        when(given(show_created(), HELD), begin(user="mallory"), T0)
    with pytest.raises(OrderNotFoundError):
        when(given(show_created(), HELD), begin(order_id="nope"), T0)


# -- the intent's one end --------------------------------------------------------------------


def test_the_confirmed_charge_ends_the_intent_with_a_paid_order() -> None:
    show = given(show_created(), HELD, started())
    (paid,) = when(show, confirm(), T0 + seconds(10))
    after = given(show_created(), HELD, started(), paid)
    order = after.order("o1")
    assert order is not None
    assert (order.status, order.charge_id, order.payment_key) == ("paid", "ch-1", None)
    # Nothing is left to abandon: the reconciler's late void changes nothing.
    assert when(after, replace(abandon(), command_id="late-void"), T0 + seconds(60)) == []


def test_a_charge_confirmed_after_the_hold_ran_out_is_owed_back_and_ends_the_intent() -> None:
    show = given(show_created(), HELD, started())
    events = when(show, confirm(), T0 + HOLD + seconds(1))
    refusal = events[-1]
    assert isinstance(refusal, PaymentRefused) and refusal.reason == "hold_expired"
    after = given(show_created(), HELD, started(), *events)
    order = after.order("o1")
    assert order is not None and (order.status, order.payment_key) == ("expired", None)
    assert after.refund_owed("ch-1") == ("o1", HELD.total_cents)


def test_an_intent_whose_key_was_voided_is_abandoned_once() -> None:
    show = given(show_created(), HELD, started())
    assert when(show, abandon(), T0 + seconds(30)) == [abandoned()]
    after = given(show_created(), HELD, started(), abandoned())
    assert after.order("o1").payment_key is None  # type: ignore[union-attr]
    assert after.order("o1").status == "held"  # type: ignore[union-attr]
    # The same command again gets its first answer; another void of that key changes nothing.
    assert when(after, abandon(), T0 + seconds(31)) == [abandoned()]
    assert when(after, replace(abandon(), command_id="reconciler"), T0 + seconds(31)) == []


def test_abandoning_another_key_than_the_open_one_changes_nothing() -> None:
    show = given(show_created(), HELD, started(), abandoned(), started("o1:2", version=5))
    assert when(show, replace(abandon("o1:1"), command_id="stale-void"), T0) == []


# -- refunds owed ----------------------------------------------------------------------------


def test_a_refused_charge_ends_when_its_refund_is_recorded_and_only_once() -> None:
    history: list[Event] = [show_created(), HELD, started()]
    history += when(given(*history), confirm(), T0 + HOLD)
    refunded = only(when(given(*history), record_refund(), T0 + HOLD), ChargeRefunded)
    assert (refunded.charge_id, refunded.amount_cents) == ("ch-1", HELD.total_cents)
    after = given(*history, refunded)
    assert after.refund_owed("ch-1") is None
    assert when(after, replace(record_refund(), command_id="again"), T0 + HOLD) == []


def test_a_refunded_order_owes_its_charge_back_until_the_provider_refunded_it() -> None:
    paid = order_paid(HELD, version=4, command_id="confirm-ch-1", charge_id="ch-1", at=T0)
    show = given(show_created(), HELD, started(), paid)
    refund = RefundOrder(command_id="refund", show_id=SHOW, user="alice", order_id="o1")
    events = when(show, refund, T0 + seconds(90))
    assert events == [order_refunded(HELD, version=5, command_id="refund", charge_id="ch-1")]
    after = given(show_created(), HELD, started(), paid, *events)
    assert after.refunds_owed() == {"ch-1": ("o1", HELD.total_cents)}
    only(when(after, record_refund(), T0 + seconds(91)), ChargeRefunded)


def test_recording_a_refund_nobody_owes_changes_nothing() -> None:
    show = given(show_created(), HELD, started())
    assert when(show, record_refund("ch-unknown"), T0) == []


# -- the views and the codec -----------------------------------------------------------------


def test_money_events_move_the_version_but_no_seat_and_no_order() -> None:
    history: list[Event] = [show_created(), HELD, started()]
    history += when(given(*history), confirm(), T0 + HOLD)
    history += when(given(*history), record_refund(), T0 + HOLD)
    view = SeatMapView()
    deltas = [view.apply(event) for event in history]
    money = [d for d, e in zip(deltas, history, strict=True) if isinstance(e, PaymentStarted)]
    assert money and all(d is not None and not d.seats and not d.zones for d in money)
    assert view.version == history[-1].version
    assert view == SeatMapView.from_show(given(*history))
    orders = fold_orders(history)
    assert orders["o1"].status == "expired"


def test_the_new_messages_travel_through_the_codec_unchanged() -> None:
    for message in (
        begin(),
        abandon(),
        record_refund(),
        started(),
        abandoned(),
        ChargeRefunded(
            show_id=SHOW,
            version=9,
            command_id="r",
            order_id="o1",
            user="alice",
            charge_id="ch-1",
            amount_cents=1,
        ),
    ):
        assert TICKETING.decode(TICKETING.encode(message)) == message
