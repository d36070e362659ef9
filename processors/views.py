"""`python -m processors.views`: the ticketing read side, folded from the show journal.

A consume loop (aiokafka, consumer group `<prefix>.views`, read_committed) feeds the show
journal to `snapshots.projection.Projection` and, after every batch, stores the orders and
catalogue rows it changed, the snapshots that fell due, and the partitions' checkpoints in one
PostgreSQL transaction, so a hold is readable a few milliseconds after it is journaled.

Kafka's committed offsets are not used: the checkpoint lives in PostgreSQL with the rows it
covers (an offset commit to Kafka could never be atomic with them). On every assignment the
projector seeds its views from the snapshots and seeks each partition itself; see the
projection module for why a kill -9 at any instant then loses and doubles nothing.

Poison: an entry that does not decode, or names a show it cannot follow, is parked on the
dead-letter topic at once. Any other failure of a batch (a value PostgreSQL refuses, a fold
that raises) is retried a few times, then the batch is applied entry by entry and the one
entry that still fails is parked and skipped (`processors.poison`): one bad event never
stops the projector. After every failed batch the projector starts again from PostgreSQL, as
on a fresh assignment, so memory never holds what a rolled-back transaction held.

Why not Faust: its offset management cannot be aligned with PostgreSQL checkpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from boxoffice.settings import Settings, get_settings
from processors.poison import Chunk, Origin, PoisonGuard, is_transient
from producers.deadletters import dead_letter_headers
from producers.topics import DEAD_LETTERS, SHOW_EVENTS
from snapshots.checkpoints import load_checkpoints
from snapshots.database import conninfo, migrate
from snapshots.projection import (
    PROJECTION,
    JournalEntry,
    Projection,
    fold_batch,
    seek_offset,
    shows_to_restore,
    write,
)

log = logging.getLogger("boxoffice.views")

T = TypeVar("T")

# Bounds the time between a hold being journaled and being readable: how long a fetch may
# wait for more data, and how many entries one transaction covers at most.
FETCH_WAIT_MS = 20
MAX_BATCH = 2000
RETRY_S = (0.2, 0.5, 1.0, 2.0, 5.0)
REPORT_EVERY_S = 10.0


@dataclass(slots=True)
class _Cursor:
    # Entries below this offset are already folded into the rows (restored, catch-up only).
    checkpoint: int
    # The next offset expected from Kafka: anything older is a stale prefetch.
    position: int


class ViewsProjector:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = SHOW_EVENTS.name(settings)
        self.projection = self._fresh_projection()
        self.guard: PoisonGuard[JournalEntry] = PoisonGuard(
            lambda entry: Origin(self.topic, entry.partition, entry.offset), self._park
        )
        self.cursors: dict[int, _Cursor] = {}
        # Rebalance callbacks run in the consumer's own task; the lock keeps them from
        # interleaving with a batch being folded and written.
        self.lock = asyncio.Lock()
        self.stopping = asyncio.Event()
        self.conn: psycopg.AsyncConnection[Any] | None = None
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self.folded = 0

    def _fresh_projection(self) -> Projection:
        return Projection(self.settings.snapshot_every_events, self.settings.snapshot_every_s)

    # -- lifecycle ----------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            await self._start()
            await self._loop()
        except (psycopg.OperationalError, KafkaError, OSError):
            # Given up on a server only because we were asked to stop: nothing is lost.
            if not self.stopping.is_set():
                raise
        finally:
            await self._shutdown()

    async def _start(self) -> None:
        await self._retrying(
            "migrate PostgreSQL", lambda: asyncio.to_thread(migrate, self.settings)
        )
        await self._retrying("start the Kafka clients", self._start_kafka)
        await self._retrying("find the show journal", self._await_topic)
        assert self.consumer is not None
        self.consumer.subscribe([self.topic], listener=_Listener(self))
        log.info("projecting %s into schema %s", self.topic, self.settings.pg_schema)

    async def _start_kafka(self) -> None:
        # Fresh clients on every attempt: one whose start failed is not reliably restartable.
        producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            acks="all",
            enable_idempotence=True,
        )
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            group_id=f"{self.settings.topic_prefix}.views",
            # Static membership: a restarted instance (after a crash, say) takes its
            # partitions back at once instead of waiting out its predecessor's session.
            group_instance_id=f"views-{self.settings.processor_instance}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            fetch_max_wait_ms=FETCH_WAIT_MS,
            max_partition_fetch_bytes=4 * 1024 * 1024,
            # Partitions added to the journal are noticed (and assigned) within seconds.
            metadata_max_age_ms=10_000,
        )
        try:
            await producer.start()
            await consumer.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await consumer.stop()
            with contextlib.suppress(Exception):
                await producer.stop()
            raise
        self.producer, self.consumer = producer, consumer

    async def _await_topic(self) -> None:
        # Subscribing before the broker lists a just-created topic gets an empty assignment
        # that is only revisited at the next metadata refresh.
        assert self.consumer is not None
        while self.topic not in await self.consumer.topics() and not self.stopping.is_set():
            log.info("waiting for %s to exist", self.topic)
            await asyncio.sleep(0.5)

    async def _shutdown(self) -> None:
        # A last write with every changed show snapshotted, so a restart has nothing to redo.
        with contextlib.suppress(psycopg.Error):
            async with self.lock:
                await self._store(force_snapshots=True)
        if self.consumer is not None:
            await self.consumer.stop()
        if self.producer is not None:
            await self.producer.stop()
        if self.conn is not None:
            await self.conn.close()
        log.info("stopped")

    async def _retrying(self, what: str, action: Callable[[], Awaitable[T]]) -> T:
        attempt = 0
        while True:
            try:
                return await action()
            except (psycopg.OperationalError, KafkaError, OSError) as exc:
                if self.stopping.is_set():
                    raise
                delay = RETRY_S[min(attempt, len(RETRY_S) - 1)]
                log.warning("cannot %s (%s); retrying in %.1f s", what, exc, delay)
                attempt += 1
                # A stop request ends the wait at once.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), delay)

    async def _with_db(
        self, what: str, action: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]
    ) -> T:
        """Run `action` on the connection, reconnecting and retrying while PostgreSQL is away.

        Every action is safe to repeat: reads, or one whole transaction of guarded writes.
        """

        async def attempt() -> T:
            if self.conn is None or self.conn.closed or self.conn.broken:
                self.conn = await psycopg.AsyncConnection.connect(
                    conninfo(self.settings), autocommit=True, connect_timeout=10
                )
            return await action(self.conn)

        return await self._retrying(what, attempt)

    # -- the loop -----------------------------------------------------------------------------

    async def _loop(self) -> None:
        assert self.consumer is not None
        reported_at, reported = time.monotonic(), 0
        while not self.stopping.is_set():
            batches = await self.consumer.getmany(timeout_ms=100, max_records=MAX_BATCH)
            async with self.lock:
                await self.guard.run(self._fresh(batches), self._apply, self._rewind)
            now = time.monotonic()
            if now - reported_at >= REPORT_EVERY_S:
                if self.folded > reported:
                    rate = (self.folded - reported) / (now - reported_at)
                    log.info(
                        "folded %d entries (%.0f/s over the last %.0f s)",
                        self.folded,
                        rate,
                        now - reported_at,
                    )
                reported_at, reported = now, self.folded

    def _fresh(self, batches: dict[TopicPartition, list[Any]]) -> list[JournalEntry]:
        """The fetched entries of partitions still ours, none we have seen already."""
        entries: list[JournalEntry] = []
        for tp, messages in batches.items():
            cursor = self.cursors.get(tp.partition)
            if cursor is None:
                continue
            for message in messages:
                if message.offset < cursor.position:
                    continue
                entries.append(
                    JournalEntry(tp.partition, message.offset, message.key, message.value)
                )
                cursor.position = message.offset + 1
        return entries

    async def _apply(self, chunk: Chunk[JournalEntry]) -> None:
        """One chunk of the guard: folded and stored in one transaction, offsets included."""
        for entry in chunk.skip:
            # Parked already: only the checkpoint moves past it (unless it is catch-up).
            cursor = self.cursors.get(entry.partition)
            if cursor is not None and entry.offset >= cursor.checkpoint:
                self.projection.checkpoint(entry.partition, entry.offset + 1)
        if chunk.apply:
            await self._fold(chunk.apply)
        await self._store()

    async def _fold(self, entries: list[JournalEntry]) -> None:
        below = {p: cursor.checkpoint for p, cursor in self.cursors.items()}
        poison = await self._with_db(
            "load views from PostgreSQL",
            lambda conn: fold_batch(self.projection, conn, entries, below),
        )
        for bad in poison:
            await self.guard.park_now(bad.entry, bad.reason)
        self.folded += len(entries)

    async def _park(self, entry: JournalEntry, reason: str, attempts: int) -> None:
        assert self.producer is not None
        log.warning(
            "dead-lettering %s[%d]@%d: %s", self.topic, entry.partition, entry.offset, reason
        )
        headers = dead_letter_headers(
            consumer=PROJECTION,
            reason=reason,
            attempts=attempts,
            topic=self.topic,
            partition=entry.partition,
            offset=entry.offset,
        )
        producer = self.producer
        await self._retrying(
            "dead-letter a poison entry",
            lambda: producer.send_and_wait(
                DEAD_LETTERS.name(self.settings), key=entry.key, value=entry.value, headers=headers
            ),
        )

    async def _rewind(self) -> None:
        """After a failed batch: start again from what PostgreSQL holds, as on assignment.

        The fold may have changed memory before the write failed; nothing of it is trusted.
        """
        assert self.consumer is not None
        self.projection = self._fresh_projection()
        self.cursors.clear()
        await self._take(sorted(tp.partition for tp in self.consumer.assignment()))

    async def _store(self, force_snapshots: bool = False) -> None:
        writes = self.projection.take_writes(force_snapshots)
        if not writes:
            return
        await self._with_db("write to PostgreSQL", lambda conn: write(conn, writes, self.topic))
        self.projection.settle()

    # -- partitions coming and going ----------------------------------------------------------

    async def revoked(self, partitions: Collection[int]) -> None:
        # Whoever takes these next starts from the checkpoint: it must be current.
        async with self.lock:
            try:
                await self._store()
            except Exception as exc:
                if is_transient(exc):
                    raise
                # Unwritable: forget it all; the next owner (us too) starts from PostgreSQL,
                # and the guard meets whatever caused it again, entry by entry.
                log.error("cannot store before a rebalance (%r); starting afresh", exc)
                self.projection = self._fresh_projection()
                self.cursors.clear()
        if partitions:
            log.info("partitions revoked: %s", sorted(partitions))

    async def assigned(self, partitions: Collection[int]) -> None:
        async with self.lock:
            await self._take(partitions)

    async def _take(self, partitions: Collection[int]) -> None:
        """Own exactly these partitions: seed what memory lacks and seek each one."""
        assert self.consumer is not None
        gone = set(self.cursors) - set(partitions)
        if gone:
            self.projection.forget(gone)
            for p in gone:
                del self.cursors[p]
        checkpoints = await self._with_db(
            "read checkpoints", lambda conn: load_checkpoints(conn, PROJECTION, self.topic)
        )
        for p in partitions:
            tp = TopicPartition(self.topic, p)
            kept = self.cursors.get(p)
            if kept is not None:
                # Still ours since the last write: memory is exactly where we were.
                self.consumer.seek(tp, kept.position)
                continue
            restored = await self._with_db(
                "read snapshots", functools.partial(shows_to_restore, partition=p)
            )
            for listing, snapshot in restored:
                self.projection.adopt(listing, snapshot)
            checkpoint = checkpoints.get(p, 0)
            start = seek_offset(checkpoint, restored)
            self.cursors[p] = _Cursor(checkpoint=checkpoint, position=start)
            self.consumer.seek(tp, start)
            log.info(
                "partition %d: checkpoint %d, %d show(s) restored from snapshots, reading from %d",
                p,
                checkpoint,
                len(restored),
                start,
            )


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, projector: ViewsProjector) -> None:
        self.projector = projector

    async def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        await self.projector.revoked([tp.partition for tp in revoked])

    async def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        await self.projector.assigned([tp.partition for tp in assigned])


async def run(settings: Settings) -> None:
    projector = ViewsProjector(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, projector.stopping.set)
    await projector.run()


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(run(get_settings()))


if __name__ == "__main__":
    main()
