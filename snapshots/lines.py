"""The lines projection: waitlist entries, waiting-room members and each show's line counters.

Folded by `snapshots.projection` (the ticketing views) from the show journal and written in
the same transaction as the catalogue, orders and checkpoints, so a show's line rows are
always at its `shows.version`. `LineFold` keeps only per-show counters in memory (how many
entries ever joined, how many wait now); rows go out as they are made and are never read back
by the fold. The API loads a show's rows once (`load_line`) into the domain's own Waitlist
and WaitingRoom, which answer positions in O(log n), and keeps them current from the journal.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import orjson
from psycopg import AsyncConnection

from domain.ticketing.events import (
    Event,
    LineEvent,
    QueueJoined,
    ShowCreated,
    WaitlistJoined,
    WaitlistLeft,
    WaitlistOffered,
)
from domain.ticketing.queue import QueueSpec
from snapshots.connections import Db, connection


@dataclass(frozen=True, slots=True)
class LineCounts:
    """A show's row in `show_lines`: its waiting room as created, and the line's counters."""

    show_id: str
    queue: QueueSpec | None
    queue_seed: str
    waiting: int
    joins: int
    version: int


@dataclass(frozen=True, slots=True)
class EntryRow:
    entry_id: str
    show_id: str
    seq: int
    user: str
    quantity: int
    section: str | None
    zone: str | None
    offer_order_id: str
    status: str
    order_id: str | None
    joined_at: datetime
    version: int


@dataclass(frozen=True, slots=True)
class EntryChange:
    """An entry stopped waiting (left, or offered `order_id`) at `version`."""

    entry_id: str
    status: str
    order_id: str | None
    version: int


@dataclass(frozen=True, slots=True)
class MemberRow:
    show_id: str
    user: str
    early: bool
    position: int | None
    joined_at: datetime
    version: int


@dataclass(slots=True)
class LineWrites:
    lines: dict[str, LineCounts] = field(default_factory=dict)
    entries: dict[str, EntryRow] = field(default_factory=dict)
    changes: dict[str, EntryChange] = field(default_factory=dict)
    members: list[MemberRow] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.lines or self.entries or self.changes or self.members)


class LineFold:
    """The in-memory side of the lines projection: counters per show, rows to write."""

    def __init__(self) -> None:
        self._counts: dict[str, LineCounts] = {}
        self.pending = LineWrites()

    def needs(self, events: Iterable[Event]) -> set[str]:
        """The shows whose line events these are and whose counters are not in memory: load
        them (`line_counts`) and `adopt` them before folding."""
        created = {e.show_id for e in events if isinstance(e, ShowCreated)}
        return {
            e.show_id
            for e in events
            if isinstance(e, LineEvent)
            and e.show_id not in self._counts
            and e.show_id not in created
        }

    def adopt(self, show_id: str, counts: LineCounts | None) -> None:
        """Take a show's counters as stored (None: it has no row, so no line yet)."""
        if show_id not in self._counts:
            self._counts[show_id] = counts or LineCounts(show_id, None, "", 0, 0, 0)

    def forget(self, show_ids: Collection[str]) -> None:
        for show_id in show_ids:
            self._counts.pop(show_id, None)

    def apply(self, event: Event) -> None:
        """Fold one event the seat map and orders took (so it is the show's next version)."""
        if isinstance(event, ShowCreated):
            self._set(LineCounts(event.show_id, event.queue, event.queue_seed, 0, 0, 1))
            return
        if not isinstance(event, LineEvent):
            return
        counts = self._counts.get(event.show_id) or LineCounts(event.show_id, None, "", 0, 0, 0)
        pending = self.pending
        match event:
            case WaitlistJoined():
                counts = replace(counts, waiting=counts.waiting + 1, joins=counts.joins + 1)
                pending.entries[event.entry_id] = EntryRow(
                    entry_id=event.entry_id,
                    show_id=event.show_id,
                    seq=counts.joins,
                    user=event.user,
                    quantity=event.quantity,
                    section=event.section,
                    zone=event.zone,
                    offer_order_id=event.offer_order_id,
                    status="waiting",
                    order_id=None,
                    joined_at=event.joined_at,
                    version=event.version,
                )
            case WaitlistLeft() | WaitlistOffered():
                counts = replace(counts, waiting=counts.waiting - 1)
                status = "left" if isinstance(event, WaitlistLeft) else "offered"
                order_id = event.order_id if isinstance(event, WaitlistOffered) else None
                made = pending.entries.get(event.entry_id)
                if made is not None:
                    pending.entries[event.entry_id] = replace(
                        made, status=status, order_id=order_id, version=event.version
                    )
                else:
                    pending.changes[event.entry_id] = EntryChange(
                        event.entry_id, status, order_id, event.version
                    )
            case QueueJoined():
                pending.members.append(
                    MemberRow(
                        event.show_id,
                        event.user,
                        event.early,
                        event.position,
                        event.joined_at,
                        event.version,
                    )
                )
        self._set(replace(counts, version=event.version))

    def _set(self, counts: LineCounts) -> None:
        self._counts[counts.show_id] = counts
        self.pending.lines[counts.show_id] = counts

    def take(self) -> LineWrites:
        writes, self.pending = self.pending, LineWrites()
        return writes


