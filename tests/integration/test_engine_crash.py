"""kill -9 of the projector engine's Faust workers mid-stream, on the real broker and database.

Both workers (`python -m processors views worker` and `... chatviews worker`, as the stack runs
them) are killed at random instants while the show, conversation and social journals keep
growing, and started again, twice. Once they have caught up, `boxoffice replay --verify`
(which rebuilds every view from the journals alone) finds nothing to say, and nothing is
doubled: every show's orders and every conversation's messages are exactly as many as its
journal says, each checkpoint is just past its partition's last entry, and nothing was
dead-lettered (a redelivery is skipped, never mistaken for poison). Then every journal,
delivered again from offset 0 to a fresh engine, changes no row.

The workers run on topics and a schema of their own, so killing them disturbs no other test.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import psycopg
import pytest

from boxoffice.settings import Settings
from domain.chat.events import ConversationEvent, MessageSent, SocialEvent
from domain.ticketing.events import Event
from domain.ticketing.views import fold_orders
from processors.engine import ChatHistory, Entry, TicketingViews, read_range
from producers.topics import CHAT_EVENTS, SHOW_EVENTS, SOCIAL_EVENTS, ensure_topics
from snapshots import replay
from snapshots.chatprojection import PROJECTION as CHAT_PROJECTION
from snapshots.chatprojection import ConversationFold, decode_batch, next_offsets, write_batch
from snapshots.checkpoints import load_checkpoints
from snapshots.database import conninfo, migrate
from snapshots.projection import PROJECTION
from stack.processes import Daemon
from tests.integration.chat_journals import conversation_journal, produce_chat, social_journal
from tests.integration.engine_workers import ENGINE_COMPONENTS, engine_daemon, start_engine
from tests.integration.test_views import (
    assert_projected,
    boxoffice,
    dead_letters,
    new_show,
    produce,
    replay_schema_of,
)

pytestmark = pytest.mark.integration

USERS = [f"crash{n}" for n in range(10)]
KILLS = 2


@pytest.fixture(scope="module")
def env(settings: Settings) -> Iterator[Settings]:
    run = uuid.uuid4().hex[:6]
    own = settings.model_copy(
        update={
            "topic_prefix": f"{settings.topic_prefix}k{run}",
            "pg_schema": f"{settings.pg_schema}k{run}",
            # Snapshots often, so that restarts seed seat maps from snapshots behind the
            # checkpoint and must catch them up.
            "snapshot_every_events": 25,
            "snapshot_every_s": 1.0,
        }
    )
    ensure_topics(own)
    migrate(own)
    yield own
    with psycopg.connect(own.pg_dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{own.pg_schema}" CASCADE')


@pytest.fixture(scope="module")
def workers(env: Settings) -> Iterator[dict[str, Daemon]]:
    daemons = {c: engine_daemon(env, f"crash-{c}", c) for c in ENGINE_COMPONENTS}
    for component, daemon in daemons.items():
        daemon.stop(timeout_s=10)  # a leftover of an interrupted run has other settings
        start_engine(daemon, env, component)
    try:
        yield daemons
    finally:
        for daemon in daemons.values():
            daemon.stop(timeout_s=30)


@pytest.fixture
async def db(env: Settings) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    async with await psycopg.AsyncConnection.connect(conninfo(env), autocommit=True) as conn:
        yield conn


def produce_shows_slowly(
    env: Settings, shows: Sequence[Sequence[Event]], done: threading.Event
) -> None:
    """A few events of every show at a time, with pauses until `done`, then the rest at once:
    the journal keeps growing for as long as the workers are being killed."""
    step = 6
    for at in range(0, max(map(len, shows)), step):
        produce(env, [s[at : at + step] for s in shows], per_transaction=40)
        done.wait(0.5)


def produce_chat_slowly(
    env: Settings,
    chats: Sequence[Sequence[ConversationEvent]],
    socials: Sequence[Sequence[SocialEvent]],
    done: threading.Event,
) -> None:
    """As `produce_shows_slowly`, for the conversation and social journals."""
    step = 2
    for at in range(0, max(map(len, [*chats, *socials])), step):
        produce_chat(
            env,
            [c[at : at + step] for c in chats],
            [s[at : at + step] for s in socials],
            per_transaction=40,
        )
        done.wait(1.5)


async def checkpoint_totals(db: psycopg.AsyncConnection[Any]) -> dict[str, int]:
    cursor = await db.execute(
        "SELECT projection, sum(next_offset)::bigint FROM projection_offsets GROUP BY projection"
    )
    return {name: int(total) for name, total in await cursor.fetchall()}


async def wait_for_progress(
    db: psycopg.AsyncConnection[Any], workers: dict[str, Daemon], timeout_s: float = 90
) -> None:
    """Until both projections' checkpoints have moved on from where they are now."""
    before = await checkpoint_totals(db)
    deadline = time.monotonic() + timeout_s
    while True:
        now = await checkpoint_totals(db)
        if all(now.get(p, 0) > before.get(p, 0) for p in (PROJECTION, CHAT_PROJECTION)):
            return
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {n}\n{d.log_tail(30)}" for n, d in workers.items())
            pytest.fail(f"no progress past {before}\n{tails}")
        await asyncio.sleep(0.05)


