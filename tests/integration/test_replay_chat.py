"""`boxoffice replay` over every journal, on the real broker and database: the chat views
(conversations, members with read markers, history, buddies, blocks) are rebuilt by the chat
projector's own fold and SQL and compared with the live ones; a tampered live row is named;
an interrupted replay resumes from its committed offsets to the same views.

Both projectors run on topics and a schema of their own, so no other test is disturbed.
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest

from boxoffice.settings import PROJECT_ROOT, Settings
from producers.topics import CHAT_EVENTS, SHOW_EVENTS, SOCIAL_EVENTS, ensure_topics
from snapshots import replay
from snapshots.chatprojection import PROJECTION as CHAT_PROJECTION
from snapshots.checkpoints import load_checkpoints
from snapshots.database import conninfo, migrate
from snapshots.orders import all_orders, shows
from snapshots.projection import PROJECTION
from stack.services import settings_env
from tests.integration.chat_journals import conversation_journal, produce_chat, social_journal
from tests.integration.engine_workers import ENGINE_COMPONENTS, engine_daemon, start_engine
from tests.integration.test_views import new_show, produce, replay_schema_of

pytestmark = pytest.mark.integration

USERS = [f"user{n}" for n in range(12)]


@pytest.fixture(scope="module")
def env(settings: Settings) -> Iterator[Settings]:
    run = uuid.uuid4().hex[:6]
    own = settings.model_copy(
        update={
            "topic_prefix": f"{settings.topic_prefix}r{run}",
            "pg_schema": f"{settings.pg_schema}r{run}",
            "snapshot_every_events": 25,
        }
    )
    ensure_topics(own)
    migrate(own)
    yield own
    with psycopg.connect(own.pg_dsn, autocommit=True) as conn:
        schemas = conn.execute(
            "SELECT schema_name FROM information_schema.schemata"
            " WHERE schema_name = %s OR schema_name LIKE 'replay\\_%%'",
            (own.pg_schema,),
        ).fetchall()
        for (schema,) in schemas:
            # Only this module's replays: those whose replayed show journal is ours.
            if schema == own.pg_schema or _replayed_ours(conn, schema, own):
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _replayed_ours(conn: psycopg.Connection[Any], schema: str, env: Settings) -> bool:
    row = conn.execute(
        f'SELECT 1 FROM "{schema}".projection_offsets WHERE topic LIKE %s LIMIT 1',
        (f"{env.topic_prefix}.%",),
    ).fetchone()
    return row is not None


@pytest.fixture(scope="module")
def projectors(env: Settings) -> Iterator[None]:
    daemons = {c: engine_daemon(env, f"replay-{c}", c) for c in ENGINE_COMPONENTS}
    for component, daemon in daemons.items():
        daemon.stop(timeout_s=10)  # a leftover of an interrupted run has other settings
        start_engine(daemon, env, component)
    try:
        yield
    finally:
        for daemon in daemons.values():
            daemon.stop(timeout_s=30)


@pytest.fixture(scope="module")
def journals(env: Settings, projectors: None) -> int:
    """Two shows, 24 conversations and 12 users' social streams; the entries written."""
    rng = random.Random(8)
    show_journals = [new_show(120, seed=rng.randrange(1 << 30)) for _ in range(2)]
    produce(env, show_journals)
    chats = [
        conversation_journal(f"g-{n}-{uuid.uuid4().hex[:6]}", USERS, 40, rng) for n in range(24)
    ]
    socials = [social_journal(user, USERS, 12, rng) for user in USERS]
    written = produce_chat(env, chats, socials, per_transaction=100)
    asyncio.run(_caught_up(env))
    return written + sum(map(len, show_journals))


async def _caught_up(env: Settings, timeout_s: float = 120) -> None:
    """Until the live projectors' checkpoints reach the end of every journal."""
    deadline = time.monotonic() + timeout_s
    wanted = {
        (PROJECTION, SHOW_EVENTS.name(env)),
        (CHAT_PROJECTION, CHAT_EVENTS.name(env)),
        (CHAT_PROJECTION, SOCIAL_EVENTS.name(env)),
    }
    async with await psycopg.AsyncConnection.connect(conninfo(env), autocommit=True) as conn:
        while True:
            behind = []
            for projection, topic in wanted:
                ends = await asyncio.to_thread(replay.journal_ends, env, topic)
                at = await load_checkpoints(conn, projection, topic)
                behind += [p for p, end in ends.items() if end and at.get(p, 0) < end - 1]
            if not behind:
                return
            assert time.monotonic() < deadline, f"projectors still behind on {behind}"
            await asyncio.sleep(0.2)


