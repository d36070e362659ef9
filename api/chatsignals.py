"""Signals between API instances: presence and typing, which are ephemeral.

They travel on the `chat.signals` topic (one hour of retention), not the journals: nothing
replays them beyond the last heartbeat window, and a signal that cannot be sent is dropped,
since nobody will miss it. Every instance reads every partition without a consumer group.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from api.services import Services
from producers.topics import CHAT_SIGNALS, partitions_of

log = logging.getLogger(__name__)

HEARTBEAT_S = 5.0
# An instance that stops heartbeating (crashed) loses its users after this long.
PRESENCE_TTL_S = 3 * HEARTBEAT_S

# (kind, instance, body, age in seconds) of another instance's signal.
Listener = Callable[[str, str, dict[str, Any], float], None]


class Signals:
    def __init__(
        self, svc: Services, instance: str, listener: Listener, after_batch: Callable[[], None]
    ) -> None:
        self.svc = svc
        self.instance = instance
        self._listener = listener
        self._after_batch = after_batch
        self._topic = CHAT_SIGNALS.name(svc.settings)
        self._sends: set[asyncio.Task[None]] = set()

    def send(self, kind: str, key: str, body: dict[str, Any]) -> None:
        """Fire and forget."""
        if not self.svc.kafka_up:
            return
        task = asyncio.create_task(self.send_now(kind, key, body))
        self._sends.add(task)
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sends.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("chat signal not sent: %r", task.exception())

    async def send_now(self, kind: str, key: str, body: dict[str, Any]) -> None:
        value = orjson.dumps(
            {**body, "kind": kind, "instance": self.instance, "at": datetime.now(UTC).isoformat()}
        )
        await self.svc.producer.send(self._topic, key, value)

    async def run(self) -> None:
        while True:
            try:
                await self._consume()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker is down or restarting: try again shortly
                log.warning("chat signals unavailable (%r); retrying", exc)
                await asyncio.sleep(2)

    async def _consume(self) -> None:
        topic = self._topic
        partitions = await asyncio.to_thread(partitions_of, self.svc.settings, [topic])
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.svc.settings.kafka_bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="latest",
        )
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in partitions[topic]]
            consumer.assign(tps)
            # From one heartbeat window back: whoever is online elsewhere has said so since.
            since = int((time.time() - PRESENCE_TTL_S) * 1000)
            found = await consumer.offsets_for_times(dict.fromkeys(tps, since))
            for tp in tps:
                at = found.get(tp)
                if at is None:
                    await consumer.seek_to_end(tp)
                else:
                    consumer.seek(tp, at.offset)
            while True:
                batches = await consumer.getmany(timeout_ms=500, max_records=2000)
                for records in batches.values():
                    for record in records:
                        self._heard(record.value)
                self._after_batch()
        finally:
            await consumer.stop()

    def _heard(self, raw: bytes | None) -> None:
        try:
            data = orjson.loads(raw or b"")
            instance = str(data["instance"])
            kind = str(data["kind"])
            age_s = max(0.0, time.time() - datetime.fromisoformat(data["at"]).timestamp())
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("undecodable chat signal")
            return
        if instance != self.instance:
            self._listener(kind, instance, data, age_s)
