"""Replay: rebuild every view from the journals alone, and check the live ones.

`rebuild` reads every journal (the show journal, then the conversation and social journals;
every partition, from offset 0 to the end it has when replay reaches it) through the very
folds and SQL the projectors run, into a fresh PostgreSQL schema with the migrations applied:
the catalogue, the orders and a snapshot of every seat map at its latest version; the
conversations, members with read markers, history, buddies and blocks.

Side by side: every partition of every journal is replayed on its own (a stream lives in one
partition, so nothing a projector folds spans two), as many at once as there are cores: one
in this process and the others in spawned worker processes, which report their progress
(drawn here, one line per journal) and stop at a batch boundary when asked (Ctrl-C,
`stop_after`). A program calling `rebuild` must guard its main module (`if __name__ ==
"__main__"`), as spawned processes import it again.

Resumable. Like the projectors, each batch's rows and the next offsets of its partitions are
one transaction (`projection_offsets` of the replay schema), so an interrupted replay is
continued with `resume=True` from where its last batch committed, by the projectors' own
recovery: seat maps from their latest snapshot (taken every few seconds here) with a catch-up
read, conversations and social versions from their rows.

`verify` then compares the live views with it. The live side may have moved on while the
replay ran, so it is compared at the replay's cut: seat maps as the live snapshots folded
forward to the replayed version, orders and catalogue rows unless the live row is at a
version past the cut, chat rows unless their stream (conversation or user) has journal
entries past the cut. Not compared: conversation and seat-map snapshot rows as such (their
cadence and `created_at` are wall-clock), and `projection_offsets`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import multiprocessing
import os
import secrets
import signal
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable, Generator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson
import psycopg
from confluent_kafka import KafkaException, TopicPartition
from psycopg import sql

from boxoffice.settings import Settings
from domain.chat.events import ConversationEvent, SocialEvent
from domain.ticketing.views import OrderView, SeatMapView
from producers.codec import DecodeError
from producers.journal import JournalUnavailableError
from producers.topics import CHAT_EVENTS, SHOW_EVENTS, SOCIAL_EVENTS, partitions_of
from snapshots import chat as store
from snapshots.chatprojection import PROJECTION as CHAT_PROJECTION
from snapshots.chatprojection import ConversationFold, fold_social, project_conversations
from snapshots.chatprojection import decode as decode_chat_entry
from snapshots.checkpoints import load_checkpoints, save_checkpoints
from snapshots.database import conninfo, migrate
from snapshots.lines import line_differences
from snapshots.orders import ShowListing, all_orders, shows
from snapshots.projection import (
    PROJECTION,
    JournalEntry,
    Poison,
    Projection,
    _has_nul,
    fold_batch,
    seek_offset,
    shows_to_restore,
    write,
)
from snapshots.seatmaps import latest_snapshot
from snapshots.timetravel import (
    VersionNotFoundError,
    journal_consumer,
    read_entries,
    seatmap_at,
)

# Differences listed in full; past this only counted.
SHOWN_DIFFERENCES = 50


# How often a replay snapshots each seat map it changed: a resumed replay re-reads (folding
# seat maps only, writing nothing) at most this much of the show journal again.
RESUME_SNAPSHOT_S = 10.0
READ_BATCH = 5000
# Progress lines on stderr at most this often.
PROGRESS_EVERY_S = 0.5


class ReplayError(Exception):
    """A replay that cannot start, said in words (e.g. resuming what is not a replay schema)."""


def journal_ends(settings: Settings, topic: str, timeout_s: float = 10.0) -> dict[int, int]:
    """Per partition of a journal, its end now (the high watermark)."""
    partitions = partitions_of(settings, [topic])[topic]
    reader = JournalReader(settings, topic, dict.fromkeys(partitions, 0), timeout_s)
    reader.close()
    return reader.ends


class ReplayInterruptedError(Exception):
    """The replay stopped early (`stop_after`); `resume` continues it."""

    def __init__(self, schema: str, entries: int) -> None:
        super().__init__(f"replay into {schema} stopped after {entries} entries")
        self.schema = schema
        self.entries = entries


@dataclass(frozen=True, slots=True)
class JournalStats:
    """What a replay read of one journal: entries folded and the seconds it took."""

    topic: str
    entries: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.entries / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Rebuilt:
    schema: str
    entries: int
    shows: int
    orders: int
    poison: tuple[Poison, ...]
    # Per partition of the show journal, the next offset: the replay covers all before it.
    cut: dict[int, int]
    # The same for the conversation and social journals, by topic.
    chat_cut: dict[str, dict[int, int]] = dataclasses.field(default_factory=dict)
    chat_poison: tuple[tuple[str, Poison], ...] = ()
    conversations: int = 0
    messages: int = 0
    users: int = 0
    journals: tuple[JournalStats, ...] = ()


def replay_schema(now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d_%H%M%S")
    return f"replay_{stamp}_{secrets.token_hex(2)}"


# -- reading a journal ---------------------------------------------------------------------------


class JournalReader:
    """The committed entries of one journal, from `starts[partition]` up to the end each
    partition has when the reader is made (`ends`, the high watermarks): what a replay covers.

    Blocking (confluent-kafka): the async side pulls batches in a thread.
    """

    def __init__(
        self,
        settings: Settings,
        topic: str,
        starts: Mapping[int, int],
        timeout_s: float,
        batch_size: int = READ_BATCH,
    ) -> None:
        self.topic = topic
        self.batch_size = batch_size
        self.timeout_s = timeout_s
        self.consumer = journal_consumer(settings, "replay")
        try:
            self.ends = {
                p: self.consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)[
                    1
                ]
                for p in starts
            }
        except KafkaException as exc:
            self.consumer.close()
            raise JournalUnavailableError(f"cannot reach the journal {topic}: {exc}") from exc
        self.starts = {p: min(offset, self.ends[p]) for p, offset in starts.items()}
        self.total = sum(self.ends[p] - self.starts[p] for p in starts)

    def close(self) -> None:
        self.consumer.close()

    def batches(self) -> Generator[list[JournalEntry], None, None]:
        try:
            yield from read_entries(
                self.consumer,
                self.topic,
                self.starts,
                self.timeout_s,
                self.batch_size,
                ends=self.ends,
            )
        finally:
            self.close()


async def _batches(reader: JournalReader) -> AsyncGenerator[list[JournalEntry], None]:
    """The reader's batches, the next one read (in a thread) while the caller folds this one."""
    it = reader.batches()
    ahead = asyncio.ensure_future(asyncio.to_thread(next, it, None))
    try:
        while (batch := await ahead) is not None:
            ahead = asyncio.ensure_future(asyncio.to_thread(next, it, None))
            yield batch
    finally:
        if not ahead.done():
            with contextlib.suppress(Exception):
                await ahead
        it.close()


