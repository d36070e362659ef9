"""The numbered seats of a show: who has which seat, and the best-available search.

All seats live in one bytearray, one byte per seat (FREE or TAKEN), sections in declared
order, rows in order, and a ROW_END byte after every row. That layout lets `bytes.find`
(C speed) look for "n adjacent free seats" across 200,000 seats without ever matching
across two rows. A second bytearray holds each row's free count, capped at the largest
hold, so the fewest-rows fallback can find rows by count with `find`/`re` as well.

Holds that have run out but are not journaled as expired yet are still TAKEN here; the
decider passes their seats in as `also_free` and the search works on a copy.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Collection, Iterator

from domain.ticketing.errors import NotEnoughSeatsError
from domain.ticketing.venue import MAX_SEATS_PER_HOLD, Section

FREE = 0
TAKEN = 1
ROW_END = 2

# Row counts above the largest hold never change a decision, and keep every count in a byte.
_COUNT_CAP = MAX_SEATS_PER_HOLD
_MAX_NUMBER_DIGITS = 9


def _number(text: str) -> int | None:
    """A 1-based number written canonically, so `A-01-1` is not a second name for `A-1-1`."""
    canonical = text.isascii() and text.isdigit() and not text.startswith("0")
    return int(text) if canonical and len(text) <= _MAX_NUMBER_DIGITS else None


def seat_ids(sections: tuple[Section, ...]) -> Iterator[str]:
    """Every seat id of a layout, in layout order."""
    for section in sections:
        for row in range(1, section.rows + 1):
            prefix = f"{section.name}-{row}-"
            for seat in range(1, section.seats_per_row + 1):
                yield f"{prefix}{seat}"


def _count_at_least(counts: bytearray, minimum: int) -> int:
    """Index of the first row count >= minimum, or -1."""
    found = re.search(b"[\\x%02x-\\x%02x]" % (minimum, _COUNT_CAP), counts)
    return -1 if found is None else found.start()


class SeatGrid:
    """Seat occupancy of one show. Mutated only through `take` and `release`."""

    __slots__ = (
        "_base",
        "_index",
        "_owner",
        "_row_base",
        "_row_cap",
        "_row_free",
        "_section_free",
        "_status",
        "sections",
    )

    def __init__(self, sections: tuple[Section, ...]) -> None:
        self.sections = sections
        self._index = {section.name: i for i, section in enumerate(sections)}
        self._base: list[int] = []
        self._row_base: list[int] = []
        status = bytearray()
        rows = 0
        for section in sections:
            self._base.append(len(status))
            self._row_base.append(rows)
            row = bytes([FREE]) * section.seats_per_row + bytes([ROW_END])
            status += row * section.rows
            rows += section.rows
        self._status = status
        self._row_free = [
            section.seats_per_row for section in sections for _ in range(section.rows)
        ]
        self._row_cap = bytearray(min(free, _COUNT_CAP) for free in self._row_free)
        self._section_free = [section.seat_count for section in sections]
        self._owner: dict[int, str] = {}

    def copy(self) -> SeatGrid:
        twin = SeatGrid.__new__(SeatGrid)
        twin.sections = self.sections
        twin._index = self._index
        twin._base = self._base
        twin._row_base = self._row_base
        twin._status = bytearray(self._status)
        twin._row_free = list(self._row_free)
        twin._row_cap = bytearray(self._row_cap)
        twin._section_free = list(self._section_free)
        twin._owner = dict(self._owner)
        return twin

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SeatGrid):
            return NotImplemented
        return (
            self.sections == other.sections
            and self._status == other._status
            and self._row_free == other._row_free
            and self._row_cap == other._row_cap
            and self._section_free == other._section_free
            and self._owner == other._owner
        )

    __hash__ = None  # type: ignore[assignment]

    # -- addressing -------------------------------------------------------------------------

    def section_index(self, name: str) -> int | None:
        return self._index.get(name)

    def locate(self, seat_id: str) -> int | None:
        """The offset of a well-formed, in-range seat id, else None."""
        parts = seat_id.split("-")
        if len(parts) != 3:
            return None
        index = self._index.get(parts[0])
        row, seat = _number(parts[1]), _number(parts[2])
        if index is None or row is None or seat is None:
            return None
        section = self.sections[index]
        if row > section.rows or seat > section.seats_per_row:
            return None
        return self._base[index] + (row - 1) * (section.seats_per_row + 1) + seat - 1

    def section_of(self, offset: int) -> int:
        return bisect_right(self._base, offset) - 1

    def seat_id(self, offset: int) -> str:
        index = self.section_of(offset)
        section = self.sections[index]
        row, seat = divmod(offset - self._base[index], section.seats_per_row + 1)
        return f"{section.name}-{row + 1}-{seat + 1}"

    def price_of(self, offset: int) -> int:
        return self.sections[self.section_of(offset)].price_cents

    def _row_of(self, offset: int) -> int:
        index = self.section_of(offset)
        stride = self.sections[index].seats_per_row + 1
        return self._row_base[index] + (offset - self._base[index]) // stride

    def _row_start(self, row: int) -> tuple[int, int]:
        """Offset of the first seat of global row `row`, and the row's length."""
        index = bisect_right(self._row_base, row) - 1
        length = self.sections[index].seats_per_row
        return self._base[index] + (row - self._row_base[index]) * (length + 1), length

    # -- occupancy --------------------------------------------------------------------------

    @property
    def seat_count(self) -> int:
        return sum(section.seat_count for section in self.sections)

    @property
    def free_count(self) -> int:
        return sum(self._section_free)

    def section_free(self, index: int) -> int:
        """Free seats in section `index` (as journaled)."""
        return self._section_free[index]

    def owner(self, offset: int) -> str | None:
        return self._owner.get(offset)

    def take(self, offsets: Collection[int], order_id: str) -> None:
        for offset in offsets:
            self._status[offset] = TAKEN
            self._owner[offset] = order_id
            self._shift(offset, -1)

    def release(self, offsets: Collection[int]) -> None:
        for offset in offsets:
            self._status[offset] = FREE
            del self._owner[offset]
            self._shift(offset, +1)

    def _shift(self, offset: int, delta: int) -> None:
        row = self._row_of(offset)
        free = self._row_free[row] + delta
        self._row_free[row] = free
        self._row_cap[row] = min(free, _COUNT_CAP)
        self._section_free[self.section_of(offset)] += delta

    def seats(self) -> Iterator[tuple[str, str | None]]:
        """Every seat id with the order that has it (None when free), in layout order."""
        for index, section in enumerate(self.sections):
            base = self._base[index]
            stride = section.seats_per_row + 1
            for row in range(section.rows):
                for seat in range(section.seats_per_row):
                    owner = self._owner.get(base + row * stride + seat)
                    yield f"{section.name}-{row + 1}-{seat + 1}", owner

    # -- best available ---------------------------------------------------------------------

    def best_available(
        self,
        quantity: int,
        section: int | None,
        also_free: Collection[int],
        also_taken: Collection[int] = (),
    ) -> list[int]:
        """Offsets of the best `quantity` free seats, optionally only in section `section`.

        Best means: `quantity` adjacent seats in one row, taking the first section (in
        declared order) and the lowest row (row 1 is nearest the stage) that has such a run,
        and within that row the run whose middle is nearest the row's middle (the left one
        on a tie). When no row has such a run: the fewest rows. Rows are filled fullest first
        (earlier section and row on a tie), except that the remainder goes to the first row
        that can take all of it; in each row, the seats nearest its middle.
        `also_free` are taken seats to treat as free (lapsed holds), `also_taken` free seats
        to treat as taken (given away earlier in the same decision); the two must not
        overlap. Never mutates the grid.
        """
        if section is None:
            lo, hi = 0, len(self._status)
            row_lo, row_hi = 0, len(self._row_free)
            free = self.free_count
        else:
            spec = self.sections[section]
            lo = self._base[section]
            hi = lo + spec.rows * (spec.seats_per_row + 1)
            row_lo = self._row_base[section]
            row_hi = row_lo + spec.rows
            free = self._section_free[section]

        status = self._status
        lapsed = [offset for offset in also_free if lo <= offset < hi]
        blocked = [offset for offset in also_taken if lo <= offset < hi]
        if lapsed or blocked:
            status = bytearray(status)
            for offset in lapsed:
                status[offset] = FREE
            for offset in blocked:
                status[offset] = TAKEN
            free += len(lapsed) - len(blocked)
        if free < quantity:
            raise NotEnoughSeatsError(requested=quantity, available=free)

        run = bytes(quantity)
        start = status.find(run, lo, hi)
        if start >= 0:
            row_start, length = self._row_start(self._row_of(start))
            first = _centred_run(status, row_start, length, quantity)
            return list(range(first, first + quantity))

        counts = bytearray(self._row_cap[row_lo:row_hi])
        extra: dict[int, int] = {}
        for offsets, change in ((lapsed, 1), (blocked, -1)):
            for offset in offsets:
                row = self._row_of(offset)
                extra[row] = extra.get(row, 0) + change
        for row, more in extra.items():
            counts[row - row_lo] = min(self._row_free[row] + more, _COUNT_CAP)
        chosen: list[int] = []
        remaining = quantity
        largest = quantity - 1
        while remaining:
            row = _count_at_least(counts, remaining)
            if row >= 0:
                take = remaining
            else:
                largest = min(largest, remaining - 1)
                while (row := counts.find(largest)) < 0:
                    largest -= 1
                take = largest
            counts[row] = 0
            row_start, length = self._row_start(row + row_lo)
            chosen += _nearest_free(status, row_start, length, take)
            remaining -= take
        return sorted(chosen)


def _centred_run(status: bytearray, row_start: int, length: int, quantity: int) -> int:
    """Start of the run of `quantity` free seats whose middle is nearest the row's middle."""
    run = bytes(quantity)
    end = row_start + length
    target = row_start + (length - quantity) // 2
    right = status.find(run, target, end)
    left = status.rfind(run, row_start, target + quantity)

    def off_centre(start: int) -> int:
        return abs(2 * (start - row_start) + quantity - length)

    if left < 0:
        return right
    if right < 0 or off_centre(left) <= off_centre(right):
        return left
    return right


def _nearest_free(status: bytearray, row_start: int, length: int, take: int) -> list[int]:
    """The `take` free seats of a row nearest its middle (the left one on a tie)."""
    end = row_start + length
    middle = row_start + length // 2
    right = status.find(FREE, middle, end)
    left = status.rfind(FREE, row_start, middle)
    twice_centre = 2 * row_start + length - 1
    picked: list[int] = []
    while len(picked) < take:
        if right >= 0 and (left < 0 or 2 * right - twice_centre < twice_centre - 2 * left):
            picked.append(right)
            right = status.find(FREE, right + 1, end)
        else:
            picked.append(left)
            left = status.rfind(FREE, row_start, left)
    return picked
