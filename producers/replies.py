"""Request/reply over Kafka: the API awaits the decider's answer to the command it sent.

Every API instance reads the whole replies topic from its end (no consumer group, so no
rebalance can take replies away from it) and settles the futures of its own commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaConsumer

from boxoffice.settings import Settings
from producers.codec import DecodeError
from producers.envelope import Reply
from producers.tailing import tail
from producers.topics import REPLIES

log = logging.getLogger(__name__)


class ReplyTimeoutError(Exception):
    """No answer in time. The command may still be decided; its id makes a retry safe."""


class ReplyWaiter:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._topic = REPLIES.name(settings)
        self._pending: dict[str, asyncio.Future[Reply]] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        consumer = await tail(self._settings, [self._topic])
        self._consumer = consumer
        self._task = asyncio.create_task(self._run(), name="reply-waiter")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()

    def expect(self, command_id: str) -> asyncio.Future[Reply]:
        """Register interest before sending the command, so the reply cannot slip past."""
        future = self._pending.get(command_id)
        if future is None or future.done():
            future = asyncio.get_running_loop().create_future()
            self._pending[command_id] = future
        return future

    async def wait(self, command_id: str, future: asyncio.Future[Reply], timeout_s: float) -> Reply:
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout_s)
        except TimeoutError as exc:
            raise ReplyTimeoutError(command_id) from exc
        finally:
            if self._pending.get(command_id) is future:
                del self._pending[command_id]

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=500, max_records=2000)
            for messages in batches.values():
                for message in messages:
                    if not self._pending:
                        break
                    try:
                        reply = Reply.decode(message.value)
                    except DecodeError:
                        log.warning("undecodable reply at offset %s", message.offset)
                        continue
                    future = self._pending.get(reply.command_id)
                    if future is not None and not future.done():
                        future.set_result(reply)