class Progress:
    """One carriage-return line per journal on `out`: entries done / total, entries/s, ETA.

    Its partitions are replayed side by side, each in a worker process, and report here as
    they begin and after every batch. Counted in offsets (a transaction marker takes one
    too), so done reaches total exactly. Before a partition begins, its start is taken from
    the replay's checkpoints (a resumed show partition may re-read a little more)."""

    def __init__(
        self,
        label: str,
        starts: Mapping[int, int],
        ends: Mapping[int, int],
        out: TextIO | None,
        every_s: float = PROGRESS_EVERY_S,
    ) -> None:
        self.label = self.topic = label
        self.out = out
        self.every_s = every_s
        self.starts = {p: min(start, ends[p]) for p, start in starts.items()}
        self.ends = dict(ends)
        self.at = dict(self.starts)
        self.read = dict.fromkeys(starts, 0)
        self.open = set(starts)
        self.began: float | None = None
        self.ended: float | None = None
        self.drawn = 0.0

    @property
    def total(self) -> int:
        return sum(self.ends[p] - self.starts[p] for p in self.ends)

    @property
    def done(self) -> int:
        return sum(self.at[p] - self.starts[p] for p in self.at)

    @property
    def entries(self) -> int:
        return sum(self.read.values())

    @property
    def seconds(self) -> float:
        """From the first partition begun to the last one finished (or now)."""
        if self.began is None:
            return 0.0
        return (self.ended or time.monotonic()) - self.began

    def begin(self, partition: int, start: int, end: int) -> None:
        if self.began is None:
            self.began = time.monotonic()
        self.starts[partition] = self.at[partition] = start
        self.ends[partition] = end

    def advance(self, partition: int, at: int, read: int) -> None:
        """Partition `partition` is read up to `at` (exclusive), `read` entries in all."""
        if partition not in self.open:
            return
        self.at[partition] = max(self.at[partition], at)
        self.read[partition] = max(self.read[partition], read)
        now = time.monotonic()
        if now - self.drawn >= self.every_s:
            self.drawn = now
            self._draw(self.done, final=False)

    def finish(self, partition: int, at: int, read: int) -> None:
        if self.began is None:
            self.began = time.monotonic()
        self.at[partition] = max(self.at[partition], at)
        self.read[partition] = read
        self.open.discard(partition)
        if not self.open:
            self.ended = time.monotonic()
            self._draw(self.total, final=True)

    def _draw(self, done: int, final: bool) -> None:
        if self.out is None:
            return
        elapsed = max(self.seconds, 1e-6)
        rate = self.entries / elapsed
        if final:
            tail = f"in {elapsed:.1f} s"
        else:
            left = (self.total - done) / (done / elapsed) if done else math.inf
            tail = f"ETA {left:.0f} s" if math.isfinite(left) else "ETA ?"
        share = 100 * done / self.total if self.total else 100
        line = (
            f"\r{self.label}: {done:,}/{self.total:,} ({share:.0f}%), {rate:,.0f} entries/s, {tail}"
        )
        self.out.write(line + ("\n" if final else ""))
        self.out.flush()


