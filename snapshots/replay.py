"""Replay: rebuild every view from the journals alone, and check the live ones.

`rebuild` reads every journal (the show journal, then the conversation and social journals;
every partition, from offset 0 to the end it has when replay reaches it) through the very
folds and SQL the projectors run, into a fresh PostgreSQL schema with the migrations applied:
the catalogue, the orders and a snapshot of every seat map at its latest version; the
conversations, members with read markers, history, buddies and blocks.

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
import secrets
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

import psycopg
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from psycopg import sql

from boxoffice.settings import Settings
from domain.chat.events import ConversationEvent, SocialEvent
from domain.ticketing.views import OrderView, SeatMapView
from processors.chat_views import PROJECTION as CHAT_PROJECTION
from processors.chat_views import ConversationChanges, ConversationFold, fold_social
from producers.codec import DecodeError
from producers.envelope import EventRecord
from producers.journal import JournalUnavailableError
from producers.registries import CONVERSATIONS, SOCIAL
from producers.topics import CHAT_EVENTS, SHOW_EVENTS, SOCIAL_EVENTS, partitions_of
from snapshots import chat as store
from snapshots.checkpoints import load_checkpoints, save_checkpoints
from snapshots.database import conninfo, migrate
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
from snapshots.timetravel import VersionNotFoundError, seatmap_at

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
        self.consumer = Consumer(
            {
                "bootstrap.servers": settings.kafka_bootstrap,
                # Never joined nor committed (assign only): librdkafka just wants a name.
                "group.id": f"{settings.topic_prefix}.replay.{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": 20,
                "log_level": 2,
            }
        )
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
        reading = {p for p, start in self.starts.items() if start < self.ends[p]}
        try:
            if not reading:
                return
            self.consumer.assign(
                [TopicPartition(self.topic, p, self.starts[p]) for p in sorted(reading)]
            )
            heard = time.monotonic()
            while reading:
                messages = self.consumer.consume(self.batch_size, 0.1)
                if messages:
                    heard = time.monotonic()
                elif time.monotonic() - heard > self.timeout_s:
                    raise JournalUnavailableError(
                        f"no answer from the journal {self.topic} within {self.timeout_s:.0f} s"
                    )
                batch: list[JournalEntry] = []
                for message in messages:
                    partition = message.partition()
                    err = message.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            reading.discard(partition)
                        elif err.fatal():
                            raise JournalUnavailableError(str(err))
                        continue
                    offset = message.offset()
                    if partition not in reading or offset is None:
                        continue
                    if offset >= self.ends[partition]:
                        reading.discard(partition)
                        continue
                    if offset + 1 >= self.ends[partition]:
                        reading.discard(partition)
                    batch.append(JournalEntry(partition, offset, message.key(), message.value()))
                if batch:
                    yield batch
        finally:
            self.close()


async def _batches(
    reader: JournalReader, progress: Progress
) -> AsyncGenerator[list[JournalEntry], None]:
    """The reader's batches, the next one read (in a thread) while the caller folds this one."""
    it = reader.batches()
    ahead = asyncio.ensure_future(asyncio.to_thread(next, it, None))
    try:
        while (batch := await ahead) is not None:
            ahead = asyncio.ensure_future(asyncio.to_thread(next, it, None))
            yield batch
            progress.advance(batch)
        progress.close()
    finally:
        if not ahead.done():
            with contextlib.suppress(Exception):
                await ahead
        it.close()


class Progress:
    """One carriage-return line per journal on `out`: entries done / total, entries/s, ETA.

    Counted in offsets (a transaction marker takes one too), so done reaches total exactly."""

    def __init__(
        self,
        label: str,
        reader: JournalReader,
        out: TextIO | None,
        every_s: float = PROGRESS_EVERY_S,
    ) -> None:
        self.label = self.topic = label
        self.out = out
        self.every_s = every_s
        self.total = reader.total
        self.starts = dict(reader.starts)
        self.at = dict(reader.starts)
        self.entries = 0
        self.began = time.monotonic()
        self.drawn = 0.0

    @property
    def done(self) -> int:
        return sum(self.at[p] - self.starts[p] for p in self.at)

    def advance(self, batch: Sequence[JournalEntry]) -> None:
        for entry in batch:
            self.at[entry.partition] = entry.offset + 1
        self.entries += len(batch)
        now = time.monotonic()
        if now - self.drawn >= self.every_s:
            self.drawn = now
            self._draw(self.done, final=False)

    def close(self) -> None:
        self._draw(self.total, final=True)

    def _draw(self, done: int, final: bool) -> None:
        if self.out is None:
            return
        elapsed = max(time.monotonic() - self.began, 1e-6)
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


