"""The chat read side in PostgreSQL (migration 0004): the projector's writes and the API's reads.

The projector (`snapshots.chatprojection`, run by `processors.engine`) owns one connection
and calls the write side inside its batch transaction; the API calls the read side with its
pool. Every write is idempotent: inserts ignore conflicts, upserts only move a row's version
forward, read markers only grow.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from domain.chat.views import ConversationView
from snapshots.connections import Db, connection


@dataclass(frozen=True, slots=True)
class MessageRow:
    conversation_id: str
    seq: int
    sender: str
    text: str
    sent_at: datetime
    client_msg_id: str


@dataclass(frozen=True, slots=True)
class ConversationRow:
    conversation_id: str
    kind: str
    title: str | None
    members: tuple[str, ...]
    last_seq: int
    version: int


@dataclass(frozen=True, slots=True)
class InboxRow:
    """One row of a user's conversation list."""

    conversation_id: str
    kind: str
    title: str | None
    members: tuple[str, ...]
    last_seq: int
    last_read_seq: int
    version: int
    last_activity_at: datetime
    last_message: MessageRow | None

    @property
    def unread(self) -> int:
        return max(0, self.last_seq - self.last_read_seq)


@dataclass(frozen=True, slots=True)
class Membership:
    """What the API needs before it lets a user read a conversation."""

    exists: bool
    member: bool
    version: int
    last_seq: int = 0


@dataclass(frozen=True, slots=True)
class SnapshotRow:
    conversation_id: str
    version: int
    state: dict[str, Any]
    journal_partition: int
    journal_offset: int


@dataclass(slots=True)
class SocialChanges:
    """The rows one batch of social events changes, already filtered by stream version."""

    versions: dict[str, int] = field(default_factory=dict)
    buddies_added: list[tuple[str, str, datetime]] = field(default_factory=list)
    buddies_removed: list[tuple[str, str]] = field(default_factory=list)
    blocks_added: list[tuple[str, str, datetime]] = field(default_factory=list)
    blocks_removed: list[tuple[str, str]] = field(default_factory=list)


_MESSAGE_COLUMNS = "conversation_id, seq, sender, text, sent_at, client_msg_id"


def _message(row: Sequence[Any]) -> MessageRow:
    return MessageRow(row[0], row[1], row[2], row[3], row[4], row[5])


# -- the API's reads ----------------------------------------------------------------------------


async def existing_users(db: Db, names: Collection[str]) -> set[str]:
    async with connection(db) as conn:
        cursor = await conn.execute(
            "SELECT username FROM users WHERE username = ANY(%s)", (list(names),)
        )
        return {row[0] for row in await cursor.fetchall()}


async def membership(db: Db, conversation_id: str, user: str) -> Membership:
    async with connection(db) as conn:
        cursor = await conn.execute(
            "SELECT c.version, c.last_seq, EXISTS (SELECT 1 FROM conversation_members m"
            "  WHERE m.conversation_id = c.conversation_id AND m.username = %s)"
            " FROM conversations c WHERE c.conversation_id = %s",
            (user, conversation_id),
        )
        row = await cursor.fetchone()
    if row is None:
        return Membership(exists=False, member=False, version=0)
    return Membership(exists=True, member=bool(row[2]), version=row[0], last_seq=row[1])


async def conversation(db: Db, conversation_id: str) -> ConversationRow | None:
    async with connection(db) as conn:
        cursor = await conn.execute(
            "SELECT c.conversation_id, c.kind, c.title, c.last_seq, c.version,"
            " ARRAY(SELECT m.username FROM conversation_members m"
            "  WHERE m.conversation_id = c.conversation_id ORDER BY m.username)"
            " FROM conversations c WHERE c.conversation_id = %s",
            (conversation_id,),
        )
        row = await cursor.fetchone()
    if row is None:
        return None
    return ConversationRow(row[0], row[1], row[2], tuple(row[5]), row[3], row[4])