# -- rebuilding ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Task:
    """One partition of one journal, for a worker process to replay."""

    journal: str  # "shows", "chat" or "social"
    topic: str
    partition: int
    timeout_s: float
    batch_size: int


@dataclass(frozen=True, slots=True)
class _Done:
    """What a worker made of its partition."""

    topic: str
    partition: int
    read: int
    # The partition's next offset in the replay's checkpoints: all before it is replayed.
    cut: int
    poison: tuple[Poison, ...]
    # Stopped at a batch boundary before the partition's end (`stop_after`, an interrupt).
    stopped: bool


@dataclass(frozen=True, slots=True)
class _Lane:
    """Where a partition's replay reports (messages `(topic, partition, start, end, None)` when
    it begins, `(topic, partition, at, read)` after every batch), and the flag asking it to
    stop at its next batch boundary."""

    send: Callable[[tuple[Any, ...]], None]
    stop: Any  # a multiprocessing Event


# A worker process's lane to the coordinator ("lane"), set by `_worker_init`.
_WORKER: dict[str, _Lane] = {}


def _worker_init(reports: Any, stop: Any) -> None:
    _WORKER["lane"] = _Lane(reports.put, stop)
    # Ctrl-C reaches the whole process group: the coordinator alone decides, and asks the
    # workers to stop after the batch they are in (which commits, so nothing is lost).
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _replay_partition(settings: Settings, schema: str, task: _Task) -> _Done:
    """In a worker process: one partition of one journal into the replay schema."""
    return asyncio.run(_replay_partition_async(settings, schema, task, _WORKER["lane"]))


async def _replay_partition_async(
    settings: Settings, schema: str, task: _Task, lane: _Lane
) -> _Done:
    target = settings.model_copy(update={"pg_schema": schema})
    async with await psycopg.AsyncConnection.connect(conninfo(target), autocommit=True) as conn:
        if task.journal == "shows":
            return await _replay_shows(settings, conn, task, lane)
        return await _replay_chat(settings, conn, task, lane)


class _Report:
    """A partition as the coordinator sees it: where it began, how far it is."""

    def __init__(self, task: _Task, reader: JournalReader, lane: _Lane) -> None:
        self.task = task
        self.lane = lane
        self.read = 0
        self.at = reader.starts[task.partition]
        self.end = reader.ends[task.partition]
        lane.send((task.topic, task.partition, self.at, self.end, None))

    def advance(self, batch: Sequence[JournalEntry]) -> None:
        self.read += len(batch)
        self.at = batch[-1].offset + 1
        self.lane.send((self.task.topic, self.task.partition, self.at, self.read))

    @property
    def stopping(self) -> bool:
        return bool(self.lane.stop.is_set()) and self.at < self.end


async def rebuild(
    settings: Settings,
    schema: str | None = None,
    timeout_s: float = 10.0,
    *,
    resume: bool = False,
    progress: TextIO | None = None,
    stop_after: int | None = None,
    batch_size: int = READ_BATCH,
    workers: int | None = None,
) -> Rebuilt:
    """Fold every journal into a fresh schema (created and migrated here), or, with `resume`,
    continue an interrupted replay into `schema` from the offsets it had committed.

    Every partition of every journal is replayed on its own, `workers` at once (by default
    one per core: this process and worker processes beside it), since nothing a projector
    folds spans partitions: a stream lives in one. `stop_after` (for tests) asks them to stop at
    their next batch boundary once that many entries are folded in all, and then raises
    ReplayInterruptedError."""
    if resume and (
        schema is None or not await asyncio.to_thread(is_replay_schema, settings, schema)
    ):
        raise ReplayError(f"there is no replay schema {schema!r} to resume")
    schema = schema or replay_schema()
    target = settings.model_copy(update={"pg_schema": schema})
    pool = _Workers(max(1, workers or os.cpu_count() or 1) - 1)
    try:
        return await _rebuild(
            settings,
            schema,
            target,
            pool,
            timeout_s=timeout_s,
            progress=progress,
            stop_after=stop_after,
            batch_size=batch_size,
        )
    finally:
        pool.close()


