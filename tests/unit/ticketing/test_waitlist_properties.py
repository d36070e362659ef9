"""Properties of the waitlist over random sales, leaves, lapses and refunds with a moving clock.

Whether an entry "fits" is worked out here the slow, obvious way (counting seats of live
orders), not with the decider's own bookkeeping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.ticketing.commands import (
    BeginPayment,
    CancelHold,
    Command,
    ConfirmPayment,
    ExpireHolds,
    JoinWaitlist,
    LeaveWaitlist,
    PlaceHold,
    RefundOrder,
)
from domain.ticketing.decider import decide, evolve, fold
from domain.ticketing.errors import TicketingError
from domain.ticketing.events import Event, SeatsHeld, WaitlistOffered
from domain.ticketing.seating import seat_ids
from domain.ticketing.show import Order, Show
from domain.ticketing.venue import Section, Zone
from domain.ticketing.views import SeatMapView
from domain.ticketing.waitlist import WaitEntry

from .scenarios import SHOW, T0, seconds, show_created

SECTIONS = (Section("A", 1, 3, 5000), Section("B", 1, 2, 2500))
ZONES = (Zone("FLOOR", 2, 3000),)
SEATS = tuple(seat_ids(SECTIONS))
USERS = tuple(f"u{n}" for n in range(8))
AREAS = (None, "A", "B", "FLOOR")

# Small enough to sell out in a few holds, so the line forms and freed places meet it.
holds = st.tuples(
    st.just("hold"), st.sampled_from(USERS), st.integers(1, 3), st.sampled_from(AREAS)
)
joins = st.tuples(
    st.just("join"), st.sampled_from(USERS), st.integers(1, 3), st.sampled_from(AREAS)
)
actions = st.one_of(
    st.tuples(st.just("advance"), st.integers(0, 400)),
    st.tuples(st.just("advance"), st.integers(500, 700)),
    holds,
    holds,
    holds,
    joins,
    joins,
    joins,
    joins,
    joins,
    st.tuples(st.just("leave"), st.sampled_from(USERS)),
    st.tuples(st.just("cancel"), st.integers(0, 40)),
    st.tuples(st.just("cancel"), st.integers(0, 40)),
    st.tuples(st.just("pay"), st.integers(0, 40)),
    st.tuples(st.just("refund"), st.integers(0, 40)),
    st.tuples(st.just("expire")),
    st.tuples(st.just("redeliver"), st.integers(0, 100)),
)


@dataclass
class Sale:
    show: Show = field(
        default_factory=lambda: evolve(None, show_created(sections=SECTIONS, zones=ZONES))
    )
    journal: list[Event] = field(
        default_factory=lambda: [show_created(sections=SECTIONS, zones=ZONES)]
    )
    answered: list[tuple[Command, list[Event]]] = field(default_factory=list)
    now: datetime = T0
    issued: int = 0
    offers: int = 0

    def next_id(self) -> str:
        self.issued += 1
        return f"cmd-{self.issued}"

    def pick_order(self, index: int) -> Order | None:
        orders = sorted(self.show.orders(), key=lambda order: order.held_version)
        return orders[index % len(orders)] if orders else None


def _free(show: Show, now: datetime, lapsed_free: bool) -> dict[str, int]:
    """Free places per section and zone, from the live orders."""

    def live(order: Order) -> bool:
        if order.status == "paid":
            return True
        return order.status == "held" and not (lapsed_free and order.expires_at <= now)

    taken = {seat for order in show.orders() if live(order) for seat in order.seats}
    free = {section.name: 0 for section in SECTIONS}
    for seat in SEATS:
        if seat not in taken:
            free[seat.split("-")[0]] += 1
    for zone in ZONES:
        used = sum(o.quantity for o in show.orders() if o.zone == zone.name and live(o))
        free[zone.name] = zone.capacity - used
    return free


def _fits(entry: WaitEntry, free: dict[str, int]) -> bool:
    if entry.section is not None:
        return free[entry.section] >= entry.quantity
    if entry.zone is not None:
        return free[entry.zone] >= entry.quantity
    seats = sum(free[section.name] for section in SECTIONS)
    return seats >= entry.quantity or any(free[z.name] >= entry.quantity for z in ZONES)


def _nobody_waiting_fits(show: Show, now: datetime, lapsed_free: bool) -> None:
    free = _free(show, now, lapsed_free)
    fitting = [entry.entry_id for entry in show.line.waiting_entries() if _fits(entry, free)]
    assert not fitting, f"{fitting} wait while {free} is free"


def _command(sale: Sale, action: tuple[object, ...]) -> Command | None:
    kind = action[0]
    cid = sale.next_id()
    if kind in ("hold", "join"):
        user, quantity, area = action[1], action[2], action[3]
        assert isinstance(user, str) and isinstance(quantity, int)
        assert area is None or isinstance(area, str)
        zone = area if area == "FLOOR" else None
        section = area if area in ("A", "B") else None
        if kind == "join":
            return JoinWaitlist(cid, SHOW, user, f"e-{cid}", f"o-{cid}", quantity, section, zone)
        if zone is not None:
            return PlaceHold.of_zone(
                command_id=cid,
                show_id=SHOW,
                user=user,
                order_id=f"o-{cid}",
                zone=zone,
                quantity=quantity,
            )
        return PlaceHold.best(
            command_id=cid,
            show_id=SHOW,
            user=user,
            order_id=f"o-{cid}",
            quantity=quantity,
            section=section,
        )
    if kind == "leave":
        assert isinstance(action[1], str)
        return LeaveWaitlist(cid, SHOW, action[1])
    if kind == "expire":
        return ExpireHolds(cid, SHOW)
    index = action[1]
    assert isinstance(index, int)
    order = sale.pick_order(index)
    if order is None:
        return None
    if kind == "cancel":
        return CancelHold(cid, SHOW, order.user, order.order_id)
    if kind == "refund":
        return RefundOrder(cid, SHOW, order.user, order.order_id)
    assert kind == "pay"
    if order.payment_key is None and order.status == "held" and not order.lapsed(sale.now):
        return BeginPayment(cid, SHOW, order.user, order.order_id)
    return ConfirmPayment(cid, SHOW, order.user, order.order_id, f"ch-{cid}", order.total_cents)


def _fold_checking_line_order(sale: Sale, command: Command, events: list[Event]) -> None:
    """Fold the decision's events one by one, checking every offer as it is made."""
    show, now = sale.show, sale.now
    # A new hold or entry comes after the decision's offers (the line first): right before
    # it, nobody waiting fits what is free, lapsed holds included.
    offered_upto = max(
        (n + 1 for n, event in enumerate(events) if isinstance(event, WaitlistOffered)), default=0
    )
    for n, event in enumerate(events):
        if n == offered_upto and isinstance(command, PlaceHold | JoinWaitlist):
            _nobody_waiting_fits(show, now, lapsed_free=True)
        nxt = events[n + 1] if n + 1 < len(events) else None
        if isinstance(event, SeatsHeld) and isinstance(nxt, WaitlistOffered):
            entry = show.line.entry(nxt.entry_id)
            assert entry is not None and entry.status == "waiting"
            free = _free(show, now, lapsed_free=False)
            assert _fits(entry, free), "offered more than is free"
            ahead = [e for e in show.line.waiting_entries() if e.seq < entry.seq]
            assert not [e.entry_id for e in ahead if _fits(e, free)], "offered out of line order"
            assert (event.user, event.quantity, event.order_id) == (
                entry.user,
                entry.quantity,
                entry.offer_order_id,
            )
            if entry.zone is not None:
                assert event.zone == entry.zone
            if entry.section is not None:
                assert all(seat.startswith(f"{entry.section}-") for seat in event.seats)
            sale.offers += 1
        evolve(show, event)
        sale.journal.append(event)
    if offered_upto == len(events) and isinstance(command, PlaceHold | JoinWaitlist) and events:
        _nobody_waiting_fits(show, now, lapsed_free=True)


