"""When a view owes a snapshot: one rule for seat maps and conversations."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SnapshotCadence:
    """Every `every_events` events or `every_s` seconds, whichever comes first.

    Each view measures its own age: a seat map from its last snapshot, a conversation from its
    oldest change not yet in one.
    """

    every_events: int
    every_s: float

    def full(self, events_since: int) -> bool:
        """Owed by count alone (a view may take it mid-batch, so "every N" is exact)."""
        return events_since >= max(1, self.every_events)

    def due(self, events_since: int, age_s: float) -> bool:
        return self.full(events_since) or age_s >= self.every_s
