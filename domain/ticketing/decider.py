"""The ticketing decider: `decide` turns a command into events, `evolve` folds events.

Both are pure (no I/O, no clock: `now` is an argument). The processor, the replay tool and
the tests all run exactly these.

Deduplication: a command whose `command_id` already produced events gets those very events
back, with their original versions, and nothing is decided again. The adapter tells a
redelivery from a fresh decision because the versions are <= `state.version` (or by asking
`state.outcome_of(command_id)` first) and then answers without journaling anything. A
rejected command leaves no trace in the state: the decider loop journals the rejection and
answers every later copy with it, before calling `decide` (see processors/deciders.py).

Late payments: see `domain.ticketing.payments`; `refusal_error(events)` tells the adapter
which error to answer after journaling the events of a refused payment.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TypeVar, assert_never

from domain.ticketing.commands import (
    AbandonPayment,
    BeginPayment,
    CancelHold,
    Command,
    ConfirmPayment,
    CreateShow,
    ExpireHolds,
    JoinQueue,
    JoinWaitlist,
    LeaveWaitlist,
    PlaceHold,
    RecordRefund,
    RefundOrder,
)
from domain.ticketing.errors import (
    InvalidShowError,
    JournalError,
    ShowExistsError,
    ShowNotFoundError,
)
from domain.ticketing.events import (
    ChargeRefunded,
    Event,
    HoldCancelled,
    HoldExpired,
    OrderPaid,
    OrderRefunded,
    PaymentAbandoned,
    PaymentRefused,
    PaymentStarted,
    QueueJoined,
    SeatsHeld,
    ShowCreated,
    WaitlistJoined,
    WaitlistLeft,
    WaitlistOffered,
)
from domain.ticketing.holds import cancel_hold, expire_holds, place_hold
from domain.ticketing.lines import (
    join_queue,
    join_waitlist,
    lapsed_offers,
    leave_waitlist,
    require_pass,
    then_serve,
)
from domain.ticketing.payments import (
    abandon_payment,
    begin_payment,
    confirm_payment,
    record_refund,
    refund_order,
)
from domain.ticketing.queue import spec_problem
from domain.ticketing.show import Order, Show
from domain.ticketing.venue import MAX_HOLD_SECONDS, MAX_SHOW_NAME, layout_problem
from domain.ticketing.waitlist import WaitEntry

_C = TypeVar("_C", PlaceHold, JoinWaitlist)


def decide(state: Show | None, command: Command, now: datetime) -> list[Event]:
    """The events `command` causes at `now`, or a raised TicketingError. Never mutates."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if state is not None and (done := state.outcome_of(command.command_id)) is not None:
        return list(done)
    if isinstance(command, CreateShow):
        if state is not None:
            raise ShowExistsError(show_id=command.show_id)
        return [_create_show(command, now)]
    if state is None or command.show_id != state.show_id:
        raise ShowNotFoundError(show_id=command.show_id)
    match command:
        case PlaceHold():
            require_pass(state, command.user, now)
            return _line_first(state, command, now, place_hold)
        case CancelHold():
            return then_serve(state, cancel_hold(state, command, now), now, command.command_id)
        case ExpireHolds():
            return then_serve(state, expire_holds(state, command, now), now, command.command_id)
        case BeginPayment():
            return begin_payment(state, command, now)
        case AbandonPayment():
            return abandon_payment(state, command, now)
        case ConfirmPayment():
            # A late payment on a lapsed hold expires it: its places go to the line.
            events = confirm_payment(state, command, now)
            return then_serve(state, events, now, command.command_id)
        case RecordRefund():
            return record_refund(state, command, now)
        case RefundOrder():
            return then_serve(state, refund_order(state, command, now), now, command.command_id)
        case JoinWaitlist():
            require_pass(state, command.user, now)
            return _line_first(state, command, now, join_waitlist)
        case LeaveWaitlist():
            return leave_waitlist(state, command, now)
        case JoinQueue():
            return join_queue(state, command, now)
        case _:
            assert_never(command)


def _line_first(
    state: Show, command: _C, now: datetime, inner: Callable[[Show, _C, datetime], list[Event]]
) -> list[Event]:
    """The line is served before anything new: when lapsed holds free places that waiting
    entries fit, their HoldExpired and the offers go first, and `inner` decides against the
    state after them (a copy, so this is the only costly path, and it is taken at most once
    per lapse: afterwards those holds are journaled as expired)."""
    served: list[Event] = lapsed_offers(state, now, command.command_id)
    if not served:
        return inner(state, command, now)
    after: Show = state.copy()
    for event in served:
        evolve(after, event)
    return [*served, *inner(after, command, now)]


def _create_show(command: CreateShow, now: datetime) -> ShowCreated:
    problem = layout_problem(command.sections, command.zones)
    if not command.name.strip() or len(command.name) > MAX_SHOW_NAME:
        problem = f"a show needs a name of 1..{MAX_SHOW_NAME} characters"
    elif command.starts_at.tzinfo is None:
        problem = "starts_at must carry a time zone"
    elif not 1 <= command.hold_seconds <= MAX_HOLD_SECONDS:
        problem = f"hold_seconds must be 1..{MAX_HOLD_SECONDS}"
    queue = command.queue
    if problem is None and queue is not None:
        problem = spec_problem(queue, command.queue_seed)
        queue = replace(queue, opens_at=queue.opens_at.astimezone(UTC))
    if problem is not None:
        raise InvalidShowError(reason=problem)
    return ShowCreated(
        show_id=command.show_id,
        version=1,
        command_id=command.command_id,
        organizer=command.organizer,
        name=command.name,
        starts_at=command.starts_at.astimezone(UTC),
        hold_seconds=command.hold_seconds,
        sections=command.sections,
        zones=command.zones,
        created_at=now,
        queue=queue,
        queue_seed=command.queue_seed if queue is not None else "",
    )