async def versions(db: Db, conversation_ids: Collection[str]) -> dict[str, int]:
    async with connection(db) as conn:
        cursor = await conn.execute(
            "SELECT conversation_id, version FROM conversations WHERE conversation_id = ANY(%s)",
            (list(conversation_ids),),
        )
        return {row[0]: row[1] for row in await cursor.fetchall()}


@dataclass(frozen=True, slots=True)
class Peer:
    """Another member of a conversation, as the sender's blocks check sees them."""

    username: str
    social_version: int
    blocked_sender: bool


async def peers(db: Db, conversation_id: str, sender: str) -> tuple[int, tuple[Peer, ...]]:
    """The conversation's projected version, and its members other than ``sender`` with their
    social streams' projected versions and whether they have blocked ``sender``."""
    async with connection(db) as conn:
        cursor = await conn.execute(
            "SELECT c.version, m.username, COALESCE(s.version, 0), EXISTS (SELECT 1 FROM blocks b"
            "  WHERE b.username = m.username AND b.blocked = %(sender)s)"
            " FROM (SELECT %(id)s::text AS id) AS q"
            " LEFT JOIN conversations c ON c.conversation_id = q.id"
            " LEFT JOIN conversation_members m"
            "  ON m.conversation_id = q.id AND m.username <> %(sender)s"
            " LEFT JOIN social_streams s ON s.username = m.username",
            {"id": conversation_id, "sender": sender},
        )
        rows = await cursor.fetchall()
    version = (rows[0][0] or 0) if rows else 0
    return version, tuple(Peer(r[1], r[2], r[3]) for r in rows if r[1] is not None)


async def history_page(
    db: Db, conversation_id: str, before: int | None, limit: int
) -> list[MessageRow]:
    """Up to ``limit`` messages with seq below ``before``, newest first."""
    async with connection(db) as conn:
        cursor = await conn.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id = %s AND seq < %s"
            " ORDER BY seq DESC LIMIT %s",
            (conversation_id, before if before is not None else 2**62, limit),
        )
        return [_message(row) for row in await cursor.fetchall()]


async def messages_after(
    db: Db, conversation_id: str, after: int, upto: int | None, limit: int
) -> list[MessageRow]:
    """Messages with ``after < seq <= upto``, oldest first, at most ``limit`` of them."""
    async with connection(db) as conn:
        cursor = await conn.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages"
            " WHERE conversation_id = %s AND seq > %s AND seq <= %s ORDER BY seq LIMIT %s",
            (conversation_id, after, upto if upto is not None else 2**62, limit),
        )
        return [_message(row) for row in await cursor.fetchall()]


async def inbox(db: Db, user: str) -> list[InboxRow]:
    """``user``'s conversations, most recently active first."""
    async with connection(db) as conn:
        cursor = await conn.execute(
            "SELECT c.conversation_id, c.kind, c.title, c.last_seq, me.last_read_seq, c.version,"
            " c.last_activity_at,"
            " ARRAY(SELECT m.username FROM conversation_members m"
            "  WHERE m.conversation_id = c.conversation_id ORDER BY m.username),"
            " l.conversation_id, l.seq, l.sender, l.text, l.sent_at, l.client_msg_id"
            " FROM conversation_members me"
            " JOIN conversations c ON c.conversation_id = me.conversation_id"
            " LEFT JOIN messages l ON l.conversation_id = c.conversation_id AND l.seq = c.last_seq"
            " WHERE me.username = %s"
            " ORDER BY c.last_activity_at DESC, c.conversation_id",
            (user,),
        )
        rows = await cursor.fetchall()
    return [
        InboxRow(
            conversation_id=row[0],
            kind=row[1],
            title=row[2],
            last_seq=row[3],
            last_read_seq=row[4],
            version=row[5],
            last_activity_at=row[6],
            members=tuple(row[7]),
            last_message=None if row[8] is None else _message(row[8:14]),
        )
        for row in rows
    ]


