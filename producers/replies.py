"""Request/reply over Kafka: the API awaits the decider's answer to the command it sent.

Every API instance reads the whole replies topic from its end (no consumer group, so no
rebalance can take replies away from it) and settles the futures of its own commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from boxoffice.settings import Settings
from producers.codec import DecodeError
from producers.envelope import Reply
from producers.tailing import Tail
from producers.topics import REPLIES

log = logging.getLogger(__name__)


class ReplyTimeoutError(Exception):
    """No answer in time. The command may still be decided; its id makes a retry safe."""


class ReplyWaiter:
    def __init__(
        self,
        settings: Settings,
        on_reply: Callable[[Reply], None] | None = None,
        tail: Tail | None = None,
    ) -> None:
        self._settings = settings
        self._topic = REPLIES.name(settings)
        self._pending: dict[str, asyncio.Future[Reply]] = {}
        # The replies come through `tail`, shared with the process's other readers (then its
        # owner starts and stops it), or through a tail of their own.
        self._own_tail = tail is None
        self._tail = Tail(settings) if tail is None else tail
        self._tail.read([self._topic], self._take)
        # Told of every reply, any instance's command: what this process knows has been
        # decided, wherever it was asked.
        self._on_reply = on_reply
        # Asks the log ends for `caught_up` on a connection of its own: on the reading
        # consumer's, the request waited behind a fetch held open for up to 500 ms.
        self._ends: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        if self._own_tail:
            await self._tail.start()
        ends = AIOKafkaConsumer(
            bootstrap_servers=self._settings.kafka_bootstrap,
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
        )
        try:
            await ends.start()
        except BaseException:
            if self._own_tail:
                await self._tail.stop()
            raise
        self._ends = ends

    async def stop(self) -> None:
        if self._ends is not None:
            with contextlib.suppress(Exception):
                await self._ends.stop()
            self._ends = None
        if self._own_tail:
            await self._tail.stop()

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
        tail, consumer, reader = self._tail, self._tail.consumer, self._ends
        if consumer is None or reader is None or not tail.running:
            return False
        try:
            async with asyncio.timeout(timeout_s):
                mine = [tp for tp in consumer.assignment() if tp.topic == self._topic]
                ends = await reader.end_offsets(mine)
                for tp, end in ends.items():
                    while await consumer.position(tp) < end:
                        await tail.advanced.wait()
        except TimeoutError:
            return False
        except Exception as exc:  # the broker went away mid-request: as good as a timeout
            log.warning("could not catch up with the replies (%r)", exc)
            return False
        return True

    def _take(self, tp: TopicPartition, messages: list[ConsumerRecord[bytes, bytes]]) -> None:
        for message in messages:
            if not self._pending and self._on_reply is None:
                return
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