def evolve(state: Show | None, event: Event) -> Show:
    """Fold one event into the state and return it.

    Updates `state` IN PLACE and returns that same object (except for ShowCreated, which
    makes a new Show): the single writer of a show owns its state, and copying 200,000
    seats per event would cost far more than the decision. Take `state.copy()` first to
    keep the old state.

    Total over journals: an event already folded (version <= state.version, and equal to
    the one journaled there) is ignored, so an at-least-once consumer may fold blindly; an
    event that cannot follow the state
    (a version gap, another show, an unknown order) raises JournalError. Deterministic:
    the same events always fold to equal states.
    """
    if state is None:
        if not isinstance(event, ShowCreated) or event.version != 1:
            raise JournalError(f"a show's journal starts with ShowCreated v1, not {event!r}")
        show = Show(event)
        show.record(event)
        return show
    if event.version <= state.version:
        if state.event_at(event.version) != event:
            raise JournalError(f"{event!r} conflicts with the journaled v{event.version}")
        return state
    if event.version != state.version + 1 or event.show_id != state.show_id:
        raise JournalError(
            f"show {state.show_id} at v{state.version} cannot take "
            f"{type(event).__name__} v{event.version} of show {event.show_id}"
        )
    match event:
        case ShowCreated():
            raise JournalError(f"show {state.show_id} was created twice")
        case SeatsHeld():
            if state.order(event.order_id) is not None:
                raise JournalError(f"order {event.order_id} was held twice")
            state.add_order(
                Order(
                    order_id=event.order_id,
                    user=event.user,
                    status="held",
                    seats=event.seats,
                    zone=event.zone,
                    quantity=event.quantity,
                    total_cents=event.total_cents,
                    held_at=event.held_at,
                    expires_at=event.expires_at,
                    held_version=event.version,
                    version=event.version,
                    offsets=state.offsets(event.seats),
                )
            )
        case HoldCancelled():
            state.end_hold(_held(state, event.order_id), "cancelled", event.version)
        case HoldExpired():
            state.end_hold(_held(state, event.order_id), "expired", event.version)
        case OrderPaid():
            order = _held(state, event.order_id)
            state.end_hold(order, "paid", event.version, event.charge_id, event.tickets)
            state.close_payment(event.order_id)
        case PaymentRefused():
            _order(state, event.order_id)
            state.close_payment(event.order_id)
            state.owe_refund(event.charge_id, event.order_id, event.amount_cents)
        case OrderRefunded():
            order = _order(state, event.order_id)
            if order.status != "paid":
                raise JournalError(f"order {order.order_id} refunded while {order.status}")
            state.refund(order, event.version)
            state.owe_refund(event.charge_id, event.order_id, event.amount_cents)
        case PaymentStarted():
            state.open_payment(_order(state, event.order_id), event.charge_key)
        case PaymentAbandoned():
            _order(state, event.order_id)
            state.close_payment(event.order_id, event.charge_key)
        case ChargeRefunded():
            _order(state, event.order_id)
            state.settle_refund(event.charge_id)
        case WaitlistJoined():
            if state.line.entry(event.entry_id) is not None:
                raise JournalError(f"entry {event.entry_id} joined twice")
            state.line.joined(event)
        case WaitlistLeft():
            state.line.leave(_waiting(state, event.entry_id), event.version)
        case WaitlistOffered():
            entry = _waiting(state, event.entry_id)
            order = _order(state, event.order_id)
            if order.user != entry.user or order.status != "held":
                raise JournalError(f"offer {event.order_id} is not a hold of {entry.user}")
            state.line.offer(entry, event.order_id, event.version)
        case QueueJoined():
            room = state.room
            if room is None:
                raise JournalError(f"show {state.show_id} has no queue to join")
            if room.member(event.user) is not None:
                raise JournalError(f"{event.user} joined the queue of {state.show_id} twice")
            if event.early and room.early_closed:
                raise JournalError(f"an early join of {state.show_id} after a late one")
            room.join(event.user, event.joined_at, event.early, event.version)
        case _:
            assert_never(event)
    state.record(event)
    return state


def _order(state: Show, order_id: str) -> Order:
    order = state.order(order_id)
    if order is None:
        raise JournalError(f"show {state.show_id} has no order {order_id}")
    return order


def _held(state: Show, order_id: str) -> Order:
    order = _order(state, order_id)
    if order.status != "held":
        raise JournalError(f"order {order_id} left 'held' twice (now {order.status})")
    return order


def _waiting(state: Show, entry_id: str) -> WaitEntry:
    entry = state.line.entry(entry_id)
    if entry is None or entry.status != "waiting":
        raise JournalError(f"entry {entry_id} of show {state.show_id} is not waiting")
    return entry


def fold(events: Iterable[Event]) -> Show | None:
    """The state after `events`, from nothing (replay, time travel, tests)."""
    state: Show | None = None
    for event in events:
        state = evolve(state, event)
    return state
