"""Zombie fencing on the real broker: a decider that lost its partitions, or was replaced by a
restart of its own instance, can never commit a decision for them again.

A zombie here is a DeciderLoop driven by hand: it decides a hold and produces its events in a
transaction that it has not finished (its offsets and commit are held back), and then loses
its streams. When it finally tries to finish, the brokers refuse, and the journal holds the
hold exactly once, as decided by the new owner. The loops run on topics of their own, so they
neither fence nor are fenced by the stack's deciders.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from boxoffice.settings import Settings
from processors.deciders import DeciderLoop, _Batch
from producers.contexts import TICKETING_CONTEXT
from producers.envelope import CommandEnvelope, EventRecord, Reply
from producers.registries import TICKETING
from producers.topics import REPLIES, SHOW_COMMANDS, SHOW_EVENTS, ensure_topics
from tests.integration.journal import read_all
from tests.integration.test_deciders import Client, create_show, hold

pytestmark = pytest.mark.integration


@pytest.fixture
def own(settings: Settings) -> Settings:
    mine = settings.model_copy(
        update={"topic_prefix": f"{settings.topic_prefix}zmb{uuid.uuid4().hex[:6]}"}
    )
    ensure_topics(mine)
    return mine


@pytest.fixture
async def client(own: Settings) -> AsyncIterator[Client]:
    c = Client(own)
    await c.replies.start()
    try:
        yield c
    finally:
        await c.replies.stop()
        c.producer.close()


class Running:
    """A decider loop in a thread of this process."""

    def __init__(self, settings: Settings) -> None:
        self.loop = DeciderLoop(settings, [TICKETING_CONTEXT])
        self.thread = threading.Thread(target=self.loop.run, name="test-decider", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.loop.stop()
        self.thread.join(30)
        assert not self.thread.is_alive()


@pytest.fixture
def loops() -> Iterator[list[Running]]:
    started: list[Running] = []
    yield started
    for running in started:
        if running.thread.is_alive():
            running.stop()


def as_instance(settings: Settings, instance: str) -> Settings:
    return settings.model_copy(update={"processor_instance": instance})


def zombie_in_the_middle(
    settings: Settings, deadline_s: float = 30.0
) -> tuple[DeciderLoop, _Batch]:
    """A loop that decided the first command it met and produced its events, in a
    transaction it has not finished: its offsets and commit are held back."""
    loop = DeciderLoop(settings, [TICKETING_CONTEXT])
    held: list[_Batch] = []
    loop._finish = held.append  # type: ignore[method-assign,assignment]
    loop.consumer.subscribe(list(loop.specs), on_assign=loop._on_assign)
    deadline = time.monotonic() + deadline_s
    while not held and time.monotonic() < deadline:
        commands = [m for m in loop._next_batch() if loop._usable(m)]
        if commands:
            loop._transact(commands, [], loop.clock())
    assert held, "the zombie-to-be never got the command"
    held[0].lane.producer.flush(10)  # its events are in the journal, uncommitted
    return loop, held[0]


async def send(client: Client, command: Any) -> asyncio.Future[Reply]:
    """Journal a command and return the future of its reply (not awaited)."""
    payload = TICKETING.to_dict(command)
    envelope = CommandEnvelope(
        command_id=str(command.command_id),
        stream_id=str(command.show_id),
        type=payload.pop("type"),
        payload=payload,
    )
    future = client.replies.expect(envelope.command_id)
    await client.producer.send(
        SHOW_COMMANDS.name(client.settings), envelope.stream_id, envelope.encode()
    )
    return future


def journaled(settings: Settings, show: str) -> list[EventRecord]:
    return [
        EventRecord.decode(v)
        for k, v in read_all(settings, SHOW_EVENTS.name(settings))
        if k == show
    ]


def replies_to(settings: Settings, command_id: str) -> list[Reply]:
    found = [Reply.decode(v) for _, v in read_all(settings, REPLIES.name(settings))]
    return [r for r in found if r.command_id == command_id]


async def create(client: Client, settings: Settings, loops: list[Running]) -> str:
    """A show, created by a loop of instance "setup" that stops again."""
    setup = Running(as_instance(settings, "setup"))
    loops.append(setup)
    show = f"show-{uuid.uuid4().hex[:8]}"
    assert (await client.send(create_show(show))).ok
    setup.stop()
    return show


def finish(zombie: DeciderLoop, batch: _Batch) -> None:
    """What the zombie's lane would have done: offsets, then commit."""
    DeciderLoop._finish(zombie, batch)


async def test_a_restarted_instance_fences_its_zombie(
    own: Settings, client: Client, loops: list[Running]
) -> None:
    show = await create(client, own, loops)
    command = hold(show, "alice", "A-1-1")
    answered = await send(client, command)
    zombie, batch = await asyncio.to_thread(zombie_in_the_middle, as_instance(own, "z"))

    # The same instance starts again (after a hang, say): its transactional ids fence the
    # zombie's producers, which aborts the zombie's open transaction, and its static member
    # id fences the zombie's consumer. It decides the command afresh.
    loops.append(Running(as_instance(own, "z")))
    reply = await client.replies.wait(str(command.command_id), answered, 60)
    assert reply.ok and reply.version == 2

    # The zombie wakes up and tries to commit its decision: refused.
    await asyncio.to_thread(finish, zombie, batch)
    assert not batch.committed
    assert zombie.fatal is not None

    journal = journaled(own, show)
    assert [r.version for r in journal] == [1, 2]
    assert [r.command_id for r in journal].count(str(command.command_id)) == 1
    assert len(replies_to(own, str(command.command_id))) == 1
    with contextlib.suppress(Exception):
        zombie.consumer.close()


async def test_a_decider_that_lost_its_partitions_cannot_commit_for_them(
    own: Settings, client: Client, loops: list[Running]
) -> None:
    show = await create(client, own, loops)
    command = hold(show, "bob", "A-1-2")
    answered = await send(client, command)
    zombie, batch = await asyncio.to_thread(zombie_in_the_middle, as_instance(own, "a"))

    # The zombie stops taking part in its group (a long pause, a lost network) and another
    # instance takes its partitions over once its session has expired.
    zombie.consumer.close()
    successor = Running(as_instance(own, "b"))
    loops.append(successor)
    deadline = time.monotonic() + 60
    while not successor.loop.partitions and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert successor.loop.partitions, "the other instance never got the partitions"

    # The zombie's offsets carry its old group generation (KIP-447): the coordinator refuses
    # them, so its transaction aborts and its events never become visible.
    await asyncio.to_thread(finish, zombie, batch)
    assert not batch.committed

    reply = await client.replies.wait(str(command.command_id), answered, 60)
    assert reply.ok and reply.version == 2
    journal = journaled(own, show)
    assert [r.version for r in journal] == [1, 2]
    assert [r.command_id for r in journal].count(str(command.command_id)) == 1
    assert len(replies_to(own, str(command.command_id))) == 1
