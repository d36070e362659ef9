"""Realistic show journals for read-side tests, made by the real decider.

A seeded random sale: holds (explicit seats, zone places, best available), cancellations,
payments (some for the wrong amount, some too late), refunds and expiry ticks, each decided
by `decide` and folded by `evolve` exactly as the deciders do, so every journal is one the
system could have written.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from domain.ticketing import (
    BeginPayment,
    CancelHold,
    Command,
    ConfirmPayment,
    CreateShow,
    Event,
    ExpireHolds,
    PlaceHold,
    RecordRefund,
    RefundOrder,
    Section,
    Show,
    TicketingError,
    Zone,
    decide,
    evolve,
)
from producers.envelope import EventRecord
from producers.registries import TICKETING

T0 = datetime(2030, 5, 1, 18, 0, tzinfo=UTC)
SECTIONS = (Section("A", 4, 6, 5000), Section("B", 3, 5, 2500))
ZONES = (Zone("FLOOR", 12, 3000), Zone("BAR", 5, 1500))
USERS = ("alice", "bob", "carol", "dave")


def sale(
    show_id: str,
    commands: int,
    seed: int = 1,
    *,
    sections: tuple[Section, ...] = SECTIONS,
    zones: tuple[Zone, ...] = ZONES,
    hold_seconds: int = 90,
) -> list[Event]:
    """The journal of a show after `commands` random commands (rejections leave no trace)."""
    rng = random.Random(seed)
    now = T0
    show: Show | None = None
    journal: list[Event] = []
    orders: list[tuple[str, str]] = []

    def run(command: Command) -> None:
        nonlocal show
        try:
            events = decide(show, command, now)
        except TicketingError:
            return
        for event in events:
            if show is None or event.version > show.version:
                show = evolve(show, event)
                journal.append(event)

    run(
        CreateShow(
            command_id=f"{show_id}-create",
            show_id=show_id,
            organizer="olga",
            name=f"Show {show_id}",
            starts_at=T0 + timedelta(days=30),
            hold_seconds=hold_seconds,
            sections=sections,
            zones=zones,
        )
    )
    seat_ids = [
        f"{s.name}-{row}-{seat}"
        for s in sections
        for row in range(1, s.rows + 1)
        for seat in range(1, s.seats_per_row + 1)
    ]
    for n in range(commands):
        now += timedelta(seconds=rng.uniform(0, 6))
        command_id = f"{show_id}-c{n}"
        pick = rng.random()
        if pick < 0.45 or not orders:
            order_id = f"{show_id}-o{n}"
            user = rng.choice(USERS)
            mode = rng.random()
            if mode < 0.4 and seat_ids:
                seats = tuple(rng.sample(seat_ids, rng.randint(1, 4)))
                command: Command = PlaceHold.of_seats(
                    command_id=command_id,
                    show_id=show_id,
                    user=user,
                    order_id=order_id,
                    seats=seats,
                )
            elif mode < 0.7 and zones:
                command = PlaceHold.of_zone(
                    command_id=command_id,
                    show_id=show_id,
                    user=user,
                    order_id=order_id,
                    zone=rng.choice(zones).name,
                    quantity=rng.randint(1, 3),
                )
            else:
                command = PlaceHold.best(
                    command_id=command_id,
                    show_id=show_id,
                    user=user,
                    order_id=order_id,
                    quantity=rng.randint(1, 5),
                )
            orders.append((order_id, user))
            run(command)
            continue
        order_id, user = rng.choice(orders[-6:])
        if pick < 0.6:
            run(CancelHold(command_id, show_id, user, order_id))
        elif pick < 0.8:
            held = show.order(order_id) if show is not None else None
            amount = held.total_cents if held is not None else 0
            if rng.random() < 0.1:
                amount += 1
            # As the API pays: the intent first, then the charge's outcome, then (sometimes)
            # the refunds the journal owes recorded, as the API or the reconciler would.
            run(BeginPayment(f"{command_id}-begin", show_id, user, order_id))
            run(ConfirmPayment(command_id, show_id, user, order_id, f"ch-{command_id}", amount))
            if show is not None and rng.random() < 0.7:
                for charge_id, (owed_order, _) in show.refunds_owed().items():
                    run(RecordRefund(f"refunded-{charge_id}", show_id, owed_order, charge_id))
        elif pick < 0.9:
            paid = [o for o in show.orders() if o.status == "paid"] if show is not None else []
            if paid:
                order = rng.choice(paid)
                order_id, user = order.order_id, order.user
            run(RefundOrder(command_id, show_id, user, order_id))
        else:
            run(ExpireHolds(command_id, show_id))
    return journal


def record(event: Event) -> bytes:
    """The journal message of an event, as the deciders write it."""
    return EventRecord(
        stream_id=event.show_id,
        version=event.version,
        command_id=event.command_id,
        recorded_at=T0,
        event=TICKETING.to_dict(event),
    ).encode()
