"""An in-memory stand-in for the read side's PostgreSQL tables, with the same version guards,
and the batch loop of `snapshots.projection.fold_batch` run against it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from domain.ticketing.errors import JournalError
from domain.ticketing.events import Event
from domain.ticketing.views import OrderView
from producers.codec import DecodeError
from snapshots.orders import ShowListing
from snapshots.projection import JournalEntry, Projection, Writes, decode_event
from snapshots.seatmaps import Snapshot
from tests.unit.snapshots.journals import record


@dataclass
class Store:
    orders: dict[str, OrderView] = field(default_factory=dict)
    shows: dict[str, ShowListing] = field(default_factory=dict)
    snapshots: dict[str, list[Snapshot]] = field(default_factory=dict)
    checkpoints: dict[int, int] = field(default_factory=dict)

    def write(self, writes: Writes) -> None:
        for view in writes.orders.values():
            known = self.orders.get(view.order_id)
            if known is None or known.version < view.version:
                self.orders[view.order_id] = view
        for listing in writes.shows.values():
            known_show = self.shows.get(listing.show_id)
            if known_show is None or known_show.version < listing.version:
                self.shows[listing.show_id] = listing
        for snapshot in writes.snapshots:
            kept = self.snapshots.setdefault(snapshot.show_id, [])
            if all(s.version != snapshot.version for s in kept):
                kept.append(snapshot)
                kept.sort(key=lambda s: s.version)
        for partition, offset in writes.checkpoints.items():
            self.checkpoints[partition] = max(self.checkpoints.get(partition, 0), offset)

    def latest(self, show_id: str) -> Snapshot:
        return self.snapshots[show_id][-1]

    def fold(
        self,
        projection: Projection,
        entries: Sequence[JournalEntry],
        below: dict[int, int] | None = None,
    ) -> list[str]:
        """`fold_batch` against this store; the reasons of the poison entries."""
        below = below or {}
        poison: list[str] = []
        decoded: list[tuple[JournalEntry, Event, bool]] = []
        for entry in entries:
            catch_up = entry.offset < below.get(entry.partition, 0)
            if not catch_up:
                projection.checkpoint(entry.partition, entry.offset + 1)
            try:
                decoded.append((entry, decode_event(entry.value), catch_up))
            except DecodeError as exc:
                if not catch_up:
                    poison.append(str(exc))
        show_ids, order_ids = projection.needs(e for _, e, c in decoded if not c)
        for show_id in show_ids:
            if show_id in self.shows:
                projection.adopt(self.shows[show_id], self.latest(show_id))
        projection.adopt_orders(self.orders[o] for o in order_ids if o in self.orders)
        for entry, event, catch_up in decoded:
            try:
                projection.apply(entry.partition, entry.offset, event, catch_up=catch_up)
            except JournalError as exc:
                if not catch_up:
                    poison.append(str(exc))
        return poison

    def run(
        self,
        projection: Projection,
        entries: Sequence[JournalEntry],
        batch: int = 7,
        below: dict[int, int] | None = None,
    ) -> list[str]:
        """Fold and write batch by batch, as the projector does."""
        poison: list[str] = []
        for start in range(0, len(entries), batch):
            poison += self.fold(projection, entries[start : start + batch], below)
            self.write(projection.take_writes())
            projection.settle()
        return poison

    def restored(self, projection: Projection, partition: int) -> int:
        """Seed a fresh projection as the projector does on assignment; the offset to read from."""
        seek = self.checkpoints.get(partition, 0)
        for show_id, listing in self.shows.items():
            latest = self.latest(show_id)
            if listing.journal_partition == partition and latest.version < listing.version:
                projection.adopt(listing, latest)
                seek = min(seek, latest.journal_offset + 1)
        return seek


def entries_of(events: Sequence[Event], partition: int = 0, start: int = 0) -> list[JournalEntry]:
    return [
        JournalEntry(partition, start + n, event.show_id.encode(), record(event))
        for n, event in enumerate(events)
    ]


def interleave(*journals: Sequence[Event]) -> list[Event]:
    """Several shows' journals merged round-robin, each in its own order (one partition)."""
    merged: list[Event] = []
    longest = max(len(j) for j in journals)
    for n in range(longest):
        merged += [j[n] for j in journals if n < len(j)]
    return merged
