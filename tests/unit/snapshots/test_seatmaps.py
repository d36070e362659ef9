"""Snapshots decode to exactly the map they were made of, stay small, and refuse to be
anything else; journal messages decode to sound events or are poison."""

from __future__ import annotations

import time
import zlib
from typing import Any

import orjson
import pytest

from domain.ticketing.errors import JournalError
from domain.ticketing.events import SeatsHeld, ShowCreated
from domain.ticketing.venue import Section, Zone
from domain.ticketing.views import SeatMapView
from producers.codec import DecodeError
from producers.envelope import EventRecord
from producers.registries import TICKETING
from snapshots.projection import decode_event
from snapshots.seatmaps import (
    Snapshot,
    SnapshotFormatError,
    available_places,
    decode_state,
    encode_state,
    fold_event,
    seatmap_json,
)
from tests.unit.snapshots.journals import SECTIONS, T0, record, sale

JOURNAL = sale("show-a", 300, seed=7)


def test_a_snapshot_decodes_to_the_map_it_was_made_of() -> None:
    for cut in (1, 2, 50, len(JOURNAL)):
        view = SeatMapView.from_events(JOURNAL[:cut])
        snapshot = Snapshot.of(view, SECTIONS, journal_partition=1, journal_offset=99)
        assert snapshot.version == cut
        assert snapshot.seatmap() == view


def test_a_decoded_map_is_a_fresh_one_that_folds_forward_like_the_original() -> None:
    view = SeatMapView.from_events(JOURNAL[:100])
    twin = decode_state("show-a", 100, encode_state(view, SECTIONS))
    for event in JOURNAL[100:]:
        assert fold_event(twin, event) == fold_event(view, event)
    assert twin == SeatMapView.from_events(JOURNAL)


def test_a_big_show_snapshot_is_small_and_quick() -> None:
    sections = tuple(Section(f"S{n}", 100, 200, 5000) for n in range(10))
    created = ShowCreated(
        "big", 1, "c", "olga", "Big", T0, 600, sections, (Zone("FLOOR", 5000, 100),), T0
    )
    view = SeatMapView.from_events([created])
    for n, seat in enumerate(list(view.seats)[::7][:3000]):
        fold_event(
            view,
            SeatsHeld("big", n + 2, f"c{n}", f"o{n}", "u", (seat,), None, 1, 1, T0, T0),
        )
    started = time.perf_counter()
    state = encode_state(view, sections)
    decoded = decode_state("big", view.version, state)
    elapsed = time.perf_counter() - started

    assert decoded == view
    assert len(view.seats) == 200_000
    assert len(state) < 40_000
    assert elapsed < 2.0


def test_bytes_that_are_not_a_snapshot_are_refused() -> None:
    view = SeatMapView.from_events(JOURNAL[:10])
    good = encode_state(view, SECTIONS)
    body = orjson.loads(zlib.decompress(good))
    wrong_length = zlib.compress(orjson.dumps({**body, "seats": body["seats"][:-1]}))
    wrong_letter = zlib.compress(orjson.dumps({**body, "seats": "x" * len(body["seats"])}))
    future = zlib.compress(orjson.dumps({**body, "format": 99}))
    for bad in (b"", b"garbage", good[:-3], wrong_length, wrong_letter, future):
        with pytest.raises(SnapshotFormatError):
            decode_state("show-a", 10, bad)


def test_a_map_that_does_not_fit_its_layout_is_not_snapshotted() -> None:
    view = SeatMapView.from_events(JOURNAL[:1])
    with pytest.raises(ValueError, match="seats"):
        encode_state(view, SECTIONS[:1])


def test_folding_refuses_seats_and_zones_the_show_lacks_and_leaves_the_map_alone() -> None:
    view = SeatMapView.from_events(JOURNAL[:1])
    before = view.copy()
    stray_seat = SeatsHeld("show-a", 2, "c", "o", "u", ("A-99-1",), None, 1, 1, T0, T0)
    stray_zone = SeatsHeld("show-a", 2, "c", "o", "u", (), "ROOF", 1, 1, T0, T0)
    for bad in (stray_seat, stray_zone):
        with pytest.raises(JournalError):
            fold_event(view, bad)
        assert view == before
    assert fold_event(view, JOURNAL[0]) is None  # already folded


def test_available_places_count_free_seats_and_free_zone_places() -> None:
    view = SeatMapView.from_events(JOURNAL)
    free_seats = sum(1 for status in view.seats.values() if status == "available")
    assert available_places(view) == free_seats + sum(z.available for z in view.zones.values())
    assert available_places(SeatMapView.from_events(JOURNAL[:1])) == 4 * 6 + 3 * 5 + 12 + 5


def test_the_seatmap_json_has_the_contract_shape() -> None:
    body = seatmap_json(SeatMapView.from_events(JOURNAL[:1]))
    assert set(body) == {"show_id", "version", "seats", "zones"}
    assert body["seats"]["A-1-1"] == "available"
    assert body["zones"]["FLOOR"] == {"capacity": 12, "available": 12, "held": 0, "sold": 0}


def test_journal_messages_decode_to_their_event() -> None:
    assert [decode_event(record(event)) for event in JOURNAL] == JOURNAL


def message(event_body: dict[str, Any], version: int = 1, stream: str = "show-a") -> bytes:
    return EventRecord(stream, version, "c", T0, event_body).encode()


def test_unsound_messages_are_poison() -> None:
    created = TICKETING.to_dict(JOURNAL[0])
    nul_name = {**created, "name": "bad\x00name"}
    command = {
        "type": "CancelHold",
        "command_id": "c",
        "show_id": "s",
        "user": "u",
        "order_id": "o",
    }
    for raw in (
        None,
        b"not json",
        b"[1]",
        message({"type": "Nope"}),
        message(created, version=2),
        message(created, stream="show-b"),
        message(nul_name),
        message(command),
    ):
        with pytest.raises(DecodeError):
            decode_event(raw)


def test_a_backslash_u_that_is_not_a_nul_is_fine() -> None:
    created = {**TICKETING.to_dict(JOURNAL[0]), "name": "literally \\u0000"}
    event = decode_event(message(created))
    assert isinstance(event, ShowCreated) and event.name == "literally \\u0000"
