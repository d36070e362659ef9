"""`python -m processors.chat_views`: the chat read side, folded from the chat and social journals.

A plain consume loop (aiokafka, one consumer group) projects every event into PostgreSQL:
the history, conversations and their members with read markers, buddies and blocks. Each
batch is one PostgreSQL transaction holding the rows *and* the next offsets of the
partitions it covers, so after a crash the projection resumes exactly where it stopped. The
writes are idempotent anyway (inserts ignore conflicts, upserts are guarded by the stream's
version), so a batch folded twice, by a deposed owner for instance, changes nothing.

Conversation views are cached between batches (the projector is the single writer of its
partitions' rows) and snapshotted, immutable, every N events or T seconds per conversation.

Poison: a message that cannot be decoded is parked on the dead-letter topic at once. Any
other failure of a batch (a text PostgreSQL refuses, a fold that raises) is retried a few
times, then the batch is applied event by event and the one event that still fails is parked
and skipped (`processors.poison`), so one bad event never stops the projection. After every
failed batch the cache is dropped and the partitions are read again from their checkpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeAlias

import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError

from boxoffice.settings import Settings, get_settings
from domain.chat.events import (
    BuddyAdded,
    BuddyRemoved,
    ConversationEvent,
    ConversationStarted,
    MemberAdded,
    MemberRemoved,
    MessageSent,
    MessagesRead,
    SocialEvent,
    UserBlocked,
    UserUnblocked,
)
from domain.chat.views import ConversationView, evolve_view
from processors.chat import CONVERSATIONS, SOCIAL
from processors.poison import Chunk, Origin, PoisonGuard
from producers.codec import DecodeError
from producers.deadletters import dead_letter_headers
from producers.envelope import EventRecord
from producers.topics import CHAT_EVENTS, DEAD_LETTERS, SOCIAL_EVENTS
from snapshots import chat as store
from snapshots.checkpoints import load_checkpoints, save_checkpoints
from snapshots.database import conninfo

log = logging.getLogger("boxoffice.chat_views")

PROJECTION = "chat"
BATCH = 2000
# Views kept between batches; a miss costs one indexed read of the conversation's rows.
CACHED_VIEWS = 50_000

_CONVERSATION_EVENTS = (ConversationStarted, MessageSent, MemberAdded, MemberRemoved, MessagesRead)
_SOCIAL_EVENTS = (BuddyAdded, BuddyRemoved, UserBlocked, UserUnblocked)


class Message(Protocol):
    """A journal message as aiokafka (`ConsumerRecord`) or the engine (`Entry`) hands it."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


Record: TypeAlias = Message


def _origin(record: Record) -> Origin:
    return Origin(record.topic, record.partition, record.offset)


@dataclass(slots=True)
class _Pending:
    """A conversation's events since its last snapshot."""

    count: int
    since: float
    partition: int
    offset: int


@dataclass(slots=True)
class ConversationChanges:
    """The rows one batch of conversation events changes."""

    messages: list[store.MessageRow] = field(default_factory=list)
    views: dict[str, ConversationView] = field(default_factory=dict)
    starts: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    members: set[tuple[str, str]] = field(default_factory=set)

    def member_rows(self) -> tuple[list[tuple[str, str, int]], list[tuple[str, str]]]:
        """(upserts, deletes) of the member rows touched, from the views' final state."""
        upserts: list[tuple[str, str, int]] = []
        deletes: list[tuple[str, str]] = []
        for conversation_id, user in sorted(self.members):
            view = self.views[conversation_id]
            if user in view.members:
                upserts.append((conversation_id, user, view.last_read_seq(user)))
            else:
                deletes.append((conversation_id, user))
        return upserts, deletes


