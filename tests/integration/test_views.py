"""The ticketing read side on the real broker and database: the projector engine's Faust
worker (`python -m processors views worker`, the `views` component) folds journals made by the
real decider into orders, the catalogue and snapshots; time travel, kill -9, poison, and
`boxoffice replay --verify`.

The projector under test runs on topics and a schema of its own (its own Faust app and
consumer group), with a snapshot every few events, so the session's `views` daemon never
competes with it and killing it disturbs no other test.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import statistics
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, cast

import orjson
import psycopg
import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from boxoffice.settings import PROJECT_ROOT, Settings
from domain.ticketing.events import Event, SeatsHeld
from domain.ticketing.views import SeatMapView, fold_orders
from producers.registries import TICKETING
from producers.topics import DEAD_LETTERS, SHOW_EVENTS, ensure_topics, partitions_of
from snapshots import orders as store
from snapshots import timetravel
from snapshots.checkpoints import load_checkpoints
from snapshots.database import conninfo, migrate
from snapshots.projection import PROJECTION
from snapshots.seatmaps import available_places, latest_snapshot, seatmap_json, snapshot_versions
from stack.processes import Daemon
from stack.services import settings_env
from tests.integration.engine_workers import engine_daemon, start_engine
from tests.unit.snapshots.journals import T0, record, sale

pytestmark = pytest.mark.integration

SNAPSHOT_EVERY_EVENTS = 40


@contextlib.contextmanager
def own_settings(settings: Settings, every_events: int, every_s: float) -> Iterator[Settings]:
    """The session's servers, with topics, a schema and a snapshot cadence of our own."""
    run = uuid.uuid4().hex[:6]
    own = settings.model_copy(
        update={
            "topic_prefix": f"{settings.topic_prefix}v{run}",
            "pg_schema": f"{settings.pg_schema}v{run}",
            "snapshot_every_events": every_events,
            "snapshot_every_s": every_s,
        }
    )
    ensure_topics(own)
    migrate(own)
    try:
        yield own
    finally:
        with psycopg.connect(own.pg_dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{own.pg_schema}" CASCADE')


@pytest.fixture(scope="module")
def env(settings: Settings) -> Iterator[Settings]:
    with own_settings(settings, SNAPSHOT_EVERY_EVENTS, 2.0) as own:
        yield own


def projector_daemon(env: Settings) -> Daemon:
    return engine_daemon(env, "views-under-test", "views")


def start(daemon: Daemon, env: Settings) -> None:
    start_engine(daemon, env, "views")


@pytest.fixture(scope="module")
def projector(env: Settings) -> Iterator[Daemon]:
    daemon = projector_daemon(env)
    daemon.stop(timeout_s=10)  # a leftover of an interrupted run has other settings
    start(daemon, env)
    try:
        yield daemon
    finally:
        daemon.stop(timeout_s=30)


@pytest.fixture
async def db(env: Settings) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    async with await psycopg.AsyncConnection.connect(conninfo(env), autocommit=True) as conn:
        yield conn


# -- journals ---------------------------------------------------------------------------------


def new_show(commands: int, seed: int | None = None) -> list[Event]:
    show_id = f"show-{uuid.uuid4().hex[:10]}"
    return sale(show_id, commands, seed=seed if seed is not None else random.randrange(1 << 30))


def transactional_producer(env: Settings) -> Producer:
    producer = Producer(
        {
            "bootstrap.servers": env.kafka_bootstrap,
            "transactional.id": f"test-views-{uuid.uuid4().hex}",
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": "lz4",
            "linger.ms": 5,
            "log_level": 3,
        }
    )
    producer.init_transactions(30)
    return producer


def produce(
    env: Settings,
    journals: Sequence[Sequence[Event]],
    per_transaction: int = 500,
    pause_s: float = 0.0,
    producer: Producer | None = None,
) -> None:
    """Append the journals (interleaved) as the deciders do: keyed by show, in transactions."""
    producer = producer or transactional_producer(env)
    topic = SHOW_EVENTS.name(env)
    merged = [
        e for n in range(max(map(len, journals))) for j in journals if n < len(j) for e in [j[n]]
    ]
    for start_at in range(0, len(merged), per_transaction):
        producer.begin_transaction()
        for event in merged[start_at : start_at + per_transaction]:
            producer.produce(topic, key=event.show_id, value=record(event))
        producer.commit_transaction(30)
        time.sleep(pause_s)


def produce_raw(env: Settings, key: str, value: bytes, abort: bool = False) -> None:
    producer = Producer(
        {
            "bootstrap.servers": env.kafka_bootstrap,
            "transactional.id": f"test-views-{uuid.uuid4().hex}",
            "log_level": 3,
        }
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(SHOW_EVENTS.name(env), key=key, value=value)
    if abort:
        producer.flush(10)
        producer.abort_transaction(30)
    else:
        producer.commit_transaction(30)


def wait_for_versions(
    env: Settings, daemon: Daemon, wanted: dict[str, int], timeout_s: float = 90
) -> None:
    """Until the catalogue rows of the shows are at the wanted versions."""
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(conninfo(env), autocommit=True) as conn:
        while True:
            rows: dict[str, int] = dict(
                conn.execute(
                    "SELECT show_id, version FROM shows WHERE show_id = ANY(%s)", (list(wanted),)
                ).fetchall()
            )
            if all(rows.get(show_id) == version for show_id, version in wanted.items()):
                return
            if time.monotonic() > deadline:
                pytest.fail(f"projected {rows}, wanted {wanted}\n{daemon.log_tail(40)}")
            time.sleep(0.1)


async def wait_for_progress(
    env: Settings, daemon: Daemon, show_ids: list[str], timeout_s: float = 60
) -> None:
    """Until the projected versions of the shows move on from where they are now."""

    def total() -> int:
        with psycopg.connect(conninfo(env), autocommit=True) as conn:
            row = conn.execute(
                "SELECT coalesce(sum(version), 0) FROM shows WHERE show_id = ANY(%s)", (show_ids,)
            ).fetchone()
        return int(row[0]) if row else 0

    before = total()
    deadline = time.monotonic() + timeout_s
    while total() == before:
        if time.monotonic() > deadline:
            pytest.fail(f"no progress past {before}\n{daemon.log_tail(40)}")
        await asyncio.sleep(0.02)


async def assert_projected(
    env: Settings, db: psycopg.AsyncConnection[Any], journals: Sequence[Sequence[Event]]
) -> None:
    """Orders, catalogue rows and snapshots of the shows are exactly the fold of their journals."""
    for journal in journals:
        show_id = journal[0].show_id
        expected_map = SeatMapView.from_events(journal)
        listing = await store.show(db, show_id)
        assert listing is not None
        assert listing.version == len(journal)
        assert listing.seats_available == available_places(expected_map)

        snapshot = await latest_snapshot(db, show_id)
        assert snapshot is not None and snapshot.version <= len(journal)
        folded = snapshot.seatmap()
        for event in journal[snapshot.version :]:
            folded.apply(event)
        assert folded == expected_map

        expected_orders = fold_orders(journal)
        projected = await store.orders_by_id(db, list(expected_orders))
        assert projected == expected_orders
        count = await db.execute("SELECT count(*) FROM orders WHERE show_id = %s", (show_id,))
        assert (await count.fetchone()) == (len(expected_orders),)


# -- the tests --------------------------------------------------------------------------------


async def test_the_projector_folds_journals_into_orders_the_catalogue_and_snapshots(
    env: Settings, projector: Daemon, db: psycopg.AsyncConnection[Any]
) -> None:
    journals = [new_show(400, seed=n) for n in range(3)]
    produce(env, journals)
    wait_for_versions(env, projector, {j[0].show_id: len(j) for j in journals})

    await assert_projected(env, db, journals)
    catalogue = {s.show_id: s for s in await store.shows(db)}
    for journal in journals:
        listing = catalogue[journal[0].show_id]
        assert listing.as_created()["sections"][0] == {
            "name": "A",
            "rows": 4,
            "seats_per_row": 6,
            "price_cents": 5000,
        }
        assert listing.seats_total == 4 * 6 + 3 * 5 + 12 + 5
        # The live map: the latest snapshot plus the journal after it.
        current = await timetravel.current_seatmap(env, db, journal[0].show_id)
        assert current == SeatMapView.from_events(journal)

    everyone = [o for j in journals for o in fold_orders(j).values()]
    for user in ("alice", "bob"):
        mine = await store.orders_of(db, user)
        assert {o.order_id for o in mine} >= {o.order_id for o in everyone if o.user == user}
        assert [o.held_at for o in mine] == sorted((o.held_at for o in mine), reverse=True)
    assert len(await store.orders_of(db, "alice", limit=3)) == 3


async def test_a_hold_is_readable_moments_after_it_is_journaled(
    env: Settings, projector: Daemon, db: psycopg.AsyncConnection[Any]
) -> None:
    journal = new_show(0)
    show_id = journal[0].show_id
    produce(env, [journal])
    wait_for_versions(env, projector, {show_id: 1})
    producer = transactional_producer(env)
    delays = []
    for n in range(20):
        seat = f"A-{n // 6 + 1}-{n % 6 + 1}"
        held = SeatsHeld(
            show_id, n + 2, f"c{n}", f"{show_id}-o{n}", "alice", (seat,), None, 1, 5000, T0, T0
        )
        produce(env, [[held]], producer=producer)
        started = time.monotonic()  # committed: journaled
        while await store.order(db, held.order_id) is None:
            assert time.monotonic() - started < 10, projector.log_tail()
            await asyncio.sleep(0.005)
        delays.append(time.monotonic() - started)
    print(
        f"journaled -> readable: median {statistics.median(delays) * 1000:.0f} ms, "
        f"max {max(delays) * 1000:.0f} ms"
    )
    assert statistics.median(delays) < 0.25


async def test_time_travel_to_every_version_is_the_fold_of_that_prefix(
    env: Settings, projector: Daemon, db: psycopg.AsyncConnection[Any]
) -> None:
    journal = new_show(120, seed=11)
    show_id = journal[0].show_id
    produce(env, [journal], per_transaction=17, pause_s=0.05)
    wait_for_versions(env, projector, {show_id: len(journal)})
    # Versions between snapshots are the snapshot before them folded forward.
    assert len(await snapshot_versions(db, show_id)) >= 2

    async def at(version: int) -> SeatMapView | None:
        return await timetravel.seatmap_at(env, db, show_id, version)

    for version in range(1, len(journal) + 1):
        assert await at(version) == SeatMapView.from_events(journal[:version]), version
    with pytest.raises(timetravel.VersionNotFoundError) as missing:
        await at(len(journal) + 1)
    assert missing.value.current_version == len(journal)
    assert await timetravel.seatmap_at(env, db, "no-such-show", 1) is None
    assert await timetravel.current_seatmap(env, db, "no-such-show") is None


async def test_snapshots_are_immutable(
    env: Settings, projector: Daemon, db: psycopg.AsyncConnection[Any]
) -> None:
    journal = new_show(30)
    produce(env, [journal])
    wait_for_versions(env, projector, {journal[0].show_id: len(journal)})
    for statement in (
        "UPDATE seatmap_snapshots SET version = version + 1000 WHERE show_id = %s",
        "DELETE FROM seatmap_snapshots WHERE show_id = %s",
    ):
        with pytest.raises(psycopg.errors.RaiseException, match="immutable"):
            await db.execute(statement, (journal[0].show_id,))


async def test_kill_9_mid_stream_then_restart_loses_and_doubles_nothing(
    env: Settings, projector: Daemon, db: psycopg.AsyncConnection[Any]
) -> None:
    journals = [new_show(1500) for _ in range(4)]
    shows = [j[0].show_id for j in journals]
    writer = threading.Thread(target=produce, args=(env, journals, 100, 0.1))
    writer.start()
    try:
        for _ in range(3):
            # Once it is busy with this stream, kill it at a random instant.
            await wait_for_progress(env, projector, shows)
            await asyncio.sleep(random.uniform(0.0, 0.3))
            assert projector.kill()
            await asyncio.sleep(random.uniform(0.0, 0.3))
            start(projector, env)
    finally:
        writer.join()
    wait_for_versions(env, projector, {j[0].show_id: len(j) for j in journals}, timeout_s=180)

    await assert_projected(env, db, journals)
    # Every partition's checkpoint is just past its last entry: nothing left, nothing skipped.
    checkpoints = await load_checkpoints(db, PROJECTION, SHOW_EVENTS.name(env))
    assert checkpoints == last_offsets(env)
    assert dead_letters(env, lambda key: key in {j[0].show_id for j in journals}) == []


async def test_poison_goes_to_the_dead_letters_and_later_events_still_project(
    env: Settings, projector: Daemon, db: psycopg.AsyncConnection[Any]
) -> None:
    journal = new_show(60)
    show_id = journal[0].show_id
    produce(env, [journal[:20]])
    produce_raw(env, show_id, b"\xff definitely not an event")
    stray = SeatsHeld("never-created", 2, "c", "o-stray", "eve", ("A-1-1",), None, 1, 1, T0, T0)
    produce_raw(env, "never-created", record(stray))
    # An aborted transaction is never seen at all (read_committed).
    aborted = SeatsHeld(show_id, 21, "c", "o-aborted", "eve", (), "FLOOR", 1, 1, T0, T0)
    produce_raw(env, show_id, record(aborted), abort=True)
    produce(env, [journal[20:]])
    wait_for_versions(env, projector, {show_id: len(journal)})

    await assert_projected(env, db, [journal])
    assert await store.order(db, "o-aborted") is None
    parked = dead_letters(env, lambda key: key in {show_id, "never-created"})
    assert len(parked) == 2
    garbage, unknown = sorted(parked, key=lambda p: p["key"] != show_id)
    assert garbage["value"] == b"\xff definitely not an event"
    assert garbage["origin-topic"] == SHOW_EVENTS.name(env)
    assert garbage["reason"].startswith("undecodable")
    assert unknown["reason"].startswith("unfoldable") and "never-created" in unknown["reason"]
    assert (
        int(garbage["origin-partition"])
        in partitions_of(env, [SHOW_EVENTS.name(env)])[SHOW_EVENTS.name(env)]
    )
    assert int(garbage["origin-offset"]) >= 0


async def test_sigterm_stops_it_promptly_with_every_changed_show_snapshotted(
    env: Settings, projector: Daemon, db: psycopg.AsyncConnection[Any]
) -> None:
    journal = new_show(300)
    show_id = journal[0].show_id
    produce(env, [journal], per_transaction=len(journal) + 1)
    wait_for_versions(env, projector, {show_id: len(journal)})

    started = time.monotonic()
    assert projector.stop(timeout_s=20)
    assert time.monotonic() - started < 10, "it had to be killed"
    assert "stopped" in projector.log_tail(5)
    try:
        cursor = await db.execute(
            "SELECT sh.show_id FROM shows sh WHERE sh.version >"
            " (SELECT max(version) FROM seatmap_snapshots sn WHERE sn.show_id = sh.show_id)"
        )
        assert await cursor.fetchall() == []
    finally:
        start(projector, env)


async def test_a_show_a_crash_left_behind_its_snapshot_is_snapshotted_with_no_new_event(
    settings: Settings,
) -> None:
    # A cadence that never comes due: only a show's first write snapshots it. A kill -9 then
    # leaves the rows past the snapshot, and no later message on the partition will come to
    # catch it up: the restarted worker must find it by itself.
    with own_settings(settings, every_events=100_000, every_s=3600.0) as own:
        daemon = engine_daemon(own, "views-left-behind", "views")
        journal = new_show(30)
        show_id = journal[0].show_id

        async def snapshotted(db: psycopg.AsyncConnection[Any]) -> int:
            return max(await snapshot_versions(db, show_id), default=0)

        start(daemon, own)
        try:
            produce(own, [journal[:10]])
            wait_for_versions(own, daemon, {show_id: 10})
            produce(own, [journal[10:]])
            wait_for_versions(own, daemon, {show_id: len(journal)})
            time.sleep(2)  # Faust commits its offsets (every 0.5 s): nothing is redelivered
            assert daemon.kill()
            async with await psycopg.AsyncConnection.connect(conninfo(own), autocommit=True) as db:
                assert await snapshotted(db) < len(journal)
                start(daemon, own)
                deadline = time.monotonic() + 90
                while await snapshotted(db) < len(journal):
                    assert time.monotonic() < deadline, daemon.log_tail(40)
                    await asyncio.sleep(0.2)
                snapshot = await latest_snapshot(db, show_id)
                assert snapshot is not None
                assert snapshot.seatmap() == SeatMapView.from_events(journal)
        finally:
            daemon.stop(timeout_s=20)


def boxoffice(env: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PROJECT_ROOT / ".venv" / "bin" / "boxoffice"), *args],
        env=settings_env(env),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


async def test_boxoffice_seatmap_prints_the_map_at_a_version(
    env: Settings, projector: Daemon
) -> None:
    journal = new_show(50, seed=5)
    show_id = journal[0].show_id
    produce(env, [journal])
    wait_for_versions(env, projector, {show_id: len(journal)})

    for version in (1, 17, len(journal)):
        done = boxoffice(env, "seatmap", show_id, "--version", str(version))
        assert done.returncode == 0, done.stderr
        expected = orjson.loads(
            orjson.dumps(seatmap_json(SeatMapView.from_events(journal[:version])))
        )
        assert orjson.loads(done.stdout) == expected
    now = boxoffice(env, "seatmap", show_id)
    assert orjson.loads(now.stdout)["version"] == len(journal)
    assert boxoffice(env, "seatmap", show_id, "--version", "999").returncode == 1
    assert boxoffice(env, "seatmap", "no-such-show").returncode == 1


async def test_replay_verify_agrees_with_consistent_views_and_catches_a_tampered_row(
    env: Settings, projector: Daemon, db: psycopg.AsyncConnection[Any]
) -> None:
    journals = [new_show(200) for _ in range(2)]
    produce(env, journals)
    wait_for_versions(env, projector, {j[0].show_id: len(j) for j in journals})
    victim = next(iter(fold_orders(journals[0]).values()))
    forged = "paid" if victim.status != "paid" else "cancelled"
    schemas: list[str] = []
    try:
        done = boxoffice(env, "replay", "--verify")
        schemas.append(replay_schema_of(done.stdout))
        assert done.returncode == 0, done.stdout + done.stderr
        assert "agree" in done.stdout

        await db.execute(
            "UPDATE orders SET status = %s WHERE order_id = %s", (forged, victim.order_id)
        )
        tampered = boxoffice(env, "replay", "--verify")
        schemas.append(replay_schema_of(tampered.stdout))
        assert tampered.returncode == 1, tampered.stdout + tampered.stderr
        assert victim.order_id in tampered.stdout and "status" in tampered.stdout

        # The replayed schema holds what the journal says, not the tampered live row.
        replayed = env.model_copy(update={"pg_schema": schemas[-1]})
        async with await psycopg.AsyncConnection.connect(
            conninfo(replayed), autocommit=True
        ) as copy:
            assert await store.order(copy, victim.order_id) == victim
    finally:
        await db.execute(
            "UPDATE orders SET status = %s WHERE order_id = %s", (victim.status, victim.order_id)
        )
        for schema in schemas:
            await db.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


# -- reading back -----------------------------------------------------------------------------


def replay_schema_of(output: str) -> str:
    for word in output.split():
        name = word.strip("'\"")
        if name.startswith("replay_"):
            return name
    raise AssertionError(f"no replay schema in {output!r}")


def last_offsets(env: Settings) -> dict[int, int]:
    """Per partition of the show journal, the offset after its last committed entry."""
    topic = SHOW_EVENTS.name(env)
    partitions = partitions_of(env, [topic])[topic]
    after: dict[int, int] = {}
    for batch in timetravel.read_journal(env, dict.fromkeys(partitions, 0)):
        for entry in batch:
            after[entry.partition] = entry.offset + 1
    return after


def dead_letters(env: Settings, wanted: Any) -> list[dict[str, Any]]:
    """The dead letters whose key `wanted(key)` accepts, headers flattened in."""
    topic = DEAD_LETTERS.name(env)
    consumer = Consumer(
        {
            "bootstrap.servers": env.kafka_bootstrap,
            "group.id": f"dl-{uuid.uuid4().hex}",
            "enable.partition.eof": True,
            "enable.auto.commit": False,
            "log_level": 3,
        }
    )
    found: list[dict[str, Any]] = []
    try:
        partitions = partitions_of(env, [topic])[topic]
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        open_partitions = set(partitions)
        deadline = time.monotonic() + 30
        while open_partitions and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            err = message.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    open_partitions.discard(message.partition())
                continue
            key = (message.key() or b"").decode()
            if wanted(key):
                pairs = cast(list[tuple[str, bytes]], message.headers() or [])
                headers = {name: value.decode() for name, value in pairs}
                found.append({"key": key, "value": message.value(), **headers})
    finally:
        consumer.close()
    return found


def test_the_journal_helpers_make_sound_journals() -> None:
    journal = new_show(100, seed=3)
    assert [e.version for e in journal] == list(range(1, len(journal) + 1))
    assert TICKETING.from_dict(TICKETING.to_dict(journal[-1])) == journal[-1]
