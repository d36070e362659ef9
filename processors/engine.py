"""The projector engine: journal batches folded into PostgreSQL, at least once, harmlessly.

A `Projection` is what one context supplies: the topics it reads and, for a batch of journal
messages, its fold and its SQL (`apply`, one PostgreSQL transaction holding the rows and the
checkpoints). `GuardedProjection.project` is the one per-batch function every driver calls:
the Faust agents (`install`: a `noack` stream whose events gather while the batch before
them is written, see `Batches`) and the bare aiokafka loop of bench/projector.py alike. It

- takes over the partitions it has not seen yet from PostgreSQL (their checkpoints, and for
  ticketing the seat-map snapshots, caught up from the journal by a short direct read);
- drops every message below its partition's checkpoint, or already applied by this process:
  a redelivery after a crash, or Faust handing over a batch again, changes nothing;
- applies the rest under the poison rules of `processors.poison` (bounded retries, the one
  bad message isolated and dead-lettered); after a failed chunk it forgets its memory and
  takes over again from PostgreSQL, retrying the same batch;
- snapshots the shows a crash left past their latest snapshot promptly, whether a message of
  their partition comes (the take-over catches them up) or none does (`tick` sweeps each owned
  partition once per assignment).

Offsets: the PostgreSQL checkpoint is the truth. Faust commits its own offsets as a hint (an
event is acknowledged only after the batch holding it was written), so after a restart
it delivers from at most a little before the checkpoint, and the gap it could leave is read
directly. Faust's exactly-once mode is not used (open bugs); but Faust's consumer reads
read_uncommitted outside that mode, so `install` makes it read_committed: events of an aborted
decider transaction must never be projected.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import faust
import psycopg
from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.transport.drivers import aiokafka as faust_aiokafka

from boxoffice.settings import Settings
from processors.poison import Chunk, Origin, PoisonGuard
from producers.deadletters import dead_letter_headers
from producers.fetching import folding_aiokafka
from producers.topics import CHAT_EVENTS, DEAD_LETTERS, SHOW_EVENTS, SOCIAL_EVENTS
from snapshots import chatprojection
from snapshots.checkpoints import load_checkpoints
from snapshots.database import conninfo
from snapshots.projection import (
    PROJECTION as TICKETING_PROJECTION,
)
from snapshots.projection import (
    JournalEntry,
    fold_batch,
    seek_offset,
    shows_to_restore,
    write,
)
from snapshots.projection import (
    Projection as SeatmapProjection,
)

log = logging.getLogger("boxoffice.engine")

# A batch: at most this many messages (what gathered while the batch before was written).
TAKE = 2000
# How often due-by-time snapshots are written when the journal is quiet.
SNAPSHOT_TICK_S = 1.0
REPORT_EVERY_S = 10.0


@dataclass(frozen=True, slots=True)
class Entry:
    """One journal message, whichever client fetched it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def origin(entry: Entry) -> Origin:
    return Origin(entry.topic, entry.partition, entry.offset)


Park = Callable[[Entry, str, int], Awaitable[None]]


class Projection(Protocol):
    """What a context supplies to the engine."""

    name: str
    topics: Sequence[str]

    async def project(self, entries: Sequence[Entry]) -> None:
        """Apply one batch (journal order within each partition), idempotently."""

    async def tick(self) -> None:
        """Periodic work while the journal is quiet: snapshots due by time."""

    async def assign(self, partitions: Collection[tuple[str, int]]) -> None:
        """The partitions this instance owns now (the whole assignment)."""

    async def revoke(self, partitions: Collection[tuple[str, int]]) -> None:
        """Forget partitions another instance now owns."""

    async def close(self) -> None: ...