async def _rebuild(
    settings: Settings,
    schema: str,
    target: Settings,
    pool: _Workers,
    *,
    timeout_s: float,
    progress: TextIO | None,
    stop_after: int | None,
    batch_size: int,
) -> Rebuilt:
    await asyncio.to_thread(migrate, target)
    journals = (
        ("shows", SHOW_EVENTS, PROJECTION),
        ("chat", CHAT_EVENTS, CHAT_PROJECTION),
        ("social", SOCIAL_EVENTS, CHAT_PROJECTION),
    )
    topics = [journal.name(settings) for _, journal, _ in journals]
    partitions = await asyncio.to_thread(partitions_of, settings, topics)
    async with await psycopg.AsyncConnection.connect(conninfo(target), autocommit=True) as conn:
        tasks: list[tuple[int, _Task]] = []
        meters: dict[str, Progress] = {}
        for (name, _, projection), topic in zip(journals, topics, strict=True):
            ends = await asyncio.to_thread(_ends, settings, topic, partitions[topic], timeout_s)
            checkpoints = await load_checkpoints(conn, projection, topic)
            starts = {p: checkpoints.get(p, 0) for p in partitions[topic]}
            meters[topic] = Progress(topic, starts, ends, progress)
            tasks += [
                (ends[p] - starts[p], _Task(name, topic, p, timeout_s, batch_size))
                for p in partitions[topic]
            ]
        # The journals in order (the show journal first, as a replay always read them), and
        # within each the biggest partition first: the last to start are the short ones.
        tasks.sort(key=lambda sized: (topics.index(sized[1].topic), -sized[0]))
        done = await pool.run(
            settings,
            schema,
            [t for _, t in tasks],
            meters,
            stop_after,
        )
        cursor = await conn.execute(
            "SELECT (SELECT count(*) FROM shows), (SELECT count(*) FROM orders),"
            " (SELECT count(*) FROM conversations), (SELECT count(*) FROM messages),"
            " (SELECT count(*) FROM social_streams)"
        )
        counts = await cursor.fetchone()
    assert counts is not None
    entries = sum(meter.entries for meter in meters.values())
    if any(d.stopped for d in done):
        raise ReplayInterruptedError(schema, entries)
    done.sort(key=lambda d: (topics.index(d.topic), d.partition))
    shows_topic = topics[0]
    return Rebuilt(
        schema=schema,
        entries=entries,
        shows=counts[0],
        orders=counts[1],
        poison=tuple(p for d in done if d.topic == shows_topic for p in d.poison),
        cut={d.partition: d.cut for d in done if d.topic == shows_topic},
        chat_cut={
            topic: {d.partition: d.cut for d in done if d.topic == topic} for topic in topics[1:]
        },
        chat_poison=tuple((d.topic, p) for d in done if d.topic != shows_topic for p in d.poison),
        conversations=counts[2],
        messages=counts[3],
        users=counts[4],
        journals=tuple(JournalStats(t, meters[t].entries, meters[t].seconds) for t in topics),
    )


def is_replay_schema(settings: Settings, schema: str) -> bool:
    if not schema.startswith("replay_"):
        return False
    with psycopg.connect(settings.pg_dsn, autocommit=True, connect_timeout=10) as conn:
        row = conn.execute(
            "SELECT 1 FROM information_schema.tables"
            " WHERE table_schema = %s AND table_name = 'projection_offsets'",
            (schema,),
        ).fetchone()
    return row is not None


def _ends(
    settings: Settings, topic: str, partitions: Sequence[int], timeout_s: float
) -> dict[int, int]:
    reader = JournalReader(settings, topic, dict.fromkeys(partitions, 0), timeout_s)
    reader.close()
    return reader.ends


class _Workers:
    """The lanes a replay's partitions run in: the coordinating process itself, beside its
    event loop's other work (drawing progress), and `count` worker processes (spawned: the
    coordinator holds threads and an event loop). The processes are started before the
    replay knows its tasks, so they import while the schema is migrated and the journals
    measured; the coordinator's own lane costs no start-up at all."""

    def __init__(self, count: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.count = count
        self.reports = context.SimpleQueue()
        self.stop = context.Event()
        self.pool: ProcessPoolExecutor | None = None
        if count == 0:
            return
        self.pool = ProcessPoolExecutor(
            count, context, initializer=_worker_init, initargs=(self.reports, self.stop)
        )
        # One submission per process: each starts one (they start on demand). Ctrl-C reaches
        # the whole process group, and a worker still importing would die of it: they are
        # started with SIGINT ignored (kept across exec), and only the coordinator decides.
        ignoring = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if ignoring else None
        try:
            for _ in range(count):
                self.pool.submit(_ready)
        finally:
            if ignoring:
                signal.signal(signal.SIGINT, previous)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)

    async def run(
        self,
        settings: Settings,
        schema: str,
        tasks: Sequence[_Task],
        meters: Mapping[str, Progress],
        stop_after: int | None,
    ) -> list[_Done]:
        """The tasks (in this order, each to the next free lane), their progress drawn as
        they report it. Any lane's error is raised here, the others asked to stop at their
        next batch boundary."""

        def receive(message: tuple[Any, ...]) -> None:
            topic, partition, at, *rest = message
            if rest[-1] is None:
                meters[topic].begin(partition, at, rest[0])
            else:
                meters[topic].advance(partition, at, rest[0])
            if stop_after is not None and sum(m.entries for m in meters.values()) >= stop_after:
                self.stop.set()

        here = _Lane(receive, self.stop)
        loop = asyncio.get_running_loop()
        waiting = deque(tasks)
        away: set[asyncio.Future[_Done]] = set()
        local: asyncio.Future[_Done] | None = None
        done: list[_Done] = []
        try:
            while waiting or away or local is not None:
                if local is None and waiting:
                    local = asyncio.ensure_future(
                        _replay_partition_async(settings, schema, waiting.popleft(), here)
                    )
                while self.pool is not None and waiting and len(away) < self.count:
                    away.add(
                        loop.run_in_executor(
                            self.pool,
                            _replay_partition,
                            settings,
                            schema,
                            waiting.popleft(),
                        )
                    )
                running = away | ({local} if local is not None else set())
                finished, _ = await asyncio.wait(
                    running, timeout=0.1, return_when=asyncio.FIRST_COMPLETED
                )
                # SimpleQueue: a report is in the pipe before its worker's result is sent, so
                # a partition's reports are all read by the time its result is.
                while not self.reports.empty():
                    receive(self.reports.get())
                for future in finished:
                    if future is local:
                        local = None
                    away.discard(future)
                    result = future.result()
                    meters[result.topic].finish(result.partition, result.cut, result.read)
                    done.append(result)
        except BaseException:
            self.stop.set()
            for future in away:
                future.cancel()
            if local is not None:
                # Stopped mid-batch: its transaction rolls back, the committed ones stay.
                local.cancel()
                await asyncio.gather(local, return_exceptions=True)
            raise
        return done


