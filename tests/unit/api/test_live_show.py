"""A live show's viewers start where the frames they will be offered start: a viewer that
joins while merged changes are pending (within a window) is not taken for one that missed
some, so it does not get a second snapshot, and a resumed viewer gets only what it missed."""

from __future__ import annotations

from pathlib import Path

from api.hub import EventHub
from api.seatmaps import LiveShow, Viewer, delta_frame
from boxoffice.settings import Settings
from domain.ticketing.views import SeatMapView
from producers.registries import TICKETING
from producers.tailing import Tail
from producers.topics import SHOW_EVENTS
from tests.unit.ticketing.scenarios import SHOW, seats_held, show_created


async def loaded_at_version_1(show_id: str) -> SeatMapView | None:
    return SeatMapView.from_events([show_created()])


async def live_show(tmp_path: Path) -> LiveShow:
    settings = Settings(var_dir=tmp_path)
    hub = EventHub(settings, (SHOW_EVENTS,), Tail(settings))  # never started: fed by hand
    live = LiveShow(SHOW, hub, loaded_at_version_1)
    await live.ready.wait()
    return live


async def test_a_viewer_joining_mid_window_is_offered_a_delta_that_chains(tmp_path: Path) -> None:
    live = await live_show(tmp_path)
    try:
        steady = Viewer(1)
        live.join(steady)
        # Two holds are applied; the window has not closed, so nothing was offered yet.
        for version, seat in ((2, "A-1-1"), (3, "A-1-2")):
            await live._apply(TICKETING.to_dict(seats_held(f"o{version}", seat, version=version)))
        assert live.view is not None and live.view.version == 3
        assert steady.queue == []

        # A viewer resuming from version 1 gets the changes 1..3 and starts at 3.
        resumed = live.resume_frame(1)
        assert resumed is not None and resumed[1] == 3
        late = Viewer(resumed[1])
        live.join(late)
        # The viewer already here got the pending changes as they were, when the newcomer came.
        assert [(d.from_version, d.version) for d, _ in steady.queue] == [(1, 3)]

        await live._apply(TICKETING.to_dict(seats_held("o4", "A-1-3", version=4)))
        live._flush()
        for viewer in (steady, late):
            assert not viewer.resync.is_set()
            assert viewer.version == 4
        assert [(d.from_version, d.version) for d, _ in late.queue] == [(3, 4)]
        assert late.queue[0][1] == delta_frame(late.queue[0][0])
    finally:
        await live.close()


async def test_joining_with_nothing_pending_offers_nothing(tmp_path: Path) -> None:
    live = await live_show(tmp_path)
    try:
        first, second = Viewer(1), Viewer(1)
        live.join(first)
        live.join(second)
        assert first.queue == [] and second.queue == []
        assert not first.wakeup.is_set() and not second.wakeup.is_set()
    finally:
        await live.close()
