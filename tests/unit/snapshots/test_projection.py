"""The read side's fold: rows equal the journal's fold, whatever the batching, crashes and
restarts; snapshots fall due by count or by time; a bad event is refused and changes nothing."""

from __future__ import annotations

from dataclasses import replace

import pytest

from domain.ticketing.errors import JournalError
from domain.ticketing.events import Event, HoldCancelled, OrderPaid, OrderRefunded, SeatsHeld
from domain.ticketing.views import SeatMapView, fold_orders
from snapshots.projection import JournalEntry, Projection
from snapshots.seatmaps import available_places
from tests.unit.snapshots.journals import sale
from tests.unit.snapshots.store import Store, entries_of, interleave


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def projection(
    every_events: int = 1000, every_s: float = 5.0, clock: Clock | None = None
) -> Projection:
    return Projection(every_events, every_s, clock or Clock())


SHOW_A = sale("show-a", 300, seed=1)
SHOW_B = sale("show-b", 200, seed=2)
JOURNAL = interleave(SHOW_A, SHOW_B)


def assert_views_match(store: Store, *journals: list[Event]) -> None:
    for journal in journals:
        show_id = journal[0].show_id
        expected = SeatMapView.from_events(journal)
        listing = store.shows[show_id]
        assert listing.version == expected.version
        assert listing.seats_available == available_places(expected)
        assert store.latest(show_id).seatmap() == expected
    expected_orders = fold_orders(e for j in journals for e in j)
    assert store.orders == expected_orders


@pytest.mark.parametrize("batch", [1, 7, 1000])
def test_the_rows_are_the_fold_of_the_journal_whatever_the_batching(batch: int) -> None:
    store, folding = Store(), projection()
    assert store.run(folding, entries_of(JOURNAL), batch=batch) == []
    store.write(folding.take_writes(force_snapshots=True))

    assert_views_match(store, SHOW_A, SHOW_B)
    assert store.checkpoints == {0: len(JOURNAL)}


def test_a_redelivered_batch_changes_nothing() -> None:
    store, folding = Store(), projection()
    entries = entries_of(JOURNAL)
    store.run(folding, entries[:150])
    store.run(folding, entries[100:])
    store.write(folding.take_writes(force_snapshots=True))

    assert_views_match(store, SHOW_A, SHOW_B)


def test_orders_no_longer_held_leave_memory_and_are_read_back_when_named_again() -> None:
    store, folding = Store(), projection()
    paid = next(e for e in SHOW_A if isinstance(e, OrderPaid))
    refund = next(e for e in SHOW_A if isinstance(e, OrderRefunded) and e.order_id == paid.order_id)
    before_refund = [e for e in SHOW_A if e.version < refund.version]
    store.run(folding, entries_of(before_refund))
    assert folding.order(paid.order_id) is None

    assert folding.needs([refund]) == (set(), {paid.order_id})
    store.run(folding, entries_of([refund], start=len(before_refund)))
    assert store.orders[paid.order_id].status == "refunded"


def test_a_new_show_is_snapshotted_with_its_first_catalogue_row() -> None:
    store, folding = Store(), projection()
    store.run(folding, entries_of(SHOW_A[:3]), batch=3)

    assert set(store.shows) == {"show-a"}
    assert store.latest("show-a").version == 3


def test_snapshots_fall_due_every_n_events_or_t_seconds_and_only_for_changed_shows() -> None:
    clock = Clock()
    store, folding = Store(), projection(every_events=50, every_s=5.0, clock=clock)
    entries = entries_of(SHOW_A)
    store.run(folding, entries[:1], batch=1)
    assert [s.version for s in store.snapshots["show-a"]] == [1]

    store.run(folding, entries[1:49], batch=1)
    assert [s.version for s in store.snapshots["show-a"]] == [1]
    store.run(folding, entries[49:51], batch=1)
    assert [s.version for s in store.snapshots["show-a"]] == [1, 51]

    store.run(folding, entries[51:53], batch=2)
    clock.now += 4.9
    store.write(folding.take_writes())
    assert store.latest("show-a").version == 51
    clock.now += 0.1
    store.write(folding.take_writes())
    assert store.latest("show-a").version == 53

    # Nothing changed since: time alone snapshots nothing.
    clock.now += 60
    store.write(folding.take_writes())
    assert [s.version for s in store.snapshots["show-a"]] == [1, 51, 53]


def test_a_snapshot_records_the_offset_of_the_event_at_its_version() -> None:
    store, folding = Store(), projection()
    entries = entries_of(JOURNAL, partition=2, start=500)
    store.run(folding, entries)
    store.write(folding.take_writes(force_snapshots=True))

    for show_id in ("show-a", "show-b"):
        snapshot = store.latest(show_id)
        at = next(e for e in entries if e.offset == snapshot.journal_offset)
        assert snapshot.journal_partition == 2
        assert at.key == show_id.encode()
        assert f'"version":{snapshot.version},'.encode() in (at.value or b"")


