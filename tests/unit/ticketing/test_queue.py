"""The waiting room: early order from the seed, positions, admission times and passes."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from hypothesis import given as hypothesis_given
from hypothesis import settings
from hypothesis import strategies as st

from domain.ticketing.commands import CreateShow, JoinQueue, JoinWaitlist, PlaceHold
from domain.ticketing.decider import decide, evolve, fold
from domain.ticketing.errors import (
    AlreadyInQueueError,
    InvalidShowError,
    NoQueueError,
    QueuePassRequiredError,
)
from domain.ticketing.events import Event, QueueJoined, SeatsHeld, ShowCreated
from domain.ticketing.queue import QueueSpec, admission_at, early_key, early_order
from domain.ticketing.show import Show
from producers.registries import TICKETING

from .scenarios import SECTIONS, SHOW, T0, ZONES, given, seconds, show_created, when

OPENS = T0 + timedelta(hours=1)
SPEC = QueueSpec(opens_at=OPENS, admit_per_minute=600, pass_seconds=900)
SEED = "7f3c0a9e5d1b2468ace0fdb97531eca8"


def queued() -> Show:
    return given(replace(show_created(), queue=SPEC, queue_seed=SEED))


def run(show: Show, command: JoinQueue | PlaceHold | JoinWaitlist, now: datetime) -> list[Event]:
    events = when(show, command, now)
    for event in events:
        evolve(show, event)
    return events


def enter(user: str) -> JoinQueue:
    return JoinQueue(command_id=f"q-{user}", show_id=SHOW, user=user)


def hold(user: str) -> PlaceHold:
    return PlaceHold.of_zone(
        command_id=f"h-{user}",
        show_id=SHOW,
        user=user,
        order_id=f"o-{user}",
        zone="FLOOR",
        quantity=1,
    )


def create(queue: QueueSpec | None, seed: str) -> CreateShow:
    return CreateShow(
        command_id="create",
        show_id=SHOW,
        organizer="olga",
        name="Night at the Opera",
        starts_at=T0 + timedelta(days=30),
        hold_seconds=600,
        sections=SECTIONS,
        zones=ZONES,
        queue=queue,
        queue_seed=seed,
    )


# -- creating a queued show ------------------------------------------------------------------


def test_a_queued_show_journals_its_queue_and_seed() -> None:
    created = when(None, create(SPEC, SEED), T0)
    assert len(created) == 1 and isinstance(created[0], ShowCreated)
    assert created[0].queue == SPEC and created[0].queue_seed == SEED
    assert TICKETING.decode(TICKETING.encode(created[0])) == created[0]


def test_an_unqueued_show_keeps_no_seed_and_old_journals_still_decode() -> None:
    created = when(None, create(None, SEED), T0)[0]
    assert isinstance(created, ShowCreated) and created.queue is None and created.queue_seed == ""
    old = TICKETING.to_dict(show_created())
    del old["queue"], old["queue_seed"]
    assert TICKETING.from_dict(old) == show_created()


@pytest.mark.parametrize(
    ("spec", "seed"),
    [
        (replace(SPEC, admit_per_minute=0), SEED),
        (replace(SPEC, pass_seconds=0), SEED),
        (replace(SPEC, opens_at=OPENS.replace(tzinfo=None)), SEED),
        (SPEC, "short"),
    ],
)
def test_a_queue_that_cannot_work_is_refused(spec: QueueSpec, seed: str) -> None:
    with pytest.raises(InvalidShowError):
        when(None, create(spec, seed), T0)


def test_the_seed_is_private_until_the_queue_opens() -> None:
    show = queued()
    assert show.published_seed(OPENS - seconds(1)) is None
    assert show.published_seed(OPENS) == SEED
    assert given(show_created()).published_seed(OPENS) is None


# -- joining ---------------------------------------------------------------------------------


def test_early_joiners_have_no_position_until_the_queue_opens() -> None:
    show = queued()
    joined = run(show, enter("alice"), T0)
    assert joined == [QueueJoined(SHOW, 2, "q-alice", "alice", True, None, T0)]
    place = show.queue_place("alice", OPENS - seconds(1))
    assert place is not None and (place.status, place.position, place.admitted_at) == (
        "early",
        None,
        None,
    )


def test_at_opening_early_joiners_are_ordered_by_the_seeded_hash() -> None:
    show = queued()
    fans = ["alice", "bob", "carol", "dave", "erin"]
    for fan in fans:
        run(show, enter(fan), T0)
    by_hash = sorted(fans, key=lambda fan: hashlib.sha256(f"{SEED}:{fan}".encode()).hexdigest())
    assert early_order(SEED, fans) == by_hash
    places = {fan: show.queue_place(fan, OPENS) for fan in fans}
    assert {fan: place.position for fan, place in places.items() if place} == {
        fan: n for n, fan in enumerate(by_hash, start=1)
    }
    assert early_key(SEED, "alice") == hashlib.sha256(f"{SEED}:alice".encode()).hexdigest()


def test_later_joiners_follow_every_early_one_in_journal_order() -> None:
    show = queued()
    run(show, enter("alice"), T0)
    run(show, enter("bob"), T0)
    late = run(show, enter("zoe"), OPENS + seconds(0.05))
    assert late == [QueueJoined(SHOW, 4, "q-zoe", "zoe", False, 3, OPENS + seconds(0.05))]
    run(show, enter("yan"), OPENS + seconds(0.06))
    yan = show.queue_place("yan", OPENS + seconds(1))
    assert yan is not None and yan.position == 4


def test_an_early_join_after_a_late_one_counts_as_late() -> None:
    """A skewed clock after a failover cannot slip someone in ahead of fixed positions."""
    show = queued()
    run(show, enter("alice"), OPENS)
    joined = run(show, enter("bob"), OPENS - seconds(5))
    assert isinstance(joined[0], QueueJoined) and not joined[0].early
    assert joined[0].position == 2


def test_joining_again_answers_with_the_place() -> None:
    show = queued()
    run(show, enter("alice"), OPENS)
    with pytest.raises(AlreadyInQueueError) as again:
        when(show, JoinQueue("q-again", SHOW, "alice"), OPENS + seconds(1))
    assert again.value.details() == {
        "status": "admitted",
        "position": 1,
        "admitted_at": OPENS.isoformat(),
        "pass_expires_at": (OPENS + seconds(900)).isoformat(),
    }


def test_a_show_without_a_queue_has_none_to_join() -> None:
    with pytest.raises(NoQueueError):
        when(given(show_created()), enter("alice"), T0)


# -- admission and passes --------------------------------------------------------------------


def test_position_p_is_admitted_at_opens_at_plus_p_minus_1_slots() -> None:
    show = queued()
    fans = [f"fan{n}" for n in range(12)]
    for fan in fans:
        run(show, enter(fan), OPENS)
    for n, fan in enumerate(fans, start=1):
        place = show.queue_place(fan, OPENS)
        assert place is not None and place.position == n
        assert place.admitted_at == OPENS + timedelta(seconds=(n - 1) * 60 / 600)
        assert place.pass_expires_at == place.admitted_at + seconds(900)
    assert admission_at(SPEC, 11) == OPENS + seconds(1)


def test_status_runs_waiting_admitted_expired_with_the_clock() -> None:
    show = queued()
    for fan in ("a", "b", "c"):
        run(show, enter(fan), OPENS)
    statuses = [
        place.status
        for moment in (OPENS, OPENS + seconds(0.2), OPENS + seconds(900.2))
        if (place := show.queue_place("c", moment)) is not None
    ]
    assert statuses == ["waiting", "admitted", "expired"]


def test_a_late_joiner_whose_slot_has_passed_is_admitted_on_joining() -> None:
    show = queued()
    run(show, enter("alice"), OPENS + seconds(3600))
    place = show.queue_place("alice", OPENS + seconds(3600))
    assert place is not None and place.status == "admitted"
    assert place.admitted_at == OPENS + seconds(3600)


def test_a_hold_needs_a_valid_pass() -> None:
    show = queued()
    with pytest.raises(QueuePassRequiredError) as outsider:
        when(show, hold("alice"), OPENS)
    assert outsider.value.details() == {
        "status": "not_in_queue",
        "position": None,
        "admitted_at": None,
    }
    run(show, enter("alice"), T0)
    with pytest.raises(QueuePassRequiredError) as early:
        when(show, hold("alice"), T0)
    assert early.value.status == "early" and early.value.position is None
    run(show, enter("bob"), T0)
    second = show.queue_place("bob", OPENS)
    first = show.queue_place("alice", OPENS)
    assert first is not None and second is not None
    waiting, admitted = sorted((first, second), key=lambda place: place.position or 0)[::-1]
    waiter = "alice" if first is waiting else "bob"
    with pytest.raises(QueuePassRequiredError) as not_yet:
        when(show, hold(waiter), OPENS)
    assert not_yet.value.details() == {
        "status": "waiting",
        "position": 2,
        "admitted_at": (OPENS + seconds(0.1)).isoformat(),
    }
    assert isinstance(run(show, hold(waiter), OPENS + seconds(0.1))[-1], SeatsHeld)
    with pytest.raises(QueuePassRequiredError) as expired:
        other = "bob" if waiter == "alice" else "alice"
        when(show, hold(other), OPENS + seconds(900))
    assert expired.value.status == "expired"
    assert admitted.status == "admitted"


def test_joining_the_waitlist_of_a_queued_show_needs_a_pass_too() -> None:
    show = queued()
    join = JoinWaitlist("j", SHOW, "alice", "e-alice", "offer-alice", 1)
    with pytest.raises(QueuePassRequiredError):
        when(show, join, OPENS)


# -- properties ------------------------------------------------------------------------------

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_", min_size=3, max_size=12)


@settings(max_examples=100, deadline=None)
@hypothesis_given(
    st.lists(names, unique=True, max_size=25),
    st.lists(names, unique=True, max_size=25),
    st.text(alphabet="0123456789abcdef", min_size=16, max_size=64),
)
def test_positions_are_the_seeds_order_then_journal_order_with_no_gap(
    early: list[str], late: list[str], seed: str
) -> None:
    late = [fan for fan in late if fan not in early]
    show = given(replace(show_created(), queue=SPEC, queue_seed=seed))
    journal: list[Event] = list(show.events())
    for n, fan in enumerate(early):
        journal += run(show, enter(fan), T0 + seconds(n))
    for n, fan in enumerate(late):
        journal += run(show, enter(fan), OPENS + seconds(n))
    published = show.published_seed(OPENS)
    assert published == seed
    expected = early_order(published, early) + late
    now = OPENS + seconds(len(late))
    positions = {}
    for fan in expected:
        place = show.queue_place(fan, now)
        assert place is not None and place.position is not None and place.admitted_at is not None
        positions[fan] = place.position
        assert place.admitted_at >= admission_at(SPEC, place.position)
    assert sorted(positions.values()) == list(range(1, len(expected) + 1))
    assert [fan for fan, _ in sorted(positions.items(), key=lambda kv: kv[1])] == expected
    assert fold(journal) == show
    # Nobody holds before their admission time, and everybody can from it on.
    for fan in expected[:5]:
        place = show.queue_place(fan, now)
        assert place is not None and place.admitted_at is not None
        before, at = place.admitted_at - seconds(0.001), place.admitted_at
        if before >= OPENS:
            with pytest.raises(QueuePassRequiredError):
                decide(show, hold(fan), before)
        assert isinstance(decide(show, hold(fan), at)[-1], SeatsHeld)
