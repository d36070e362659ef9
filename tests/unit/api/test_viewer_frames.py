"""A live seat-map viewer's queue: deltas chain, a viewer too far behind gets a snapshot, and
whatever queued while a send was in flight goes out as one merged frame."""

from __future__ import annotations

import orjson

from api.seatmaps import VIEWER_QUEUE, Viewer, catch_up_frame, delta_frame
from domain.ticketing.show import SeatStatus
from domain.ticketing.views import SeatMapDelta


def delta(from_version: int, seats: dict[str, SeatStatus]) -> tuple[SeatMapDelta, str]:
    d = SeatMapDelta("s1", from_version, from_version + 1, seats, {})
    return d, delta_frame(d)


def test_queued_deltas_go_out_as_one_frame_from_the_first_to_the_last_version() -> None:
    viewer = Viewer(version=3)
    for d, frame in (delta(3, {"A-1-1": "held"}), delta(4, {"A-1-2": "held"})):
        viewer.offer(d, frame)
    viewer.offer(*delta(5, {"A-1-1": "sold"}))
    cache: dict[tuple[int, int], str] = {}
    sent = orjson.loads(catch_up_frame(viewer.take(), cache))
    assert (sent["type"], sent["from_version"], sent["version"]) == ("delta", 3, 6)
    assert sent["seats"] == {"A-1-1": "sold", "A-1-2": "held"}
    assert viewer.take() == []
    # A second viewer behind by the same range gets the very same encoding.
    assert list(cache) == [(3, 6)]


def test_one_queued_delta_is_sent_as_it_was_encoded() -> None:
    viewer = Viewer(version=1)
    d, frame = delta(1, {"A-1-1": "held"})
    viewer.offer(d, frame)
    assert catch_up_frame(viewer.take(), {}) is frame


def test_a_delta_that_does_not_chain_or_overflows_the_queue_asks_for_a_snapshot() -> None:
    gap = Viewer(version=1)
    gap.offer(*delta(2, {"A-1-1": "held"}))
    assert gap.resync.is_set() and gap.take() == []

    slow = Viewer(version=0)
    for v in range(VIEWER_QUEUE):
        slow.offer(*delta(v, {"A-1-1": "held" if v % 2 else "available"}))
    assert not slow.resync.is_set()
    slow.offer(*delta(VIEWER_QUEUE, {"A-1-2": "held"}))
    assert slow.resync.is_set()
    # Once resyncing, nothing more is queued until the snapshot has gone out.
    slow.offer(*delta(VIEWER_QUEUE, {"A-1-2": "held"}))
    assert len(slow.queue) == VIEWER_QUEUE
