"""The online waitlist: joining, leaving, positions, and freed places going to the line first.

The show here is tiny so it sells out in a step: section A (1 row of 4 seats, 50.00) and
zone FLOOR (2 places, 30.00); holds last 600 s.
"""

from __future__ import annotations

from datetime import datetime

import pytest

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
from domain.ticketing.errors import (
    AlreadyInLineError,
    EntryExistsError,
    InvalidQuantityError,
    InvalidWaitlistError,
    NotEnoughSeatsError,
    NotInLineError,
    NotWaitingError,
    SeatsAvailableError,
    UnknownSectionError,
    UnknownZoneError,
)
from domain.ticketing.events import (
    Event,
    HoldCancelled,
    HoldExpired,
    OrderPaid,
    OrderRefunded,
    SeatsHeld,
    WaitlistJoined,
    WaitlistLeft,
    WaitlistOffered,
)
from domain.ticketing.show import Show
from domain.ticketing.venue import Section, Zone
from domain.ticketing.views import OrderView, SeatMapView, fold_orders
from producers.registries import TICKETING

from .scenarios import HOLD, SHOW, T0, given, seconds, show_created, when

TINY = (Section("A", 1, 4, 5000),)
FLOOR = (Zone("FLOOR", 2, 3000),)


def fresh() -> Show:
    return given(show_created(sections=TINY, zones=FLOOR))


def run(show: Show, command: Command, now: datetime = T0) -> list[Event]:
    """Decide (checking decide leaves the state alone) and fold the events in."""
    events = when(show, command, now)
    for event in events:
        evolve(show, event)
    return events


def hold(user: str, quantity: int, *, zone: str | None = None, tag: str = "") -> PlaceHold:
    order_id = f"o-{user}{tag}"
    if zone is not None:
        return PlaceHold.of_zone(
            command_id=f"h-{user}{tag}",
            show_id=SHOW,
            user=user,
            order_id=order_id,
            zone=zone,
            quantity=quantity,
        )
    return PlaceHold.best(
        command_id=f"h-{user}{tag}", show_id=SHOW, user=user, order_id=order_id, quantity=quantity
    )


def join(
    user: str, quantity: int, *, section: str | None = None, zone: str | None = None, n: int = 1
) -> JoinWaitlist:
    return JoinWaitlist(
        command_id=f"j-{user}-{n}",
        show_id=SHOW,
        user=user,
        entry_id=f"e-{user}-{n}",
        offer_order_id=f"offer-{user}-{n}",
        quantity=quantity,
        section=section,
        zone=zone,
    )


def cancel(user: str, order_id: str | None = None) -> CancelHold:
    order_id = order_id or f"o-{user}"
    return CancelHold(command_id=f"c-{order_id}", show_id=SHOW, user=user, order_id=order_id)


def sold_out() -> Show:
    """Every seat and place held: alice has A-1-1..A-1-4, zed both FLOOR places."""
    show = fresh()
    run(show, hold("alice", 4))
    run(show, hold("zed", 2, zone="FLOOR"))
    return show


def kinds(events: list[Event]) -> list[str]:
    return [type(event).__name__ for event in events]


def offers(events: list[Event]) -> list[WaitlistOffered]:
    return [event for event in events if isinstance(event, WaitlistOffered)]


# -- joining ---------------------------------------------------------------------------------


def test_nobody_queues_in_front_of_free_seats() -> None:
    show = fresh()
    run(show, hold("alice", 2))
    with pytest.raises(SeatsAvailableError) as refused:
        when(show, join("bob", 2, section="A"), T0)
    assert refused.value.details() == {"available": 2}
    assert refused.value.code == "seats_available"


def test_a_request_that_does_not_fit_joins_the_back_of_the_line() -> None:
    show = fresh()
    run(show, hold("alice", 2))
    joined = run(show, join("bob", 3, section="A"))
    assert joined == [
        WaitlistJoined(
            show_id=SHOW,
            version=3,
            command_id="j-bob-1",
            entry_id="e-bob-1",
            user="bob",
            quantity=3,
            section="A",
            zone=None,
            offer_order_id="offer-bob-1",
            position=1,
            joined_at=T0,
        )
    ]
    assert show.line.waiting == 1 and show.line.position("e-bob-1") == 1


