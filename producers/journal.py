"""The journal producer: idempotent, acks=all, awaitable from asyncio.

A command is acknowledged to a user only after Kafka confirmed it with acks=all, so the
producer's delivery report is the moment a 201 becomes true.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from boxoffice.settings import Settings


class JournalUnavailableError(Exception):
    """Kafka did not confirm the write in time: the caller should come back later."""


@dataclass(frozen=True, slots=True)
class Delivered:
    topic: str
    partition: int
    offset: int


def producer_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    return {
        "bootstrap.servers": settings.kafka_bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 0,
        "compression.type": "lz4",
        # Past this, a write is reported failed; the API has long answered 503 by then.
        "message.timeout.ms": 30000,
        "log_level": 3,
        # Java clients' partitioner: every producer of a stream agrees on its partition.
        "partitioner": "murmur2_random",
        **extra,
    }


class JournalProducer:
    def __init__(self, settings: Settings, **extra: Any) -> None:
        self._producer = Producer(producer_config(settings, **extra))
        self._stop = threading.Event()
        # librdkafka delivers reports only from poll(); a thread keeps them flowing so that
        # the event loop never blocks on Kafka.
        self._poller = threading.Thread(target=self._poll, name="journal-poller", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)

    async def send(self, topic: str, key: str, value: bytes) -> Delivered:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Delivered] = loop.create_future()

        def report(err: KafkaError | None, msg: Message) -> None:
            loop.call_soon_threadsafe(_settle, future, err, msg)

        try:
            self._producer.produce(topic, value=value, key=key.encode(), on_delivery=report)
        except BufferError as exc:
            raise JournalUnavailableError("the producer queue is full") from exc
        except KafkaException as exc:
            raise JournalUnavailableError(str(exc)) from exc
        return await future

    def close(self, timeout_s: float = 10.0) -> None:
        self._producer.flush(timeout_s)
        self._stop.set()
        self._poller.join(timeout=1)


def _settle(future: asyncio.Future[Delivered], err: KafkaError | None, msg: Message) -> None:
    if future.done():
        return
    if err is not None:
        future.set_exception(JournalUnavailableError(str(err)))
        return
    topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
    assert topic is not None and partition is not None and offset is not None
    future.set_result(Delivered(topic, partition, offset))