@pytest.fixture
async def db(env: Settings) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    async with await psycopg.AsyncConnection.connect(conninfo(env), autocommit=True) as conn:
        yield conn


def boxoffice(env: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PROJECT_ROOT / ".venv" / "bin" / "boxoffice"), *args],
        env=settings_env(env),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


async def test_replay_verify_rebuilds_the_chat_views_and_names_a_tampered_row(
    env: Settings, journals: int, db: psycopg.AsyncConnection[Any]
) -> None:
    done = boxoffice(env, "replay", "--verify")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "agree" in done.stdout
    assert "24 conversations" in done.stdout and "12 social streams" in done.stdout
    # One progress line per journal, finished.
    for topic in (SHOW_EVENTS, CHAT_EVENTS, SOCIAL_EVENTS):
        assert f"{topic.name(env)}: " in done.stderr
    assert "entries/s" in done.stderr and "(100%)" in done.stderr

    message = await (
        await db.execute("SELECT conversation_id, seq, text FROM messages ORDER BY 1, 2 LIMIT 1")
    ).fetchone()
    member = await (
        await db.execute(
            "SELECT conversation_id, username, last_read_seq FROM conversation_members"
            " ORDER BY 1, 2 LIMIT 1"
        )
    ).fetchone()
    buddy = await (
        await db.execute("SELECT username, buddy, since FROM buddies ORDER BY 1, 2 LIMIT 1")
    ).fetchone()
    assert message and member and buddy
    try:
        await db.execute(
            "UPDATE messages SET text = 'forged' WHERE conversation_id = %s AND seq = %s",
            message[:2],
        )
        await db.execute(
            "UPDATE conversation_members SET last_read_seq = last_read_seq + 1000"
            " WHERE conversation_id = %s AND username = %s",
            member[:2],
        )
        await db.execute("DELETE FROM buddies WHERE username = %s AND buddy = %s", buddy[:2])
        tampered = boxoffice(env, "replay", "--verify")
        assert tampered.returncode == 1, tampered.stdout + tampered.stderr
        out = tampered.stdout
        assert f"messages {message[0]}/{message[1]}: text live 'forged' != journal" in out
        assert f"conversation_members {member[0]}/{member[1]}: last_read_seq live" in out
        assert f"buddies {buddy[0]}/{buddy[1]}: journaled, missing from the live view" in out
    finally:
        await db.execute(
            "UPDATE messages SET text = %s WHERE conversation_id = %s AND seq = %s",
            (message[2], *message[:2]),
        )
        await db.execute(
            "UPDATE conversation_members SET last_read_seq = %s"
            " WHERE conversation_id = %s AND username = %s",
            (member[2], *member[:2]),
        )
        await db.execute("INSERT INTO buddies VALUES (%s, %s, %s)", buddy)


async def test_an_interrupted_replay_resumes_where_it_stopped_to_the_same_views(
    env: Settings, journals: int, db: psycopg.AsyncConnection[Any]
) -> None:
    schema = replay.replay_schema()
    # Stopped in the show journal, then again in the conversation journal, 50 entries a batch.
    with pytest.raises(replay.ReplayInterruptedError):
        await replay.rebuild(env, schema, stop_after=150, batch_size=50)
    target = env.model_copy(update={"pg_schema": schema})
    async with await psycopg.AsyncConnection.connect(conninfo(target), autocommit=True) as conn:
        folded = await load_checkpoints(conn, PROJECTION, SHOW_EVENTS.name(env))
    assert 0 < sum(folded.values()) < journals
    with pytest.raises(replay.ReplayInterruptedError):
        await replay.rebuild(env, schema, resume=True, stop_after=500, batch_size=50)

    resumed = boxoffice(env, "replay", "--resume", schema, "--verify")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert replay_schema_of(resumed.stdout) == schema
    # It went on from its offsets: far fewer entries than the journals hold.
    replayed = int(resumed.stdout.split("replayed ")[1].split()[0])
    assert replayed < journals - 500, resumed.stdout

    whole = await replay.rebuild(env)
    assert await replay.chat_table_differences(db, whole.schema, schema) == []
    copies = [env.model_copy(update={"pg_schema": s}) for s in (whole.schema, schema)]
    views = []
    for copy in copies:
        async with await psycopg.AsyncConnection.connect(conninfo(copy), autocommit=True) as conn:
            views.append((await shows(conn), await all_orders(conn)))
    assert views[0] == views[1]
    assert views[0][1], "the shows have orders"


def test_resuming_what_is_not_a_replay_is_refused(env: Settings) -> None:
    refused = boxoffice(env, "replay", "--resume", env.pg_schema)
    assert refused.returncode == 2
    assert f"there is no replay schema '{env.pg_schema}' to resume" in refused.stdout
