"""The projector engine (`processors.engine`) on the real broker and database.

The Faust worker, run as the `views` component would run it (`python -m processors views
worker`), folds journals made by the real decider into exactly the rows the fold says, skips
an aborted transaction, parks a poison message and moves on; then the whole journal delivered
again to a fresh engine (a crash before any offset reached Kafka) changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from boxoffice.settings import Settings
from domain.ticketing.events import Event
from domain.ticketing.views import SeatMapView
from processors.engine import Entry, TicketingViews, read_range
from producers.topics import SHOW_EVENTS, partitions_of
from snapshots.checkpoints import load_checkpoints
from snapshots.database import conninfo
from snapshots.projection import PROJECTION
from snapshots.seatmaps import latest_snapshot, snapshot_versions
from stack.processes import Daemon
from tests.integration.engine_workers import engine_daemon, start_engine
from tests.integration.test_views import (  # noqa: F401  (env and db are fixtures)
    assert_projected,
    db,
    dead_letters,
    env,
    new_show,
    own_settings,
    produce,
    produce_raw,
    wait_for_versions,
)
from tests.unit.snapshots.journals import record

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def worker(env: Settings) -> Iterator[Daemon]:  # noqa: F811
    daemon = engine_daemon(env, "engine-views-under-test", "views")
    daemon.stop(timeout_s=10)
    start_engine(daemon, env, "views")
    try:
        yield daemon
    finally:
        daemon.stop(timeout_s=30)


def rows(env: Settings) -> dict[str, list[tuple[Any, ...]]]:  # noqa: F811
    with psycopg.connect(conninfo(env), autocommit=True) as conn:
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
            # Snapshots may be added (a seat map caught up is snapshotted again): harmless.
            for table in ("orders", "shows", "projection_offsets")
        }


async def test_the_faust_engine_projects_parks_poison_and_shrugs_off_redelivery(
    env: Settings,  # noqa: F811
    worker: Daemon,
    db: psycopg.AsyncConnection[Any],  # noqa: F811
) -> None:
    journals = [new_show(300, seed=n) for n in range(3)]
    first = journals[0]
    # An aborted transaction (never to be projected) and a poison message, mid-journal.
    produce(env, [first[:50]])
    aborted = record(first[50])
    produce_raw(env, first[0].show_id, aborted, abort=True)
    poison = b'{"not": "an event record"}'
    produce_raw(env, first[0].show_id, poison)
    produce(env, [first[50:], *journals[1:]])
    wait_for_versions(env, worker, {j[0].show_id: len(j) for j in journals}, timeout_s=120)

    await assert_projected(env, db, journals)
    parked_by_worker = dead_letters(env, lambda key: key == first[0].show_id)
    assert [(d["value"], d["origin-consumer"]) for d in parked_by_worker] == [(poison, PROJECTION)]
    before = rows(env)
    checkpoints = await load_checkpoints(db, PROJECTION, SHOW_EVENTS.name(env))
    assert checkpoints, "the engine keeps its checkpoints in PostgreSQL"

    # Redelivery: a fresh engine is handed the whole journal again, from offset 0.
    parked: list[Entry] = []

    async def park(entry: Entry, reason: str, attempts: int) -> None:
        parked.append(entry)

    again = TicketingViews(env, park)
    topic = SHOW_EVENTS.name(env)
    try:
        for partition in sorted(checkpoints):
            entries = await read_range(env, topic, partition, 0, checkpoints[partition])
            await again.project(entries)
    finally:
        await again.close()
    assert parked == []
    assert rows(env) == before


async def test_changed_shows_are_snapshotted_at_a_handover_and_after_a_crash(
    settings: Settings,
) -> None:
    # A cadence that never comes due: a show is snapshotted by its first write only. Handing
    # its partition over snapshots it. An engine dropped without closing (a kill -9) leaves
    # the rows past that snapshot: the next engine snapshots such a show whether a message of
    # its partition comes (the take-over catches it up) or none does (the periodic sweep of
    # owned partitions finds it).
    with own_settings(settings, every_events=100_000, every_s=3600.0) as own:
        topic = SHOW_EVENTS.name(own)
        parked: list[Entry] = []

        async def park(entry: Entry, reason: str, attempts: int) -> None:
            parked.append(entry)

        async def journal_of(show_id: str) -> list[Entry]:
            found: list[Entry] = []
            for partition in partitions_of(own, [topic])[topic]:
                entries = await read_range(own, topic, partition, 0, 1 << 40)
                found += [e for e in entries if e.key == show_id.encode()]
            return found

        async def projected() -> tuple[list[Event], list[Entry], TicketingViews]:
            journal = new_show(30)
            produce(own, [journal])
            entries = await journal_of(journal[0].show_id)
            engine = TicketingViews(own, park)
            await engine.project(entries[:10])
            await engine.project(entries[10:])
            return journal, entries, engine

        async def left_behind() -> tuple[list[Event], list[Entry]]:
            journal, entries, crashed = await projected()
            assert crashed.conn is not None
            await crashed.conn.close()  # no last write: what a kill -9 leaves
            return journal, entries

        async def snapshot_is_the_fold(journal: list[Event]) -> None:
            show_id = journal[0].show_id
            assert await snapshot_versions(conn, show_id) == [10, len(journal)]
            snapshot = await latest_snapshot(conn, show_id)
            assert snapshot is not None
            assert snapshot.seatmap() == SeatMapView.from_events(journal)

        async with await psycopg.AsyncConnection.connect(conninfo(own), autocommit=True) as conn:
            handed, entries, owner = await projected()
            try:
                assert await snapshot_versions(conn, handed[0].show_id) == [10]
                await owner.revoke([(topic, entries[0].partition)])
                await snapshot_is_the_fold(handed)
            finally:
                await owner.close()

            quiet, entries = await left_behind()
            assert await snapshot_versions(conn, quiet[0].show_id) == [10]
            swept = TicketingViews(own, park)
            try:
                await swept.assign([(topic, entries[0].partition)])
                await swept.tick()
            finally:
                await swept.close()
            await snapshot_is_the_fold(quiet)

            redelivered, entries = await left_behind()
            taken_over = TicketingViews(own, park)
            try:
                await taken_over.project(entries[-1:])  # Faust's offsets lag the checkpoint
                await taken_over.tick()
                await snapshot_is_the_fold(redelivered)
            finally:
                await taken_over.close()
        assert parked == []