class GuardedProjection:
    """The engine's half: take-over, the checkpoint rule, the poison guard, the connection.

    Subclasses supply `_take_over` (what memory needs of a partition, and the first offset
    not yet in the rows), `_apply` (fold + SQL of one chunk, one transaction) and `_forget`.
    """

    name = ""
    topics: Sequence[str] = ()

    def __init__(self, settings: Settings, park: Park) -> None:
        self.settings = settings
        self.guard: PoisonGuard[Entry] = PoisonGuard(origin, park)
        # (topic, partition) -> (checkpoint at take-over, next offset expected).
        self.cursors: dict[tuple[str, int], list[int]] = {}
        self.conn: psycopg.AsyncConnection[Any] | None = None
        self.lock = asyncio.Lock()
        self.applied = 0
        # Owned partitions (the consumer's assignment), and those `_sweep` has looked at since
        # they were assigned: a partition is taken over only when its first message comes.
        self.assigned: set[tuple[str, int]] = set()
        self.swept: set[tuple[str, int]] = set()

    async def connection(self) -> psycopg.AsyncConnection[Any]:
        if self.conn is None or self.conn.closed or self.conn.broken:
            self.conn = await psycopg.AsyncConnection.connect(
                conninfo(self.settings), autocommit=True, connect_timeout=10
            )
        return self.conn

    async def project(self, entries: Sequence[Entry]) -> None:
        async with self.lock:
            while True:
                try:
                    fresh = await self._admit(entries)
                except Exception as exc:  # take-over reads only: retry it, as the guard would
                    log.warning("cannot take over partitions yet (%r); retrying", exc)
                    await self._reset()
                    await asyncio.sleep(1.0)
                    continue
                if await self.guard.run(fresh, self._apply, self._reset):
                    self.applied += len(fresh)
                    return

    async def tick(self) -> None:
        async with self.lock:
            for tp in sorted(self.assigned - self.swept - set(self.cursors)):
                try:
                    await self._sweep(tp)
                except Exception as exc:  # storage or broker away: the next tick tries again
                    log.warning("cannot sweep partition %s yet (%r)", tp, exc)
                    break
                self.swept.add(tp)
            await self.guard.run([], self._apply, self._reset)

    async def assign(self, partitions: Collection[tuple[str, int]]) -> None:
        owned = {tp for tp in partitions if tp[0] in self.topics}
        # A partition that comes back may have been left behind by another instance since.
        self.swept &= self.assigned & owned
        self.assigned = owned

    async def revoke(self, partitions: Collection[tuple[str, int]]) -> None:
        self.assigned.difference_update(partitions)
        self.swept.difference_update(partitions)
        async with self.lock:
            gone = [tp for tp in partitions if tp in self.cursors]
            if gone:
                await self._hand_over(gone)
            for tp in gone:
                del self.cursors[tp]
            if gone:
                self._forget(gone)

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()

    async def _admit(self, entries: Sequence[Entry]) -> list[Entry]:
        """The entries to apply: those of new partitions after their take-over, minus what
        the rows already hold or this process already applied."""
        firsts: dict[tuple[str, int], int] = {}
        for entry in entries:
            firsts.setdefault((entry.topic, entry.partition), entry.offset)
        fresh: list[Entry] = []
        for tp, first in firsts.items():
            if tp not in self.cursors:
                caught_up, position = await self._take_over(tp, first)
                fresh.extend(caught_up)
                self.cursors[tp] = [position, max(position, first)]
        for entry in entries:
            cursor = self.cursors[(entry.topic, entry.partition)]
            if entry.offset < cursor[1]:
                continue
            cursor[1] = entry.offset + 1
            fresh.append(entry)
        return fresh

    async def _reset(self) -> None:
        """After a failed chunk: memory may hold what was rolled back; start from PostgreSQL."""
        gone = list(self.cursors)
        self.cursors.clear()
        self._forget(gone)

    async def _take_over(self, tp: tuple[str, int], first: int) -> tuple[list[Entry], int]:
        raise NotImplementedError

    async def _hand_over(self, partitions: Sequence[tuple[str, int]]) -> None:
        """What to store before forgetting partitions another instance now owns. Nothing by
        default."""

    async def _sweep(self, tp: tuple[str, int]) -> None:
        """Periodic work owed on an owned partition no message has come for since it was
        assigned (so it was never taken over). Nothing by default."""

    async def _apply(self, chunk: Chunk[Entry]) -> None:
        raise NotImplementedError

    def _forget(self, partitions: Sequence[tuple[str, int]]) -> None:
        raise NotImplementedError


async def read_range(
    settings: Settings, topic: str, partition: int, start: int, end: int
) -> list[Entry]:
    """The committed messages of one partition in [start, end), read directly (no group)."""
    if start >= end:
        return []
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        # Transaction markers take offsets too: stop at the end of the partition if sooner.
        end = min(end, (await consumer.end_offsets([tp]))[tp])
        consumer.seek(tp, start)
        entries: list[Entry] = []
        while start < end and await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=500, max_records=5000)
            for message in batch.get(tp, []):
                if message.offset < end:
                    entries.append(
                        Entry(topic, partition, message.offset, message.key, message.value)
                    )
        return entries
    finally:
        await consumer.stop()