def _ready() -> None:
    """A worker's first task: nothing; it has imported the replay by then."""


async def _replay_shows(
    settings: Settings, conn: psycopg.AsyncConnection[Any], task: _Task, lane: _Lane
) -> _Done:
    """A partition of the show journal through the ticketing projector's fold and writes,
    recovering as it does from the checkpoints and snapshots already in the schema."""
    topic, partition = task.topic, task.partition
    # Snapshots where the projector must have them (a new show), every few seconds for a
    # resume, and at the end.
    projection = Projection(snapshot_every_events=2**62, snapshot_every_s=RESUME_SNAPSHOT_S)
    checkpoints = await load_checkpoints(conn, PROJECTION, topic)
    restored = await shows_to_restore(conn, partition)
    for listing, snapshot in restored:
        projection.adopt(listing, snapshot)
    starts = {partition: seek_offset(checkpoints.get(partition, 0), restored)}
    reader = await asyncio.to_thread(
        JournalReader, settings, topic, starts, task.timeout_s, task.batch_size
    )
    report = _Report(task, reader, lane)
    poison: list[Poison] = []
    async with contextlib.aclosing(_batches(reader)) as batches:
        async for batch in batches:
            poison += await fold_batch(projection, conn, batch, checkpoints)
            await write(conn, projection.take_writes(), topic)
            projection.settle()
            report.advance(batch)
            if report.stopping:
                # As if it had crashed here: the resume recovers from what is committed.
                return _Done(topic, partition, report.read, report.at, tuple(poison), True)
    await write(conn, projection.take_writes(force_snapshots=True), topic)
    done = await load_checkpoints(conn, PROJECTION, topic)
    return _Done(topic, partition, report.read, done.get(partition, 0), tuple(poison), False)


async def _replay_chat(
    settings: Settings, conn: psycopg.AsyncConnection[Any], task: _Task, lane: _Lane
) -> _Done:
    """A partition of the conversation or social journal through the chat projector's folds
    and SQL: rows and checkpoints in one transaction per batch, views cached between batches
    and read back from the rows when missing (after a resume, say)."""
    topic, partition, social = task.topic, task.partition, task.journal == "social"
    fold = ConversationFold(settings.snapshot_every_events, settings.snapshot_every_s)
    checkpoints = await load_checkpoints(conn, CHAT_PROJECTION, topic)
    starts = {partition: checkpoints.get(partition, 0)}
    reader = await asyncio.to_thread(
        JournalReader, settings, topic, starts, task.timeout_s, task.batch_size
    )
    report = _Report(task, reader, lane)
    poison: list[Poison] = []
    async with contextlib.aclosing(_batches(reader)) as batches:
        async for batch in batches:
            chat: list[tuple[ConversationEvent, int, int]] = []
            socials: list[SocialEvent] = []
            for entry in batch:
                try:
                    event = decode_chat(entry.value, social)
                except DecodeError as exc:
                    poison.append(Poison(entry, f"undecodable: {exc}"))
                    continue
                if isinstance(event, SocialEvent):
                    socials.append(event)
                else:
                    chat.append((event, entry.partition, entry.offset))
            async with conn.transaction():
                if chat:
                    await project_conversations(conn, fold, chat)
                if socials:
                    versions = await store.social_versions(conn, {e.user for e in socials})
                    await store.write_social(conn, fold_social(versions, socials))
                await store.insert_snapshots(conn, fold.due_snapshots())
                await save_checkpoints(
                    conn, CHAT_PROJECTION, topic, {partition: batch[-1].offset + 1}
                )
            fold.trim()
            report.advance(batch)
            if report.stopping:
                return _Done(topic, partition, report.read, report.at, tuple(poison), True)
    done = await load_checkpoints(conn, CHAT_PROJECTION, topic)
    return _Done(topic, partition, report.read, done.get(partition, 0), tuple(poison), False)