def test_lapsed_holds_count_as_free_when_joining() -> None:
    show = sold_out()
    with pytest.raises(SeatsAvailableError):
        when(show, join("bob", 1, section="A"), T0 + HOLD)


def test_joining_again_answers_with_the_live_entry() -> None:
    show = sold_out()
    run(show, join("bob", 1))
    run(show, join("carol", 2, section="A"))
    with pytest.raises(AlreadyInLineError) as again:
        when(show, join("carol", 1, zone="FLOOR", n=2), T0)
    assert again.value.details() == {
        "entry_id": "e-carol-1",
        "status": "waiting",
        "position": 2,
        "quantity": 2,
        "section": "A",
        "zone": None,
        "order_id": None,
    }


@pytest.mark.parametrize(
    ("command", "error"),
    [
        (join("bob", 0), InvalidQuantityError),
        (join("bob", 11), InvalidQuantityError),
        (join("bob", 1, section="A", zone="FLOOR"), InvalidWaitlistError),
        (join("bob", 1, section="Z"), UnknownSectionError),
        (join("bob", 1, zone="ROOF"), UnknownZoneError),
        (join("bob", 3, zone="FLOOR"), InvalidWaitlistError),
        (join("bob", 5, section="A"), InvalidWaitlistError),
    ],
)
def test_requests_that_could_never_be_met_are_refused(
    command: JoinWaitlist, error: type[Exception]
) -> None:
    with pytest.raises(error):
        when(sold_out(), command, T0)


def test_an_entry_id_is_used_once() -> None:
    show = sold_out()
    run(show, join("bob", 1))
    reused = JoinWaitlist("j-other", SHOW, "carol", "e-bob-1", "offer-carol", 1)
    with pytest.raises(EntryExistsError):
        when(show, reused, T0)


# -- positions and leaving -------------------------------------------------------------------


def test_positions_follow_journal_order_and_close_up_when_someone_leaves() -> None:
    show = sold_out()
    for user in ("bob", "carol", "dave", "erin"):
        assert run(show, join(user, 1))[-1] == show.events()[-1]
    left = run(show, LeaveWaitlist("l-carol", SHOW, "carol"))
    assert left == [WaitlistLeft(SHOW, show.version, "l-carol", "e-carol-1", "carol")]
    assert [show.line.position(f"e-{u}-1") for u in ("bob", "carol", "dave", "erin")] == [
        1,
        None,
        2,
        3,
    ]
    assert [entry.user for entry in show.line.waiting_entries()] == ["bob", "dave", "erin"]
    assert show.line.at_position(2).user == "dave"
    assert show.line.entry("e-carol-1") is not None
    assert show.line.waiting == 3


def test_leaving_twice_or_without_an_entry_is_not_in_line() -> None:
    show = sold_out()
    with pytest.raises(NotInLineError):
        when(show, LeaveWaitlist("l", SHOW, "bob"), T0)
    run(show, join("bob", 1))
    run(show, LeaveWaitlist("l1", SHOW, "bob"))
    with pytest.raises(NotInLineError):
        when(show, LeaveWaitlist("l2", SHOW, "bob"), T0)


def test_after_leaving_a_fan_may_join_again_at_the_back() -> None:
    show = sold_out()
    run(show, join("bob", 1))
    run(show, join("carol", 1))
    run(show, LeaveWaitlist("l1", SHOW, "bob"))
    joined = run(show, join("bob", 1, n=2))
    assert isinstance(joined[0], WaitlistJoined) and joined[0].position == 2


# -- freed places go to the line -------------------------------------------------------------


def test_a_cancel_offers_the_places_to_the_first_entry_they_fit_then_the_next() -> None:
    show = sold_out()
    run(show, join("bob", 4, section="A"))  # does not fit 1..3 freed seats
    run(show, join("carol", 1, section="A"))
    run(show, join("dave", 1))
    run(show, join("erin", 1, section="A"))
    events = run(show, cancel("alice"))
    assert kinds(events) == [
        "HoldCancelled",
        "SeatsHeld",
        "WaitlistOffered",
    ]
    offer = offers(events)[0]
    assert (offer.entry_id, offer.order_id, offer.quantity) == ("e-bob-1", "offer-bob-1", 4)
    assert offer.seats == ("A-1-1", "A-1-2", "A-1-3", "A-1-4")
    assert offer.total_cents == 20000 and offer.expires_at == T0 + HOLD
    order = show.order("offer-bob-1")
    assert order is not None and order.user == "bob" and order.status == "held"
    assert show.line.entry("e-bob-1") is not None
    assert [entry.user for entry in show.line.waiting_entries()] == ["carol", "dave", "erin"]