class TicketingViews(GuardedProjection):
    """Seat maps, catalogue and orders: the fold and SQL of `snapshots.projection`."""

    name = TICKETING_PROJECTION

    def __init__(self, settings: Settings, park: Park) -> None:
        super().__init__(settings, park)
        self.topic = SHOW_EVENTS.name(settings)
        self.topics = (self.topic,)
        self.projection = self._fresh()

    def _fresh(self) -> SeatmapProjection:
        return SeatmapProjection(
            self.settings.snapshot_every_events, self.settings.snapshot_every_s
        )

    async def _take_over(self, tp: tuple[str, int], first: int) -> tuple[list[Entry], int]:
        conn = await self.connection()
        partition = tp[1]
        checkpoint = (await load_checkpoints(conn, self.name, self.topic)).get(partition, 0)
        restored = await shows_to_restore(conn, partition)
        for listing, snapshot in restored:
            self.projection.adopt(listing, snapshot, overdue=True)
        start = seek_offset(checkpoint, restored)
        # Seat maps seeded from older snapshots catch up; a gap Faust left is filled. Read up
        # to the checkpoint even when Faust redelivers from before it (its offsets lag after a
        # kill -9): `_admit` drops whatever of the batch is below the checkpoint, and seeded
        # maps must still see it.
        end = max(first, checkpoint)
        caught_up = await read_range(self.settings, self.topic, partition, start, end)
        log.info(
            "partition %d: checkpoint %d, %d show(s) restored, %d entries read directly",
            partition,
            checkpoint,
            len(restored),
            len(caught_up),
        )
        return caught_up, checkpoint

    async def _apply(self, chunk: Chunk[Entry]) -> None:
        below = {p: cursor[0] for (_, p), cursor in self.cursors.items()}
        for entry in chunk.skip:
            if entry.offset >= below.get(entry.partition, 0):
                self.projection.checkpoint(entry.partition, entry.offset + 1)
        conn = await self.connection()
        if chunk.apply:
            entries = [JournalEntry(e.partition, e.offset, e.key, e.value) for e in chunk.apply]
            poison = await fold_batch(self.projection, conn, entries, below)
            for bad in poison:
                await self.guard.park_now(
                    Entry(
                        self.topic,
                        bad.entry.partition,
                        bad.entry.offset,
                        bad.entry.key,
                        bad.entry.value,
                    ),
                    bad.reason,
                )
        await self.store(conn)

    async def store(self, conn: psycopg.AsyncConnection[Any], force: bool = False) -> None:
        writes = self.projection.take_writes(force)
        if writes:
            await write(conn, writes, self.topic)
        self.projection.settle()

    async def _sweep(self, tp: tuple[str, int]) -> None:
        """Snapshot the partition's shows whose rows are past their latest snapshot.

        A kill -9 between a batch's write and the snapshots it owed leaves such shows, and
        their partition may get no message for a long time (so no take-over catches them up):
        without this, their next snapshot would wait for their next event. Catch-up only: the
        rows already hold those events, and only the snapshots are written."""
        conn = await self.connection()
        partition = tp[1]
        restored = await shows_to_restore(conn, partition)
        if not restored:
            return
        checkpoint = (await load_checkpoints(conn, self.name, self.topic)).get(partition, 0)
        scratch = self._fresh()
        for listing, snapshot in restored:
            scratch.adopt(listing, snapshot)
        entries = await read_range(
            self.settings, self.topic, partition, seek_offset(checkpoint, restored), checkpoint
        )
        journal = [JournalEntry(e.partition, e.offset, e.key, e.value) for e in entries]
        await fold_batch(scratch, conn, journal, {partition: checkpoint})
        writes = scratch.take_writes(force_snapshots=True)
        await write(conn, writes, self.topic)
        log.info(
            "partition %d: %d show(s) snapshotted at their projected versions",
            partition,
            len(writes.snapshots),
        )

    async def _hand_over(self, partitions: Sequence[tuple[str, int]]) -> None:
        # Every changed show snapshotted, as at a stop: the next owner restores from them
        # rather than from older snapshots plus a longer read. If the write fails, that owner
        # catches up and snapshots them itself (`_take_over`, `_sweep`).
        try:
            await self.store(await self.connection(), force=True)
        except psycopg.Error as exc:
            log.warning("handing over partitions without their last snapshots (%r)", exc)

    def _forget(self, partitions: Sequence[tuple[str, int]]) -> None:
        if len(self.cursors) == 0:
            self.projection = self._fresh()
        else:
            self.projection.forget({p for _, p in partitions})

    async def close(self) -> None:
        # A last write with every changed show snapshotted, so a restart has nothing to redo.
        with contextlib.suppress(psycopg.Error):
            async with self.lock:
                await self.store(await self.connection(), force=True)
        await super().close()


