"""Sending a command and awaiting the decider's decision (request/reply keyed by command id)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from api.errors import unavailable
from boxoffice.settings import Settings
from producers.envelope import CommandEnvelope, Reply
from producers.journal import JournalProducer, JournalUnavailableError
from producers.replies import ReplyTimeoutError, ReplyWaiter
from producers.topics import Topic


class CommandBus:
    def __init__(self, settings: Settings, producer: JournalProducer, replies: ReplyWaiter) -> None:
        self._settings = settings
        self._producer = producer
        self._replies = replies
        # Set by the API: False while Kafka is known to be down, so commands fail fast.
        self.available: Callable[[], bool] = lambda: True

    async def decide(self, topic: Topic, command: CommandEnvelope) -> Reply:
        """Journal the command (acks=all) and wait for its decision; 503 if either stalls."""
        if not self.available():
            raise unavailable("the command journal")
        timeout = self._settings.command_timeout_s
        future = self._replies.expect(command.command_id)
        try:
            await asyncio.wait_for(
                self._producer.send(
                    topic.name(self._settings), command.stream_id, command.encode()
                ),
                timeout,
            )
        except (TimeoutError, JournalUnavailableError) as exc:
            future.cancel()
            raise unavailable("the command journal") from exc
        try:
            return await self._replies.wait(command.command_id, future, timeout)
        except ReplyTimeoutError as exc:
            # Journaled but not decided yet: the same command id makes a retry safe.
            raise unavailable("the decider") from exc
