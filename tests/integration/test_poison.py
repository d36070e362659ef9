"""Poison on every journal, on the real broker and database: raw records written straight onto
the show, conversation and social journals (bytes that do not decode, an unknown event type,
valid envelopes whose values PostgreSQL refuses, an event no stream can follow), then good
events after them in the same partitions. Both projectors (the projector engine's Faust
workers, `python -m processors views|chatviews worker`, as the stack runs them) catch up past
them, each poison is on the dead-letter topic with its origin, and a decider rebuilding from
those journals parks what it cannot fold and goes on.

The processes under test run on topics and a schema of their own, so nothing here disturbs
the session's stack, and its poison never reaches another test's views.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, cast

import psycopg
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from boxoffice.settings import PROJECT_ROOT, Settings
from domain.chat.events import BuddyAdded, ConversationStarted, MessageSent
from domain.ticketing.events import SeatsHeld, ShowCreated
from processors.chat import CONVERSATIONS, SOCIAL
from producers.codec import Registry
from producers.envelope import EventRecord
from producers.registries import TICKETING
from producers.topics import (
    CHAT_EVENTS,
    DEAD_LETTERS,
    SHOW_EVENTS,
    SOCIAL_EVENTS,
    ensure_topics,
    partitions_of,
)
from snapshots.chatprojection import PROJECTION as CHAT_VIEWS
from snapshots.database import conninfo, migrate
from snapshots.projection import PROJECTION as VIEWS
from stack.processes import Daemon
from stack.services import settings_env
from tests.integration.engine_workers import ENGINE_COMPONENTS, engine_daemon, start_engine
from tests.unit.snapshots.journals import T0, sale

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def env(settings: Settings) -> Iterator[Settings]:
    run = uuid.uuid4().hex[:6]
    own = settings.model_copy(
        update={
            "topic_prefix": f"{settings.topic_prefix}p{run}",
            "pg_schema": f"{settings.pg_schema}p{run}",
        }
    )
    ensure_topics(own)
    migrate(own)
    yield own
    with psycopg.connect(own.pg_dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{own.pg_schema}" CASCADE')


def daemon(env: Settings, name: str, module: str) -> Daemon:
    return Daemon(name, env.run_dir, env.log_dir, marker=module)


@pytest.fixture(scope="module")
def projectors(env: Settings) -> Iterator[dict[str, Daemon]]:
    running = {
        component: engine_daemon(env, f"poison-{component}", component)
        for component in ENGINE_COMPONENTS
    }
    for component, process in running.items():
        process.stop(timeout_s=10)  # a leftover of an interrupted run has other settings
        start_engine(process, env, component)
    try:
        yield running
    finally:
        for process in running.values():
            process.stop(timeout_s=30)


# -- writing straight onto the journals ---------------------------------------------------------


def envelope(registry: Registry, stream_id: str, version: int, event: Any) -> bytes:
    return EventRecord(
        stream_id=stream_id,
        version=version,
        command_id=f"c-{uuid.uuid4().hex[:8]}",
        recorded_at=datetime.now(UTC),
        event=registry.to_dict(event),
    ).encode()


def unknown_type(stream_id: str, type_name: str) -> bytes:
    return EventRecord(
        stream_id=stream_id,
        version=1,
        command_id=f"c-{uuid.uuid4().hex[:8]}",
        recorded_at=datetime.now(UTC),
        event={"type": type_name, "version": 1, "id": stream_id},
    ).encode()


def garbage() -> bytes:
    return b"\xff\xfe not an event " + uuid.uuid4().hex.encode()


def write(env: Settings, topic: str, key: str, values: list[bytes]) -> None:
    """In this order, into the partition of `key`: as one decider would, one after the other."""
    producer = Producer(
        {"bootstrap.servers": env.kafka_bootstrap, "enable.idempotence": True, "log_level": 3}
    )
    for value in values:
        producer.produce(topic, key=key.encode(), value=value)
    assert producer.flush(30) == 0


@dataclass(frozen=True)
class Poison:
    journal: str
    value: bytes
    consumer: str
    # What the dead letter's reason must say.
    reason: str
    # Refused by PostgreSQL or by a fold: found by the retry-then-isolate rule, not at decode.
    isolated: bool = False


def wait_for(
    what: str, check: Callable[[], bool], logs: dict[str, Daemon], timeout_s: float = 120
) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {n}\n{d.log_tail(30)}" for n, d in logs.items())
            pytest.fail(f"{what}: not within {timeout_s} s\n{tails}")
        time.sleep(0.2)


def row(env: Settings, sql: str, *args: Any) -> tuple[Any, ...] | None:
    with psycopg.connect(conninfo(env), autocommit=True) as conn:
        return conn.execute(sql, args).fetchone()


def dead_letters(env: Settings) -> list[tuple[bytes, dict[str, str]]]:
    """Every dead letter so far, with its headers."""
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
    found: list[tuple[bytes, dict[str, str]]] = []
    try:
        partitions = partitions_of(env, [topic])[topic]
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        remaining = set(partitions)
        deadline = time.monotonic() + 30
        while remaining and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                assert err.code() == KafkaError._PARTITION_EOF, err
                remaining.discard(msg.partition())
                continue
            pairs = cast(list[tuple[str, bytes]], msg.headers() or [])
            found.append((msg.value() or b"", {k: (v or b"").decode() for k, v in pairs}))
        assert not remaining, "the dead-letter topic did not answer"
    finally:
        consumer.close()
    return found


# -- the tests ----------------------------------------------------------------------------------


@dataclass
class Journals:
    """What was written: the poison, and the good events after it."""

    poison: list[Poison]
    good: list[bytes]
    good_show: str
    chat: str
    user: str
    stray: bytes  # an event no decider can fold: a hold on a show that was never created


@pytest.fixture(scope="module")
def journals(env: Settings) -> Journals:
    tag = uuid.uuid4().hex[:8]
    shows, chats, social = SHOW_EVENTS.name(env), CHAT_EVENTS.name(env), SOCIAL_EVENTS.name(env)
    poison: list[Poison] = []

    # The show journal: all keyed by the good show, so they sit right before it.
    good_show = f"show-{tag}"
    created = sale(good_show, 1)[0]
    assert isinstance(created, ShowCreated)
    nul_name = replace(created, show_id=f"nul-{tag}", name="bad\x00name")
    long_hold = replace(created, show_id=f"long-{tag}", hold_seconds=2**31 + 7)
    stray = SeatsHeld(f"stray-{tag}", 2, "c", "o-stray", "eve", ("A-1-1",), None, 1, 1, T0, T0)
    stray_value = envelope(TICKETING, stray.show_id, 2, stray)
    poison += [
        Poison(shows, garbage(), VIEWS, "undecodable: not JSON"),
        Poison(shows, unknown_type(good_show, "ShowRenamed"), VIEWS, "unknown message type"),
        Poison(shows, envelope(TICKETING, nul_name.show_id, 1, nul_name), VIEWS, "NUL"),
        # hold_seconds is an integer column: PostgreSQL refuses the catalogue row.
        Poison(
            shows,
            envelope(TICKETING, long_hold.show_id, 1, long_hold),
            VIEWS,
            "NumericValueOutOfRange",
            isolated=True,
        ),
        Poison(shows, stray_value, VIEWS, "unfoldable"),
    ]

    # The conversation journal: a good start, the poison, then a good message at the version
    # the NUL message claimed.
    chat = f"conv-{tag}"
    started = ConversationStarted(chat, 1, "c1", "ann", "group", "hello", ("ann", "bob"), T0)
    nul_text = MessageSent(chat, 2, "c2", 1, "ann", f"m-{tag}", "a\x00b", T0)
    nul_title = ConversationStarted(f"nul-{tag}", 1, "c3", "ann", "group", "t\x00t", ("ann",), T0)
    message = MessageSent(chat, 2, "c4", 1, "ann", f"g-{tag}", "after the poison", T0)
    poison += [
        Poison(chats, garbage(), CHAT_VIEWS, "undecodable: not JSON"),
        Poison(chats, unknown_type(chat, "MessageEdited"), CHAT_VIEWS, "unknown message type"),
        # PostgreSQL text cannot hold NUL: the message row, then the conversation's title.
        Poison(chats, envelope(CONVERSATIONS, chat, 2, nul_text), CHAT_VIEWS, "NUL", isolated=True),
        Poison(
            chats,
            envelope(CONVERSATIONS, nul_title.conversation_id, 1, nul_title),
            CHAT_VIEWS,
            "NUL",
            isolated=True,
        ),
    ]

    # The social journal.
    user = f"u{tag}"
    nul_buddy = BuddyAdded(f"nul{tag}", 1, "c5", "b\x00d", T0)
    poison += [
        Poison(social, garbage(), CHAT_VIEWS, "undecodable: not JSON"),
        Poison(social, unknown_type(user, "UserRenamed"), CHAT_VIEWS, "unknown message type"),
        Poison(
            social, envelope(SOCIAL, nul_buddy.user, 1, nul_buddy), CHAT_VIEWS, "NUL", isolated=True
        ),
    ]

    good = {
        shows: envelope(TICKETING, good_show, 1, created),
        chats: envelope(CONVERSATIONS, chat, 2, message),
        social: envelope(SOCIAL, user, 1, BuddyAdded(user, 1, "c6", "bob", T0)),
    }
    first = envelope(CONVERSATIONS, chat, 1, started)
    write(env, chats, chat, [first])
    for topic, key in ((shows, good_show), (chats, chat), (social, user)):
        write(env, topic, key, [*(p.value for p in poison if p.journal == topic), good[topic]])
    return Journals(poison, [first, *good.values()], good_show, chat, user, stray_value)


def test_poison_on_every_journal_is_parked_and_every_view_catches_up(
    env: Settings, projectors: dict[str, Daemon], journals: Journals
) -> None:
    wait_for(
        "the show after the poison is listed",
        lambda: (
            row(env, "SELECT version FROM shows WHERE show_id = %s", journals.good_show) == (1,)
        ),
        projectors,
    )
    wait_for(
        "the message after the poison is in the history",
        lambda: (
            row(
                env,
                "SELECT text FROM messages WHERE conversation_id = %s AND seq = 1",
                journals.chat,
            )
            == ("after the poison",)
        ),
        projectors,
    )
    wait_for(
        "the buddy after the poison is listed",
        lambda: (
            row(env, "SELECT buddy FROM buddies WHERE username = %s", journals.user) == ("bob",)
        ),
        projectors,
    )
    # Nothing of the poison got in, and the projectors are alive.
    tag = journals.chat.removeprefix("conv-")
    assert row(env, "SELECT count(*) FROM shows WHERE show_id LIKE %s", f"%-{tag}") == (1,)
    assert row(
        env, "SELECT count(*) FROM conversations WHERE conversation_id LIKE %s", f"%-{tag}"
    ) == (1,)
    assert row(
        env, "SELECT version, title FROM conversations WHERE conversation_id = %s", journals.chat
    ) == (2, "hello")
    assert row(env, "SELECT count(*) FROM messages WHERE conversation_id = %s", journals.chat) == (
        1,
    )
    assert row(env, "SELECT count(*) FROM buddies WHERE username LIKE %s", f"%{tag}") == (1,)
    assert all(process.running() for process in projectors.values())

    # Each poison is parked, with where it came from, who gave up on it, why, how often, when.
    parked = dead_letters(env)
    topics = [SHOW_EVENTS.name(env), CHAT_EVENTS.name(env), SOCIAL_EVENTS.name(env)]
    partitions = {t: set(ps) for t, ps in partitions_of(env, topics).items()}
    for bad in journals.poison:
        letters = [
            h for value, h in parked if value == bad.value and h["origin-consumer"] == bad.consumer
        ]
        assert letters, f"not parked: {bad}"
        # The same record however often it was parked (a rewind may park a record twice).
        assert len({h["origin-offset"] for h in letters}) == 1, letters
        headers = letters[0]
        assert headers["origin-topic"] == bad.journal
        assert int(headers["origin-partition"]) in partitions[bad.journal]
        assert int(headers["origin-offset"]) >= 0
        assert bad.reason in headers["reason"], headers
        assert datetime.fromisoformat(headers["failed-at"]).tzinfo is not None
        if bad.isolated:
            # Retried, then isolated and parked alone: PostgreSQL's refusal is the reason.
            assert headers["attempts"] == "3", headers
        else:
            assert headers["attempts"] == "1", headers
    assert not {value for value, _ in parked} & set(journals.good)


def test_a_decider_rebuilding_from_a_poisoned_journal_parks_what_it_cannot_fold(
    env: Settings, journals: Journals
) -> None:
    deciders = daemon(env, "poison-deciders", "processors.deciders")
    deciders.stop(timeout_s=10)
    deciders.start(
        [sys.executable, "-m", "processors.deciders"], env=settings_env(env), cwd=PROJECT_ROOT
    )
    try:

        def parked() -> bool:
            return any(
                value == journals.stray and h["origin-consumer"] == "deciders"
                for value, h in dead_letters(env)
            )

        wait_for("the decider parks the stray hold", parked, {"deciders": deciders})
        topic = SHOW_EVENTS.name(env)
        rebuilt = len(partitions_of(env, [topic])[topic])
        wait_for(
            "the decider rebuilds every show partition",
            lambda: deciders.log_tail(400).count(f"rebuilt {topic}[") >= rebuilt,
            {"deciders": deciders},
        )
        log = deciders.log_tail(400)
        assert "worker exited" not in log, log
        assert deciders.running()
    finally:
        deciders.stop(timeout_s=30)