class ChatHistory(GuardedProjection):
    """Conversations, history, read markers, buddies and blocks: the fold and SQL of
    `snapshots.chatprojection`."""

    name = chatprojection.PROJECTION

    def __init__(self, settings: Settings, park: Park) -> None:
        super().__init__(settings, park)
        self.fold = chatprojection.ConversationFold(
            settings.snapshot_every_events, settings.snapshot_every_s
        )
        self.social_topic = SOCIAL_EVENTS.name(settings)
        self.topics = (CHAT_EVENTS.name(settings), self.social_topic)

    async def _take_over(self, tp: tuple[str, int], first: int) -> tuple[list[Entry], int]:
        conn = await self.connection()
        checkpoint = (await load_checkpoints(conn, self.name, tp[0])).get(tp[1], 0)
        # No snapshots to seed: views are read from the rows when first named.
        return await read_range(self.settings, tp[0], tp[1], checkpoint, first), checkpoint

    async def _apply(self, chunk: Chunk[Entry]) -> None:
        conn = await self.connection()
        if not chunk.apply and not chunk.skip:
            await chatprojection.write_due_snapshots(conn, self.fold)
            return
        batch = chatprojection.decode_batch(chunk.apply, self.social_topic)
        for entry, reason in batch.poison:
            # Parked before the checkpoint moves past it: at worst twice, never lost.
            await self.guard.park_now(entry, reason)
        checkpoints = chatprojection.next_offsets([*chunk.apply, *chunk.skip])
        await chatprojection.write_batch(conn, self.fold, batch, checkpoints)

    def _forget(self, partitions: Sequence[tuple[str, int]]) -> None:
        # The cached views may hold what a rolled-back transaction held, or rows another
        # instance now writes: read them back from PostgreSQL when next named.
        self.fold.forget()


PROJECTIONS: dict[str, type[GuardedProjection]] = {
    "views": TicketingViews,
    "chatviews": ChatHistory,
}


# -- Faust ------------------------------------------------------------------------------------


def fold_reader(settings: Settings) -> None:
    """Make Faust's consumer read only committed messages, exactly-once mode or not, and
    fetch as a reader that folds (producers/fetching.py): Faust asks for every record at
    once, which woke the views once per decider transaction."""
    thread = faust_aiokafka.AIOKafkaConsumerThread
    if getattr(thread, "_boxoffice_fold_reader", False):
        return
    create = thread._create_worker_consumer
    fetch = folding_aiokafka(settings)

    @functools.wraps(create)
    def patched(self: Any, transport: Any) -> Any:
        consumer = create(self, transport)
        # aiokafka hands these to its fetcher at start(), after this point.
        consumer._isolation_level = "read_committed"
        consumer._fetch_min_bytes = fetch["fetch_min_bytes"]
        consumer._fetch_max_wait_ms = fetch["fetch_max_wait_ms"]
        return consumer

    setattr(thread, "_create_worker_consumer", patched)  # noqa: B010
    setattr(thread, "_boxoffice_fold_reader", True)  # noqa: B010