def _check_invariants(sale: Sale) -> None:
    show = sale.show
    # Every freed place went to the line while someone it fits was waiting.
    _nobody_waiting_fits(show, sale.now, lapsed_free=False)
    waiting = list(show.line.waiting_entries())
    assert [show.line.position(e.entry_id) for e in waiting] == list(range(1, len(waiting) + 1))
    assert [e.seq for e in waiting] == sorted(e.seq for e in waiting)
    assert show.line.waiting == len(waiting)
    live = {}
    for entry in show.line.entries():
        if show.live_entry(entry.user, sale.now) == entry:
            assert entry.user not in live, "two live entries of one user"
            live[entry.user] = entry
        if entry.status == "offered":
            order = show.order(entry.order_id or "")
            assert order is not None and order.user == entry.user


def _run(sale: Sale, action: tuple[object, ...]) -> None:
    if action[0] == "advance":
        assert isinstance(action[1], int)
        sale.now += seconds(action[1])
        return
    if action[0] == "redeliver":
        assert isinstance(action[1], int)
        if sale.answered:
            past, first = sale.answered[action[1] % len(sale.answered)]
            assert decide(sale.show, past, sale.now) == first
        return
    command = _command(sale, action)
    if command is None:
        return
    before = sale.show.copy()
    try:
        events = decide(sale.show, command, sale.now)
    except TicketingError:
        assert sale.show == before
        return
    assert sale.show == before, "decide changed the state"
    assert [e.version for e in events] == list(
        range(sale.show.version + 1, sale.show.version + 1 + len(events))
    )
    _fold_checking_line_order(sale, command, events)
    if events:
        sale.answered.append((command, events))
    _check_invariants(sale)


# Every script starts sold out, so fans can join the line at once.
SOLD_OUT: tuple[tuple[object, ...], ...] = (
    ("hold", "u0", 3, "A"),
    ("hold", "u1", 2, "B"),
    ("hold", "u2", 2, "FLOOR"),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(actions, min_size=10, max_size=90))
def test_the_line_is_served_first_in_order_and_folds_back(script: list[tuple[object, ...]]) -> None:
    sale = Sale()
    for action in (*SOLD_OUT, *script):
        _run(sale, action)
    assert fold(sale.journal) == sale.show, "folding the journal must give the live state"
    assert SeatMapView.from_events(sale.journal) == SeatMapView.from_show(sale.show)
    for command, first in sale.answered:
        assert decide(sale.show, command, sale.now) == first


def test_the_random_sales_do_make_offers() -> None:
    """The property above is not vacuous: a plain script makes offers through it."""
    sale = Sale()
    script: list[tuple[object, ...]] = [
        ("hold", "u0", 1, "A"),
        ("hold", "u1", 2, "A"),
        ("hold", "u2", 2, "B"),
        ("hold", "u3", 2, "FLOOR"),
        ("join", "u4", 2, "A"),
        ("join", "u5", 1, None),
        ("cancel", 1),
        ("advance", 700),
        ("expire",),
    ]
    for action in script:
        _run(sale, action)
    assert sale.offers == 2
