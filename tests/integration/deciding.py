"""Deciders of a test's own: a client that journals ticketing commands and awaits their
replies, a DeciderLoop in a thread of the test process, and topics of the test's own."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol, TypeVar

from boxoffice.settings import Settings
from processors.deciders import DeciderLoop
from producers.contexts import TICKETING_CONTEXT
from producers.envelope import CommandEnvelope, Reply
from producers.journal import JournalProducer
from producers.registries import TICKETING
from producers.replies import ReplyWaiter
from producers.topics import SHOW_COMMANDS, ensure_topics


class Client:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.producer = JournalProducer(settings)
        self.replies = ReplyWaiter(settings)

    async def journal(self, command: Any, command_id: str | None = None) -> asyncio.Future[Reply]:
        """Journal a ticketing command; the future of its reply (not awaited)."""
        payload = TICKETING.to_dict(command)
        envelope = CommandEnvelope(
            command_id=command_id or str(command.command_id),
            stream_id=str(command.show_id),
            type=payload.pop("type"),
            payload=payload,
        )
        future = self.replies.expect(envelope.command_id)
        await self.producer.send(
            SHOW_COMMANDS.name(self.settings), envelope.stream_id, envelope.encode()
        )
        return future

    async def send(self, command: Any, command_id: str | None = None) -> Reply:
        future = await self.journal(command, command_id)
        return await self.replies.wait(command_id or str(command.command_id), future, 30)


class _Replying(Protocol):
    producer: JournalProducer
    replies: ReplyWaiter


Replying = TypeVar("Replying", bound=_Replying)


@asynccontextmanager
async def started(client: Replying) -> AsyncIterator[Replying]:
    """The client with its reply waiter reading from now on, closed afterwards."""
    await client.replies.start()
    try:
        yield client
    finally:
        await client.replies.stop()
        client.producer.close()


class Running:
    """A ticketing decider loop in a thread of this process."""

    def __init__(self, settings: Settings) -> None:
        self.loop = DeciderLoop(settings, [TICKETING_CONTEXT])
        self.thread = threading.Thread(target=self.loop.run, name="test-decider", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.loop.stop()
        self.thread.join(30)
        assert not self.thread.is_alive()


def own_topics(settings: Settings, tag: str, **update: Any) -> Settings:
    """The settings with a topic prefix of their own (created), so that the test's deciders
    neither fence nor are fenced by the stack's."""
    mine = settings.model_copy(
        update={"topic_prefix": f"{settings.topic_prefix}{tag}{uuid.uuid4().hex[:6]}", **update}
    )
    ensure_topics(mine)
    return mine