async def conversations_of(db: Db, user: str) -> dict[str, int]:
    """The conversations ``user`` is a member of, with their versions."""
    async with connection(db) as conn:
        cursor = await conn.execute(
            "SELECT me.conversation_id, c.version FROM conversation_members me"
            " JOIN conversations c ON c.conversation_id = me.conversation_id"
            " WHERE me.username = %s",
            (user,),
        )
        return {row[0]: row[1] for row in await cursor.fetchall()}


async def last_read_seq(db: Db, conversation_id: str, user: str) -> int | None:
    async with connection(db) as conn:
        cursor = await conn.execute(
            "SELECT last_read_seq FROM conversation_members"
            " WHERE conversation_id = %s AND username = %s",
            (conversation_id, user),
        )
        row = await cursor.fetchone()
    return None if row is None else int(row[0])


async def buddies_of(db: Db, user: str) -> list[tuple[str, bool]]:
    """``user``'s buddies, each with whether that buddy has blocked ``user``."""
    async with connection(db) as conn:
        cursor = await conn.execute(
            "SELECT b.buddy, EXISTS (SELECT 1 FROM blocks x"
            "  WHERE x.username = b.buddy AND x.blocked = b.username)"
            " FROM buddies b WHERE b.username = %s ORDER BY b.buddy",
            (user,),
        )
        return [(row[0], bool(row[1])) for row in await cursor.fetchall()]


async def blocks_of(db: Db, user: str) -> list[str]:
    async with connection(db) as conn:
        cursor = await conn.execute(
            "SELECT blocked FROM blocks WHERE username = %s ORDER BY blocked", (user,)
        )
        return [row[0] for row in await cursor.fetchall()]


async def block_list(db: Db, user: str) -> tuple[int, frozenset[str]]:
    """`user`'s social stream version and whom they block, as one consistent read."""
    async with connection(db) as conn:
        cursor = await conn.execute(
            "SELECT COALESCE((SELECT version FROM social_streams WHERE username = %(u)s), 0),"
            " ARRAY(SELECT blocked FROM blocks WHERE username = %(u)s)",
            {"u": user},
        )
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0]), frozenset(row[1])


async def presence_viewers(db: Db, subject: str, among: Collection[str]) -> list[str]:
    """Who, of ``among``, may see ``subject``'s presence: lists them as a buddy, not blocked."""
    async with connection(db) as conn:
        cursor = await conn.execute(
            "SELECT b.username FROM buddies b WHERE b.buddy = %s AND b.username = ANY(%s)"
            " AND NOT EXISTS (SELECT 1 FROM blocks x"
            "  WHERE x.username = b.buddy AND x.blocked = b.username)",
            (subject, list(among)),
        )
        return [row[0] for row in await cursor.fetchall()]


async def has_buddy(db: Db, user: str, buddy: str) -> bool:
    async with connection(db) as conn:
        cursor = await conn.execute(
            "SELECT 1 FROM buddies WHERE username = %s AND buddy = %s", (user, buddy)
        )
        return await cursor.fetchone() is not None


async def has_blocked(db: Db, user: str, other: str) -> bool:
    async with connection(db) as conn:
        cursor = await conn.execute(
            "SELECT 1 FROM blocks WHERE username = %s AND blocked = %s", (user, other)
        )
        return await cursor.fetchone() is not None


async def social_version(db: Db, user: str) -> int:
    async with connection(db) as conn:
        cursor = await conn.execute(
            "SELECT version FROM social_streams WHERE username = %s", (user,)
        )
        row = await cursor.fetchone()
    return 0 if row is None else int(row[0])


async def social_versions_of(db: Db, users: Collection[str]) -> dict[str, int]:
    async with connection(db) as conn:
        cursor = await conn.execute(
            "SELECT username, version FROM social_streams WHERE username = ANY(%s)", (list(users),)
        )
        return {row[0]: row[1] for row in await cursor.fetchall()}


