"""Reading a journal back from the real broker, for assertions."""

from __future__ import annotations

import uuid

from confluent_kafka import Consumer, KafkaError, TopicPartition

from boxoffice.settings import Settings
from producers.topics import partitions_of


def read_all(settings: Settings, topic: str, timeout_s: float = 20.0) -> list[tuple[str, bytes]]:
    """Every committed (key, value) of a topic, from the beginning up to its end now."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    try:
        ends: dict[int, int] = {}
        for p in partitions_of(settings, [topic])[topic]:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            ends[p] = high
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        out: list[tuple[str, bytes]] = []
        remaining = {p for p, end in ends.items() if end > 0}
        import time

        deadline = time.monotonic() + timeout_s
        while remaining and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                raise RuntimeError(str(err))
            partition, offset = msg.partition(), msg.offset()
            assert partition is not None and offset is not None
            key = msg.key()
            value = msg.value()
            out.append((key.decode() if key else "", value or b""))
            if offset + 1 >= ends[partition]:
                remaining.discard(partition)
        if remaining:
            raise TimeoutError(f"could not read {topic} to its end; partitions {remaining}")
        return out
    finally:
        consumer.close()
