"""The venue a show is sold in: numbered sections and general-admission zones."""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_SEATS = 200_000
MAX_ZONES = 50
MAX_SEATS_PER_HOLD = 50
# A hold longer than a week is a typo; the cap also keeps `now + hold` far from datetime overflow.
MAX_HOLD_SECONDS = 7 * 24 * 3600
MAX_SHOW_NAME = 200

_AREA_NAME = re.compile(r"[A-Z0-9]{1,8}")


@dataclass(frozen=True, slots=True)
class Section:
    """Numbered seats: `rows` rows of `seats_per_row`, ids `NAME-ROW-SEAT`, 1-based."""

    name: str
    rows: int
    seats_per_row: int
    price_cents: int

    @property
    def seat_count(self) -> int:
        return self.rows * self.seats_per_row


@dataclass(frozen=True, slots=True)
class Zone:
    """General admission: `capacity` interchangeable places."""

    name: str
    capacity: int
    price_cents: int


def layout_problem(sections: tuple[Section, ...], zones: tuple[Zone, ...]) -> str | None:
    """Why this layout cannot be sold, or None when it can."""
    if not sections and not zones:
        return "a show needs at least one section or zone"
    if len(zones) > MAX_ZONES:
        return f"at most {MAX_ZONES} zones"
    names = [section.name for section in sections] + [zone.name for zone in zones]
    for name in names:
        if not isinstance(name, str) or not _AREA_NAME.fullmatch(name):
            return f"area name {name!r} must match [A-Z0-9]{{1,8}}"
    if len(set(names)) != len(names):
        return "section and zone names must be unique"
    for section in sections:
        if section.rows < 1 or section.seats_per_row < 1:
            return f"section {section.name} needs at least one row and one seat per row"
        if section.price_cents < 0:
            return f"section {section.name} has a negative price"
    for zone in zones:
        if zone.capacity < 1:
            return f"zone {zone.name} needs a capacity of at least 1"
        if zone.price_cents < 0:
            return f"zone {zone.name} has a negative price"
    total = sum(section.seat_count for section in sections)
    if total > MAX_SEATS:
        return f"{total} seats is more than the {MAX_SEATS} a show may have"
    return None
