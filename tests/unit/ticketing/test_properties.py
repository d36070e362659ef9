"""Properties over random interleavings of many users' commands with a moving clock."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.ticketing.commands import (
    CancelHold,
    Command,
    ConfirmPayment,
    ExpireHolds,
    PlaceHold,
    RefundOrder,
)
from domain.ticketing.decider import decide, evolve, fold
from domain.ticketing.errors import (
    NotEnoughSeatsError,
    SeatsUnavailableError,
    TicketingError,
    ZoneSoldOutError,
)
from domain.ticketing.events import Event, OrderPaid, SeatsHeld
from domain.ticketing.seating import seat_ids
from domain.ticketing.show import Order, Show
from domain.ticketing.venue import Section
from domain.ticketing.views import OrderView, SeatMapView, fold_orders

from .scenarios import SECTIONS, SHOW, T0, ZONES, seats_held, seconds, show_created

USERS = ("alice", "bob", "carol")
SEATS = tuple(seat_ids(SECTIONS))
ASKABLE_SEATS = (*SEATS, "A-9-9", "C-1-1")
CAPACITY = ZONES[0].capacity

mostly = st.sampled_from([True, True, True, False])
actions = st.one_of(
    st.tuples(st.just("advance"), st.integers(0, 400)),
    st.tuples(st.just("advance"), st.integers(300, 700)),
    st.tuples(
        st.just("seats"),
        st.sampled_from(USERS),
        st.lists(st.sampled_from(ASKABLE_SEATS), min_size=1, max_size=4),
    ),
    st.tuples(st.just("zone"), st.sampled_from(USERS), st.integers(1, 4)),
    st.tuples(
        st.just("best"),
        st.sampled_from(USERS),
        st.integers(1, 6),
        st.sampled_from([None, "A", "B"]),
    ),
    st.tuples(st.just("cancel"), st.integers(0, 30), mostly),
    st.tuples(st.just("pay"), st.integers(0, 30), mostly, mostly),
    st.tuples(st.just("pay"), st.integers(0, 30), mostly, mostly),
    st.tuples(st.just("refund"), st.integers(0, 30), mostly),
    st.tuples(st.just("expire")),
    st.tuples(st.just("redeliver"), st.integers(0, 100)),
)


@dataclass
class Sale:
    """The show under test, the journal it wrote, and what was decided along the way."""

    show: Show = field(default_factory=lambda: evolve(None, show_created()))
    journal: list[Event] = field(default_factory=lambda: [show_created()])
    seat_map: SeatMapView = field(default_factory=lambda: SeatMapView.from_events([show_created()]))
    answered: list[tuple[Command, list[Event]]] = field(default_factory=list)
    now: datetime = T0
    issued: int = 0

    def next_id(self) -> str:
        self.issued += 1
        return f"cmd-{self.issued}"

    def pick_order(self, index: int) -> Order | None:
        orders = sorted(self.show.orders(), key=lambda order: order.held_version)
        return orders[index % len(orders)] if orders else None


def _free_now(show: Show, now: datetime) -> set[str]:
    """Seats no live order has at `now`, worked out the slow, obvious way."""
    taken = {
        seat
        for order in show.orders()
        if order.status == "paid" or (order.status == "held" and order.expires_at > now)
        for seat in order.seats
    }
    return set(SEATS) - taken


def _zone_room(show: Show, now: datetime) -> int:
    used = sum(
        order.quantity
        for order in show.orders()
        if order.zone
        and (order.status == "paid" or (order.status == "held" and order.expires_at > now))
    )
    return CAPACITY - used


def _command(sale: Sale, action: tuple[object, ...]) -> Command | None:
    kind = action[0]
    cid = sale.next_id()
    if kind == "seats":
        user, seats = action[1], action[2]
        assert isinstance(user, str) and isinstance(seats, list)
        return PlaceHold.of_seats(
            command_id=cid, show_id=SHOW, user=user, order_id=f"o-{cid}", seats=tuple(seats)
        )
    if kind == "zone":
        user, quantity = action[1], action[2]
        assert isinstance(user, str) and isinstance(quantity, int)
        return PlaceHold.of_zone(
            command_id=cid,
            show_id=SHOW,
            user=user,
            order_id=f"o-{cid}",
            zone="FLOOR",
            quantity=quantity,
        )
    if kind == "best":
        user, quantity, section = action[1], action[2], action[3]
        assert isinstance(user, str) and isinstance(quantity, int)
        assert section is None or isinstance(section, str)
        return PlaceHold.best(
            command_id=cid,
            show_id=SHOW,
            user=user,
            order_id=f"o-{cid}",
            quantity=quantity,
            section=section,
        )
    if kind == "expire":
        return ExpireHolds(command_id=cid, show_id=SHOW)
    if kind in ("cancel", "pay", "refund"):
        index, as_owner = action[1], action[2]
        assert isinstance(index, int)
        order = sale.pick_order(index)
        if order is None:
            return None
        user = order.user if as_owner else "mallory"
        if kind == "cancel":
            return CancelHold(command_id=cid, show_id=SHOW, user=user, order_id=order.order_id)
        if kind == "refund":
            return RefundOrder(command_id=cid, show_id=SHOW, user=user, order_id=order.order_id)
        amount = order.total_cents + (0 if action[3] else 1)
        return ConfirmPayment(cid, SHOW, user, order.order_id, f"ch-{cid}", amount)
    raise AssertionError(kind)


def _check_against_the_obvious_model(
    show: Show, command: Command, now: datetime, outcome: list[Event] | TicketingError
) -> None:
    if not isinstance(command, PlaceHold):
        if isinstance(outcome, list):
            for event in outcome:
                if isinstance(event, OrderPaid):
                    order = show.order(event.order_id)
                    assert order is not None
                    assert now < order.expires_at, "a lapsed hold was sold"
        return
    free = _free_now(show, now)
    if command.seats:
        if isinstance(outcome, SeatsUnavailableError):
            assert not set(outcome.seats) <= free
        elif isinstance(outcome, list):
            assert set(command.seats) <= free
    elif command.zone:
        room = _zone_room(show, now)
        assert isinstance(outcome, ZoneSoldOutError) == (command.quantity > room)
    else:
        in_scope = {seat for seat in free if command.section in (None, seat.split("-")[0])}
        if isinstance(outcome, NotEnoughSeatsError):
            assert len(in_scope) < command.quantity
        else:
            assert isinstance(outcome, list)
            held = outcome[-1]
            assert isinstance(held, SeatsHeld)
            assert set(held.seats) <= in_scope
            assert len(held.seats) == command.quantity


def _check_invariants(sale: Sale) -> None:
    show = sale.show
    live = [order for order in show.orders() if order.status in ("held", "paid")]
    seat_use = Counter(seat for order in live for seat in order.seats)
    assert all(n == 1 for n in seat_use.values()), "a seat is in two live orders"
    zone_use = sum(order.quantity for order in live if order.zone)
    stock = show.zone_stock["FLOOR"]
    assert zone_use == stock.held + stock.sold <= stock.capacity
    assert [event.version for event in sale.journal] == list(range(1, show.version + 1))
    assert sale.seat_map == SeatMapView.from_show(show)


def _run(sale: Sale, action: tuple[object, ...]) -> None:
    if action[0] == "advance":
        assert isinstance(action[1], int)
        sale.now += seconds(action[1])
        return
    if action[0] == "redeliver":
        assert isinstance(action[1], int)
        if not sale.answered:
            return
        past, first = sale.answered[action[1] % len(sale.answered)]
        before = sale.show.copy()
        assert decide(sale.show, past, sale.now) == first
        assert sale.show == before
        return
    command = _command(sale, action)
    if command is None:
        return
    before = sale.show.copy()
    try:
        events: list[Event] | TicketingError = decide(sale.show, command, sale.now)
    except TicketingError as error:
        events = error
    assert sale.show == before, "decide changed the state"
    _check_against_the_obvious_model(sale.show, command, sale.now, events)
    if isinstance(events, TicketingError):
        return
    assert [event.version for event in events] == list(
        range(sale.show.version + 1, sale.show.version + 1 + len(events))
    )
    for event in events:
        evolve(sale.show, event)
        sale.journal.append(event)
        sale.seat_map.apply(event)
    if events:
        sale.answered.append((command, events))
    _check_invariants(sale)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(actions, min_size=10, max_size=80))
def test_random_sales_keep_every_rule(script: list[tuple[object, ...]]) -> None:
    sale = Sale()
    for action in script:
        _run(sale, action)

    replayed = fold(sale.journal)
    assert replayed == sale.show, "folding the journal must give the live state"
    assert fold(sale.journal) == replayed, "replaying twice must give the same state"
    assert SeatMapView.from_events(sale.journal) == SeatMapView.from_show(sale.show)
    assert fold_orders(sale.journal) == {
        order.order_id: OrderView.of(SHOW, order) for order in sale.show.orders()
    }
    for command, first in sale.answered:
        assert decide(sale.show, command, sale.now) == first


# -- best available against a brute-force reading of its rule -------------------------------


@st.composite
def venues(draw: st.DrawFn) -> tuple[tuple[Section, ...], list[str], list[str]]:
    """A layout, seats held by a running hold, and seats held by a lapsed one."""
    count = draw(st.integers(1, 3))
    sections = tuple(
        Section(name, draw(st.integers(1, 5)), draw(st.integers(1, 10)), 100)
        for name in "ABC"[:count]
    )
    seats = list(seat_ids(sections))
    taken = draw(st.lists(st.sampled_from(seats), unique=True, max_size=len(seats)))
    split = draw(st.integers(0, len(taken)))
    return sections, taken[:split], taken[split:]


def _rows(sections: tuple[Section, ...]) -> list[list[str]]:
    return [
        [f"{section.name}-{row}-{seat}" for seat in range(1, section.seats_per_row + 1)]
        for section in sections
        for row in range(1, section.rows + 1)
    ]


@settings(max_examples=300, deadline=None)
@given(venues(), st.integers(1, 8), st.booleans())
def test_best_available_follows_its_rule(
    venue: tuple[tuple[Section, ...], list[str], list[str]], quantity: int, restrict: bool
) -> None:
    sections, running, lapsed = venue
    journal: list[Event] = [show_created(sections=sections, zones=())]
    now = T0 + seconds(1000)
    if lapsed:
        journal.append(seats_held("old", *lapsed, version=len(journal) + 1, at=T0, total=0))
    if running:
        journal.append(seats_held("run", *running, version=len(journal) + 1, at=now, total=0))
    show = fold(journal)
    assert show is not None
    section = sections[-1].name if restrict else None
    rows = [row for row in _rows(sections) if section in (None, row[0].split("-")[0])]
    free = [[seat not in running for seat in row] for row in rows]
    command = PlaceHold.best(
        command_id="b", show_id=SHOW, user="u", order_id="new", quantity=quantity, section=section
    )
    if sum(map(sum, free)) < quantity:
        try:
            decide(show, command, now)
        except NotEnoughSeatsError:
            return
        raise AssertionError("expected not_enough_seats")

    events = decide(show, command, now)
    held = events[-1]
    assert isinstance(held, SeatsHeld)
    assert [type(event).__name__ for event in events[:-1]] == (
        ["HoldExpired"] if set(held.seats) & set(lapsed) else []
    )
    assert len(set(held.seats)) == quantity
    assert not set(held.seats) & set(running)

    for row, flags in zip(rows, free, strict=True):
        starts = [
            start
            for start in range(len(row) - quantity + 1)
            if all(flags[start : start + quantity])
        ]
        if starts:
            # the middle of the run nearest the middle of the row, the left one on a tie
            best = min(starts, key=lambda start: (abs(2 * start + quantity - len(row)), start))
            assert held.seats == tuple(row[best : best + quantity])
            return
    counts = sorted((sum(flags) for flags in free), reverse=True)
    fewest = next(n for n in range(1, len(counts) + 1) if sum(counts[:n]) >= quantity)
    used_rows = {seat.rsplit("-", 1)[0] for seat in held.seats}
    assert len(used_rows) == fewest
