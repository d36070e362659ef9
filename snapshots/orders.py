"""The orders and shows projections: what `GET /v1/orders...` and `GET /v1/shows...` read.

Written by `snapshots.projection` in the projector engine (one multi-row statement per table
per batch) and read by the API. Every upsert is guarded by the stream version, so a batch
folded twice after a crash leaves the rows exactly as the first time.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from domain.ticketing.events import ShowCreated, Ticket
from domain.ticketing.venue import Section, Zone
from domain.ticketing.views import OrderView
from snapshots.connections import Db, connection


@dataclass(frozen=True, slots=True)
class ShowListing:
    """A show in the catalogue: as created, plus its current version and free places.

    `journal_partition` and `journal_offset` locate its ShowCreated in the show journal.
    """

    show_id: str
    name: str
    organizer: str
    starts_at: datetime
    hold_seconds: int
    sections: tuple[Section, ...]
    zones: tuple[Zone, ...]
    seats_total: int
    seats_available: int
    version: int
    created_at: datetime
    journal_partition: int
    journal_offset: int

    @classmethod
    def of(cls, created: ShowCreated, journal_partition: int, journal_offset: int) -> ShowListing:
        total = sum(s.seat_count for s in created.sections) + sum(z.capacity for z in created.zones)
        return cls(
            show_id=created.show_id,
            name=created.name,
            organizer=created.organizer,
            starts_at=created.starts_at,
            hold_seconds=created.hold_seconds,
            sections=created.sections,
            zones=created.zones,
            seats_total=total,
            seats_available=total,
            version=created.version,
            created_at=created.created_at,
            journal_partition=journal_partition,
            journal_offset=journal_offset,
        )

    def as_created(self) -> dict[str, Any]:
        """The show as its organizer created it, JSON-ready (`GET /v1/shows/{id}`)."""
        return {
            "show_id": self.show_id,
            "name": self.name,
            "organizer": self.organizer,
            "starts_at": self.starts_at.isoformat(),
            "hold_seconds": self.hold_seconds,
            "sections": [_section(s) for s in self.sections],
            "zones": [_zone(z) for z in self.zones],
            "seats_total": self.seats_total,
            "created_at": self.created_at.isoformat(),
        }


def _section(s: Section) -> dict[str, Any]:
    return {
        "name": s.name,
        "rows": s.rows,
        "seats_per_row": s.seats_per_row,
        "price_cents": s.price_cents,
    }


def _zone(z: Zone) -> dict[str, Any]:
    return {"name": z.name, "capacity": z.capacity, "price_cents": z.price_cents}


# -- orders ---------------------------------------------------------------------------------

_ORDER_COLUMNS = (
    "order_id, show_id, username, status, seats, zone, quantity, total_cents, held_at,"
    " expires_at, tickets, version"
)


def _order(row: tuple[Any, ...]) -> OrderView:
    (order_id, show_id, user, status, seats, zone, quantity, total, held_at, expires_at) = row[:10]
    tickets, version = row[10:]
    return OrderView(
        order_id=order_id,
        show_id=show_id,
        user=user,
        status=status,
        seats=tuple(seats),
        zone=zone,
        quantity=quantity,
        expires_at=expires_at.astimezone(UTC),
        total_cents=total,
        tickets=tuple(Ticket(t["ticket_id"], t["seat"]) for t in tickets),
        held_at=held_at.astimezone(UTC),
        version=version,
    )


async def order(db: Db, order_id: str) -> OrderView | None:
    async with connection(db) as conn:
        cursor = await conn.execute(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE order_id = %s", (order_id,)
        )
        row = await cursor.fetchone()
    return None if row is None else _order(row)


async def orders_of(db: Db, user: str, limit: int | None = None) -> list[OrderView]:
    """The user's orders, newest hold first."""
    async with connection(db) as conn:
        cursor = await conn.execute(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE username = %s"
            " ORDER BY held_at DESC, order_id DESC LIMIT %s",
            (user, limit),
        )
        return [_order(row) for row in await cursor.fetchall()]


async def orders_by_id(db: Db, order_ids: Collection[str]) -> dict[str, OrderView]:
    if not order_ids:
        return {}
    async with connection(db) as conn:
        cursor = await conn.execute(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE order_id = ANY(%s)", (list(order_ids),)
        )
        return {row[0]: _order(row) for row in await cursor.fetchall()}


async def all_orders(db: Db) -> dict[str, OrderView]:
    """Every order (for `boxoffice replay --verify`)."""
    async with connection(db) as conn:
        cursor = await conn.execute(f"SELECT {_ORDER_COLUMNS} FROM orders")
        return {row[0]: _order(row) for row in await cursor.fetchall()}


