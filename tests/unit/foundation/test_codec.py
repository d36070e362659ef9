"""The codec turns the domain's dataclasses into JSON and back, and names what it rejects."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from producers.codec import DecodeError, Registry
from producers.envelope import CommandEnvelope, EventRecord, Reply


@dataclass(frozen=True, slots=True)
class Seat:
    id: str
    price_cents: int


@dataclass(frozen=True, slots=True)
class Held:
    order_id: str
    seats: tuple[Seat, ...]
    expires_at: datetime
    zone: str | None = None
    paid: bool = False


registry = Registry([Held, Seat])

seats = st.builds(Seat, st.text(min_size=1, max_size=8), st.integers(0, 10**9))
helds = st.builds(
    Held,
    st.text(min_size=1),
    st.lists(seats, max_size=5).map(tuple),
    st.datetimes(timezones=st.just(UTC)),
    st.none() | st.text(max_size=8),
    st.booleans(),
)


@given(helds)
def test_every_message_survives_a_round_trip(held: Held) -> None:
    assert registry.decode(registry.encode(held)) == held


def test_a_message_names_its_type() -> None:
    held = Held("o1", (Seat("A-1-1", 5000),), datetime(2026, 1, 1, tzinfo=UTC))
    assert registry.to_dict(held) == {
        "type": "Held",
        "order_id": "o1",
        "seats": [{"id": "A-1-1", "price_cents": 5000}],
        "expires_at": "2026-01-01T00:00:00+00:00",
        "zone": None,
        "paid": False,
    }


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"{nope", "not JSON"),
        (b"[1, 2]", "must be an object"),
        (b'{"type": "Sold"}', "unknown message type"),
        (b'{"type": "Held", "order_id": "o"}', "missing field"),
        (
            b'{"type": "Held", "order_id": 7, "seats": [], "expires_at": "2026-01-01T00:00:00Z"}',
            "expected a string",
        ),
        (
            b'{"type": "Held", "order_id": "o", "seats": [], "expires_at": "2026-01-01T00:00:00"}',
            "needs a zone",
        ),
        (
            b'{"type": "Held", "order_id": "o", "seats": [{"id": "x", "price_cents": true}],'
            b' "expires_at": "2026-01-01T00:00:00Z"}',
            "expected an integer",
        ),
    ],
)
def test_a_poison_message_is_a_decode_error_saying_why(raw: bytes, problem: str) -> None:
    with pytest.raises(DecodeError, match=problem):
        registry.decode(raw)


def test_envelopes_round_trip_and_reject_garbage() -> None:
    command = CommandEnvelope("c1", "show-1", "PlaceHold", {"seats": ["A-1-1"]})
    assert CommandEnvelope.decode(command.encode()) == command
    record = EventRecord("show-1", 3, "c1", datetime(2026, 1, 1, tzinfo=UTC), {"type": "X"})
    assert EventRecord.decode(record.encode()) == record
    reply = Reply("c1", "show-1", ok=False, error={"code": "seats_unavailable"}, version=3)
    assert Reply.decode(reply.encode()) == reply
    for garbage in (None, b"", b"null", b'{"command_id": 1}'):
        with pytest.raises(DecodeError):
            CommandEnvelope.decode(garbage)
    with pytest.raises(DecodeError):
        EventRecord.decode(b'{"stream_id": "s", "version": "3"}')


def test_absent_fields_with_defaults_take_them_and_wrong_variants_are_named() -> None:
    decoded = registry.decode(
        b'{"type": "Held", "order_id": "o", "seats": [], "expires_at": "2026-01-01T00:00:00Z"}'
    )
    assert decoded == Held("o", (), datetime(2026, 1, 1, tzinfo=UTC))
    with pytest.raises(DecodeError, match="zone: no variant fits"):
        registry.decode(
            b'{"type": "Held", "order_id": "o", "seats": [], "zone": 3,'
            b' "expires_at": "2026-01-01T00:00:00Z"}'
        )
    with pytest.raises(DecodeError, match="seats: expected a list"):
        registry.decode(
            b'{"type": "Held", "order_id": "o", "seats": {}, "expires_at": "2026-01-01T00:00:00Z"}'
        )
    with pytest.raises(DecodeError, match="paid: expected a boolean"):
        registry.decode(
            b'{"type": "Held", "order_id": "o", "seats": [], "paid": 1,'
            b' "expires_at": "2026-01-01T00:00:00Z"}'
        )