# -- storage ----------------------------------------------------------------------------------


def queue_json(spec: QueueSpec | None) -> dict[str, Any] | None:
    if spec is None:
        return None
    return {
        "opens_at": spec.opens_at.isoformat(),
        "admit_per_minute": spec.admit_per_minute,
        "pass_seconds": spec.pass_seconds,
    }


def _spec(raw: Mapping[str, Any] | None) -> QueueSpec | None:
    if raw is None:
        return None
    return QueueSpec(
        opens_at=datetime.fromisoformat(raw["opens_at"]).astimezone(UTC),
        admit_per_minute=raw["admit_per_minute"],
        pass_seconds=raw["pass_seconds"],
    )


async def write_lines(conn: AsyncConnection[Any], writes: LineWrites) -> None:
    """Store one batch's line rows (inside the projection's transaction). Version-guarded."""
    rows: list[dict[str, Any]]
    if writes.lines:
        rows = [
            {
                "show_id": c.show_id,
                "queue": queue_json(c.queue),
                "queue_seed": c.queue_seed,
                "waiting": c.waiting,
                "joins": c.joins,
                "version": c.version,
            }
            for c in writes.lines.values()
        ]
        await conn.execute(
            "INSERT INTO show_lines (show_id, queue, queue_seed, waiting, joins, version)"
            " SELECT show_id, queue, queue_seed, waiting, joins, version"
            " FROM jsonb_to_recordset(%s::jsonb) AS r(show_id text, queue jsonb,"
            " queue_seed text, waiting bigint, joins bigint, version bigint)"
            " ON CONFLICT (show_id) DO UPDATE SET waiting = EXCLUDED.waiting,"
            " joins = EXCLUDED.joins, version = EXCLUDED.version"
            " WHERE show_lines.version < EXCLUDED.version",
            (orjson.dumps(rows).decode(),),
        )
    if writes.entries:
        rows = [
            {
                "entry_id": e.entry_id,
                "show_id": e.show_id,
                "seq": e.seq,
                "username": e.user,
                "quantity": e.quantity,
                "section": e.section,
                "zone": e.zone,
                "offer_order_id": e.offer_order_id,
                "status": e.status,
                "order_id": e.order_id,
                "joined_at": e.joined_at,
                "version": e.version,
            }
            for e in writes.entries.values()
        ]
        await conn.execute(
            f"INSERT INTO waitlist_entries ({_ENTRY_COLUMNS}) SELECT {_ENTRY_COLUMNS}"
            " FROM jsonb_to_recordset(%s::jsonb) AS r(entry_id text, show_id text, seq bigint,"
            " username text, quantity integer, section text, zone text, offer_order_id text,"
            " status text, order_id text, joined_at timestamptz, version bigint)"
            " ON CONFLICT (entry_id) DO UPDATE SET status = EXCLUDED.status,"
            " order_id = EXCLUDED.order_id, version = EXCLUDED.version"
            " WHERE waitlist_entries.version < EXCLUDED.version",
            (orjson.dumps(rows).decode(),),
        )
    if writes.changes:
        rows = [
            {
                "entry_id": c.entry_id,
                "status": c.status,
                "order_id": c.order_id,
                "version": c.version,
            }
            for c in writes.changes.values()
        ]
        await conn.execute(
            "UPDATE waitlist_entries w SET status = r.status, order_id = r.order_id,"
            " version = r.version FROM jsonb_to_recordset(%s::jsonb) AS r(entry_id text,"
            " status text, order_id text, version bigint)"
            " WHERE w.entry_id = r.entry_id AND w.version < r.version",
            (orjson.dumps(rows).decode(),),
        )
    if writes.members:
        rows = [
            {
                "show_id": m.show_id,
                "username": m.user,
                "early": m.early,
                "position": m.position,
                "joined_at": m.joined_at,
                "version": m.version,
            }
            for m in writes.members
        ]
        await conn.execute(
            f"INSERT INTO queue_members ({_MEMBER_COLUMNS}) SELECT {_MEMBER_COLUMNS}"
            " FROM jsonb_to_recordset(%s::jsonb) AS r(show_id text, username text,"
            " early boolean, position bigint, joined_at timestamptz, version bigint)"
            " ON CONFLICT (show_id, username) DO NOTHING",
            (orjson.dumps(rows).decode(),),
        )


