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
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from boxoffice.settings import Settings
from processors.deciders import DeciderLoop
from processors.lanes import Batch, Lanes
from producers.contexts import TICKETING_CONTEXT
from producers.envelope import EventRecord, Reply
from producers.topics import REPLIES, SHOW_EVENTS
from tests.integration.deciding import Client, Running, own_topics, started
from tests.integration.journal import read_all
from tests.integration.test_deciders import create_show, hold

pytestmark = pytest.mark.integration


@pytest.fixture
def own(settings: Settings) -> Settings:
    return own_topics(settings, "zmb")


@pytest.fixture
async def client(own: Settings) -> AsyncIterator[Client]:
    async with started(Client(own)) as c:
        yield c


@pytest.fixture
def loops() -> Iterator[list[Running]]:
    alive: list[Running] = []
    yield alive
    for running in alive:
        if running.thread.is_alive():
            running.stop()


def as_instance(settings: Settings, instance: str) -> Settings:
    return settings.model_copy(update={"processor_instance": instance})


def zombie_in_the_middle(settings: Settings, deadline_s: float = 30.0) -> tuple[DeciderLoop, Batch]:
    """A loop that decided the first command it met and produced its events, in a
    transaction it has not finished: its offsets and commit are held back."""
    loop = DeciderLoop(settings, [TICKETING_CONTEXT])
    held: list[Batch] = []
    loop.lanes.finish = held.append  # type: ignore[method-assign,assignment]
    loop.consumer.subscribe(list(loop.specs), on_assign=loop._on_assign)
    deadline = time.monotonic() + deadline_s
    while not held and time.monotonic() < deadline:
        commands = [m for m in loop._next_batch() if loop._usable(m)]
        if commands:
            loop._transact(commands, [], loop.clock())
    assert held, "the zombie-to-be never got the command"
    held[0].lane.producer.flush(10)  # its events are in the journal, uncommitted
    return loop, held[0]


def assert_decided_once(settings: Settings, show: str, command_id: str) -> None:
    """The show's journal is its creation and the hold, decided once, answered once."""
    journal = [
        EventRecord.decode(v)
        for k, v in read_all(settings, SHOW_EVENTS.name(settings))
        if k == show
    ]
    assert [r.version for r in journal] == [1, 2]
    assert [r.command_id for r in journal].count(command_id) == 1
    replies = [Reply.decode(v) for _, v in read_all(settings, REPLIES.name(settings))]
    assert [r.command_id for r in replies].count(command_id) == 1


async def create(client: Client, settings: Settings, loops: list[Running]) -> str:
    """A show, created by a loop of instance "setup" that stops again."""
    setup = Running(as_instance(settings, "setup"))
    loops.append(setup)
    show = f"show-{uuid.uuid4().hex[:8]}"
    assert (await client.send(create_show(show))).ok
    setup.stop()
    return show


def bury(zombie: DeciderLoop) -> None:
    """Let the zombie's clients go now, not at the end of the test session."""
    with contextlib.suppress(Exception):
        zombie.consumer.close()
    zombie.lanes.close()
    zombie.snapshot_writer.shutdown()
    zombie.lanes.lanes.clear()


def finish(zombie: DeciderLoop, batch: Batch) -> None:
    """What the zombie's lane would have done: offsets, then commit."""
    Lanes.finish(zombie.lanes, batch)


async def test_a_restarted_instance_fences_its_zombie(
    own: Settings, client: Client, loops: list[Running]
) -> None:
    show = await create(client, own, loops)
    command = hold(show, "alice", "A-1-1")
    answered = await client.journal(command)
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

    assert_decided_once(own, show, str(command.command_id))
    bury(zombie)


async def test_a_decider_that_lost_its_partitions_cannot_commit_for_them(
    own: Settings, client: Client, loops: list[Running]
) -> None:
    show = await create(client, own, loops)
    command = hold(show, "bob", "A-1-2")
    answered = await client.journal(command)
    zombie, batch = await asyncio.to_thread(zombie_in_the_middle, as_instance(own, "a"))

    # The zombie stops taking part in its group (a long pause, a lost network) and another
    # instance takes its partitions over once its session has expired.
    with contextlib.suppress(Exception):
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
    bury(zombie)

    reply = await client.replies.wait(str(command.command_id), answered, 60)
    assert reply.ok and reply.version == 2
    assert_decided_once(own, show, str(command.command_id))
