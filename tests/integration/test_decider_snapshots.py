"""Decider snapshots on the real broker and database: a rebuild reads only the journal's tail
after the partition's snapshot, and a snapshot that cannot prove itself is ignored.

The decider loop runs in this process on topics of its own (a prefix no other test uses), so
it neither fences nor is fenced by the stack's deciders.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import psycopg
import pytest

from boxoffice.settings import Settings
from domain.ticketing import CreateShow, Section
from domain.ticketing.declaration import DECIDER
from processors.deciders import DeciderLoop, _Partition
from producers.contexts import TICKETING_CONTEXT
from producers.envelope import EventRecord
from producers.registries import TICKETING
from producers.topics import SHOW_EVENTS
from snapshots import decider_snapshots
from snapshots.database import conninfo
from tests.integration.deciding import Client, Running, own_topics, started
from tests.integration.journal import read_all
from tests.integration.test_deciders import hold

pytestmark = pytest.mark.integration

EVERY = 40


@pytest.fixture
def own(settings: Settings) -> Settings:
    return own_topics(settings, "snap", decider_snapshot_every_events=EVERY)


@pytest.fixture
async def client(own: Settings) -> AsyncIterator[Client]:
    async with started(Client(own)) as c:
        yield c


@pytest.fixture
def deciders(own: Settings) -> Iterator[list[Running]]:
    alive: list[Running] = []
    yield alive
    for running in alive:
        if running.thread.is_alive():
            running.stop()


def snapshot_row(settings: Settings, topic: str) -> tuple[int, int] | None:
    with psycopg.connect(conninfo(settings), autocommit=True) as conn:
        row = conn.execute(
            "SELECT partition, last_offset FROM decider_snapshots WHERE events_topic = %s",
            (topic,),
        ).fetchone()
    return None if row is None else (row[0], row[1])


def journal_of(settings: Settings, show: str) -> list[EventRecord]:
    return [
        EventRecord.decode(v)
        for k, v in read_all(settings, SHOW_EVENTS.name(settings))
        if k == show
    ]


def seat(n: int) -> str:
    """The nth seat (1-based) of the 10 x 10 section A."""
    row, number = divmod(n - 1, 10)
    return f"A-{row + 1}-{number + 1}"


async def create_show(client: Client) -> str:
    show = f"show-{uuid.uuid4().hex[:8]}"
    created = CreateShow(
        command_id=uuid.uuid4().hex,
        show_id=show,
        organizer="org",
        name="Snapshot night",
        starts_at=datetime(2027, 1, 1, 20, tzinfo=UTC),
        hold_seconds=600,
        sections=(Section("A", 10, 10, 5000),),
        zones=(),
    )
    assert (await client.send(created)).ok
    return show


async def test_a_rebuild_reads_only_the_tail_after_the_snapshot(
    own: Settings, client: Client, deciders: list[Running]
) -> None:
    topic = SHOW_EVENTS.name(own)
    deciders.append(Running(own))
    show = await create_show(client)
    for n in range(1, EVERY + 5):
        assert (await client.send(hold(show, "alice", seat(n)))).ok

    # Idle after the burst: the loop snapshots the partition, past EVERY events.
    deadline = time.monotonic() + 30
    while (found := snapshot_row(own, topic)) is None and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert found is not None, "no snapshot was taken"
    partition, last_offset = found

    tail = 7
    for n in range(EVERY + 5, EVERY + 5 + tail):
        assert (await client.send(hold(show, "bob", seat(n)))).ok
    deciders[0].stop()
    assert snapshot_row(own, topic) == (partition, last_offset), "a second snapshot came early"

    journal = journal_of(own, show)
    assert len(journal) == 1 + EVERY + 4 + tail
    events = [TICKETING.from_dict(record.event) for record in journal]
    stored = decider_snapshots.load(own, topic, partition)
    assert stored is not None
    # The loop snapshots at its first idle moment past EVERY events: the end of the burst, or
    # a pause within it.
    snapped = stored[0].streams[show].version
    assert EVERY <= snapped <= 1 + EVERY + 4

    rebuilder = DeciderLoop(own, [TICKETING_CONTEXT])
    rebuilt = _Partition(TICKETING_CONTEXT, partition)
    rebuilder._rebuild(rebuilt)
    # Only the tail was read, and the state is the fold of the whole journal.
    assert rebuilt.rebuilt_from == last_offset + 1
    assert rebuilt.events_read == len(journal) - snapped >= tail
    assert rebuilt.streams[show] == DECIDER.fold(events)

    # A snapshot whose seal does not match is not trusted: the whole partition is folded.
    with psycopg.connect(conninfo(own), autocommit=True) as conn:
        conn.execute(
            "UPDATE decider_snapshots SET seal = %s WHERE events_topic = %s",
            (b"\x00" * 32, topic),
        )
    full = _Partition(TICKETING_CONTEXT, partition)
    rebuilder._rebuild(full)
    assert full.rebuilt_from == 0
    assert full.events_read == len(journal)
    assert full.streams[show] == DECIDER.fold(events)
    rebuilder.consumer.close()
    rebuilder.snapshot_writer.shutdown()


async def test_a_restarted_decider_decides_on_the_state_its_snapshot_restored(
    own: Settings, client: Client, deciders: list[Running]
) -> None:
    topic = SHOW_EVENTS.name(own)
    deciders.append(Running(own))
    show = await create_show(client)
    first = hold(show, "alice", "A-1-1")
    assert (await client.send(first)).ok
    for n in range(2, EVERY + 3):
        assert (await client.send(hold(show, "alice", seat(n)))).ok
    deadline = time.monotonic() + 30
    while snapshot_row(own, topic) is None and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert snapshot_row(own, topic) is not None, "no snapshot was taken"
    deciders[0].stop()

    restarted = Running(own)
    deciders.append(restarted)
    # A seat held before the snapshot stays held; a retried command gets its first answer.
    taken = await client.send(hold(show, "bob", "A-1-1", "A-10-10"))
    assert not taken.ok
    assert taken.error is not None and taken.error["code"] == "seats_unavailable"
    assert taken.error["details"]["unavailable"] == ["A-1-1"]
    again = await client.send(first)
    assert again.ok and again.duplicate
    parts = list(restarted.loop.partitions.values())
    assert any(p.rebuilt_from > 0 for p in parts), "the restart folded everything"
    assert len(journal_of(own, show)) == 1 + EVERY + 2