async def sees_presence(db: Db, viewer: str, subject: str) -> bool:
    return bool(await presence_viewers(db, subject, (viewer,)))


async def latest_snapshot(db: Db, conversation_id: str) -> SnapshotRow | None:
    async with connection(db) as conn:
        cursor = await conn.execute(
            "SELECT conversation_id, version, state, journal_partition, journal_offset"
            " FROM conversation_snapshots WHERE conversation_id = %s"
            " ORDER BY version DESC LIMIT 1",
            (conversation_id,),
        )
        row = await cursor.fetchone()
    return None if row is None else SnapshotRow(row[0], row[1], row[2], row[3], row[4])


# -- the projector's writes ---------------------------------------------------------------------


async def load_views(
    conn: AsyncConnection[Any], conversation_ids: Collection[str]
) -> dict[str, ConversationView]:
    """The stored views of these conversations, their rows locked until the batch commits.

    ``last_message`` is left empty: the projector never writes it back (the list joins the
    message at ``last_seq`` instead).
    """
    ids = list(conversation_ids)
    cursor = await conn.execute(
        "SELECT conversation_id, kind, title, version, last_activity_at, last_seq"
        " FROM conversations WHERE conversation_id = ANY(%s) FOR UPDATE",
        (ids,),
    )
    views = {
        row[0]: ConversationView(
            conversation_id=row[0],
            kind=row[1],
            title=row[2],
            members=set(),
            version=row[3],
            last_activity_at=row[4],
            last_seq=row[5],
        )
        for row in await cursor.fetchall()
    }
    if views:
        cursor = await conn.execute(
            "SELECT conversation_id, username, last_read_seq FROM conversation_members"
            " WHERE conversation_id = ANY(%s)",
            (list(views),),
        )
        for conversation_id, username, read in await cursor.fetchall():
            view = views[conversation_id]
            view.members.add(username)
            view.read[username] = read
    return views


async def insert_messages(conn: AsyncConnection[Any], messages: Sequence[MessageRow]) -> None:
    if not messages:
        return
    await conn.execute(
        f"INSERT INTO messages ({_MESSAGE_COLUMNS})"
        " SELECT * FROM unnest(%s::text[], %s::bigint[], %s::text[], %s::text[],"
        " %s::timestamptz[], %s::text[]) ON CONFLICT DO NOTHING",
        (
            [m.conversation_id for m in messages],
            [m.seq for m in messages],
            [m.sender for m in messages],
            [m.text for m in messages],
            [m.sent_at for m in messages],
            [m.client_msg_id for m in messages],
        ),
    )


async def upsert_conversations(
    conn: AsyncConnection[Any],
    views: Iterable[ConversationView],
    starts: Mapping[str, tuple[str, datetime]],
) -> None:
    """Insert or move forward these conversations; ``starts`` gives (creator, started_at) of
    those started in this batch (the others exist already, or lost their start to retention).
    """
    rows = list(views)
    if not rows:
        return
    unknown = ("", None)
    await conn.execute(
        "INSERT INTO conversations (conversation_id, kind, title, creator, started_at,"
        " last_activity_at, last_seq, version)"
        " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[],"
        " %s::timestamptz[], %s::timestamptz[], %s::bigint[], %s::bigint[])"
        " ON CONFLICT (conversation_id) DO UPDATE SET"
        " last_activity_at = EXCLUDED.last_activity_at, last_seq = EXCLUDED.last_seq,"
        " version = EXCLUDED.version"
        " WHERE conversations.version < EXCLUDED.version",
        (
            [v.conversation_id for v in rows],
            [v.kind for v in rows],
            [v.title for v in rows],
            [starts.get(v.conversation_id, unknown)[0] for v in rows],
            [starts.get(v.conversation_id, unknown)[1] or v.last_activity_at for v in rows],
            [v.last_activity_at for v in rows],
            [v.last_seq for v in rows],
            [v.version for v in rows],
        ),
    )