class ConversationFold:
    """Folds conversation events into cached views and the row changes they imply.

    Pure apart from the clock: the loop loads missing views before folding and writes the
    changes after, so this is what the unit tests exercise.
    """

    def __init__(
        self,
        snapshot_every_events: int,
        snapshot_every_s: float,
        clock: Callable[[], float] = time.monotonic,
        cached: int = CACHED_VIEWS,
    ) -> None:
        self.snapshot_every_events = max(1, snapshot_every_events)
        self.snapshot_every_s = snapshot_every_s
        self.clock = clock
        self.cached = cached
        self.views: OrderedDict[str, ConversationView] = OrderedDict()
        self.pending: dict[str, _Pending] = {}
        self._ready: list[store.SnapshotRow] = []

    def missing(self, conversation_ids: Sequence[str]) -> set[str]:
        return {c for c in conversation_ids if c not in self.views}

    def load(self, views: dict[str, ConversationView]) -> None:
        self.views.update(views)

    def forget(self) -> None:
        """After a failed batch: the cache may hold changes that were rolled back."""
        self.views.clear()
        self.pending.clear()
        self._ready.clear()

    def apply(
        self,
        changes: ConversationChanges,
        event: ConversationEvent,
        partition: int,
        offset: int,
    ) -> None:
        cid = event.conversation_id
        view = self.views.get(cid)
        if view is not None and event.version <= view.version:
            return  # folded before: a redelivery
        view = evolve_view(view, event)
        self.views[cid] = view
        self.views.move_to_end(cid)
        changes.views[cid] = view
        match event:
            case ConversationStarted():
                changes.starts[cid] = (event.creator, event.started_at)
                changes.members.update((cid, m) for m in event.members)
            case MessageSent():
                changes.messages.append(
                    store.MessageRow(
                        cid, event.seq, event.sender, event.text, event.sent_at, event.client_msg_id
                    )
                )
                changes.members.add((cid, event.sender))
            case MemberAdded() | MemberRemoved() | MessagesRead():
                changes.members.add((cid, event.user))
        pending = self.pending.get(cid)
        if pending is None:
            pending = self.pending[cid] = _Pending(0, self.clock(), partition, offset)
        pending.count += 1
        pending.partition, pending.offset = partition, offset
        if pending.count >= self.snapshot_every_events:
            # Taken now, mid-batch, so that "every N events" is exact.
            self._ready.append(self._snapshot(cid))

    def due_snapshots(self) -> list[store.SnapshotRow]:
        """The snapshots owed: every N events of a conversation (taken as they came), and of
        each conversation whose oldest change not in a snapshot is T seconds old."""
        now = self.clock()
        due = [cid for cid, p in self.pending.items() if now - p.since >= self.snapshot_every_s]
        rows, self._ready = self._ready, []
        rows.extend(self._snapshot(cid) for cid in due)
        return rows

    def _snapshot(self, cid: str) -> store.SnapshotRow:
        pending = self.pending.pop(cid)
        view = self.views[cid]
        return store.SnapshotRow(
            cid, view.version, snapshot_state(view), pending.partition, pending.offset
        )

    def trim(self) -> None:
        """Forget the least recently used views beyond the cap, never one owed a snapshot."""
        excess = len(self.views) - self.cached
        if excess <= 0:
            return
        for cid in list(self.views):
            if excess <= 0:
                break
            if cid not in self.pending:
                del self.views[cid]
                excess -= 1


def snapshot_state(view: ConversationView) -> dict[str, Any]:
    return {
        "conversation_id": view.conversation_id,
        "kind": view.kind,
        "title": view.title,
        "members": sorted(view.members),
        "read": dict(sorted(view.read.items())),
        "last_seq": view.last_seq,
        "version": view.version,
        "last_activity_at": view.last_activity_at.isoformat(),
    }


def fold_social(versions: dict[str, int], events: Sequence[SocialEvent]) -> store.SocialChanges:
    """The social rows a batch changes; ``versions`` (each user's stream version) moves on.

    Only the final state of each pair is written, so an add and a remove of the same pair in
    one batch end as the journal says whatever order the statements run in.
    """
    buddies: dict[tuple[str, str], datetime | None] = {}
    blocks: dict[tuple[str, str], datetime | None] = {}
    changes = store.SocialChanges()
    for event in events:
        if event.version <= versions.get(event.user, 0):
            continue
        versions[event.user] = changes.versions[event.user] = event.version
        match event:
            case BuddyAdded():
                buddies[(event.user, event.buddy)] = event.added_at
            case BuddyRemoved():
                buddies[(event.user, event.buddy)] = None
            case UserBlocked():
                blocks[(event.user, event.blocked)] = event.blocked_at
            case UserUnblocked():
                blocks[(event.user, event.blocked)] = None
    for pair, since in buddies.items():
        if since is None:
            changes.buddies_removed.append(pair)
        else:
            changes.buddies_added.append((*pair, since))
    for pair, since in blocks.items():
        if since is None:
            changes.blocks_removed.append(pair)
        else:
            changes.blocks_added.append((*pair, since))
    return changes


