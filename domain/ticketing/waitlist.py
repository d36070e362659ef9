"""The online waitlist of one show: its entries, their order, and who could take what.

Entries are numbered by `seq` (1, 2, ... in journal order); a `RankTree` over those numbers
holds the waiting ones, so a position is one prefix sum. For handing out freed places, the
waiting entries are also filed by what they ask for: per (area, quantity) a deque of seqs
in line order, whose head is always a waiting entry. The first entry a given stock can
satisfy is then the smallest head among the (area, quantity) pairs that fit, found without
walking the line (at most 10 quantities per area).

`area` is the section or zone name an entry asks for, or "" for anywhere (section and zone
names are unique within a show, so one string says which).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from domain.ticketing.events import WaitlistJoined
from domain.ticketing.ranks import RankTree

EntryStatus = Literal["waiting", "offered", "left"]

MAX_WAITLIST_QUANTITY = 10
ANYWHERE = ""


@dataclass(frozen=True, slots=True)
class WaitEntry:
    """One fan's place in the line. `order_id` is the offer, once made (an ordinary held
    order with the id `offer_order_id` drawn when the fan joined)."""

    entry_id: str
    user: str
    seq: int
    quantity: int
    section: str | None
    zone: str | None
    offer_order_id: str
    joined_at: datetime
    version: int
    status: EntryStatus = "waiting"
    order_id: str | None = None

    @property
    def area(self) -> str:
        return self.section or self.zone or ANYWHERE


class Waitlist:
    """Mutated only by evolve (through `join`, `leave`, `offer`)."""

    __slots__ = ("_by_seq", "_entries", "_files", "_latest", "_ranks")

    def __init__(self) -> None:
        self._entries: dict[str, WaitEntry] = {}
        self._by_seq: list[str] = []
        self._ranks = RankTree()
        # Each user's most recent entry: joining again while it is live returns it.
        self._latest: dict[str, str] = {}
        self._files: dict[tuple[str, int], deque[int]] = {}

    def copy(self) -> Waitlist:
        twin = Waitlist.__new__(Waitlist)
        twin._entries = dict(self._entries)
        twin._by_seq = list(self._by_seq)
        twin._ranks = self._ranks.copy()
        twin._latest = dict(self._latest)
        twin._files = {key: deque(seqs) for key, seqs in self._files.items()}
        return twin

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Waitlist):
            return NotImplemented
        return (
            self._entries == other._entries
            and self._by_seq == other._by_seq
            and self._ranks == other._ranks
            and self._latest == other._latest
            and self._files == other._files
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Waitlist(waiting={self.waiting}, entries={len(self._entries)})"

    # -- reading ----------------------------------------------------------------------------

    @property
    def waiting(self) -> int:
        """How many entries are waiting (the contract's `waiting`)."""
        return len(self._ranks)

    def entry(self, entry_id: str) -> WaitEntry | None:
        return self._entries.get(entry_id)

    def latest_of(self, user: str) -> WaitEntry | None:
        """The user's most recent entry in this show's line, whatever its status."""
        entry_id = self._latest.get(user)
        return None if entry_id is None else self._entries[entry_id]

    def at_seq(self, seq: int) -> WaitEntry:
        return self._entries[self._by_seq[seq - 1]]

    def is_waiting(self, seq: int) -> bool:
        return seq in self._ranks

    def position(self, entry_id: str) -> int | None:
        """1 + the waiting entries ahead, for a waiting entry; None otherwise. O(log n)."""
        entry = self._entries.get(entry_id)
        if entry is None or entry.status != "waiting":
            return None
        return self._ranks.rank(entry.seq)

    def at_position(self, position: int) -> WaitEntry:
        """The waiting entry at `position` (1-based). IndexError if the line is shorter."""
        return self.at_seq(self._ranks.select(position))

    def waiting_entries(self) -> Iterator[WaitEntry]:
        """The waiting entries in line order."""
        return (self.at_seq(seq) for seq in self._ranks)

    def entries(self) -> Iterator[WaitEntry]:
        """Every entry ever made, in join order."""
        return (self._entries[entry_id] for entry_id in self._by_seq)

    def files(self) -> Iterator[tuple[str, int, deque[int]]]:
        """(area, quantity, seqs in line order) for every non-empty file; each head waits."""
        return ((area, quantity, seqs) for (area, quantity), seqs in self._files.items())

    # -- changing (only evolve calls these) -------------------------------------------------

    def joined(self, event: WaitlistJoined) -> WaitEntry:
        """Fold a journaled join: the one place an event becomes an entry."""
        return self.join(
            entry_id=event.entry_id,
            user=event.user,
            quantity=event.quantity,
            section=event.section,
            zone=event.zone,
            offer_order_id=event.offer_order_id,
            joined_at=event.joined_at,
            version=event.version,
        )

    def join(
        self,
        *,
        entry_id: str,
        user: str,
        quantity: int,
        section: str | None,
        zone: str | None,
        offer_order_id: str,
        joined_at: datetime,
        version: int,
    ) -> WaitEntry:
        seq = self._ranks.append()
        entry = WaitEntry(
            entry_id=entry_id,
            user=user,
            seq=seq,
            quantity=quantity,
            section=section,
            zone=zone,
            offer_order_id=offer_order_id,
            joined_at=joined_at,
            version=version,
        )
        self._entries[entry_id] = entry
        self._by_seq.append(entry_id)
        self._latest[user] = entry_id
        self._files.setdefault((entry.area, quantity), deque()).append(seq)
        return entry

    def leave(self, entry: WaitEntry, version: int) -> None:
        self._stop_waiting(replace(entry, status="left", version=version))

    def offer(self, entry: WaitEntry, order_id: str, version: int) -> None:
        self._stop_waiting(replace(entry, status="offered", order_id=order_id, version=version))

    def _stop_waiting(self, entry: WaitEntry) -> None:
        self._entries[entry.entry_id] = entry
        self._ranks.remove(entry.seq)
        key = (entry.area, entry.quantity)
        seqs = self._files[key]
        # Keep every head waiting: drop the ones that stopped, from the front only (entries
        # further back are skipped when they reach the front), so this stays amortised O(1).
        while seqs and seqs[0] not in self._ranks:
            seqs.popleft()
        if not seqs:
            del self._files[key]
