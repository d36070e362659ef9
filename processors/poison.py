"""Poison isolation for the projectors: bounded retries, then the one bad record parked.

Every projection of the engine (`processors.engine`) applies what it fetches in
chunks, each one PostgreSQL transaction holding the rows and the next offsets, and on a
failed chunk rewind to their checkpoints (memory dropped, the partitions read again). This
guard decides how to cut what was fetched into chunks and what a failure means:

- Connection loss (PostgreSQL or Kafka unreachable) is transient: back off and rewind,
  without bound; nothing is counted against the records.
- Anything else (a value PostgreSQL refuses, a fold that raises) counts one strike against
  every partition of the failed chunk. After `attempts` strikes the records of the failed
  chunk in that partition are applied one per chunk. A single record that fails `attempts`
  times is parked on the dead-letter topic (headers from `producers.deadletters`) and from
  then on skipped: its offset moves on with its partition, nothing else of it is applied.

So one bad record costs a few retries and never stops its partition, let alone the others.
Parking comes before the checkpoint moves past the record: a crash in between parks it twice,
never loses it. The guard keeps no state that must survive a restart: a poison record met
again after one is simply isolated again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import psycopg
from aiokafka.errors import KafkaError as AIOKafkaError

log = logging.getLogger("boxoffice.poison")

R = TypeVar("R")

ATTEMPTS = 3
# Between retries of a chunk that failed for a reason of its own (short: it is retried only
# to rule out a fluke), and while a server is away (longer, without end).
BACKOFF_S = (0.1, 0.3, 1.0)
TRANSIENT_BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)

TRANSIENT: tuple[type[BaseException], ...] = (psycopg.OperationalError, AIOKafkaError, OSError)


def is_transient(exc: BaseException) -> bool:
    """Connection loss and the like: retried for as long as it takes, never parked.

    OSError covers socket errors and timeouts; psycopg reports a lost server, a serialization
    failure or a cancelled statement as OperationalError.
    """
    return isinstance(exc, TRANSIENT)


def describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a record sits in the journal."""

    topic: str
    partition: int
    offset: int


@dataclass(slots=True)
class Chunk(Generic[R]):
    """Records to apply in one transaction, in journal order, and records parked before whose
    offsets must move on with them (a chunk holds one or the other, never both)."""

    apply: list[R] = field(default_factory=list)
    skip: list[R] = field(default_factory=list)


Park = Callable[[R, str, int], Awaitable[None]]