async def upsert_orders(db: Db, views: Iterable[OrderView]) -> None:
    rows = [
        {
            "order_id": v.order_id,
            "show_id": v.show_id,
            "username": v.user,
            "status": v.status,
            "seats": v.seats,
            "zone": v.zone,
            "quantity": v.quantity,
            "total_cents": v.total_cents,
            "held_at": v.held_at,
            "expires_at": v.expires_at,
            "tickets": [{"ticket_id": t.ticket_id, "seat": t.seat} for t in v.tickets],
            "version": v.version,
        }
        for v in views
    ]
    if not rows:
        return
    # One statement for the whole batch: a JSON array unpacked server-side is far cheaper than
    # a round of bind parameters per row.
    async with connection(db) as conn:
        await conn.execute(
            f"INSERT INTO orders ({_ORDER_COLUMNS}) SELECT {_ORDER_COLUMNS}"
            " FROM jsonb_to_recordset(%s::jsonb) AS r(order_id text, show_id text,"
            " username text, status text, seats jsonb, zone text, quantity integer,"
            " total_cents bigint, held_at timestamptz, expires_at timestamptz, tickets jsonb,"
            " version bigint)"
            " ON CONFLICT (order_id) DO UPDATE SET status = EXCLUDED.status,"
            " tickets = EXCLUDED.tickets, version = EXCLUDED.version"
            " WHERE orders.version < EXCLUDED.version",
            (orjson.dumps(rows).decode(),),
        )


# -- shows ----------------------------------------------------------------------------------

_SHOW_COLUMNS = (
    "show_id, name, organizer, starts_at, hold_seconds, sections, zones, seats_total,"
    " seats_available, version, created_at, journal_partition, journal_offset"
)


def _listing(row: tuple[Any, ...]) -> ShowListing:
    (show_id, name, organizer, starts_at, hold_seconds, sections, zones) = row[:7]
    (seats_total, seats_available, version, created_at, partition, offset) = row[7:]
    return ShowListing(
        show_id=show_id,
        name=name,
        organizer=organizer,
        starts_at=starts_at.astimezone(UTC),
        hold_seconds=hold_seconds,
        sections=tuple(
            Section(s["name"], s["rows"], s["seats_per_row"], s["price_cents"]) for s in sections
        ),
        zones=tuple(Zone(z["name"], z["capacity"], z["price_cents"]) for z in zones),
        seats_total=seats_total,
        seats_available=seats_available,
        version=version,
        created_at=created_at.astimezone(UTC),
        journal_partition=partition,
        journal_offset=offset,
    )


async def show(db: Db, show_id: str) -> ShowListing | None:
    async with connection(db) as conn:
        cursor = await conn.execute(
            f"SELECT {_SHOW_COLUMNS} FROM shows WHERE show_id = %s", (show_id,)
        )
        row = await cursor.fetchone()
    return None if row is None else _listing(row)


async def shows(db: Db, limit: int | None = None) -> list[ShowListing]:
    """The catalogue, soonest show first."""
    async with connection(db) as conn:
        cursor = await conn.execute(
            f"SELECT {_SHOW_COLUMNS} FROM shows ORDER BY starts_at, show_id LIMIT %s", (limit,)
        )
        return [_listing(row) for row in await cursor.fetchall()]


async def shows_by_id(db: Db, show_ids: Collection[str]) -> dict[str, ShowListing]:
    if not show_ids:
        return {}
    async with connection(db) as conn:
        cursor = await conn.execute(
            f"SELECT {_SHOW_COLUMNS} FROM shows WHERE show_id = ANY(%s)", (list(show_ids),)
        )
        return {row[0]: _listing(row) for row in await cursor.fetchall()}


async def upsert_shows(db: Db, listings: Iterable[ShowListing]) -> None:
    rows = [
        {
            "show_id": s.show_id,
            "name": s.name,
            "organizer": s.organizer,
            "starts_at": s.starts_at,
            "hold_seconds": s.hold_seconds,
            "sections": [_section(x) for x in s.sections],
            "zones": [_zone(z) for z in s.zones],
            "seats_total": s.seats_total,
            "seats_available": s.seats_available,
            "version": s.version,
            "created_at": s.created_at,
            "journal_partition": s.journal_partition,
            "journal_offset": s.journal_offset,
        }
        for s in listings
    ]
    if not rows:
        return
    async with connection(db) as conn:
        await conn.execute(
            f"INSERT INTO shows ({_SHOW_COLUMNS}) SELECT {_SHOW_COLUMNS}"
            " FROM jsonb_to_recordset(%s::jsonb) AS r(show_id text, name text, organizer text,"
            " starts_at timestamptz, hold_seconds integer, sections jsonb, zones jsonb,"
            " seats_total bigint, seats_available bigint, version bigint,"
            " created_at timestamptz, journal_partition integer, journal_offset bigint)"
            " ON CONFLICT (show_id) DO UPDATE SET seats_available = EXCLUDED.seats_available,"
            " version = EXCLUDED.version WHERE shows.version < EXCLUDED.version",
            (orjson.dumps(rows).decode(),),
        )