class ChatViews:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.chat_topic = CHAT_EVENTS.name(settings)
        self.social_topic = SOCIAL_EVENTS.name(settings)
        self.dead_letters = DEAD_LETTERS.name(settings)
        self.fold = ConversationFold(settings.snapshot_every_events, settings.snapshot_every_s)
        self.stopping = asyncio.Event()
        self.conn: psycopg.AsyncConnection[Any] | None = None
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self.guard: PoisonGuard[Record] = PoisonGuard(_origin, self._park)
        self.projected = 0

    # -- lifecycle -------------------------------------------------------------------------------

    async def run(self) -> None:
        self.conn = await self._connect()
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.kafka_bootstrap, acks="all", enable_idempotence=True
        )
        await self.producer.start()
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            group_id=f"{self.settings.topic_prefix}.chatviews",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # Events are journaled in the decider's transactions: only committed ones exist.
            isolation_level="read_committed",
            max_partition_fetch_bytes=4 * 1024 * 1024,
            # Partitions added to the journals are noticed (and assigned) within seconds.
            metadata_max_age_ms=10_000,
        )
        await self.consumer.start()
        # Subscribing before the broker lists a just-created topic gets an empty assignment
        # that is only revisited at the next metadata refresh.
        while not self.stopping.is_set() and not {self.chat_topic, self.social_topic} <= set(
            await self.consumer.topics()
        ):
            log.info("waiting for %s and %s to exist", self.chat_topic, self.social_topic)
            await asyncio.sleep(0.5)
        self.consumer.subscribe([self.chat_topic, self.social_topic], listener=_Rebalance(self))
        log.info("projecting %s and %s", self.chat_topic, self.social_topic)
        try:
            while not self.stopping.is_set():
                batches = await self.consumer.getmany(timeout_ms=200, max_records=BATCH)
                records = [r for rs in batches.values() for r in rs]
                if records or self.fold.pending:
                    await self.guard.run(records, self.apply_chunk, self._rewind)
        finally:
            with contextlib.suppress(Exception):
                await self.consumer.stop()
            with contextlib.suppress(Exception):
                await self.producer.stop()
            with contextlib.suppress(Exception):
                await self.conn.close()
            log.info("stopped after %d events", self.projected)

    def stop(self) -> None:
        self.stopping.set()

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        while True:
            try:
                return await psycopg.AsyncConnection.connect(
                    conninfo(self.settings), autocommit=True
                )
            except psycopg.OperationalError as exc:
                log.warning("PostgreSQL is not reachable (%s); retrying", exc)
                await asyncio.sleep(1)

    async def seek_to_checkpoints(self, partitions: Sequence[TopicPartition]) -> None:
        assert self.conn is not None and self.consumer is not None
        fresh: list[TopicPartition] = []
        for topic in {tp.topic for tp in partitions}:
            saved = await load_checkpoints(self.conn, PROJECTION, topic)
            for tp in partitions:
                if tp.topic != topic:
                    continue
                if tp.partition in saved:
                    self.consumer.seek(tp, saved[tp.partition])
                else:
                    fresh.append(tp)
        if fresh:
            await self.consumer.seek_to_beginning(*fresh)

    async def _rewind(self) -> None:
        """Back to the last checkpoint: the cache and the positions may be ahead of it."""
        self.fold.forget()
        assert self.consumer is not None
        while not self.stopping.is_set():
            try:
                if self.conn is None or self.conn.closed or self.conn.broken:
                    self.conn = await self._connect()
                await self.seek_to_checkpoints(list(self.consumer.assignment()))
                return
            except psycopg.Error as again:
                log.error("cannot resume yet: %s", again)
                await asyncio.sleep(1)

    # -- one batch -------------------------------------------------------------------------------

    async def apply_chunk(self, chunk: Chunk[Record]) -> None:
        """One chunk of the guard: its rows and the next offsets in one transaction.

        The per-batch function of both drivers: this loop and the engine's Faust agent.
        """
        assert self.conn is not None
        if not chunk.apply and not chunk.skip:
            await self._snapshots_only()
            return
        chat: list[tuple[ConversationEvent, int, int]] = []
        social: list[SocialEvent] = []
        for record in chunk.apply:
            try:
                event = self._decode(record)
            except DecodeError as exc:
                # Parked before the checkpoint moves past it: at worst twice, never lost.
                await self.guard.park_now(record, f"undecodable: {exc}")
                continue
            if isinstance(event, _SOCIAL_EVENTS):
                social.append(event)
            else:
                chat.append((event, record.partition, record.offset))
        next_offsets: dict[str, dict[int, int]] = {}
        for record in (*chunk.apply, *chunk.skip):
            next_offsets.setdefault(record.topic, {})[record.partition] = record.offset + 1
        async with self.conn.transaction():
            if chat:
                await self._project_conversations(chat)
            if social:
                await self._project_social(social)
            await store.insert_snapshots(self.conn, self.fold.due_snapshots())
            for topic, offsets in next_offsets.items():
                await save_checkpoints(self.conn, PROJECTION, topic, offsets)
        self.fold.trim()
        self.projected += len(chunk.apply)

    def _decode(self, record: Record) -> ConversationEvent | SocialEvent:
        entry = EventRecord.decode(record.value)
        event: ConversationEvent | SocialEvent
        if record.topic == self.chat_topic:
            decoded = CONVERSATIONS.from_dict(entry.event)
            if not isinstance(decoded, _CONVERSATION_EVENTS):
                raise DecodeError(f"{type(decoded).__name__} is not a conversation event")
            event, stream = decoded, decoded.conversation_id
        else:
            decoded = SOCIAL.from_dict(entry.event)
            if not isinstance(decoded, _SOCIAL_EVENTS):
                raise DecodeError(f"{type(decoded).__name__} is not a social event")
            event, stream = decoded, decoded.user
        if stream != entry.stream_id or event.version != entry.version:
            raise DecodeError("the event does not match its record's stream or version")
        return event

    async def _project_conversations(
        self, events: list[tuple[ConversationEvent, int, int]]
    ) -> None:
        assert self.conn is not None
        missing = self.fold.missing([e.conversation_id for e, _, _ in events])
        if missing:
            self.fold.load(await store.load_views(self.conn, missing))
        changes = ConversationChanges()
        for event, partition, offset in events:
            self.fold.apply(changes, event, partition, offset)
        await store.insert_messages(self.conn, changes.messages)
        await store.upsert_conversations(self.conn, changes.views.values(), changes.starts)
        upserts, deletes = changes.member_rows()
        await store.upsert_members(self.conn, upserts)
        await store.delete_members(self.conn, deletes)

    async def _project_social(self, events: list[SocialEvent]) -> None:
        assert self.conn is not None
        versions = await store.social_versions(self.conn, {e.user for e in events})
        await store.write_social(self.conn, fold_social(versions, events))

    async def _snapshots_only(self) -> None:
        assert self.conn is not None
        due = self.fold.due_snapshots()
        if due:
            async with self.conn.transaction():
                await store.insert_snapshots(self.conn, due)

    async def _park(self, record: Record, reason: str, attempts: int) -> None:
        assert self.producer is not None
        log.warning(
            "dead-lettering %s[%s]@%s: %s", record.topic, record.partition, record.offset, reason
        )
        headers = dead_letter_headers(
            consumer=PROJECTION,
            reason=reason,
            attempts=attempts,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
        )
        while True:
            try:
                await self.producer.send_and_wait(
                    self.dead_letters, value=record.value, key=record.key, headers=headers
                )
                return
            except KafkaError as exc:
                # Never skip a record that is not parked yet: wait for Kafka to come back.
                if self.stopping.is_set():
                    raise
                log.warning("cannot dead-letter yet (%s); retrying", exc)
                await asyncio.sleep(1)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, views: ChatViews) -> None:
        self.views = views

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        # Whoever gets these partitions next owns their rows; our cached views may go stale.
        self.views.fold.forget()

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self.views.seek_to_checkpoints(assigned)
        log.info("assigned %s", sorted((tp.topic, tp.partition) for tp in assigned))


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    views = ChatViews(get_settings())

    async def run() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, views.stop)
        await views.run()

    asyncio.run(run())


if __name__ == "__main__":
    main()
