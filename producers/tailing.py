"""Reading topics from their end, every partition, without a consumer group.

Each API instance reads replies and event journals this way: no group means no rebalance can
take partitions away from it, and starting at the end means it sees what comes after it
started (what came before is in snapshots and projections).
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition

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
