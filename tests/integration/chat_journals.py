"""Chat journals as the deciders write them: random commands decided by the domain, so every
event sequence is one a real decider could have journaled (used by the replay tests and
bench/replay.py)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

from confluent_kafka import Producer

from boxoffice.settings import Settings
from domain.chat import conversations, social
from domain.chat.commands import (
    AddBuddy,
    AddMember,
    BlockUser,
    MarkRead,
    RemoveBuddy,
    RemoveMember,
    SendMessage,
    StartConversation,
    UnblockUser,
)
from domain.chat.errors import ChatError
from domain.chat.events import GROUP, ConversationEvent, SocialEvent
from producers.envelope import EventRecord
from producers.registries import CONVERSATIONS, SOCIAL
from producers.topics import CHAT_EVENTS, SOCIAL_EVENTS

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def conversation_journal(
    conversation_id: str, users: Sequence[str], events: int, rng: random.Random
) -> list[ConversationEvent]:
    """About ``events`` events of one group: messages mostly, some reads, joins and leaves."""
    now = T0
    members = rng.sample(list(users), k=min(3, len(users)))
    state, journal = None, []
    command: object = StartConversation(
        f"c-{uuid.uuid4().hex[:8]}", conversation_id, members[0], tuple(members), GROUP, "crew"
    )
    for n in range(events * 2):
        try:
            decided = conversations.decide(state, command, now)  # type: ignore[arg-type]
        except ChatError:
            decided = []
        for event in decided:
            state = conversations.evolve(state, event)
            journal.append(event)
        if len(journal) >= events or state is None:
            break
        now += timedelta(seconds=rng.random())
        actor = rng.choice(sorted(state.members))
        roll = rng.random()
        command_id = f"c-{n}-{uuid.uuid4().hex[:6]}"
        if roll < 0.7:
            command = SendMessage(
                command_id, conversation_id, actor, f"m-{n}", f"message {n} from {actor}", ()
            )
        elif roll < 0.85:
            command = MarkRead(command_id, conversation_id, actor, rng.randint(0, state.last_seq))
        elif roll < 0.95:
            command = AddMember(command_id, conversation_id, actor, rng.choice(list(users)))
        else:
            command = RemoveMember(command_id, conversation_id, actor, rng.choice(list(users)))
    return journal


def social_journal(
    user: str, users: Sequence[str], events: int, rng: random.Random
) -> list[SocialEvent]:
    now = T0
    state, journal = None, []
    others = [u for u in users if u != user]
    for n in range(events * 3):
        other = rng.choice(others)
        kind = rng.choice((AddBuddy, AddBuddy, RemoveBuddy, BlockUser, UnblockUser))
        command = kind(f"s-{n}-{uuid.uuid4().hex[:6]}", user, other)
        try:
            decided = social.decide(state, command, now)
        except ChatError:
            continue
        for event in decided:
            state = social.evolve(state, event)
            journal.append(event)
        now += timedelta(seconds=1)
        if len(journal) >= events:
            break
    return journal


def interleave(journals: Sequence[Sequence[object]]) -> Iterator[object]:
    for n in range(max(map(len, journals), default=0)):
        for journal in journals:
            if n < len(journal):
                yield journal[n]


def conversation_record(event: ConversationEvent) -> bytes:
    return EventRecord(
        stream_id=event.conversation_id,
        version=event.version,
        command_id=event.command_id,
        recorded_at=T0,
        event=CONVERSATIONS.to_dict(event),
    ).encode()


def social_record(event: SocialEvent) -> bytes:
    return EventRecord(
        stream_id=event.user,
        version=event.version,
        command_id=event.command_id,
        recorded_at=T0,
        event=SOCIAL.to_dict(event),
    ).encode()


def produce_chat(
    env: Settings,
    chats: Sequence[Sequence[ConversationEvent]],
    socials: Sequence[Sequence[SocialEvent]],
    per_transaction: int = 500,
) -> int:
    """Append the journals (interleaved, keyed by stream, in transactions); the events written."""
    producer = Producer(
        {
            "bootstrap.servers": env.kafka_bootstrap,
            "transactional.id": f"test-replay-{uuid.uuid4().hex}",
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": "lz4",
            "linger.ms": 5,
            "log_level": 3,
        }
    )
    producer.init_transactions(30)
    written = 0
    for topic, journals in ((CHAT_EVENTS.name(env), chats), (SOCIAL_EVENTS.name(env), socials)):
        merged = list(interleave(journals))
        for start in range(0, len(merged), per_transaction):
            producer.begin_transaction()
            for event in merged[start : start + per_transaction]:
                if topic == CHAT_EVENTS.name(env):
                    assert isinstance(event, ConversationEvent)
                    producer.produce(
                        topic, key=event.conversation_id, value=conversation_record(event)
                    )
                else:
                    assert isinstance(event, SocialEvent)
                    producer.produce(topic, key=event.user, value=social_record(event))
                written += 1
            producer.commit_transaction(30)
    return written