def decode_chat(raw: bytes | None, social: bool) -> ConversationEvent | SocialEvent:
    """The event of a conversation (or, with `social`, a social) journal entry, checked as the
    chat projector checks it; DecodeError if it is not a sound one."""
    # PostgreSQL text cannot hold NUL: the projector parks such an event (PostgreSQL refuses
    # it); here it is poison at once rather than a failed replay. Rare: the JSON escape is
    # looked for first, and only then the event parsed for it.
    if raw is not None and b"\\u0000" in raw:
        with contextlib.suppress(orjson.JSONDecodeError):
            data = orjson.loads(raw)
            if isinstance(data, dict) and _has_nul(data.get("event")):
                raise DecodeError("a string holds a NUL character")
    return decode_chat_entry(raw, social)


async def verify(settings: Settings, rebuilt: Rebuilt, wait_s: float = 30.0) -> list[str]:
    """Every difference between the live views and the rebuilt ones; empty when they agree."""
    topic = SHOW_EVENTS.name(settings)
    target = settings.model_copy(update={"pg_schema": rebuilt.schema})
    differences: list[str] = []
    live_conn = await psycopg.AsyncConnection.connect(conninfo(settings), autocommit=True)
    copy_conn = await psycopg.AsyncConnection.connect(conninfo(target), autocommit=True)
    async with live_conn as live, copy_conn as copy:
        differences += await _wait_for_live(live, topic, rebuilt.cut, wait_s)
        replayed = {s.show_id: s for s in await shows(copy)}
        listed = {s.show_id: s for s in await shows(live)}
        for show_id, expected in sorted(replayed.items()):
            actual = listed.get(show_id)
            if actual is None:
                differences.append(f"show {show_id}: journaled, missing from the live catalogue")
                continue
            differences += _listing_differences(expected, actual)
            differences += await _seatmap_differences(settings, live, copy, expected)
        for show_id, actual in sorted(listed.items()):
            if show_id not in replayed and actual.journal_offset < rebuilt.cut.get(
                actual.journal_partition, 0
            ):
                differences.append(f"show {show_id}: listed live, never created in the journal")
        cut_versions = {show_id: s.version for show_id, s in replayed.items()}
        differences += order_differences(
            await all_orders(copy), await all_orders(live), cut_versions, listed, rebuilt.cut
        )
        differences += await line_differences(copy, live, cut_versions)
        differences += await _chat_differences(settings, live, rebuilt, wait_s)
    return differences


async def _wait_for_live(
    live: psycopg.AsyncConnection[Any],
    topic: str,
    cut: Mapping[int, int],
    wait_s: float,
    projection: str = PROJECTION,
) -> list[str]:
    """Wait until the live checkpoints cover the cut; the lag left if they never do."""
    deadline = time.monotonic() + wait_s
    while True:
        checkpoints = await load_checkpoints(live, projection, topic)
        behind = {p: checkpoints.get(p, 0) for p, end in cut.items() if checkpoints.get(p, 0) < end}
        if not behind or time.monotonic() >= deadline:
            return [
                f"live projection {projection} is behind the journal {topic}: partition {p} "
                f"checkpoint {at} < {cut[p]}"
                for p, at in sorted(behind.items())
            ]
        await asyncio.sleep(0.25)


def _listing_differences(expected: ShowListing, actual: ShowListing) -> list[str]:
    show_id = expected.show_id
    found = [
        f"show {show_id}: {name} live {getattr(actual, name)!r} != journal "
        f"{getattr(expected, name)!r}"
        for name in (
            "name",
            "organizer",
            "starts_at",
            "hold_seconds",
            "sections",
            "zones",
            "seats_total",
            "created_at",
            "journal_partition",
            "journal_offset",
        )
        if getattr(actual, name) != getattr(expected, name)
    ]
    if actual.version < expected.version:
        found.append(f"show {show_id}: catalogue at v{actual.version}, journal v{expected.version}")
    elif actual.version == expected.version and actual.seats_available != expected.seats_available:
        found.append(
            f"show {show_id}: seats_available live {actual.seats_available} != journal "
            f"{expected.seats_available} at v{expected.version}"
        )
    return found


