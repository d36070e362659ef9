"""The seat-map snapshot store: immutable snapshots of a show's seat map, and their encoding.

A snapshot is the whole truth at its version: with the journal offset of the event at that
version, the snapshot plus the events after it is the map at any later version. Rows are only
ever inserted (a trigger refuses UPDATE and DELETE); a second write of the same (show,
version) is the same bytes, since a fold is deterministic, and is skipped.

The state is compact because a 200,000-seat show is snapshotted every few seconds during a
sale: one letter per seat in layout order (the layout travels along, so a snapshot decodes
on its own), zone counts, zlib on top. A mostly free or mostly sold map is a few kilobytes.
"""

from __future__ import annotations

import zlib
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from domain.ticketing.errors import JournalError
from domain.ticketing.events import Event, SeatlessEvent
from domain.ticketing.seating import seat_ids
from domain.ticketing.show import SeatStatus
from domain.ticketing.venue import Section
from domain.ticketing.views import SeatMapDelta, SeatMapView, ZoneCounts
from snapshots.connections import Db, connection

_LETTER: dict[SeatStatus, str] = {"available": "a", "held": "h", "sold": "s"}
_STATUS: dict[str, SeatStatus] = {letter: status for status, letter in _LETTER.items()}
_FORMAT = 1


class SnapshotFormatError(ValueError):
    """Stored bytes that are not a snapshot this code wrote."""


def encode_state(view: SeatMapView, sections: tuple[Section, ...]) -> bytes:
    """The view's seats and zones, compactly. `sections` is the show's layout.

    Relies on the view's seats being keyed in layout order, which holds for every view folded
    by `fold_event` (it refuses events naming seats the layout lacks).
    """
    expected = sum(section.seat_count for section in sections)
    if len(view.seats) != expected:
        raise ValueError(f"{view!r} has {len(view.seats)} seats, its layout {expected}")
    letter = _LETTER
    body = {
        "format": _FORMAT,
        "layout": [[s.name, s.rows, s.seats_per_row] for s in sections],
        "seats": "".join([letter[status] for status in view.seats.values()]),
        "zones": [[name, z.capacity, z.held, z.sold] for name, z in view.zones.items()],
    }
    return zlib.compress(orjson.dumps(body), 1)


def decode_state(show_id: str, version: int, state: bytes) -> SeatMapView:
    try:
        body = orjson.loads(zlib.decompress(state))
        if body.get("format") != _FORMAT:
            raise SnapshotFormatError(f"unknown snapshot format {body.get('format')!r}")
        layout = tuple(Section(name, rows, per_row, 0) for name, rows, per_row in body["layout"])
        letters: str = body["seats"]
        view = SeatMapView()
        view.show_id = show_id
        view.version = version
        ids = list(seat_ids(layout))
        if len(ids) != len(letters):
            raise SnapshotFormatError(f"{len(letters)} seat statuses for {len(ids)} seats")
        status = _STATUS
        view.seats = dict(zip(ids, [status[letter] for letter in letters], strict=True))
        view.zones = {
            name: ZoneCounts.of(capacity, held, sold)
            for name, capacity, held, sold in body["zones"]
        }
    except (zlib.error, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, SnapshotFormatError):
            raise
        raise SnapshotFormatError(f"snapshot of {show_id} v{version}: {exc}") from exc
    return view


@dataclass(frozen=True, slots=True)
class Snapshot:
    show_id: str
    version: int
    state: bytes
    journal_partition: int
    journal_offset: int
    created_at: datetime

    @classmethod
    def of(
        cls,
        view: SeatMapView,
        sections: tuple[Section, ...],
        journal_partition: int,
        journal_offset: int,
        created_at: datetime | None = None,
    ) -> Snapshot:
        return cls(
            show_id=view.show_id,
            version=view.version,
            state=encode_state(view, sections),
            journal_partition=journal_partition,
            journal_offset=journal_offset,
            created_at=created_at or datetime.now(UTC),
        )

    def seatmap(self) -> SeatMapView:
        """A fresh view of the map at `version`, the caller's to keep or fold forward."""
        return decode_state(self.show_id, self.version, self.state)