@pytest.mark.parametrize("crash_after", [1, 2, 40, 123, 311, len(JOURNAL) - 1])
def test_a_restart_after_a_crash_at_any_batch_converges_with_nothing_lost_or_doubled(
    crash_after: int,
) -> None:
    clock = Clock()
    store = Store()
    entries = entries_of(JOURNAL)
    first = projection(every_events=25, every_s=5.0, clock=clock)
    # Written up to the crash; the batch in flight at the crash is lost with the process.
    store.run(first, entries[:crash_after], batch=5)
    store.fold(first, entries[crash_after : crash_after + 5])

    second = projection(every_events=25, every_s=5.0, clock=clock)
    seek = store.restored(second, partition=0)
    assert seek <= store.checkpoints[0]
    store.run(second, entries[seek:], batch=5, below=dict(store.checkpoints))
    store.write(second.take_writes(force_snapshots=True))

    assert_views_match(store, SHOW_A, SHOW_B)


def test_catch_up_entries_only_bring_a_seeded_seat_map_forward() -> None:
    clock = Clock()
    store, folding = Store(), projection(every_events=10_000, every_s=3600, clock=clock)
    entries = entries_of(SHOW_A)
    store.run(folding, entries[:100])
    created = store.latest("show-a")  # the only snapshot: the one made with its first row
    assert created.version < 100
    orders_before = dict(store.orders)

    restarted = projection(clock=clock)
    seek = store.restored(restarted, partition=0)
    assert seek == created.journal_offset + 1
    poison = store.fold(restarted, entries[seek:100], below={0: 100})

    assert poison == []
    assert restarted.seatmap("show-a") == SeatMapView.from_events(SHOW_A[:100])
    writes = restarted.take_writes()
    assert writes.orders == {} and writes.shows == {} and writes.checkpoints == {}
    assert store.orders == orders_before


def test_an_event_that_cannot_follow_is_refused_and_changes_nothing() -> None:
    folding = projection()
    Store().run(folding, entries_of(SHOW_A[:60]))
    before = folding.seatmap("show-a")
    assert before is not None
    before = before.copy()
    held = next(e for e in SHOW_A[:60] if isinstance(e, SeatsHeld) and e.zone is None)
    at = len(SHOW_A[:60]) + 1

    gap = HoldCancelled("show-a", at + 1, "c", held.order_id, held.user, held.seats, None, 1)
    unknown_seat = SeatsHeld(
        "show-a", at, "c", "o-new", "eve", ("Z-9-9",), None, 1, 1, held.held_at, held.expires_at
    )
    unknown_zone = replace(unknown_seat, seats=(), zone="ROOF")
    unknown_order = HoldCancelled("show-a", at, "c", "o-never", "eve", held.seats, None, 1)
    unknown_show = replace(held, show_id="show-zz", version=2)
    for bad in (gap, unknown_seat, unknown_zone, unknown_order, unknown_show):
        with pytest.raises(JournalError):
            folding.apply(0, 999, bad)
        assert folding.seatmap("show-a") == before
        assert folding.order("o-new") is None
    assert not folding.take_writes().orders


def test_shows_of_a_partition_given_up_are_forgotten() -> None:
    folding = projection()
    store = Store()
    store.run(folding, entries_of(SHOW_A[:20], partition=0))
    store.run(folding, entries_of(SHOW_B[:20], partition=1))

    folding.forget([0])

    assert folding.show_ids() == ["show-b"]
    assert all(view.show_id == "show-b" for view in [folding.seatmap("show-b")] if view)


def test_entries_of_other_journal_partitions_are_checkpointed_separately() -> None:
    store, folding = Store(), projection()
    store.run(folding, entries_of(SHOW_A, partition=0) + entries_of(SHOW_B, partition=1))

    assert store.checkpoints == {0: len(SHOW_A), 1: len(SHOW_B)}


def test_a_poison_entry_is_reported_and_the_next_ones_fold() -> None:
    store, folding = Store(), projection()
    entries = entries_of(SHOW_A[:10])
    garbage = JournalEntry(0, 10, b"show-a", b"\x00not json")
    later = entries_of(SHOW_A[10:], start=11)

    poison = store.run(folding, [*entries, garbage, *later])

    assert len(poison) == 1 and "not JSON" in poison[0]
    store.write(folding.take_writes(force_snapshots=True))
    assert_views_match(store, SHOW_A)
    assert store.checkpoints == {0: len(SHOW_A) + 1}