def inline_delivery() -> None:
    """Hand each fetched message to the Conductor inline, not through four tasks.

    Faust's fetch loop delivers every message with `wait_first(callback(message),
    suspend_flow.wait())`: four tasks and an `asyncio.wait` per message, about half of
    Faust's cost per event (bench/projector.py). The race only matters when the callback
    can block: while the flow is suspended (a rebalance) or a channel's queue is full. While
    the flow is active the callback is awaited directly; it can then block only on a full
    queue, which cannot happen (Faust pauses the partitions at high pressure, and one fetch
    more still fits: `processors.app`), or on a full producer buffer (dead letters only), which
    drains by itself. Otherwise Faust's own path runs. Messages still go through the
    Conductor, the channel, the stream and the agent, and are acknowledged as before.
    """
    from mode.services import WaitResults

    consumer = faust_aiokafka.Consumer
    if getattr(consumer, "_boxoffice_inline_delivery", False):
        return
    wait_first = consumer.wait_first

    @functools.wraps(wait_first)
    async def patched(self: Any, *coros: Any, timeout: Any = None) -> Any:
        # Only the fetch loop's call: its second waitable is `self.suspend_flow.wait()`.
        frame: Any = getattr(coros[-1], "cr_frame", None) if coros else None
        if (
            timeout is None
            and len(coros) == 2
            and frame is not None
            and frame.f_locals.get("self") is self.suspend_flow
            and not self.suspend_flow.is_set()
            and self.app.flow_control.is_active()
        ):
            coros[1].close()
            return WaitResults([coros[0]], [await coros[0]], False)
        return await wait_first(self, *coros, timeout=timeout)

    setattr(consumer, "wait_first", patched)  # noqa: B010
    setattr(consumer, "_boxoffice_inline_delivery", True)  # noqa: B010


def cheap_gaps() -> None:
    """Note an offset gap without rebuilding Faust's whole gap tree each time.

    A transactional journal has a gap after every transaction (its commit marker takes an
    offset). Faust notes each gap in an IntervalTree and then calls `merge_overlaps()`, which
    rebuilds the tree: O(n log n) per gap, n the gaps since its last commit. Draining a
    backlog of one-command transactions, that was 54% of the views' CPU (py-spy) and held
    them to 45-490 events/s, one event per batch. Per partition, gaps arrive in offset order
    and cannot overlap, so the merge only costs: here a gap is just added, and Faust's own
    path (with the merge) runs only for a gap that starts before the last one ended.

    Faust's fetch loop passes the offset of the message that revealed the gap as the gap's
    end. That message is acked on its own too, so the commit found it twice, and its run of
    consecutive offsets (`consecutive_numbers`) ended there: each commit passed one
    transaction, and the views' committed offsets fell 50,000 behind their checkpoints. The
    gap here ends before that message.
    """
    from faust.transport.consumer import Consumer

    if getattr(Consumer, "_boxoffice_cheap_gaps", False):
        return
    add_gap = Consumer._add_gap
    ends: dict[Any, int] = {}

    @functools.wraps(add_gap)
    async def patched(self: Any, tp: Any, offset_from: int, offset_to: int) -> None:
        offset_to -= 1  # the message at offset_to is not missing (see above)
        committed = self._committed_offset[tp]
        if committed is not None:
            offset_from = max(offset_from, committed + 1)
        if offset_from > offset_to:
            return
        gaps = self._gap[tp]
        if not gaps or offset_from >= ends.get(tp, 0):
            gaps.addi(offset_from, offset_to + 1)
            ends[tp] = offset_to + 1
            return
        await add_gap(self, tp, offset_from, offset_to)
        ends[tp] = max(ends.get(tp, 0), offset_to + 1)

    setattr(Consumer, "_add_gap", patched)  # noqa: B010
    setattr(Consumer, "_boxoffice_cheap_gaps", True)  # noqa: B010


