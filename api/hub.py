"""Live events for WebSocket viewers.

Each API instance reads the event journals itself (no consumer group, from the end), so a
viewer gets every event of its stream whichever instance it is connected to; no sticky
routing is assumed. Subscribers get bounded queues: a slow one is told it overflowed and
must resynchronise from a snapshot, never buffered without bound.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterable

from aiokafka import ConsumerRecord, TopicPartition

from boxoffice.settings import Settings
from producers.codec import DecodeError
from producers.envelope import EventRecord
from producers.tailing import Tail
from producers.topics import Topic

log = logging.getLogger(__name__)

ANY_STREAM = "*"


class Subscription:
    def __init__(self, hub: EventHub, topic: str, stream_id: str, maxsize: int) -> None:
        self.hub = hub
        self.topic = topic
        self.stream_id = stream_id
        self.queue: asyncio.Queue[EventRecord] = asyncio.Queue(maxsize)
        # Set when the queue was full: the subscriber has missed events and must resync.
        self.overflowed = asyncio.Event()

    def offer(self, record: EventRecord) -> None:
        if self.overflowed.is_set():
            return
        try:
            self.queue.put_nowait(record)
        except asyncio.QueueFull:
            self.overflowed.set()

    def close(self) -> None:
        self.hub.unsubscribe(self)


class EventHub:
    def __init__(self, settings: Settings, topics: Iterable[Topic], tail: Tail) -> None:
        self._settings = settings
        self._subs: dict[tuple[str, str], set[Subscription]] = defaultdict(set)
        # The journals come through the process's one tail, which its owner starts and stops.
        tail.read([t.name(settings) for t in topics], self._take)

    def subscribe(
        self, topic: Topic, stream_id: str = ANY_STREAM, maxsize: int = 1000
    ) -> Subscription:
        sub = Subscription(self, topic.name(self._settings), stream_id, maxsize)
        self._subs[(sub.topic, stream_id)].add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get((sub.topic, sub.stream_id))
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[(sub.topic, sub.stream_id)]

    def _take(self, tp: TopicPartition, messages: list[ConsumerRecord[bytes, bytes]]) -> None:
        for message in messages:
            if not self._subs:
                return
            try:
                record = EventRecord.decode(message.value)
            except DecodeError:
                log.warning("undecodable event %s@%s", tp, message.offset)
                continue
            for key in ((tp.topic, record.stream_id), (tp.topic, ANY_STREAM)):
                for sub in tuple(self._subs.get(key, ())):
                    sub.offer(record)