def test_places_pass_over_an_entry_they_cannot_satisfy_to_the_next_that_fits() -> None:
    show = fresh()
    run(show, hold("alice", 1, tag="1"))
    run(show, hold("alice", 3, tag="3"))
    run(show, hold("zed", 2, zone="FLOOR"))
    run(show, join("bob", 4, section="A"))
    run(show, join("carol", 1, section="A"))
    run(show, join("dave", 1, section="A"))
    events = run(show, cancel("alice", "o-alice1"))
    assert [(o.entry_id, o.seats) for o in offers(events)] == [("e-carol-1", ("A-1-2",))]
    assert show.line.position("e-bob-1") == 1 and show.line.position("e-dave-1") == 2


def test_one_freed_batch_serves_several_entries_in_line_order() -> None:
    show = sold_out()
    run(show, join("bob", 2, section="A"))
    run(show, join("carol", 1, zone="FLOOR"))
    run(show, join("dave", 2, section="A"))
    run(show, join("erin", 1, section="A"))
    events = run(show, cancel("alice"))
    assert [o.entry_id for o in offers(events)] == ["e-bob-1", "e-dave-1"]
    assert [event.version for event in events] == list(range(events[0].version, show.version + 1))
    assert show.line.position("e-carol-1") == 1 and show.line.position("e-erin-1") == 2


def test_a_zone_place_freed_goes_to_a_zone_or_anywhere_entry_in_line_order() -> None:
    show = sold_out()
    run(show, join("bob", 1))  # anywhere: seats first, else a zone
    run(show, join("carol", 1, zone="FLOOR"))
    events = run(show, cancel("zed"))
    assert [(o.entry_id, o.zone, o.quantity) for o in offers(events)] == [
        ("e-bob-1", "FLOOR", 1),
        ("e-carol-1", "FLOOR", 1),
    ]
    assert show.zone_stock["FLOOR"].held == 2


def test_a_refund_offers_the_places_to_the_line() -> None:
    show = sold_out()
    run(show, BeginPayment("b", SHOW, "alice", "o-alice"))
    run(show, ConfirmPayment("p", SHOW, "alice", "o-alice", "ch-1", 20000))
    run(show, join("bob", 2, section="A"))
    events = run(show, RefundOrder("r", SHOW, "alice", "o-alice"))
    assert kinds(events) == ["OrderRefunded", "SeatsHeld", "WaitlistOffered"]
    assert isinstance(events[0], OrderRefunded)


def test_the_timer_expiring_holds_offers_their_places() -> None:
    show = sold_out()
    run(show, join("bob", 1, zone="FLOOR"))
    events = run(show, ExpireHolds("exp-1", SHOW), T0 + HOLD)
    assert kinds(events) == ["HoldExpired", "HoldExpired", "SeatsHeld", "WaitlistOffered"]
    held = events[2]
    assert isinstance(held, SeatsHeld) and held.expires_at == T0 + HOLD + HOLD


def test_a_lapsed_hold_goes_to_the_line_before_a_newcomer_however_late_the_timer() -> None:
    show = sold_out()
    run(show, join("bob", 3, section="A"))
    late = T0 + HOLD + seconds(1)
    newcomer = hold("carol", 1)
    events = run(show, newcomer, late)
    # alice's and zed's holds lapsed: expired first, bob gets his 3, carol the one left.
    assert kinds(events) == [
        "HoldExpired",
        "HoldExpired",
        "SeatsHeld",
        "WaitlistOffered",
        "SeatsHeld",
    ]
    offered, mine = events[2], events[4]
    assert isinstance(offered, SeatsHeld) and offered.user == "bob"
    assert isinstance(mine, SeatsHeld) and mine.user == "carol" and mine.order_id == "o-carol"
    assert not set(offered.seats) & set(mine.seats)


