"""Reading a journal back from the real broker, for assertions."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from boxoffice.settings import Settings
from producers.topics import partitions_of


def read_all(settings: Settings, topic: str, timeout_s: float = 20.0) -> list[tuple[str, bytes]]:
    """Every committed (key, value) of a topic, from the beginning to its end now.

    Transactional journals end with commit markers that occupy offsets but are never
    delivered, so the end is where the broker says "end of partition", not high watermark - 1.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "log_level": 3,
        }
    )
    try:
        partitions = partitions_of(settings, [topic])[topic]
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        out: list[tuple[str, bytes]] = []
        remaining = set(partitions)
        deadline = time.monotonic() + timeout_s
        while remaining and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    remaining.discard(msg.partition())
                    continue
                raise RuntimeError(str(err))
            key = msg.key()
            out.append((key.decode() if key else "", msg.value() or b""))
        if remaining:
            raise TimeoutError(f"could not read {topic} to its end; partitions {remaining}")
        return out
    finally:
        consumer.close()