async def upsert_members(
    conn: AsyncConnection[Any], members: Sequence[tuple[str, str, int]]
) -> None:
    if not members:
        return
    await conn.execute(
        "INSERT INTO conversation_members (conversation_id, username, last_read_seq)"
        " SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[])"
        " ON CONFLICT (conversation_id, username) DO UPDATE"
        " SET last_read_seq = GREATEST(conversation_members.last_read_seq,"
        " EXCLUDED.last_read_seq)",
        ([m[0] for m in members], [m[1] for m in members], [m[2] for m in members]),
    )


async def delete_members(conn: AsyncConnection[Any], members: Sequence[tuple[str, str]]) -> None:
    if not members:
        return
    await conn.execute(
        "DELETE FROM conversation_members m USING unnest(%s::text[], %s::text[]) AS gone(c, u)"
        " WHERE m.conversation_id = gone.c AND m.username = gone.u",
        ([m[0] for m in members], [m[1] for m in members]),
    )


async def insert_snapshots(conn: AsyncConnection[Any], snapshots: Sequence[SnapshotRow]) -> None:
    if not snapshots:
        return
    await conn.execute(
        "INSERT INTO conversation_snapshots"
        " (conversation_id, version, state, journal_partition, journal_offset)"
        " SELECT * FROM unnest(%s::text[], %s::bigint[], %s::jsonb[], %s::integer[],"
        " %s::bigint[]) ON CONFLICT DO NOTHING",
        (
            [s.conversation_id for s in snapshots],
            [s.version for s in snapshots],
            [Jsonb(s.state) for s in snapshots],
            [s.journal_partition for s in snapshots],
            [s.journal_offset for s in snapshots],
        ),
    )


async def social_versions(conn: AsyncConnection[Any], users: Collection[str]) -> dict[str, int]:
    cursor = await conn.execute(
        "SELECT username, version FROM social_streams WHERE username = ANY(%s) FOR UPDATE",
        (list(users),),
    )
    return {row[0]: row[1] for row in await cursor.fetchall()}


async def write_social(conn: AsyncConnection[Any], changes: SocialChanges) -> None:
    pairs = (
        ("buddies", "buddy", changes.buddies_added),
        ("blocks", "blocked", changes.blocks_added),
    )
    for table, column, added in pairs:
        if added:
            # A pair already stored and added again in this batch was removed in between (the
            # domain adds only what is absent): the journal's latest add is its `since`.
            await conn.execute(
                f"INSERT INTO {table} (username, {column}, since)"
                " SELECT * FROM unnest(%s::text[], %s::text[], %s::timestamptz[])"
                f" ON CONFLICT (username, {column}) DO UPDATE SET since = EXCLUDED.since",
                ([a[0] for a in added], [a[1] for a in added], [a[2] for a in added]),
            )
    removals = (
        ("buddies", "buddy", changes.buddies_removed),
        ("blocks", "blocked", changes.blocks_removed),
    )
    for table, column, removed in removals:
        if removed:
            await conn.execute(
                f"DELETE FROM {table} t USING unnest(%s::text[], %s::text[]) AS gone(u, o)"
                f" WHERE t.username = gone.u AND t.{column} = gone.o",
                ([r[0] for r in removed], [r[1] for r in removed]),
            )
    if changes.versions:
        users = list(changes.versions)
        await conn.execute(
            "INSERT INTO social_streams (username, version)"
            " SELECT * FROM unnest(%s::text[], %s::bigint[])"
            " ON CONFLICT (username) DO UPDATE SET version = EXCLUDED.version"
            " WHERE social_streams.version < EXCLUDED.version",
            (users, [changes.versions[u] for u in users]),
        )
