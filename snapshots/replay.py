"""Replay: rebuild every ticketing view from the show journal alone, and check the live ones.

`rebuild` reads the whole journal (every partition, from offset 0 to its end now) through
the very fold the projector runs, into a fresh PostgreSQL schema with the migrations
applied: the catalogue, the orders, and a snapshot of every seat map at its latest version.
`verify` then compares the live views with it. The live side may have moved on while the
replay ran, so it is compared at the replay's cut: seat maps as the live snapshots folded
forward to the replayed version, orders and catalogue rows unless the live row is at a
version past the cut.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from boxoffice.settings import Settings
from domain.ticketing.views import OrderView, SeatMapView
from producers.journal import JournalUnavailableError
from producers.topics import SHOW_EVENTS, partitions_of
from snapshots.checkpoints import load_checkpoints
from snapshots.database import conninfo, migrate
from snapshots.orders import ShowListing, all_orders, shows
from snapshots.projection import PROJECTION, Poison, Projection, fold_batch, write
from snapshots.seatmaps import latest_snapshot
from snapshots.timetravel import VersionNotFoundError, read_journal, seatmap_at

# Differences listed in full; past this only counted.
SHOWN_DIFFERENCES = 50


@dataclass(frozen=True, slots=True)
class Rebuilt:
    schema: str
    entries: int
    shows: int
    orders: int
    poison: tuple[Poison, ...]
    # Per partition, the offset after the last entry read: the replay covers all before it.
    cut: dict[int, int]


def replay_schema(now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d_%H%M%S")
    return f"replay_{stamp}_{secrets.token_hex(2)}"


async def rebuild(
    settings: Settings, schema: str | None = None, timeout_s: float = 10.0
) -> Rebuilt:
    """Fold the whole show journal into a fresh schema (created and migrated here)."""
    schema = schema or replay_schema()
    target = settings.model_copy(update={"pg_schema": schema})
    await asyncio.to_thread(migrate, target)
    topic = SHOW_EVENTS.name(settings)
    partitions = (await asyncio.to_thread(partitions_of, settings, [topic]))[topic]
    # Snapshots only where the projector must have them (a new show) and at the end.
    projection = Projection(snapshot_every_events=2**62, snapshot_every_s=math.inf)
    poison: list[Poison] = []
    cut = dict.fromkeys(partitions, 0)
    entries = 0
    reader = read_journal(settings, dict.fromkeys(partitions, 0), timeout_s)
    async with await psycopg.AsyncConnection.connect(conninfo(target), autocommit=True) as conn:
        while (batch := await asyncio.to_thread(next, reader, None)) is not None:
            poison += await fold_batch(projection, conn, batch)
            for entry in batch:
                cut[entry.partition] = max(cut[entry.partition], entry.offset + 1)
            entries += len(batch)
            await write(conn, projection.take_writes(), topic)
            projection.settle()
        await write(conn, projection.take_writes(force_snapshots=True), topic)
        cursor = await conn.execute("SELECT count(*) FROM orders")
        row = await cursor.fetchone()
    return Rebuilt(
        schema=schema,
        entries=entries,
        shows=len(projection.show_ids()),
        orders=row[0] if row else 0,
        poison=tuple(poison),
        cut=cut,
    )


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
    return differences


async def _wait_for_live(
    live: psycopg.AsyncConnection[Any], topic: str, cut: dict[int, int], wait_s: float
) -> list[str]:
    """Wait until the live checkpoints cover the cut; the lag left if they never do."""
    deadline = time.monotonic() + wait_s
    while True:
        checkpoints = await load_checkpoints(live, PROJECTION, topic)
        behind = {p: checkpoints.get(p, 0) for p, end in cut.items() if checkpoints.get(p, 0) < end}
        if not behind or time.monotonic() >= deadline:
            return [
                f"live projection is behind the journal: partition {p} checkpoint {at} < {cut[p]}"
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


def run(settings: Settings, check: bool, say: Callable[[str], None] = print) -> int:
    """`boxoffice replay [--verify]`: rebuild, report, compare; the process exit status."""

    async def go() -> int:
        rebuilt = await rebuild(settings)
        say(
            f"replayed {rebuilt.entries} journal entries into schema {rebuilt.schema!r} "
            f"(database {settings.pg_database}): {rebuilt.shows} shows, {rebuilt.orders} orders"
        )
        for bad in rebuilt.poison:
            entry = bad.entry
            say(f"  skipped poison entry {entry.partition}@{entry.offset}: {bad.reason}")
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
    except (JournalUnavailableError, psycopg.OperationalError) as exc:
        say(f"replay failed: {exc}")
        return 2