async def _seatmap_differences(
    settings: Settings,
    live: psycopg.AsyncConnection[Any],
    copy: psycopg.AsyncConnection[Any],
    listing: ShowListing,
) -> list[str]:
    show_id, version = listing.show_id, listing.version
    snapshot = await latest_snapshot(copy, show_id)
    if snapshot is None or snapshot.version != version:
        return [f"show {show_id}: the replay has no snapshot at v{version}"]
    try:
        actual = await seatmap_at(settings, live, show_id, version)
    except VersionNotFoundError as exc:
        return [f"show {show_id}: live seat map cannot reach v{version}: {exc}"]
    if actual is None:
        return [f"show {show_id}: no live seat map"]
    return describe_seatmap_differences(snapshot.seatmap(), actual)


def describe_seatmap_differences(expected: SeatMapView, actual: SeatMapView) -> list[str]:
    """What differs between two seat maps, in words (empty when equal)."""
    where = f"seat map {expected.show_id} v{expected.version}"
    found: list[str] = []
    if actual.version != expected.version or actual.show_id != expected.show_id:
        found.append(f"{where}: live is {actual.show_id} v{actual.version}")
    seats = sorted(
        seat
        for seat in expected.seats.keys() | actual.seats.keys()
        if expected.seats.get(seat) != actual.seats.get(seat)
    )
    if seats:
        shown = ", ".join(
            f"{seat} live {actual.seats.get(seat)} != {expected.seats.get(seat)}"
            for seat in seats[:5]
        )
        found.append(f"{where}: {len(seats)} seat(s) differ: {shown}")
    for zone in sorted(expected.zones.keys() | actual.zones.keys()):
        if expected.zones.get(zone) != actual.zones.get(zone):
            found.append(
                f"{where}: zone {zone} live {actual.zones.get(zone)} != {expected.zones.get(zone)}"
            )
    return found


def order_differences(
    replayed: dict[str, OrderView],
    live: dict[str, OrderView],
    cut_versions: dict[str, int],
    listed: dict[str, ShowListing],
    cut: dict[int, int],
) -> list[str]:
    """What differs between the replayed and the live orders, in words.

    A live order past the cut (its version beyond the replayed version of its show, or its
    show created after the cut) has simply moved on since the replay read the journal.
    """
    found: list[str] = []
    for order_id, expected in sorted(replayed.items()):
        actual = live.get(order_id)
        if actual is None:
            found.append(f"order {order_id}: journaled, missing from the live orders")
        elif actual != expected and actual.version <= cut_versions[expected.show_id]:
            found += [
                f"order {order_id}: {f.name} live {getattr(actual, f.name)!r} != journal "
                f"{getattr(expected, f.name)!r}"
                for f in dataclasses.fields(OrderView)
                if getattr(actual, f.name) != getattr(expected, f.name)
            ]
    for order_id, actual in sorted(live.items()):
        if order_id in replayed:
            continue
        if actual.show_id in cut_versions:
            before_cut = actual.version <= cut_versions[actual.show_id]
        else:
            listing = listed.get(actual.show_id)
            before_cut = listing is None or listing.journal_offset < cut.get(
                listing.journal_partition, 0
            )
        if before_cut:
            found.append(f"order {order_id}: in the live orders, never held in the journal")
    return found


# -- the chat views ------------------------------------------------------------------------------

# Each chat table: its key columns (the first names the stream that owns the row: a conversation
# or a user) and the columns compared. All of them derive from the journals alone.
CHAT_TABLES: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    (
        "conversations",
        ("conversation_id",),
        ("kind", "title", "creator", "started_at", "last_activity_at", "last_seq", "version"),
    ),
    ("conversation_members", ("conversation_id", "username"), ("last_read_seq",)),
    ("messages", ("conversation_id", "seq"), ("sender", "text", "sent_at", "client_msg_id")),
    ("social_streams", ("username",), ("version",)),
    ("buddies", ("username", "buddy"), ("since",)),
    ("blocks", ("username", "blocked"), ("since",)),
)
# Rows per table fetched when the views differ (the report lists only the first few anyway).
DIFFERENT_ROWS = 1000