def fold_event(view: SeatMapView, event: Event) -> SeatMapDelta | None:
    """`view.apply(event)`, refusing events that name seats or zones the show lacks.

    Every seat-map fold of the read side goes through here (projector, time travel, replay),
    so they agree on what a bad event is: a JournalError, with the view untouched.
    """
    if event.version <= view.version:
        return None
    if not isinstance(event, SeatlessEvent):
        unknown = [seat for seat in event.seats if seat not in view.seats]
        if event.zone is not None and event.zone not in view.zones:
            unknown.append(event.zone)
        if unknown:
            raise JournalError(
                f"{type(event).__name__} v{event.version} names {unknown!r}, "
                f"which show {view.show_id!r} lacks"
            )
    return view.apply(event)


def available_places(view: SeatMapView) -> int:
    """Free seats plus free zone places (the catalogue's `seats_available`)."""
    return list(view.seats.values()).count("available") + sum(
        zone.available for zone in view.zones.values()
    )


def seatmap_json(view: SeatMapView) -> dict[str, Any]:
    """The contract's seat-map body: {"show_id", "version", "seats", "zones"}."""
    return {
        "show_id": view.show_id,
        "version": view.version,
        "seats": view.seats,
        "zones": {
            name: {
                "capacity": z.capacity,
                "available": z.available,
                "held": z.held,
                "sold": z.sold,
            }
            for name, z in view.zones.items()
        },
    }


# -- the store ------------------------------------------------------------------------------

_COLUMNS = "show_id, version, state, journal_partition, journal_offset, created_at"


def _snapshot(row: tuple[Any, ...]) -> Snapshot:
    show_id, version, state, partition, offset, created_at = row
    return Snapshot(show_id, version, bytes(state), partition, offset, created_at.astimezone(UTC))


async def latest_snapshot(
    db: Db, show_id: str, at_or_before_version: int | None = None
) -> Snapshot | None:
    """The newest snapshot of the show, or the newest at or before a version."""
    async with connection(db) as conn:
        if at_or_before_version is None:
            cursor = await conn.execute(
                f"SELECT {_COLUMNS} FROM seatmap_snapshots WHERE show_id = %s"
                " ORDER BY version DESC LIMIT 1",
                (show_id,),
            )
        else:
            cursor = await conn.execute(
                f"SELECT {_COLUMNS} FROM seatmap_snapshots WHERE show_id = %s AND version <= %s"
                " ORDER BY version DESC LIMIT 1",
                (show_id, at_or_before_version),
            )
        row = await cursor.fetchone()
    return None if row is None else _snapshot(row)


async def latest_snapshots(db: Db, show_ids: Collection[str]) -> dict[str, Snapshot]:
    """The newest snapshot of each of the shows that has one."""
    if not show_ids:
        return {}
    async with connection(db) as conn:
        cursor = await conn.execute(
            f"SELECT DISTINCT ON (show_id) {_COLUMNS} FROM seatmap_snapshots"
            " WHERE show_id = ANY(%s) ORDER BY show_id, version DESC",
            (list(show_ids),),
        )
        rows = await cursor.fetchall()
    return {row[0]: _snapshot(row) for row in rows}


async def snapshot_versions(db: Db, show_id: str) -> list[int]:
    """Every version the show has a snapshot at, oldest first."""
    async with connection(db) as conn:
        cursor = await conn.execute(
            "SELECT version FROM seatmap_snapshots WHERE show_id = %s ORDER BY version",
            (show_id,),
        )
        return [row[0] for row in await cursor.fetchall()]


async def write_snapshots(db: Db, snapshots: Iterable[Snapshot]) -> None:
    rows = [
        (s.show_id, s.version, s.state, s.journal_partition, s.journal_offset, s.created_at)
        for s in snapshots
    ]
    if not rows:
        return
    async with connection(db) as conn, conn.cursor() as cursor:
        await cursor.executemany(
            f"INSERT INTO seatmap_snapshots ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (show_id, version) DO NOTHING",
            rows,
        )


async def write_snapshot(db: Db, snapshot: Snapshot) -> bool:
    """Insert the snapshot; False if that version was snapshotted already (left as it was)."""
    async with connection(db) as conn:
        cursor = await conn.execute(
            f"INSERT INTO seatmap_snapshots ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (show_id, version) DO NOTHING",
            (
                snapshot.show_id,
                snapshot.version,
                snapshot.state,
                snapshot.journal_partition,
                snapshot.journal_offset,
                snapshot.created_at,
            ),
        )
        return cursor.rowcount == 1