_LINE_COLUMNS = "show_id, queue, queue_seed, waiting, joins, version"
_ENTRY_COLUMNS = (
    "entry_id, show_id, seq, username, quantity, section, zone, offer_order_id, status,"
    " order_id, joined_at, version"
)
_MEMBER_COLUMNS = "show_id, username, early, position, joined_at, version"


def _counts(row: tuple[Any, ...]) -> LineCounts:
    show_id, queue, seed, waiting, joins, version = row
    return LineCounts(show_id, _spec(queue), seed, waiting, joins, version)


def _entry(row: tuple[Any, ...]) -> EntryRow:
    (entry_id, show_id, seq, user, quantity, section, zone, offer, status, order_id) = row[:10]
    joined_at, version = row[10:]
    return EntryRow(
        entry_id,
        show_id,
        seq,
        user,
        quantity,
        section,
        zone,
        offer,
        status,
        order_id,
        joined_at.astimezone(UTC),
        version,
    )


def _member(row: tuple[Any, ...]) -> MemberRow:
    show_id, user, early, position, joined_at, version = row
    return MemberRow(show_id, user, early, position, joined_at.astimezone(UTC), version)


async def line_counts(db: Db, show_ids: Collection[str]) -> dict[str, LineCounts]:
    if not show_ids:
        return {}
    async with connection(db) as conn:
        cursor = await conn.execute(
            f"SELECT {_LINE_COLUMNS} FROM show_lines WHERE show_id = ANY(%s)", (list(show_ids),)
        )
        return {row[0]: _counts(row) for row in await cursor.fetchall()}


@dataclass(frozen=True, slots=True)
class StoredLine:
    """A show's lines as one consistent read: everything up to `version` folded."""

    version: int
    counts: LineCounts
    entries: list[EntryRow]
    members: list[MemberRow]


async def load_line(db: Db, show_id: str) -> StoredLine | None:
    """The show's line rows and the version they are at; None for a show not (yet) listed.

    One REPEATABLE READ transaction: the projection writes the rows and the show's version
    together, so what is read is exactly the state after that version."""
    async with connection(db) as conn, conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cursor = await conn.execute("SELECT version FROM shows WHERE show_id = %s", (show_id,))
        show = await cursor.fetchone()
        if show is None:
            return None
        cursor = await conn.execute(
            f"SELECT {_LINE_COLUMNS} FROM show_lines WHERE show_id = %s", (show_id,)
        )
        row = await cursor.fetchone()
        counts = _counts(row) if row is not None else LineCounts(show_id, None, "", 0, 0, 0)
        cursor = await conn.execute(
            f"SELECT {_ENTRY_COLUMNS} FROM waitlist_entries WHERE show_id = %s ORDER BY seq",
            (show_id,),
        )
        entries = [_entry(r) for r in await cursor.fetchall()]
        cursor = await conn.execute(
            f"SELECT {_MEMBER_COLUMNS} FROM queue_members WHERE show_id = %s ORDER BY version",
            (show_id,),
        )
        members = [_member(r) for r in await cursor.fetchall()]
    return StoredLine(show[0], counts, entries, members)


# -- replay --verify ---------------------------------------------------------------------------


async def line_differences(expected: Db, actual: Db, cut_versions: Mapping[str, int]) -> list[str]:
    """What differs between the replayed (`expected`) and live line rows, in words. A live row
    at a version past its show's replayed version (`cut_versions`) has rightly moved on."""

    def moved(show_id: str, version: int) -> bool:
        return version > cut_versions.get(show_id, 0)

    found: list[str] = []
    tables: list[tuple[str, str, str, Any]] = [
        ("show_lines", _LINE_COLUMNS, "show_id", _counts),
        ("waitlist_entries", _ENTRY_COLUMNS, "entry_id", _entry),
        ("queue_members", _MEMBER_COLUMNS, "show_id, username", _member),
    ]
    for table, columns, key, parse in tables:
        rows: list[dict[Any, Any]] = []
        for db in (expected, actual):
            async with connection(db) as conn:
                cursor = await conn.execute(f"SELECT {columns} FROM {table} ORDER BY {key}")
                parsed = [parse(r) for r in await cursor.fetchall()]
            rows.append({_key(p): p for p in parsed})
        replayed, live = rows
        for name in sorted(replayed.keys() | live.keys(), key=str):
            want, got = replayed.get(name), live.get(name)
            if got is not None and moved(got.show_id, got.version):
                continue
            if got is None:
                found.append(f"{table} {name}: journaled, missing from the live view")
            elif want is None:
                found.append(f"{table} {name}: in the live view, not in the journal")
            elif want != got:
                found.append(f"{table} {name}: live {got!r} != journal {want!r}")
    return found


def _key(row: LineCounts | EntryRow | MemberRow) -> str:
    if isinstance(row, EntryRow):
        return row.entry_id
    if isinstance(row, MemberRow):
        return f"{row.show_id}/{row.user}"
    return row.show_id