class PoisonGuard(Generic[R]):
    def __init__(
        self,
        origin: Callable[[R], Origin],
        park: Park[R],
        *,
        attempts: int = ATTEMPTS,
        backoff_s: Sequence[float] = BACKOFF_S,
        transient_backoff_s: Sequence[float] = TRANSIENT_BACKOFF_S,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._origin = origin
        self._park = park
        self.attempts = max(1, attempts)
        self._backoff = tuple(backoff_s) or (0.0,)
        self._transient_backoff = tuple(transient_backoff_s) or (0.0,)
        self._sleep = sleep
        # (topic, partition) -> failures of chunks covering it since it last moved on.
        self._strikes: dict[tuple[str, int], int] = {}
        # (topic, partition) -> the offsets (first, last) to apply one record at a time.
        self._suspect: dict[tuple[str, int], tuple[int, int]] = {}
        self._failures: dict[Origin, int] = {}
        self._parked: set[Origin] = set()
        self._transient_failures = 0
        self.parked_total = 0

    # -- cutting a fetch into chunks ------------------------------------------------------

    def plan(self, records: Sequence[R]) -> list[Chunk[R]]:
        """The chunks to apply in turn; journal order within each partition is kept.

        An empty fetch is one empty chunk: the projector's periodic work (snapshots due)
        runs under the same guard.
        """
        chunks: list[Chunk[R]] = []
        current: Chunk[R] = Chunk()
        for record in records:
            origin = self._origin(record)
            alone: Chunk[R] | None = None
            if origin in self._parked:
                alone = Chunk(skip=[record])
            else:
                span = self._suspect.get((origin.topic, origin.partition))
                if span is not None and span[0] <= origin.offset <= span[1]:
                    alone = Chunk(apply=[record])
            if alone is None:
                current.apply.append(record)
                continue
            if current.apply:
                chunks.append(current)
                current = Chunk()
            chunks.append(alone)
        if current.apply or not chunks:
            chunks.append(current)
        return chunks

    # -- running them -------------------------------------------------------------------------

    async def run(
        self,
        records: Sequence[R],
        apply: Callable[[Chunk[R]], Awaitable[None]],
        rewind: Callable[[], Awaitable[None]],
    ) -> bool:
        """Apply the records chunk by chunk. On a failure: count it (parking the record whose
        strikes ran out), back off, `rewind`, and return False; the records not applied come
        again from the journal. True when every chunk was applied."""
        for chunk in self.plan(records):
            try:
                await apply(chunk)
            except Exception as exc:  # every failure is either counted or retried
                await self._failed(chunk, exc)
                await rewind()
                return False
            self._succeeded(chunk)
        return True

    async def park_now(self, record: R, reason: str) -> None:
        """Park a record that can never apply (it does not decode): no retry can help it.

        Until a chunk holding it is applied, it is skipped: should that chunk fail for
        another record, the rewind brings it back, and it must not be parked twice.
        """
        await self._park(record, reason, 1)
        self.parked_total += 1
        self._parked.add(self._origin(record))

    def _succeeded(self, chunk: Chunk[R]) -> None:
        self._transient_failures = 0
        for record in (*chunk.apply, *chunk.skip):
            origin = self._origin(record)
            tp = (origin.topic, origin.partition)
            self._strikes.pop(tp, None)
            self._failures.pop(origin, None)
            self._parked.discard(origin)
            span = self._suspect.get(tp)
            if span is not None and origin.offset >= span[1]:
                del self._suspect[tp]

    async def _failed(self, chunk: Chunk[R], exc: Exception) -> None:
        if is_transient(exc):
            delay = self._transient_backoff[
                min(self._transient_failures, len(self._transient_backoff) - 1)
            ]
            self._transient_failures += 1
            log.warning("cannot apply a batch (%s); retrying in %.1f s", describe(exc), delay)
            await self._sleep(delay)
            return
        if len(chunk.apply) == 1:
            await self._failed_one(chunk.apply[0], exc)
            return
        spans: dict[tuple[str, int], tuple[int, int]] = {}
        for record in chunk.apply:
            origin = self._origin(record)
            tp = (origin.topic, origin.partition)
            first, last = spans.get(tp, (origin.offset, origin.offset))
            spans[tp] = (min(first, origin.offset), max(last, origin.offset))
        worst = 0
        for tp, span in spans.items():
            strikes = self._strikes[tp] = self._strikes.get(tp, 0) + 1
            worst = max(worst, strikes)
            if strikes >= self.attempts:
                # Retried enough as a whole: look for the culprit one record at a time.
                self._suspect[tp] = span
                del self._strikes[tp]
        log.error(
            "a batch of %d records failed (%s); attempt %d of %d before isolating",
            len(chunk.apply),
            describe(exc),
            worst,
            self.attempts,
        )
        await self._sleep(self._backoff[min(worst - 1, len(self._backoff) - 1)])

    async def _failed_one(self, record: R, exc: Exception) -> None:
        origin = self._origin(record)
        failures = self._failures[origin] = self._failures.get(origin, 0) + 1
        if failures < self.attempts:
            log.error(
                "%s[%d]@%d failed (%s); attempt %d of %d",
                origin.topic,
                origin.partition,
                origin.offset,
                describe(exc),
                failures,
                self.attempts,
            )
            await self._sleep(self._backoff[min(failures - 1, len(self._backoff) - 1)])
            return
        await self._park(record, describe(exc), failures)
        self.parked_total += 1
        del self._failures[origin]
        self._parked.add(origin)
