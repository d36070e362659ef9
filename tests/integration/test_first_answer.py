"""The first answer is final: a rejected command id is answered with its first rejection by
every later copy, even when a fresh decision would now succeed, and across a kill -9."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from boxoffice.settings import Settings
from domain.chat.commands import AddBuddy
from domain.ticketing import CancelHold, PlaceHold
from processors.chat import SOCIAL
from producers.codec import Registry
from producers.envelope import CommandEnvelope, Reply
from producers.journal import JournalProducer
from producers.registries import TICKETING
from producers.replies import ReplyWaiter
from producers.topics import SHOW_COMMANDS, SHOW_REJECTIONS, SOCIAL_COMMANDS, SOCIAL_REJECTIONS
from stack.services import Stack
from tests.integration.deciding import started
from tests.integration.journal import read_all
from tests.integration.test_deciders import create_show

pytestmark = pytest.mark.integration


class Client:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.producer = JournalProducer(settings)
        self.replies = ReplyWaiter(settings)

    async def send(
        self, registry: Registry, topic: str, stream: str, command: Any, timeout_s: float = 30
    ) -> Reply:
        payload = registry.to_dict(command)
        envelope = CommandEnvelope(
            command_id=str(command.command_id),
            stream_id=stream,
            type=payload.pop("type"),
            payload=payload,
        )
        future = self.replies.expect(envelope.command_id)
        await self.producer.send(topic, stream, envelope.encode())
        return await self.replies.wait(envelope.command_id, future, timeout_s)

    async def show(self, command: Any, timeout_s: float = 30) -> Reply:
        topic = SHOW_COMMANDS.name(self.settings)
        return await self.send(TICKETING, topic, str(command.show_id), command, timeout_s)


@pytest.fixture
async def client(settings: Settings, stack: Stack) -> AsyncIterator[Client]:
    async with started(Client(settings)) as c:
        yield c


def journaled_rejections(settings: Settings, topic: str, command_id: str) -> list[Reply]:
    return [
        reply
        for _, value in read_all(settings, topic)
        for reply in (Reply.decode(value),)
        if reply.command_id == command_id
    ]


@pytest.mark.disruptive
async def test_a_rejected_hold_stays_rejected_after_the_seat_frees_up_and_a_kill_9(
    settings: Settings, stack: Stack, client: Client
) -> None:
    show = f"show-{uuid.uuid4().hex[:8]}"
    assert (await client.show(create_show(show))).ok
    alice_order = f"{show}.{uuid.uuid4().hex}"
    held = await client.show(
        PlaceHold.of_seats(
            command_id=uuid.uuid4().hex,
            show_id=show,
            user="alice",
            order_id=alice_order,
            seats=("A-1-1",),
        )
    )
    assert held.ok

    bobs = PlaceHold.of_seats(
        command_id=uuid.uuid4().hex,
        show_id=show,
        user="bob",
        order_id=f"{show}.{uuid.uuid4().hex}",
        seats=("A-1-1",),
    )
    first = await client.show(bobs)
    assert not first.ok and first.error is not None
    assert first.error["code"] == "seats_unavailable"

    cancelled = await client.show(
        CancelHold(command_id=uuid.uuid4().hex, show_id=show, user="alice", order_id=alice_order)
    )
    assert cancelled.ok

    # The seat is free now, but the same command id gets its first answer.
    again = await client.show(bobs)
    assert not again.ok and again.duplicate
    assert again.error == first.error and again.version == first.version

    # A crash forgets nothing: the restarted decider loads the rejection with the state.
    assert stack.deciders.kill()
    stack.up(("deciders",), say=lambda _: None)
    after_crash = await client.show(bobs, timeout_s=90)
    assert not after_crash.ok and after_crash.duplicate
    assert after_crash.error == first.error and after_crash.version == first.version

    # A fresh decision would have succeeded all along: the same hold under a new id does.
    fresh = await client.show(
        PlaceHold.of_seats(
            command_id=uuid.uuid4().hex,
            show_id=show,
            user="bob",
            order_id=bobs.order_id,
            seats=("A-1-1",),
        )
    )
    assert fresh.ok and fresh.events[0]["type"] == "SeatsHeld"

    # Journaled once, when first decided; the later answers only repeat it.
    rejections = journaled_rejections(
        settings, SHOW_REJECTIONS.name(settings), str(bobs.command_id)
    )
    assert len(rejections) == 1 and rejections[0].error == first.error


async def test_a_social_rejection_is_the_answer_to_every_copy(
    settings: Settings, client: Client
) -> None:
    user = f"u{uuid.uuid4().hex[:8]}"
    command = AddBuddy(command_id=uuid.uuid4().hex, user=user, buddy=user)
    topic = SOCIAL_COMMANDS.name(settings)
    first = await client.send(SOCIAL, topic, user, command)
    assert not first.ok and first.error is not None and not first.duplicate
    again = await client.send(SOCIAL, topic, user, command)
    assert not again.ok and again.duplicate and again.error == first.error
    rejections = journaled_rejections(
        settings, SOCIAL_REJECTIONS.name(settings), command.command_id
    )
    assert [r.error for r in rejections] == [first.error]
