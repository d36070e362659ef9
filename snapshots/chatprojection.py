"""The chat read side's fold: conversation and social journal entries in, rows out.

Conversations, their members with read markers, the history, buddies and blocks, and an
immutable conversation snapshot every N events or T seconds. `ConversationFold` holds what the
fold needs in memory (a cache of conversation views: the projector is the single writer of
its partitions' rows) and does no I/O; `decode_batch` sorts a batch's entries into events and
poison, and `write_batch` stores one batch's rows, the snapshots that fell due and the next
offsets of its partitions in one PostgreSQL transaction. The projector engine
(`processors.engine.ChatHistory`) and the replay tool run exactly this, as
`snapshots.projection` is run for ticketing.

Idempotent: an event at or below its stream's version (the cached view's, or the row's for a
user's social graph) is skipped, inserts ignore conflicts and upserts only move a row's
version forward, so a batch folded twice (a redelivery after a crash) changes nothing. After
a failed batch the caller drops the cache (`ConversationFold.forget`): it may hold what the
rolled-back transaction held.

Poison: an entry that does not decode, or whose event does not match its record's stream or
version, is returned by `decode_batch` to be dead-lettered before the checkpoint moves past
it. A value PostgreSQL refuses (text holding NUL, say) fails the batch's transaction; the
caller's poison guard isolates and parks it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from psycopg import AsyncConnection

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
from producers.codec import DecodeError
from producers.envelope import EventRecord
from producers.registries import CONVERSATIONS, SOCIAL
from snapshots import chat as store
from snapshots.cadence import SnapshotCadence
from snapshots.checkpoints import save_checkpoints

# The projection's name in `projection_offsets` (and the dead letters' origin-consumer).
PROJECTION = "chat"
# Views kept between batches; a miss costs one indexed read of the conversation's rows.
CACHED_VIEWS = 50_000

_CONVERSATION_EVENTS = (ConversationStarted, MessageSent, MemberAdded, MemberRemoved, MessagesRead)
_SOCIAL_EVENTS = (BuddyAdded, BuddyRemoved, UserBlocked, UserUnblocked)


class Message(Protocol):
    """A journal message, whichever client fetched it (the engine's `Entry`, say)."""

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


M = TypeVar("M", bound=Message)


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

    Pure apart from the clock: `project_conversations` loads missing views before folding
    and writes the changes after, so this is what the unit tests exercise.
    """

    def __init__(
        self,
        snapshot_every_events: int,
        snapshot_every_s: float,
        clock: Callable[[], float] = time.monotonic,
        cached: int = CACHED_VIEWS,
    ) -> None:
        self.cadence = SnapshotCadence(snapshot_every_events, snapshot_every_s)
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
        if self.cadence.full(pending.count):
            # Taken now, mid-batch, so that "every N events" is exact.
            self._ready.append(self._snapshot(cid))

    def due_snapshots(self) -> list[store.SnapshotRow]:
        """The snapshots owed: every N events of a conversation (taken as they came), and of
        each conversation whose oldest change not in a snapshot is T seconds old."""
        now = self.clock()
        due = [cid for cid, p in self.pending.items() if self.cadence.due(p.count, now - p.since)]
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


def decode(raw: bytes | None, social: bool) -> ConversationEvent | SocialEvent:
    """The event of a conversation (or, with `social`, a social) journal entry; DecodeError if
    it is not a sound one."""
    entry = EventRecord.decode(raw)
    event: ConversationEvent | SocialEvent
    if social:
        decoded = SOCIAL.from_dict(entry.event)
        if not isinstance(decoded, _SOCIAL_EVENTS):
            raise DecodeError(f"{type(decoded).__name__} is not a social event")
        event, stream = decoded, decoded.user
    else:
        decoded = CONVERSATIONS.from_dict(entry.event)
        if not isinstance(decoded, _CONVERSATION_EVENTS):
            raise DecodeError(f"{type(decoded).__name__} is not a conversation event")
        event, stream = decoded, decoded.conversation_id
    if stream != entry.stream_id or event.version != entry.version:
        raise DecodeError("the event does not match its record's stream or version")
    return event


@dataclass(slots=True)
class Batch(Generic[M]):
    """One batch's entries, decoded: conversation events (with where each sits in the
    journal), social events, and the entries that are poison with the reason."""

    conversations: list[tuple[ConversationEvent, int, int]] = field(default_factory=list)
    social: list[SocialEvent] = field(default_factory=list)
    poison: list[tuple[M, str]] = field(default_factory=list)


def decode_batch(entries: Iterable[M], social_topic: str) -> Batch[M]:
    """Sort entries (journal order within each partition) into events and poison; entries of
    `social_topic` are social, every other one a conversation entry."""
    batch: Batch[M] = Batch()
    for entry in entries:
        social = entry.topic == social_topic
        try:
            event = decode(entry.value, social)
        except DecodeError as exc:
            batch.poison.append((entry, f"undecodable: {exc}"))
            continue
        if isinstance(event, _SOCIAL_EVENTS):
            batch.social.append(event)
        else:
            batch.conversations.append((event, entry.partition, entry.offset))
    return batch


def next_offsets(entries: Iterable[Message]) -> dict[str, dict[int, int]]:
    """Per topic and partition, the offset after the last of the entries (journal order)."""
    after: dict[str, dict[int, int]] = {}
    for entry in entries:
        after.setdefault(entry.topic, {})[entry.partition] = entry.offset + 1
    return after


async def project_conversations(
    conn: AsyncConnection[Any],
    fold: ConversationFold,
    events: Sequence[tuple[ConversationEvent, int, int]],
) -> None:
    """Conversation events into the rows; missing views are read back from them first."""
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


async def project_social(conn: AsyncConnection[Any], events: Sequence[SocialEvent]) -> None:
    """Social events into the rows, each user's stream version guarding its graph."""
    versions = await store.social_versions(conn, {e.user for e in events})
    await store.write_social(conn, fold_social(versions, events))


async def write_batch(
    conn: AsyncConnection[Any],
    fold: ConversationFold,
    batch: Batch[Any],
    checkpoints: dict[str, dict[int, int]],
) -> None:
    """One batch in one transaction: its rows, the snapshots due and the next offsets.

    Its poison must be dead-lettered before: once the checkpoint moves past an entry, the
    entry is never met again. On success the cache is trimmed; on failure the caller drops it.
    """
    async with conn.transaction():
        if batch.conversations:
            await project_conversations(conn, fold, batch.conversations)
        if batch.social:
            await project_social(conn, batch.social)
        await store.insert_snapshots(conn, fold.due_snapshots())
        for topic, offsets in checkpoints.items():
            await save_checkpoints(conn, PROJECTION, topic, offsets)
    fold.trim()


async def write_due_snapshots(conn: AsyncConnection[Any], fold: ConversationFold) -> None:
    """The snapshots due by time while the journals are quiet."""
    due = fold.due_snapshots()
    if due:
        async with conn.transaction():
            await store.insert_snapshots(conn, due)