class Batches:
    """The agent's events, gathered while the batch before them is being written.

    `stream.take_events` stops filling its buffer while its batch is consumed, so Faust's
    delivery and the PostgreSQL writes took turns, and its `within` timer cut small batches
    that each paid a transaction. Here the agent only appends events; the applier takes what
    has gathered (at most `take`) as soon as the batch before is written: batches grow with
    the load, and a quiet journal is applied at once, with no timer to wait for. An event is
    acknowledged only after its batch is written (at least once); on a rebalance Faust waits
    for every delivered event to be acknowledged, so the applier has drained what it holds
    before partitions are revoked.
    """

    def __init__(self, projection: GuardedProjection, take: int) -> None:
        self.projection = projection
        self.take = take
        self.pending: list[faust.EventT[bytes]] = []
        self.arrived = asyncio.Event()
        self.room = asyncio.Event()
        self.batches = self.events = 0
        self.busy = 0.0
        self.reported_at = time.monotonic()

    def add(self, event: faust.EventT[bytes]) -> bool:
        """Gather one event; False once a whole batch waits (the agent then waits for room)."""
        self.pending.append(event)
        self.arrived.set()
        if len(self.pending) < self.take:
            return True
        self.room.clear()
        return False

    async def apply(self, stream: faust.StreamT[bytes]) -> None:
        while True:
            await self.arrived.wait()
            self.arrived.clear()
            while self.pending:
                batch = self.pending[: self.take]
                del self.pending[: self.take]
                self.room.set()
                started = time.monotonic()
                await self.projection.project(
                    [
                        Entry(
                            e.message.topic,
                            e.message.partition,
                            e.message.offset,
                            e.message.key,
                            e.message.value,
                        )
                        for e in batch
                    ]
                )
                for event in batch:
                    await stream.ack(event)
                self.report(len(batch), started)

    def report(self, size: int, started: float) -> None:
        now = time.monotonic()
        self.batches, self.events = self.batches + 1, self.events + size
        self.busy += now - started
        if now - self.reported_at >= REPORT_EVERY_S:
            log.info(
                "%s: %d events in %d batches over %.0f s (%.0f/s), %.0f%% of it applying",
                self.projection.name,
                self.events,
                self.batches,
                now - self.reported_at,
                self.events / (now - self.reported_at),
                100 * self.busy / (now - self.reported_at),
            )
            self.batches = self.events = 0
            self.busy, self.reported_at = 0.0, now


def install(
    app: faust.App,
    projection: GuardedProjection,
    *,
    take: int = TAKE,
    tick_s: float = SNAPSHOT_TICK_S,
) -> None:
    """One agent running `projection` over its topics in batches, plus its snapshot timer."""
    fold_reader(projection.settings)
    inline_delivery()
    cheap_gaps()
    # Faust's stream takes one event-loop turn per event: uvloop's turns cost less (bench/
    # projector.py). Chosen before the worker makes its loop; the engine's workers only.
    import mode.loop

    mode.loop.use("uvloop")
    channel = app.topic(
        *projection.topics,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )

    async def run(stream: faust.StreamT[bytes]) -> None:
        # Acknowledged by the applier, once their batch is written.
        events = cast(faust.Stream[bytes], stream).noack()
        batches = Batches(projection, take)
        applier = asyncio.ensure_future(batches.apply(events))
        try:
            async for event in events.events():
                if not batches.add(event):
                    await asyncio.wait(
                        [asyncio.ensure_future(batches.room.wait()), applier],
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                if applier.done():
                    applier.result()  # its failure is the agent's
        finally:
            applier.cancel()
            await asyncio.gather(applier, return_exceptions=True)

    app.agent(channel, name=f"project-{projection.name}")(run)

    async def tick() -> None:
        await projection.tick()

    app.timer(tick_s, name=f"snapshot-{projection.name}")(tick)

    async def revoked(sender: Any, *args: Any, signal: Any = None, **_: Any) -> None:
        await projection.revoke([(tp.topic, tp.partition) for tp in args[0]])

    async def assigned(sender: Any, *args: Any, signal: Any = None, **_: Any) -> None:
        await projection.assign([(tp.topic, tp.partition) for tp in args[0]])

    # mode types the handler as a union of callables mypy cannot match a coroutine to.
    app.on_partitions_revoked.connect(revoked, weak=False)  # type: ignore[arg-type]
    app.on_partitions_assigned.connect(assigned, weak=False)  # type: ignore[arg-type]

    async def stopping(sender: Any, *args: Any, signal: Any = None, **_: Any) -> None:
        await projection.close()

    app.on_before_shutdown.connect(stopping, weak=False)  # type: ignore[arg-type]


def faust_park(app: faust.App, settings: Settings, consumer: str) -> Park:
    """Dead-letter an entry through the worker's own producer, with where and why."""
    dead_letters = app.topic(
        DEAD_LETTERS.name(settings),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )

    async def park(entry: Entry, reason: str, attempts: int) -> None:
        log.warning(
            "dead-lettering %s[%d]@%d: %s", entry.topic, entry.partition, entry.offset, reason
        )
        headers = dead_letter_headers(
            consumer=consumer,
            reason=reason,
            attempts=attempts,
            topic=entry.topic,
            partition=entry.partition,
            offset=entry.offset,
        )
        # Parked before the checkpoint moves past it: wait for the broker's acknowledgement.
        await (await dead_letters.send(key=entry.key, value=entry.value, headers=headers))

    return park
