"""Ticket ids: derived purely from the order, so replay re-creates the same ones.

The order id is random (the adapter draws it), so a hash of it cannot be guessed either.
"""

from __future__ import annotations

import hashlib

from domain.ticketing.events import Ticket

TICKET_ID_LENGTH = 24


def ticket_id(order_id: str, seat: str) -> str:
    digest = hashlib.sha256(f"{order_id}:{seat}".encode()).hexdigest()
    return digest[:TICKET_ID_LENGTH]


def zone_places(zone: str, quantity: int) -> tuple[str, ...]:
    """A zone order's places are numbered within the order: FLOOR#1, FLOOR#2, ..."""
    return tuple(f"{zone}#{n}" for n in range(1, quantity + 1))


def issue_tickets(
    order_id: str, seats: tuple[str, ...], zone: str | None, quantity: int
) -> tuple[Ticket, ...]:
    places = seats if zone is None else zone_places(zone, quantity)
    return tuple(Ticket(ticket_id=ticket_id(order_id, place), seat=place) for place in places)
