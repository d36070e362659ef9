"""Reading topics from their end, every partition, without a consumer group.

Each API instance reads replies and event journals this way, with one consumer for both
(`Tail`): no group means no rebalance can take partitions away from it, and starting at the
end means it sees what comes after it started (what came before is in snapshots and
projections).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from boxoffice.settings import Settings
from producers.fetching import answering_aiokafka
from producers.topics import partitions_of


async def tail(settings: Settings, topics: list[str]) -> AIOKafkaConsumer:
    """A started consumer positioned at the current end of every partition of `topics`."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="latest",
        # Journals and replies are written in the deciders' transactions: committed only.
        isolation_level="read_committed",
        # These readers answer people (replies, live events): the broker answers at once.
        **answering_aiokafka(),
    )
    partitions = await asyncio.to_thread(partitions_of, settings, topics)
    await consumer.start()
    tps = [TopicPartition(name, p) for name, ps in partitions.items() for p in ps]
    consumer.assign(tps)
    await consumer.seek_to_end(*tps)
    # Resolve the end positions now, so nothing written after this call can be skipped.
    for tp in tps:
        await consumer.position(tp)
    return consumer


# A reader's share of a fetch: the partition and its messages, in offset order.
Reader = Callable[[TopicPartition, list[ConsumerRecord[bytes, bytes]]], None]


class Tail:
    """One consumer for everything a process tails from the end (the API's replies and event
    journals): one fetch per broker wakes it for all of them, instead of one per reader. Each
    topic's messages go to the reader registered for it, in the order fetched."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._readers: dict[str, Reader] = {}
        self.consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        # Set (and replaced) after each fetch is handed out: `caught_up` waits on it.
        self.advanced = asyncio.Event()

    def read(self, topics: list[str], reader: Reader) -> None:
        """Hand the messages of `topics` to `reader` (before `start`)."""
        for topic in topics:
            self._readers[topic] = reader

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        self.consumer = await tail(self._settings, list(self._readers))
        self._task = asyncio.create_task(self._run(), name="tail")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.consumer is not None:
            consumer, self.consumer = self.consumer, None
            await consumer.stop()

    async def _run(self) -> None:
        assert self.consumer is not None
        while True:
            # Short: a fetch that only passed commit markers still wakes `caught_up` soon.
            batches = await self.consumer.getmany(timeout_ms=100, max_records=5000)
            advanced, self.advanced = self.advanced, asyncio.Event()
            advanced.set()
            for tp, messages in batches.items():
                self._readers[tp.topic](tp, messages)
