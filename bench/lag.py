"""Projection lag during the on-sale storm: how many seconds the views trail the journals.

A view's lag is the age of the oldest journaled event its PostgreSQL checkpoint does not cover
yet (zero when caught up): now minus that event's Kafka timestamp, which the decider sets as
it journals the event. A tail consumer (read_committed, no group, from the journals' ends at
start) records every event's offset and timestamp; every 100 ms the checkpoints
(`projection_offsets`) are read and compared with them.

The storm is bench/onsale.py's closed loop (1,000 fans without think time on a 20,000-seat
show, no viewers). Reported: the `views` lag p50/p99/max during the storm and the seconds from
the storm's end until it is under 1 s (targets: p99 <= 1 s, back under 1 s within 5 s).

Run: `python -m bench.lag` with the stack up (`make run`); `--help` for the knobs. Prints one
JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import time
from collections.abc import Sequence
from typing import Any

import psycopg
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench import onsale
from boxoffice.settings import Settings, get_settings
from producers.topics import CHAT_EVENTS, SHOW_EVENTS, SOCIAL_EVENTS, partitions_of
from snapshots.chatprojection import PROJECTION as CHAT_PROJECTION
from snapshots.database import conninfo
from snapshots.projection import PROJECTION as TICKETING_PROJECTION

Partition = tuple[str, int]


def view_topics(settings: Settings) -> dict[str, tuple[str, list[str]]]:
    """Component -> (its projection's name in `projection_offsets`, the topics it reads)."""
    return {
        "views": (TICKETING_PROJECTION, [SHOW_EVENTS.name(settings)]),
        "chatviews": (CHAT_PROJECTION, [CHAT_EVENTS.name(settings), SOCIAL_EVENTS.name(settings)]),
    }


class JournalClock:
    """When each journaled event was written, from the moment `start` returns."""

    def __init__(self, settings: Settings, topics: Sequence[str]) -> None:
        self.settings = settings
        self.topics = list(topics)
        self.seen: dict[Partition, tuple[list[int], list[float]]] = {}
        self.consumer: AIOKafkaConsumer | None = None
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        found = await asyncio.to_thread(partitions_of, self.settings, self.topics)
        tps = [TopicPartition(t, p) for t, ps in found.items() for p in ps]
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            enable_auto_commit=False,
            isolation_level="read_committed",
        )
        await consumer.start()
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)  # settle the positions before anything is journaled
            self.seen[(tp.topic, tp.partition)] = ([], [])
        self.consumer = consumer
        self.task = asyncio.create_task(self._tail(consumer))

    async def _tail(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=50, max_records=10_000)
            for tp, messages in batches.items():
                offsets, stamps = self.seen[(tp.topic, tp.partition)]
                for message in messages:
                    offsets.append(message.offset)
                    stamps.append(message.timestamp / 1000)

    def lag_s(self, topics: Sequence[str], checkpoints: dict[Partition, int], now: float) -> float:
        """Seconds since the oldest seen event of `topics` not below its partition's
        checkpoint."""
        worst = 0.0
        for tp, (offsets, stamps) in self.seen.items():
            if tp[0] not in topics:
                continue
            i = bisect.bisect_left(offsets, checkpoints.get(tp, 0))
            if i < len(offsets):
                worst = max(worst, now - stamps[i])
        return worst

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        if self.consumer is not None:
            await self.consumer.stop()


async def checkpoints(conn: psycopg.AsyncConnection[Any], projection: str) -> dict[Partition, int]:
    cursor = await conn.execute(
        "SELECT topic, partition, next_offset FROM projection_offsets WHERE projection = %s",
        (projection,),
    )
    return {(topic, partition): offset for topic, partition, offset in await cursor.fetchall()}


class LagSampler:
    """Every `every_s`, each view's lag in seconds: (wall time, lag) samples per component."""

    def __init__(self, settings: Settings, components: Sequence[str], every_s: float = 0.1):
        self.settings = settings
        self.views = {c: view_topics(settings)[c] for c in components}
        self.every_s = every_s
        self.clock = JournalClock(settings, [t for _, ts in self.views.values() for t in ts])
        self.samples: dict[str, list[tuple[float, float]]] = {c: [] for c in components}
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LagSampler:
        await self.clock.start()
        self.conn = await psycopg.AsyncConnection.connect(conninfo(self.settings), autocommit=True)
        self.task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *_: object) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        await self.conn.close()
        await self.clock.stop()

    async def lags(self) -> dict[str, float]:
        out = {}
        for component, (projection, topics) in self.views.items():
            marks = await checkpoints(self.conn, projection)
            now = time.time()
            out[component] = self.clock.lag_s(topics, marks, now)
        return out

    async def _sample(self) -> None:
        while True:
            started = time.monotonic()
            now = time.time()
            for component, lag in (await self.lags()).items():
                self.samples[component].append((now, lag))
            await asyncio.sleep(max(0.0, self.every_s - (time.monotonic() - started)))

    async def until_under(self, component: str, limit_s: float, timeout_s: float) -> float:
        """Wall time of the first sample from now on with the lag under `limit_s`."""
        deadline = time.monotonic() + timeout_s
        seen = len(self.samples[component])
        while time.monotonic() < deadline:
            if self.task is not None and self.task.done():
                self.task.result()  # the sampler failed: say why
            for at, lag in self.samples[component][seen:]:
                if lag < limit_s:
                    return at
            seen = len(self.samples[component])
            await asyncio.sleep(self.every_s / 2)
        raise TimeoutError(f"{component} lag still >= {limit_s} s after {timeout_s} s")


def figures(samples: list[tuple[float, float]], since: float, until: float) -> dict[str, float]:
    during = [lag for at, lag in samples if since <= at <= until]
    return {
        "samples": len(during),
        "p50_s": round(onsale.pct(during, 50), 3),
        "p99_s": round(onsale.pct(during, 99), 3),
        "max_s": round(max(during, default=float("nan")), 3),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    settings = get_settings()
    base = settings.api_url
    tokens = onsale.tokens_for(settings, args.fans)
    show = await onsale.create_show(base, await onsale.organizer_token(settings), "bench lag")
    async with LagSampler(settings, ["views"], every_s=args.every) as sampler:
        await sampler.until_under("views", 1.0, timeout_s=60)
        target = onsale.Target("boxoffice", base, show, tokens)
        storm_started = time.time()
        storm = await onsale.closed_loop(target, args.duration, args.fans)
        storm_ended = time.time()
        back_at = await sampler.until_under("views", 1.0, timeout_s=args.timeout)
    return {
        "holds_decided_per_s": round(storm.decided / storm.seconds),
        "holds_ok": storm.held,
        "rejected": dict(storm.rejected),
        "errors": dict(storm.errors),
        "storm_s": round(storm_ended - storm_started, 1),
        "views_lag_during_storm": figures(sampler.samples["views"], storm_started, storm_ended),
        "views_under_1s_after_storm_s": round(max(0.0, back_at - storm_ended), 2),
        "sample_every_s": args.every,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fans", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=30.0, help="storm seconds (max)")
    parser.add_argument("--every", type=float, default=0.1, help="seconds between samples")
    parser.add_argument("--timeout", type=float, default=120.0, help="wait for catch-up, s")
    args = parser.parse_args()
    import uvloop

    uvloop.install()
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