class _Budget:
    """`stop_after`: an interruption after that many entries, at a batch boundary (for tests)."""

    def __init__(self, schema: str, stop_after: int | None, batch_size: int) -> None:
        self.schema = schema
        self.batch_size = batch_size
        self.left = stop_after
        self.spent = 0
        self.journals: list[JournalStats] = []

    def read(self, progress: Progress) -> None:
        elapsed = time.monotonic() - progress.began
        self.journals.append(JournalStats(progress.topic, progress.entries, elapsed))

    def spend(self, entries: int) -> None:
        self.spent += entries
        if self.left is not None and self.spent >= self.left:
            raise ReplayInterruptedError(self.schema, self.spent)


# -- rebuilding ------------------------------------------------------------------------------------


async def rebuild(
    settings: Settings,
    schema: str | None = None,
    timeout_s: float = 10.0,
    *,
    resume: bool = False,
    progress: TextIO | None = None,
    stop_after: int | None = None,
    batch_size: int = READ_BATCH,
) -> Rebuilt:
    """Fold every journal into a fresh schema (created and migrated here), or, with `resume`,
    continue an interrupted replay into `schema` from the offsets it had committed."""
    if resume and (
        schema is None or not await asyncio.to_thread(is_replay_schema, settings, schema)
    ):
        raise ReplayError(f"there is no replay schema {schema!r} to resume")
    schema = schema or replay_schema()
    target = settings.model_copy(update={"pg_schema": schema})
    await asyncio.to_thread(migrate, target)
    budget = _Budget(schema, stop_after, batch_size)
    async with await psycopg.AsyncConnection.connect(conninfo(target), autocommit=True) as conn:
        poison, cut = await _replay_shows(settings, conn, timeout_s, progress, budget)
        chat_poison, chat_cut = await _replay_chat(settings, conn, timeout_s, progress, budget)
        cursor = await conn.execute(
            "SELECT (SELECT count(*) FROM shows), (SELECT count(*) FROM orders),"
            " (SELECT count(*) FROM conversations), (SELECT count(*) FROM messages),"
            " (SELECT count(*) FROM social_streams)"
        )
        counts = await cursor.fetchone()
    assert counts is not None
    return Rebuilt(
        schema=schema,
        entries=budget.spent,
        shows=counts[0],
        orders=counts[1],
        poison=tuple(poison),
        cut=cut,
        chat_cut=chat_cut,
        chat_poison=tuple(chat_poison),
        conversations=counts[2],
        messages=counts[3],
        users=counts[4],
        journals=tuple(budget.journals),
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


async def _replay_shows(
    settings: Settings,
    conn: psycopg.AsyncConnection[Any],
    timeout_s: float,
    out: TextIO | None,
    budget: _Budget,
) -> tuple[list[Poison], dict[int, int]]:
    """The show journal through the ticketing projector's fold and writes, recovering as it does
    from the checkpoints and snapshots already in the schema."""
    topic = SHOW_EVENTS.name(settings)
    partitions = (await asyncio.to_thread(partitions_of, settings, [topic]))[topic]
    # Snapshots where the projector must have them (a new show), every few seconds for a
    # resume, and at the end.
    projection = Projection(snapshot_every_events=2**62, snapshot_every_s=RESUME_SNAPSHOT_S)
    checkpoints = await load_checkpoints(conn, PROJECTION, topic)
    starts: dict[int, int] = {}
    for partition in partitions:
        restored = await shows_to_restore(conn, partition)
        for listing, snapshot in restored:
            projection.adopt(listing, snapshot)
        starts[partition] = seek_offset(checkpoints.get(partition, 0), restored)
    reader = await asyncio.to_thread(
        JournalReader, settings, topic, starts, timeout_s, budget.batch_size
    )
    poison: list[Poison] = []
    progress = Progress(topic, reader, out)
    async with contextlib.aclosing(_batches(reader, progress)) as batches:
        async for batch in batches:
            poison += await fold_batch(projection, conn, batch, checkpoints)
            await write(conn, projection.take_writes(), topic)
            projection.settle()
            budget.spend(len(batch))
    await write(conn, projection.take_writes(force_snapshots=True), topic)
    budget.read(progress)
    # Every partition, read or empty: whatever comes after the cut moved on after the replay.
    done = await load_checkpoints(conn, PROJECTION, topic)
    return poison, {p: done.get(p, 0) for p in partitions}


async def _replay_chat(
    settings: Settings,
    conn: psycopg.AsyncConnection[Any],
    timeout_s: float,
    out: TextIO | None,
    budget: _Budget,
) -> tuple[list[tuple[str, Poison]], dict[str, dict[int, int]]]:
    """The conversation and social journals through the chat projector's folds and SQL: rows
    and checkpoints in one transaction per batch, views cached between batches and read back
    from the rows when missing (after a resume, say)."""
    fold = ConversationFold(settings.snapshot_every_events, settings.snapshot_every_s)
    poison: list[tuple[str, Poison]] = []
    cut: dict[str, dict[int, int]] = {}
    for journal in (CHAT_EVENTS, SOCIAL_EVENTS):
        topic = journal.name(settings)
        social = journal is SOCIAL_EVENTS
        partitions = (await asyncio.to_thread(partitions_of, settings, [topic]))[topic]
        checkpoints = await load_checkpoints(conn, CHAT_PROJECTION, topic)
        starts = {p: checkpoints.get(p, 0) for p in partitions}
        reader = await asyncio.to_thread(
            JournalReader, settings, topic, starts, timeout_s, budget.batch_size
        )
        progress = Progress(topic, reader, out)
        async with contextlib.aclosing(_batches(reader, progress)) as batches:
            async for batch in batches:
                chat: list[tuple[ConversationEvent, int, int]] = []
                socials: list[SocialEvent] = []
                for entry in batch:
                    try:
                        event = decode_chat(entry.value, social)
                    except DecodeError as exc:
                        poison.append((topic, Poison(entry, f"undecodable: {exc}")))
                        continue
                    if isinstance(event, SocialEvent):
                        socials.append(event)
                    else:
                        chat.append((event, entry.partition, entry.offset))
                next_offsets = {entry.partition: entry.offset + 1 for entry in batch}
                async with conn.transaction():
                    if chat:
                        await project_conversations(conn, fold, chat)
                    if socials:
                        versions = await store.social_versions(conn, {e.user for e in socials})
                        await store.write_social(conn, fold_social(versions, socials))
                    await store.insert_snapshots(conn, fold.due_snapshots())
                    await save_checkpoints(conn, CHAT_PROJECTION, topic, next_offsets)
                fold.trim()
                budget.spend(len(batch))
        budget.read(progress)
        done = await load_checkpoints(conn, CHAT_PROJECTION, topic)
        cut[topic] = {p: done.get(p, 0) for p in partitions}
    return poison, cut


def decode_chat(raw: bytes | None, social: bool) -> ConversationEvent | SocialEvent:
    """The event of a conversation (or, with `social`, a social) journal entry, checked as the
    chat projector checks it; DecodeError if it is not a sound one."""
    entry = EventRecord.decode(raw)
    # PostgreSQL text cannot hold NUL: the projector parks such an event (PostgreSQL refuses
    # it); here it is poison at once rather than a failed replay.
    if raw is not None and b"\\u0000" in raw and _has_nul(entry.event):
        raise DecodeError("a string holds a NUL character")
    event: ConversationEvent | SocialEvent
    if social:
        decoded = SOCIAL.from_dict(entry.event)
        if not isinstance(decoded, SocialEvent):
            raise DecodeError(f"{type(decoded).__name__} is not a social event")
        event, stream = decoded, decoded.user
    else:
        decoded = CONVERSATIONS.from_dict(entry.event)
        if not isinstance(decoded, ConversationEvent):
            raise DecodeError(f"{type(decoded).__name__} is not a conversation event")
        event, stream = decoded, decoded.conversation_id
    if stream != entry.stream_id or event.version != entry.version:
        raise DecodeError("the event does not match its record's stream or version")
    return event


async def project_conversations(
    conn: psycopg.AsyncConnection[Any],
    fold: ConversationFold,
    events: Sequence[tuple[ConversationEvent, int, int]],
) -> None:
    """One batch of conversation events into the rows, by the projector's fold and SQL."""
    missing = fold.missing([e.conversation_id for e, _, _ in events])
    if missing:
        fold.load(await store.load_views(conn, missing))
    changes = ConversationChanges()
    for event, partition, offset in events:
        fold.apply(changes, event, partition, offset)
    await store.insert_messages(conn, changes.messages)
    await store.upsert_conversations(conn, changes.views.values(), changes.starts)
    upserts, deletes = changes.member_rows()
    await store.upsert_members(conn, upserts)
    await store.delete_members(conn, deletes)


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