async def wait_until_caught_up(
    env: Settings,
    db: psycopg.AsyncConnection[Any],
    workers: dict[str, Daemon],
    timeout_s: float = 180,
) -> None:
    """Until every checkpoint is just past its partition's last entry."""
    wanted = [
        (PROJECTION, SHOW_EVENTS.name(env)),
        (CHAT_PROJECTION, CHAT_EVENTS.name(env)),
        (CHAT_PROJECTION, SOCIAL_EVENTS.name(env)),
    ]
    deadline = time.monotonic() + timeout_s
    while True:
        behind = []
        for projection, topic in wanted:
            ends = await asyncio.to_thread(replay.journal_ends, env, topic)
            at = await load_checkpoints(db, projection, topic)
            # A partition ends with a transaction marker: the last entry is at end - 2.
            behind += [(topic, p) for p, end in ends.items() if end and at.get(p, 0) < end - 1]
        if not behind:
            return
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {n}\n{d.log_tail(30)}" for n, d in workers.items())
            pytest.fail(f"still behind on {behind}\n{tails}")
        await asyncio.sleep(0.3)


async def test_kill_9_of_both_engine_workers_mid_stream_loses_and_doubles_nothing(
    env: Settings, workers: dict[str, Daemon], db: psycopg.AsyncConnection[Any]
) -> None:
    rng = random.Random(9)
    shows: list[list[Event]] = [new_show(600, seed=rng.randrange(1 << 30)) for _ in range(3)]
    chats = [
        conversation_journal(f"k-{n}-{uuid.uuid4().hex[:6]}", USERS, 60, rng) for n in range(12)
    ]
    socials = [social_journal(user, USERS, 16, rng) for user in USERS]
    killed = threading.Event()
    writers = [
        threading.Thread(target=produce_shows_slowly, args=(env, shows, killed)),
        threading.Thread(target=produce_chat_slowly, args=(env, chats, socials, killed)),
    ]
    for writer in writers:
        writer.start()
    try:
        for _ in range(KILLS):
            # Once both are busy with these journals, kill them at random instants.
            await wait_for_progress(db, workers)
            for component, daemon in workers.items():
                await asyncio.sleep(random.uniform(0.0, 0.4))
                assert daemon.kill(), f"{component} was not running"
            await asyncio.sleep(random.uniform(0.0, 0.4))
            assert all(w.is_alive() for w in writers), "the journals stopped growing too soon"
            for component, daemon in workers.items():
                start_engine(daemon, env, component)
    finally:
        killed.set()
        for writer in writers:
            writer.join()
    await wait_until_caught_up(env, db, workers)

    # Every view equals the fold of its journal.
    done = await asyncio.to_thread(boxoffice, env, "replay", "--verify")
    try:
        assert done.returncode == 0, done.stdout + done.stderr
        assert "agree" in done.stdout
        assert f"{len(chats)} conversations" in done.stdout
    finally:
        await db.execute(f'DROP SCHEMA IF EXISTS "{replay_schema_of(done.stdout)}" CASCADE')

    # Nothing doubled, nothing lost: counts and versions are the journals'.
    await assert_projected(env, db, shows)
    for journal in shows:
        cursor = await db.execute(
            "SELECT count(*) FROM orders WHERE show_id = %s", (journal[0].show_id,)
        )
        assert await cursor.fetchone() == (len(fold_orders(journal)),)
    for chat in chats:
        conversation_id = chat[0].conversation_id
        cursor = await db.execute(
            "SELECT version, (SELECT count(*) FROM messages m"
            "   WHERE m.conversation_id = c.conversation_id)"
            " FROM conversations c WHERE conversation_id = %s",
            (conversation_id,),
        )
        sent = sum(isinstance(e, MessageSent) for e in chat)
        assert await cursor.fetchone() == (len(chat), sent), conversation_id
    assert dead_letters(env, lambda key: True) == []
    assert all(daemon.running() for daemon in workers.values())


async def test_every_journal_delivered_again_changes_no_row(
    env: Settings, workers: dict[str, Daemon], db: psycopg.AsyncConnection[Any]
) -> None:
    """After the crashes: a fresh engine handed every journal from offset 0 (a crash before
    any offset reached Kafka) skips it by the checkpoints; and the chat fold and SQL run over
    the whole journal again skip it by the stream versions."""
    await wait_until_caught_up(env, db, workers)
    before = await rows(db)
    parked: list[Entry] = []

    async def park(entry: Entry, reason: str, attempts: int) -> None:
        parked.append(entry)

    journals: dict[str, list[Entry]] = {}
    for topic in (SHOW_EVENTS.name(env), CHAT_EVENTS.name(env), SOCIAL_EVENTS.name(env)):
        ends = await asyncio.to_thread(replay.journal_ends, env, topic)
        journals[topic] = [
            entry
            for partition, end in sorted(ends.items())
            for entry in await read_range(env, topic, partition, 0, end)
        ]
    assert all(journals.values()), "the crash test wrote every journal"
    for fresh in (TicketingViews(env, park), ChatHistory(env, park)):
        try:
            for topic in fresh.topics:
                await fresh.project(journals[topic])
        finally:
            await fresh.close()
    assert parked == []
    assert await rows(db) == before

    # Below the checkpoints' rule: the rows' own stream versions.
    fold = ConversationFold(env.snapshot_every_events, env.snapshot_every_s)
    entries = [*journals[CHAT_EVENTS.name(env)], *journals[SOCIAL_EVENTS.name(env)]]
    batch = decode_batch(entries, SOCIAL_EVENTS.name(env))
    assert batch.poison == []
    await write_batch(db, fold, batch, next_offsets(entries))
    assert await rows(db) == before


async def rows(db: psycopg.AsyncConnection[Any]) -> dict[str, list[tuple[Any, ...]]]:
    """Every view's rows (snapshots aside: a fold may add one, harmlessly)."""
    tables = (
        "shows",
        "orders",
        "conversations",
        "conversation_members",
        "messages",
        "social_streams",
        "buddies",
        "blocks",
        "projection_offsets",
    )
    found = {}
    for table in tables:
        cursor = await db.execute(f"SELECT * FROM {table} ORDER BY 1, 2")
        found[table] = await cursor.fetchall()
    return found
