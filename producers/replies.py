"""Request/reply over Kafka: the API awaits the decider's answer to the command it sent.

Every API instance reads the whole replies topic from its end (no consumer group, so no
rebalance can take replies away from it) and settles the futures of its own commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

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
    def __init__(self, settings: Settings, on_reply: Callable[[Reply], None] | None = None) -> None:
        self._settings = settings
        self._topic = REPLIES.name(settings)
        self._pending: dict[str, asyncio.Future[Reply]] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        # Told of every reply, any instance's command: what this process knows has been
        # decided, wherever it was asked.
        self._on_reply = on_reply
        self._advanced = asyncio.Event()
        # Asks the log ends for `caught_up` on a connection of its own: on the reading
        # consumer's, the request waited behind a fetch held open for up to 500 ms.
        self._ends: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        consumer = await tail(self._settings, [self._topic])
        self._consumer = consumer
        ends = AIOKafkaConsumer(
            bootstrap_servers=self._settings.kafka_bootstrap,
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
        )
        try:
            await ends.start()
        except BaseException:
            await consumer.stop()
            raise
        self._ends = ends
        self._task = asyncio.create_task(self._run(), name="reply-waiter")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._ends is not None:
            with contextlib.suppress(Exception):
                await self._ends.stop()
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

    async def caught_up(self, timeout_s: float) -> bool:
        """Return once this process has read every reply committed before the call (False
        after `timeout_s`, or with no connection to Kafka). One request to the broker: for the
        rare read that found nothing, so that what another API process answered a moment ago
        is known here before this one says "not found"."""
        consumer, reader = self._consumer, self._ends
        if consumer is None or reader is None or self._task is None or self._task.done():
            return False
        try:
            async with asyncio.timeout(timeout_s):
                ends = await reader.end_offsets(list(consumer.assignment()))
                for tp, end in ends.items():
                    while await consumer.position(tp) < end:
                        await self._advanced.wait()
        except TimeoutError:
            return False
        except Exception as exc:  # the broker went away mid-request: as good as a timeout
            log.warning("could not catch up with the replies (%r)", exc)
            return False
        return True

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            # Short: a fetch that only passed commit markers still wakes `caught_up` soon.
            batches = await self._consumer.getmany(timeout_ms=100, max_records=2000)
            advanced, self._advanced = self._advanced, asyncio.Event()
            advanced.set()
            for messages in batches.values():
                for message in messages:
                    if not self._pending and self._on_reply is None:
                        break
                    try:
                        reply = Reply.decode(message.value)
                    except DecodeError:
                        log.warning("undecodable reply at offset %s", message.offset)
                        continue
                    if self._on_reply is not None:
                        self._on_reply(reply)
                    future = self._pending.get(reply.command_id)
                    if future is not None and not future.done():
                        future.set_result(reply)
