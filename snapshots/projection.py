"""The ticketing read side's fold: show journal entries in, rows and snapshots out.

`Projection` holds what the fold needs in memory: a SeatMapView per show (seeded from its
latest snapshot) and an OrderView per live order (a cache: orders that can no longer change
often are dropped after each write, and read back from PostgreSQL if an event names them
again). It does no I/O itself; `fold_batch` feeds it journal entries, loading what it asks
for, and `write` stores what it produced in one transaction. The projector daemon and the
replay tool run exactly this.

Recovery. The rows, the snapshots and the per-partition checkpoint are written together, so
PostgreSQL always holds the state "every event before the checkpoint, folded". On taking a
partition the projector seeds the maps of the shows whose latest snapshot lags their catalogue
row (`shows_to_restore`) and re-reads the partition from the oldest such snapshot: entries
before the checkpoint ("catch-up") only bring those maps forward, entries from the
checkpoint on are folded for real. Other shows are loaded on their first event: their latest
snapshot is their state at the checkpoint.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from psycopg import AsyncConnection

from domain.ticketing.errors import JournalError
from domain.ticketing.events import (
    EVENT_TYPES,
    Event,
    LineEvent,
    MoneyEvent,
    SeatlessEvent,
    SeatsHeld,
    ShowCreated,
)
from domain.ticketing.views import OrderView, SeatMapView, apply_to_orders
from producers.codec import DecodeError
from producers.envelope import EventRecord
from producers.registries import TICKETING
from snapshots.cadence import SnapshotCadence
from snapshots.checkpoints import save_checkpoints
from snapshots.connections import Db, connection
from snapshots.lines import LineCounts, LineFold, LineWrites, line_counts, write_lines
from snapshots.orders import ShowListing, orders_by_id, shows_by_id, upsert_orders, upsert_shows
from snapshots.seatmaps import (
    Snapshot,
    available_places,
    fold_event,
    latest_snapshots,
    write_snapshots,
)

# The projection's name in `projection_offsets`.
PROJECTION = "ticketing.views"


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One message of the show journal, as any Kafka client hands it over."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True, slots=True)
class Poison:
    """An entry that cannot be folded, and why: for the dead-letter topic."""

    entry: JournalEntry
    reason: str


def decode_event(raw: bytes | None) -> Event:
    """The ticketing event in a journal message; DecodeError if it is not a sound one."""
    record = EventRecord.decode(raw)
    # PostgreSQL text cannot hold NUL: such an event would fail every write of its batch,
    # forever, so it is poison here rather than a wedged projector.
    if raw is not None and b"\\u0000" in raw and _has_nul(record.event):
        raise DecodeError("a string holds a NUL character")
    event = TICKETING.from_dict(record.event)
    if not isinstance(event, EVENT_TYPES):
        raise DecodeError(f"{type(event).__name__} is not a ticketing event")
    if event.version != record.version or event.show_id != record.stream_id:
        raise DecodeError(
            f"record says {record.stream_id} v{record.version}, "
            f"its event {event.show_id} v{event.version}"
        )
    return event


def _has_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


@dataclass(slots=True)
class _LiveShow:
    listing: ShowListing
    view: SeatMapView
    available: int
    # Offset of the event at view.version: what a snapshot of the view records.
    offset: int
    snapshot_version: int
    snapshot_at: float


@dataclass(slots=True)
class Writes:
    """Everything one transaction must store."""

    orders: dict[str, OrderView] = field(default_factory=dict)
    shows: dict[str, ShowListing] = field(default_factory=dict)
    snapshots: list[Snapshot] = field(default_factory=list)
    checkpoints: dict[int, int] = field(default_factory=dict)
    lines: LineWrites = field(default_factory=LineWrites)

    def __bool__(self) -> bool:
        return bool(self.orders or self.shows or self.snapshots or self.checkpoints or self.lines)


class Projection:
    def __init__(
        self,
        snapshot_every_events: int,
        snapshot_every_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cadence = SnapshotCadence(snapshot_every_events, snapshot_every_s)
        self._clock = clock
        self._shows: dict[str, _LiveShow] = {}
        self._orders: dict[str, OrderView] = {}
        self._pending = Writes()
        self._listed: set[str] = set()
        self._unsnapshotted: set[str] = set()
        # Orders adopted or changed since the last settle: the only ones that may have left
        # "held" (scanning every order after every batch would cost more than the batch).
        self._touched: set[str] = set()
        # The waitlist and waiting-room rows, folded from the same events (snapshots.lines).
        self._lines = LineFold()

    # -- reading ----------------------------------------------------------------------------

    def seatmap(self, show_id: str) -> SeatMapView | None:
        live = self._shows.get(show_id)
        return None if live is None else live.view

    def show_ids(self) -> list[str]:
        return list(self._shows)

    def order(self, order_id: str) -> OrderView | None:
        return self._orders.get(order_id)

    def needs(self, events: Iterable[Event]) -> tuple[set[str], set[str]]:
        """The shows and orders these events touch that are not in memory: load and `adopt`
        them (those storage lacks are new, or the journal is wrong)."""
        shows: set[str] = set()
        orders: set[str] = set()
        for event in events:
            if isinstance(event, ShowCreated):
                continue
            if event.show_id not in self._shows:
                shows.add(event.show_id)
            if not isinstance(event, SeatsHeld | MoneyEvent | LineEvent) and (
                event.order_id not in self._orders
            ):
                orders.add(event.order_id)
        return shows, orders

    def line_needs(self, events: Iterable[Event]) -> set[str]:
        """The shows whose line counters these events need and memory lacks: load them
        (`snapshots.lines.line_counts`) and `adopt_lines` them."""
        return self._lines.needs(events)

    def adopt_lines(self, show_id: str, counts: LineCounts | None) -> None:
        self._lines.adopt(show_id, counts)

    # -- seeding from storage ---------------------------------------------------------------

    def adopt(self, listing: ShowListing, snapshot: Snapshot, overdue: bool = False) -> None:
        """Take a show as stored: its catalogue row and a snapshot of its map.

        `overdue`: the rows are past this snapshot (a crash or a handover left it behind), so
        once caught up the show is snapshotted at the next write, whatever the cadence."""
        if listing.show_id in self._shows:
            return
        view = snapshot.seatmap()
        self._shows[listing.show_id] = _LiveShow(
            listing=listing,
            view=view,
            available=available_places(view),
            offset=snapshot.journal_offset,
            snapshot_version=snapshot.version,
            snapshot_at=-math.inf if overdue else self._clock(),
        )

    def adopt_orders(self, orders: Iterable[OrderView]) -> None:
        for view in orders:
            if view.order_id not in self._orders:
                self._orders[view.order_id] = view
                self._touched.add(view.order_id)

    def forget(self, partitions: Collection[int]) -> None:
        """Drop the shows (and their orders) of partitions this projection no longer owns."""
        gone = {
            show_id
            for show_id, live in self._shows.items()
            if live.listing.journal_partition in partitions
        }
        for show_id in gone:
            del self._shows[show_id]
        self._orders = {
            order_id: view for order_id, view in self._orders.items() if view.show_id not in gone
        }
        self._listed -= gone
        self._unsnapshotted -= gone
        self._lines.forget(gone)
        self._touched = {o for o in self._touched if o in self._orders}

    # -- folding ----------------------------------------------------------------------------

    def apply(self, partition: int, offset: int, event: Event, catch_up: bool = False) -> None:
        """Fold one event at `offset` of `partition`. JournalError if it cannot follow.

        `catch_up`: the rows already hold this event (it is before the checkpoint); only a
        seat map seeded from an older snapshot takes it.
        """
        live = self._shows.get(event.show_id)
        if catch_up:
            if live is not None:
                self._fold_seatmap(live, offset, event)
            return
        if live is None:
            if not isinstance(event, ShowCreated):
                raise JournalError(f"{type(event).__name__} for unknown show {event.show_id}")
            self._create(partition, offset, event)
            return
        if event.version <= live.view.version:
            return
        previous = (
            None if isinstance(event, ShowCreated | LineEvent) else self._orders.get(event.order_id)
        )
        changed = apply_to_orders(self._orders, event)
        try:
            self._fold_seatmap(live, offset, event)
        except JournalError:
            # The order fold went first; undo it so both views stay at the same version.
            if changed is not None:
                if previous is None:
                    del self._orders[changed.order_id]
                else:
                    self._orders[changed.order_id] = previous
            raise
        if changed is not None:
            self._pending.orders[changed.order_id] = changed
            self._touched.add(changed.order_id)
        self._lines.apply(event)
        self._listed.add(event.show_id)

    def _create(self, partition: int, offset: int, event: ShowCreated) -> None:
        view = SeatMapView()
        fold_event(view, event)
        listing = ShowListing.of(event, partition, offset)
        self._shows[event.show_id] = _LiveShow(
            listing=listing,
            view=view,
            available=listing.seats_total,
            offset=offset,
            # Never snapshotted: the first write snapshots it with its catalogue row, so every
            # listed show has a snapshot to restore from.
            snapshot_version=0,
            snapshot_at=self._clock(),
        )
        self._lines.apply(event)
        self._listed.add(event.show_id)
        self._unsnapshotted.add(event.show_id)

    def _fold_seatmap(self, live: _LiveShow, offset: int, event: Event) -> None:
        view = live.view
        if event.version <= view.version:
            return
        before = _free_among(view, event)
        if fold_event(view, event) is None:
            return
        live.available += _free_among(view, event) - before
        live.offset = offset
        self._unsnapshotted.add(view.show_id)

    def checkpoint(self, partition: int, next_offset: int) -> None:
        pending = self._pending.checkpoints
        if next_offset > pending.get(partition, -1):
            pending[partition] = next_offset

    # -- writing ----------------------------------------------------------------------------

    def take_writes(self, force_snapshots: bool = False) -> Writes:
        """What to store now: changed orders and catalogue rows, due snapshots, checkpoints.

        A show is snapshotted every `snapshot_every_events` events or `snapshot_every_s`
        seconds after its last snapshot, whichever comes first, and only if it changed.
        """
        writes, self._pending = self._pending, Writes()
        writes.lines = self._lines.take()
        now = self._clock()
        for show_id in list(self._unsnapshotted):
            live = self._shows[show_id]
            due = (
                force_snapshots
                or live.snapshot_version == 0
                or self._cadence.due(
                    live.view.version - live.snapshot_version, now - live.snapshot_at
                )
            )
            if not due:
                continue
            writes.snapshots.append(
                Snapshot.of(
                    live.view, live.listing.sections, live.listing.journal_partition, live.offset
                )
            )
            live.snapshot_version = live.view.version
            live.snapshot_at = now
            self._unsnapshotted.discard(show_id)
        for show_id in self._listed:
            live = self._shows[show_id]
            writes.shows[show_id] = replace(
                live.listing, version=live.view.version, seats_available=live.available
            )
        self._listed.clear()
        return writes

    def settle(self) -> None:
        """After a write: forget orders that are no longer held. Held orders change soon (paid,
        cancelled or expired); the rest rarely, and PostgreSQL has them."""
        orders = self._orders
        for order_id in self._touched:
            view = orders.get(order_id)
            if view is not None and view.status != "held":
                del orders[order_id]
        self._touched.clear()

    def unsnapshotted(self) -> int:
        return len(self._unsnapshotted)


def _free_among(view: SeatMapView, event: Event) -> int:
    """Free places among what the event touches (its seats, or its zone)."""
    if isinstance(event, SeatlessEvent):
        return 0
    if event.zone is not None:
        counts = view.zones.get(event.zone)
        return 0 if counts is None else counts.available
    seats = view.seats
    return sum(1 for seat in event.seats if seats.get(seat) == "available")


# -- I/O around the fold --------------------------------------------------------------------


async def fold_batch(
    projection: Projection,
    db: Db,
    entries: Sequence[JournalEntry],
    catch_up_below: Mapping[int, int] | None = None,
) -> list[Poison]:
    """Fold journal entries (in partition order) into the projection; return the poison.

    Entries at offsets below `catch_up_below[partition]` are already in the rows: they only
    bring seeded seat maps forward, and their poison was dead-lettered the first time. An
    entry that does not decode or cannot follow its show is poison, returned; any other error
    of the fold is raised.
    """
    below = catch_up_below or {}
    poison: list[Poison] = []
    decoded: list[tuple[JournalEntry, Event, bool]] = []
    for entry in entries:
        catch_up = entry.offset < below.get(entry.partition, 0)
        if not catch_up:
            projection.checkpoint(entry.partition, entry.offset + 1)
        try:
            event = decode_event(entry.value)
        except DecodeError as exc:
            if not catch_up:
                poison.append(Poison(entry, f"undecodable: {exc}"))
            continue
        decoded.append((entry, event, catch_up))
    await load_missing(projection, db, [event for _, event, catch_up in decoded if not catch_up])
    for entry, event, catch_up in decoded:
        try:
            projection.apply(entry.partition, entry.offset, event, catch_up=catch_up)
        except JournalError as exc:
            if not catch_up:
                poison.append(Poison(entry, f"unfoldable: {exc}"))
        except Exception:
            # Anything else is the caller's to isolate (the projector retries, then parks the
            # entry alone). In catch-up it was isolated and parked when first met.
            if not catch_up:
                raise
    return poison


async def load_missing(projection: Projection, db: Db, events: Sequence[Event]) -> None:
    show_ids, order_ids = projection.needs(events)
    line_ids = projection.line_needs(events)
    if not show_ids and not order_ids and not line_ids:
        return
    async with connection(db) as conn:
        if line_ids:
            stored = await line_counts(conn, line_ids)
            for show_id in line_ids:
                projection.adopt_lines(show_id, stored.get(show_id))
        if show_ids:
            listings = await shows_by_id(conn, show_ids)
            snapshots = await latest_snapshots(conn, listings)
            for show_id, listing in listings.items():
                if show_id in snapshots:
                    projection.adopt(listing, snapshots[show_id])
        if order_ids:
            projection.adopt_orders((await orders_by_id(conn, order_ids)).values())


async def write(conn: AsyncConnection[Any], writes: Writes, topic: str) -> None:
    """Store one batch's writes atomically: rows, snapshots and checkpoints together."""
    if not writes:
        return
    async with conn.transaction():
        await upsert_orders(conn, writes.orders.values())
        await upsert_shows(conn, writes.shows.values())
        await write_snapshots(conn, writes.snapshots)
        await write_lines(conn, writes.lines)
        await save_checkpoints(conn, PROJECTION, topic, writes.checkpoints)


async def shows_to_restore(db: Db, partition: int) -> list[tuple[ShowListing, Snapshot]]:
    """The shows of a partition whose latest snapshot is older than their catalogue row."""
    async with connection(db) as conn:
        cursor = await conn.execute(
            "SELECT sh.show_id, sh.version, sn.version FROM shows sh"
            " JOIN LATERAL (SELECT version FROM seatmap_snapshots s"
            "   WHERE s.show_id = sh.show_id ORDER BY version DESC LIMIT 1) sn ON true"
            " WHERE sh.journal_partition = %s AND sn.version < sh.version",
            (partition,),
        )
        behind = [row[0] for row in await cursor.fetchall()]
        listings = await shows_by_id(conn, behind)
        snapshots = await latest_snapshots(conn, behind)
    return [(listings[show_id], snapshots[show_id]) for show_id in behind]


def seek_offset(checkpoint: int, restored: Iterable[tuple[ShowListing, Snapshot]]) -> int:
    """Where to re-read a partition from: the checkpoint, or earlier for lagging snapshots."""
    return min([checkpoint, *(snapshot.journal_offset + 1 for _, snapshot in restored)])