def test_a_newcomer_is_refused_what_the_line_takes_and_nothing_is_journaled() -> None:
    show = sold_out()
    run(show, join("bob", 4, section="A"))
    with pytest.raises(NotEnoughSeatsError):
        when(show, hold("carol", 1), T0 + HOLD)
    # The timer then serves the line.
    events = run(show, ExpireHolds("exp", SHOW), T0 + HOLD)
    assert [o.entry_id for o in offers(events)] == ["e-bob-1"]


def test_a_lapsed_or_cancelled_offer_goes_to_the_next_in_line() -> None:
    show = sold_out()
    run(show, join("bob", 2, section="A"))
    run(show, join("carol", 2, section="A"))
    run(show, join("dave", 4, section="A"))
    first = run(show, cancel("alice"))
    assert [o.entry_id for o in offers(first)] == ["e-bob-1", "e-carol-1"]
    # bob's offer is cancelled: his 2 seats go on; dave needs 4, so nobody fits yet.
    assert kinds(run(show, cancel("bob", "offer-bob-1"))) == ["HoldCancelled"]
    # carol's offer lapses: now 4 seats are free and dave gets them.
    events = run(show, ExpireHolds("exp", SHOW), T0 + HOLD)
    assert [o.entry_id for o in offers(events)] == ["e-dave-1"]
    assert [e.order_id for e in events if isinstance(e, HoldExpired)] == ["o-zed", "offer-carol-1"]


def test_an_offer_is_an_ordinary_hold_that_can_be_paid() -> None:
    show = sold_out()
    run(show, join("bob", 1, section="A"))
    run(show, cancel("alice"))
    begun = run(show, BeginPayment("b", SHOW, "bob", "offer-bob-1"))
    paid = run(show, ConfirmPayment("p", SHOW, "bob", "offer-bob-1", "ch", 5000))
    assert begun and isinstance(paid[0], OrderPaid)
    assert show.live_entry("bob", T0) is None  # the offer ended: bob may join again


def test_a_late_payment_on_a_lapsed_hold_gives_its_places_to_the_line() -> None:
    show = sold_out()
    run(show, join("bob", 1, section="A"))
    events = run(show, ConfirmPayment("p", SHOW, "alice", "o-alice", "ch", 20000), T0 + HOLD)
    assert kinds(events)[:2] == ["HoldExpired", "PaymentRefused"]
    assert [o.entry_id for o in offers(events)] == ["e-bob-1"]


def test_an_offered_fan_declines_by_cancelling_not_by_leaving() -> None:
    show = sold_out()
    run(show, join("bob", 1, section="A"))
    run(show, cancel("alice"))
    with pytest.raises(NotWaitingError) as refused:
        when(show, LeaveWaitlist("l", SHOW, "bob"), T0)
    assert refused.value.details()["order_id"] == "offer-bob-1"
    with pytest.raises(AlreadyInLineError) as again:
        when(show, join("bob", 1, n=2), T0)
    assert again.value.status == "offered" and again.value.position is None


def test_a_redelivered_cancel_gets_its_first_events_offers_included() -> None:
    show = sold_out()
    run(show, join("bob", 1, section="A"))
    first = run(show, cancel("alice"))
    assert decide(show, cancel("alice"), T0 + seconds(5)) == first


def test_the_journal_folds_to_the_live_state_and_views_agree() -> None:
    show = sold_out()
    run(show, join("bob", 2, section="A"))
    run(show, join("carol", 1, zone="FLOOR"))
    run(show, join("dave", 1))
    run(show, LeaveWaitlist("l", SHOW, "dave"))
    run(show, cancel("alice"))
    run(show, ExpireHolds("exp", SHOW), T0 + HOLD)
    journal = show.events()
    assert fold(journal) == show
    assert SeatMapView.from_events(journal) == SeatMapView.from_show(show)
    assert fold_orders(journal) == {o.order_id: OrderView.of(SHOW, o) for o in show.orders()}
    for event in journal:
        assert TICKETING.decode(TICKETING.encode(event)) == event
    assert isinstance(journal[-1], WaitlistOffered | HoldExpired | HoldCancelled)