async def chat_table_differences(
    conn: psycopg.AsyncConnection[Any],
    expected_schema: str,
    actual_schema: str,
    excused: Callable[[str, str], bool] = lambda table, stream: False,
) -> list[str]:
    """Every row of the chat tables that differs between two schemas of the same database
    ("actual" is the live side), in words; rows whose stream `excused(table, stream)` skipped."""
    found: list[str] = []
    for table, keys, columns in CHAT_TABLES:
        exp, act = sql.Identifier(expected_schema), sql.Identifier(actual_schema)

        def cols(alias: str, names: Sequence[str]) -> sql.Composable:
            return sql.SQL(", ").join(sql.Identifier(alias, n) for n in names)

        query = sql.SQL(
            "SELECT {ek}, {ak}, {ec}, {ac} FROM {exp}.{t} e FULL JOIN {act}.{t} a ON {on}"
            " WHERE {e0} IS NULL OR {a0} IS NULL OR ({ec}) IS DISTINCT FROM ({ac})"
            " ORDER BY {order} LIMIT %s"
        ).format(
            ek=cols("e", keys),
            ak=cols("a", keys),
            ec=cols("e", columns),
            ac=cols("a", columns),
            exp=exp,
            act=act,
            t=sql.Identifier(table),
            on=sql.SQL(" AND ").join(
                sql.SQL("{} = {}").format(sql.Identifier("e", k), sql.Identifier("a", k))
                for k in keys
            ),
            e0=sql.Identifier("e", keys[0]),
            a0=sql.Identifier("a", keys[0]),
            order=sql.SQL(", ").join(
                sql.SQL("coalesce({}, {})").format(sql.Identifier("e", k), sql.Identifier("a", k))
                for k in keys
            ),
        )
        cursor = await conn.execute(query, (DIFFERENT_ROWS,))
        width = len(keys)
        for row in await cursor.fetchall():
            expected_key, actual_key = row[:width], row[width : 2 * width]
            expected, actual = (
                row[2 * width : 2 * width + len(columns)],
                row[2 * width + len(columns) :],
            )
            key = expected_key if expected_key[0] is not None else actual_key
            if excused(table, str(key[0])):
                continue
            where = f"{table} {'/'.join(str(k) for k in key)}"
            if expected_key[0] is None:
                found.append(f"{where}: in the live view, not in the journal")
            elif actual_key[0] is None:
                found.append(f"{where}: journaled, missing from the live view")
            else:
                found += [
                    f"{where}: {name} live {a!r} != journal {e!r}"
                    for name, e, a in zip(columns, expected, actual, strict=True)
                    if e != a
                ]
    return found


def streams_after(
    settings: Settings, cut: Mapping[str, Mapping[int, int]], timeout_s: float
) -> set[str]:
    """The streams (the Kafka keys) with entries past the cut in these journals: whose live rows
    may rightly have moved on since the replay read them."""
    moved: set[str] = set()
    for topic, starts in cut.items():
        if not starts:
            continue
        for batch in JournalReader(settings, topic, starts, timeout_s).batches():
            moved.update(e.key.decode() for e in batch if e.key is not None)
    return moved


async def _chat_differences(
    settings: Settings, live: psycopg.AsyncConnection[Any], rebuilt: Rebuilt, wait_s: float
) -> list[str]:
    differences: list[str] = []
    for topic, cut in rebuilt.chat_cut.items():
        differences += await _wait_for_live(live, topic, cut, wait_s, CHAT_PROJECTION)
    moved = await asyncio.to_thread(streams_after, settings, rebuilt.chat_cut, 10.0)
    differences += await chat_table_differences(
        live, rebuilt.schema, settings.pg_schema, lambda table, stream: stream in moved
    )
    return differences


def run(
    settings: Settings,
    check: bool,
    say: Callable[[str], None] = print,
    resume: str | None = None,
    progress: TextIO | None = None,
) -> int:
    """`boxoffice replay [--verify] [--resume SCHEMA]`: rebuild (or continue an interrupted
    rebuild), report, compare; the process exit status. Progress lines go to `progress`."""
    schema = resume or replay_schema()

    async def go() -> int:
        say(
            f"{'resuming' if resume else 'replaying'} into schema {schema!r} "
            f"(database {settings.pg_database})"
        )
        rebuilt = await rebuild(settings, schema, resume=resume is not None, progress=progress)
        say(
            f"replayed {rebuilt.entries} journal entries into schema {rebuilt.schema!r}: "
            f"{rebuilt.shows} shows, {rebuilt.orders} orders, {rebuilt.conversations} "
            f"conversations, {rebuilt.messages} messages, {rebuilt.users} social streams"
        )
        for bad in rebuilt.poison:
            entry = bad.entry
            say(f"  skipped poison entry {entry.partition}@{entry.offset}: {bad.reason}")
        for topic, bad in rebuilt.chat_poison:
            entry = bad.entry
            say(f"  skipped poison entry {topic}[{entry.partition}]@{entry.offset}: {bad.reason}")
        if not check:
            return 0
        differences = await verify(settings, rebuilt)
        if not differences:
            say("verify: the live views agree with the journal")
            return 0
        say(f"verify: {len(differences)} difference(s) between the live views and the journal")
        for line in differences[:SHOWN_DIFFERENCES]:
            say(f"  {line}")
        if len(differences) > SHOWN_DIFFERENCES:
            say(f"  ... and {len(differences) - SHOWN_DIFFERENCES} more")
        return 1

    try:
        return asyncio.run(go())
    except KeyboardInterrupt:
        # Every batch committed is kept, with its offsets: nothing is lost by stopping here.
        say(f"interrupted: continue with `boxoffice replay --resume {schema}`")
        return 130
    except ReplayError as exc:
        say(f"replay failed: {exc}")
        return 2
    except (JournalUnavailableError, psycopg.OperationalError) as exc:
        say(f"replay failed: {exc} (continue with `boxoffice replay --resume {schema}`)")
        return 2
