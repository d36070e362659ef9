"""Seat maps at any version: the latest snapshot at or before it, plus the journal after it.

The journal is read straight from its partition (assign at an offset, read_committed, no
consumer group), from the snapshot's offset + 1 up to the wanted version or the end of the
partition. Reads of the journal block, so the async entry points run them in a thread.
Kafka unreachable for `timeout_s` raises producers.journal.JournalUnavailableError; the
latest snapshot alone (`latest_snapshot_view`) still answers then, stale.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import psycopg
from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from boxoffice.settings import Settings
from domain.ticketing.errors import JournalError
from domain.ticketing.views import SeatMapView
from producers.codec import DecodeError
from producers.journal import JournalUnavailableError
from producers.topics import SHOW_EVENTS
from snapshots.connections import Db, connection
from snapshots.database import conninfo
from snapshots.orders import show
from snapshots.projection import JournalEntry, decode_event
from snapshots.seatmaps import fold_event, latest_snapshot, seatmap_json

READ_BATCH = 2000


class VersionNotFoundError(LookupError):
    """The show exists but has not reached that version (yet)."""

    def __init__(self, show_id: str, version: int, current_version: int) -> None:
        super().__init__(f"show {show_id} is at version {current_version}, not {version}")
        self.show_id = show_id
        self.version = version
        self.current_version = current_version


VersionNotFound = VersionNotFoundError


def read_journal(
    settings: Settings, starts: Mapping[int, int], timeout_s: float = 10.0
) -> Iterator[list[JournalEntry]]:
    """Batches of the committed entries of the show journal, from `starts[partition]` up to
    the end each partition has when the reader gets there. Entries appended to a partition
    after its end was reached are not read.

    Raises JournalUnavailableError when nothing arrives for `timeout_s`.
    """
    if not starts:
        return
    topic = SHOW_EVENTS.name(settings)
    consumer = journal_consumer(settings, "journal-reader")
    try:
        yield from read_entries(consumer, topic, starts, timeout_s)
    finally:
        consumer.close()


def journal_consumer(settings: Settings, purpose: str) -> Consumer:
    """A consumer for reading journals by assignment (read_committed, no consumer group)."""
    return Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            # Never joined nor committed (assign only): librdkafka just wants a name.
            "group.id": f"{settings.topic_prefix}.{purpose}.{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
            # A start before the log start (were the journal ever trimmed) reads what is left,
            # never silently nothing.
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 20,
            # An unreachable broker is reported once, as JournalUnavailableError, rather than
            # logged to stderr every few milliseconds while the reader waits.
            "log_level": 2,
        }
    )


def read_entries(
    consumer: Consumer,
    topic: str,
    starts: Mapping[int, int],
    timeout_s: float,
    batch_size: int = READ_BATCH,
    *,
    ends: Mapping[int, int] | None = None,
) -> Iterator[list[JournalEntry]]:
    """Batches of the committed entries of `topic` through `consumer` (assigned here), from
    `starts[partition]` up to the end each partition has when the reader gets there, or, with
    `ends`, up to those offsets (exclusive). The reading loop of the time-travel reads and of
    replay (`snapshots.replay.JournalReader`).

    Raises JournalUnavailableError when nothing arrives for `timeout_s`.
    """
    reading = {p for p, start in starts.items() if ends is None or start < ends[p]}
    if not reading:
        return
    consumer.assign([TopicPartition(topic, p, starts[p]) for p in sorted(reading)])
    heard = time.monotonic()
    while reading:
        # consume() with a timeout waits for a full batch (and so the last, partial one of a
        # partition always costs the whole timeout); drain what is there instead, and block
        # (briefly) only when nothing is.
        messages = consumer.consume(batch_size, 0)
        if not messages:
            waited = consumer.poll(0.1)
            messages = [] if waited is None else [waited]
        # Only progress (an entry, or the end of a partition) counts as an answer: a client
        # error repeated every few milliseconds must not keep a reader waiting for ever.
        if any(_progress(m) for m in messages):
            heard = time.monotonic()
        elif time.monotonic() - heard > timeout_s:
            raise JournalUnavailableError(
                f"no answer from the journal {topic} within {timeout_s:.0f} s"
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
            if ends is not None:
                if offset >= ends[partition]:
                    reading.discard(partition)
                    continue
                if offset + 1 >= ends[partition]:
                    reading.discard(partition)
            batch.append(JournalEntry(partition, offset, message.key(), message.value()))
        if batch:
            yield batch


def _progress(message: Message) -> bool:
    err = message.error()
    return err is None or err.code() == KafkaError._PARTITION_EOF


def fold_from_journal(
    settings: Settings,
    view: SeatMapView,
    show_id: str,
    partition: int,
    start_offset: int,
    *,
    until_version: int | None = None,
    timeout_s: float = 10.0,
) -> SeatMapView:
    """Fold the show's events from `start_offset` into `view` (in place), up to
    `until_version` or the end of the partition; return the view.

    Entries that do not decode or fold are skipped, as the projector skipped them
    (dead-lettered), so every reader agrees on the map at every version.
    """
    key = show_id.encode()
    for batch in read_journal(settings, {partition: start_offset}, timeout_s):
        for entry in batch:
            if entry.key != key:
                continue
            try:
                event = decode_event(entry.value)
                if event.show_id == show_id:
                    fold_event(view, event)
            except (DecodeError, JournalError):
                continue
            if until_version is not None and view.version >= until_version:
                return view
    return view


async def latest_snapshot_view(db: Db, show_id: str) -> SeatMapView | None:
    """The newest snapshotted map of the show (no journal read): what to serve stale."""
    snapshot = await latest_snapshot(db, show_id)
    return None if snapshot is None else snapshot.seatmap()


async def current_seatmap(
    settings: Settings, db: Db, show_id: str, timeout_s: float = 10.0
) -> SeatMapView | None:
    """The map after the last committed event of the show; None for an unknown show."""
    async with connection(db) as conn:
        listing = await show(conn, show_id)
        if listing is None:
            return None
        snapshot = await latest_snapshot(conn, show_id)
    if snapshot is None:
        view, partition, start = SeatMapView(), listing.journal_partition, listing.journal_offset
    else:
        view, partition, start = (
            snapshot.seatmap(),
            snapshot.journal_partition,
            snapshot.journal_offset + 1,
        )
    return await asyncio.to_thread(
        fold_from_journal, settings, view, show_id, partition, start, timeout_s=timeout_s
    )


async def seatmap_at(
    settings: Settings,
    db: Db,
    show_id: str,
    version: int,
    timeout_s: float = 10.0,
    *,
    journal: bool = True,
) -> SeatMapView | None:
    """The map exactly as it stood right after event `version` (time travel).

    None for an unknown show; VersionNotFoundError past the show's current version;
    JournalUnavailableError when the journal must be read but does not answer, or at once
    when `journal` is False (Kafka is known to be down) and no snapshot has that version.
    """
    async with connection(db) as conn:
        listing = await show(conn, show_id)
        if listing is None:
            return None
        snapshot = await latest_snapshot(conn, show_id, at_or_before_version=version)
    if version < 1:
        raise VersionNotFoundError(show_id, version, listing.version)
    if snapshot is not None and snapshot.version == version:
        return snapshot.seatmap()
    if not journal:
        raise JournalUnavailableError(f"version {version} of show {show_id} needs the journal")
    if snapshot is None:
        view, partition, start = SeatMapView(), listing.journal_partition, listing.journal_offset
    else:
        view, partition, start = (
            snapshot.seatmap(),
            snapshot.journal_partition,
            snapshot.journal_offset + 1,
        )
    view = await asyncio.to_thread(
        fold_from_journal,
        settings,
        view,
        show_id,
        partition,
        start,
        until_version=version,
        timeout_s=timeout_s,
    )
    if view.version != version:
        raise VersionNotFoundError(show_id, version, view.version)
    return view


async def seatmap_document(
    settings: Settings, show_id: str, version: int | None = None
) -> dict[str, Any] | None:
    """`boxoffice seatmap SHOW [--version N]`: the contract's seat-map body, or None for an
    unknown show (VersionNotFoundError past its current version)."""
    async with await psycopg.AsyncConnection.connect(conninfo(settings), autocommit=True) as conn:
        if version is None:
            view = await current_seatmap(settings, conn, show_id)
        else:
            view = await seatmap_at(settings, conn, show_id, version)
    return None if view is None else seatmap_json(view)
