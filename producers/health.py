"""Can the deciders decide? A cheap, cached answer for `/readyz`.

One fact from the broker, through one long-lived consumer that never joins the deciders' group,
at most once a second:

- no command partition's committed offset is still behind the log end that partition had
  STUCK_AFTER_S ago: the deciders commit offsets only inside the transaction that journals a
  decision, so offsets that stopped moving while commands wait mean the whole loop (consume,
  decide, produce, commit) is stuck, whatever the process list says.

Why not a heartbeat record: a heartbeat proves that a process can write, not that commands are
being decided (a fenced consumer or a hung transaction beats happily), and it costs a write and
a reader forever. The offsets cost nothing to produce and measure exactly what callers wait on.

Why not the admin API (describe the group, list its offsets): in this API process, during a
Kafka outage, librdkafka's coordinator requests aborted the whole process twice (assertion
`eonce->refcnt > 0` in rd_kafka_enq_once_del_source_return). A consumer's synchronous
committed() and get_watermark_offsets() do not take that path.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

from confluent_kafka import Consumer, TopicPartition

from boxoffice.settings import Settings
from producers.topics import CHAT_COMMANDS, SHOW_COMMANDS, SOCIAL_COMMANDS

# Commands that have waited this long for a decision are commands callers got 503 for (the
# API waits `command_timeout_s`, 5 s by default).
STUCK_AFTER_S = 5.0
# One look at the broker serves every /readyz of this second.
CACHE_S = 1.0
# All the requests of one look together (/readyz waits for it).
LOOK_BUDGET_S = 2.5

Partition = tuple[str, int]

# At most this many readers are replaced (and kept) in the life of a process.
RETIRED_MAX = 32


class DeciderHealth:
    def __init__(
        self,
        settings: Settings,
        *,
        stuck_after_s: float = STUCK_AFTER_S,
        cache_s: float = CACHE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._group = f"{settings.topic_prefix}.deciders"
        self._topics = [t.name(settings) for t in (SHOW_COMMANDS, CHAT_COMMANDS, SOCIAL_COMMANDS)]
        self._stuck_after_s = stuck_after_s
        self._cache_s = cache_s
        self._clock = clock
        self._reader: Consumer | None = None
        # Readers given up on are kept, never destroyed: librdkafka aborted the whole process
        # (assertion `eonce->refcnt > 0` in rd_kafka_enq_once_del_source_return, seen here
        # during a Kafka outage); a client destroyed with requests in flight is one suspect.
        self._retired: list[Consumer] = []
        self._partitions: list[Partition] = []
        # Log ends seen at each look, oldest first; only the newest one older than
        # stuck_after_s (and the younger ones) are kept.
        self._ends: deque[tuple[float, dict[Partition, int]]] = deque()
        self._cached: tuple[float, str] | None = None
        self._lock = asyncio.Lock()

    async def check(self) -> str:
        """ "ok", or why the deciders cannot decide now."""
        async with self._lock:
            if self._cached is not None and self._clock() - self._cached[0] < self._cache_s:
                return self._cached[1]
            try:
                # Every wait inside is bounded by LOOK_BUDGET_S; this is only a safety net.
                verdict = await asyncio.wait_for(asyncio.to_thread(self._look), LOOK_BUDGET_S + 2)
            except Exception as exc:  # any failure means "not ready", with the reason shown
                # A client that saw the broker vanish can stay in its reconnect backoff long
                # after the broker is back: the next look starts with a fresh one.
                self._retire()
                verdict = f"unknown: {type(exc).__name__}"
            self._cached = (self._clock(), verdict)
            return verdict

    def _retire(self) -> None:
        # Bounded: past RETIRED_MAX (a long outage) the last client is reused as it is.
        if self._reader is not None and len(self._retired) < RETIRED_MAX:
            self._retired.append(self._reader)
            self._reader = None

    def _look(self) -> str:
        """One look at the broker (blocking; runs in a thread)."""
        if self._reader is None:
            # A plain consumer of the deciders' group that never subscribes, so it never joins
            # the group: it only reads the group's committed offsets and the log ends.
            self._reader = Consumer(
                {
                    "bootstrap.servers": self._settings.kafka_bootstrap,
                    "group.id": self._group,
                    "enable.auto.commit": False,
                    "isolation.level": "read_committed",
                    "log_level": 0,
                }
            )
        reader = self._reader
        deadline = time.monotonic() + LOOK_BUDGET_S

        def left() -> float:
            return max(deadline - time.monotonic(), 0.1)

        if not self._partitions:
            metadata = reader.list_topics(timeout=left())
            self._partitions = [
                (name, p)
                for name in self._topics
                if name in metadata.topics
                for p in sorted(metadata.topics[name].partitions)
            ]
        tps = [TopicPartition(t, p) for t, p in self._partitions]
        # Command topics are written by idempotent, not transactional, producers: their high
        # watermark is their last stable offset.
        ends = {
            (tp.topic, tp.partition): reader.get_watermark_offsets(tp, timeout=left())[1]
            for tp in tps
        }
        committed = {
            (tp.topic, tp.partition): tp.offset for tp in reader.committed(tps, timeout=left())
        }
        return self.judge(self._clock(), ends, committed)

    def judge(self, now: float, ends: dict[Partition, int], committed: dict[Partition, int]) -> str:
        """Stuck: a partition whose committed offset has not reached an end seen long ago."""
        self._ends.append((now, ends))
        while len(self._ends) >= 2 and now - self._ends[1][0] >= self._stuck_after_s:
            self._ends.popleft()
        then, old_ends = self._ends[0]
        if now - then < self._stuck_after_s:
            return "ok"
        # No committed offset yet (-1001) means nothing of the partition was decided yet.
        stuck = sorted(
            f"{topic}[{p}]"
            for (topic, p), end in old_ends.items()
            if max(committed.get((topic, p), 0), 0) < end
        )
        if stuck:
            return (
                f"not deciding: commands on {', '.join(stuck)} have waited over "
                f"{self._stuck_after_s:.0f}s"
            )
        return "ok"


_HEALTH: dict[tuple[str, str], DeciderHealth] = {}


def decider_health(settings: Settings) -> DeciderHealth:
    """The one DeciderHealth of these settings (its cache and history live across requests)."""
    key = (settings.kafka_bootstrap, settings.topic_prefix)
    health = _HEALTH.get(key)
    if health is None:
        health = _HEALTH[key] = DeciderHealth(settings)
    return health
