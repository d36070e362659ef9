"""The live seat map: one in-memory view per watched show, a snapshot then chained deltas.

A show's view is seeded from the latest snapshot plus the journal after it, then kept
current from the event hub. Deltas are merged per short window and encoded once per window
for all viewers of the show (viewers vastly outnumber buyers). Every viewer has a bounded
queue: a viewer that cannot keep up, or whose next frame would not chain, gets a fresh
snapshot instead, so frames always chain with no gap and no repeat and nothing buffers
without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from api.hub import EventHub, Subscription
from api.pershow import PerShow
from domain.ticketing import JournalError
from domain.ticketing.views import SeatMapDelta, SeatMapView, ZoneCounts, merge_deltas
from producers.codec import DecodeError
from producers.journal import JournalUnavailableError
from producers.registries import TICKETING
from producers.topics import SHOW_EVENTS

log = logging.getLogger(__name__)

Loader = Callable[[str], Awaitable[SeatMapView | None]]

# How long deltas are gathered before one merged frame goes out: the price of one frame per
# window instead of one per event per viewer, paid in at most this much added latency.
WINDOW_S = 0.05
# Changes kept per show for `since=V` resumes.
RECENT_DELTAS = 4096
VIEWER_QUEUE = 64
# Merged catch-up frames kept per show (viewers behind by the same range share one encoding).
MERGED_FRAMES = 32
# A show nobody watches is dropped after this long.
IDLE_S = 60.0
# A view loaded from the snapshot alone (journal down) is loaded again this often.
RETRY_S = 2.0


def zones_json(zones: dict[str, ZoneCounts]) -> dict[str, dict[str, int]]:
    return {
        name: {"capacity": z.capacity, "available": z.available, "held": z.held, "sold": z.sold}
        for name, z in zones.items()
    }


def snapshot_json(view: SeatMapView) -> dict[str, Any]:
    return {
        "show_id": view.show_id,
        "version": view.version,
        "seats": view.seats,
        "zones": zones_json(view.zones),
    }


def delta_frame(delta: SeatMapDelta) -> str:
    return orjson.dumps(
        {
            "type": "delta",
            "show_id": delta.show_id,
            "from_version": delta.from_version,
            "version": delta.version,
            "seats": delta.seats,
            "zones": zones_json(delta.zones),
        }
    ).decode()


class SeatMapUnavailableError(Exception):
    """The show's map cannot be loaded now (storage or journal down); try again later."""


class Viewer:
    def __init__(self, version: int) -> None:
        self.version = version  # the version the client will have after the queued frames
        # Deltas not yet sent, each with its frame (encoded once for every viewer); they chain.
        self.queue: list[tuple[SeatMapDelta, str]] = []
        self.resync = asyncio.Event()
        self.wakeup = asyncio.Event()

    def offer(self, delta: SeatMapDelta, frame: str) -> None:
        if self.resync.is_set():
            return
        if delta.from_version != self.version:
            self._need_snapshot()
            return
        if len(self.queue) >= VIEWER_QUEUE:
            # Too far behind to catch up frame by frame: a fresh snapshot instead.
            self._need_snapshot()
            return
        self.queue.append((delta, frame))
        self.version = delta.version
        self.wakeup.set()

    def take(self) -> list[tuple[SeatMapDelta, str]]:
        """Everything queued, oldest first; the queue is empty after."""
        taken, self.queue = self.queue, []
        return taken

    def _need_snapshot(self) -> None:
        self.resync.set()
        self.wakeup.set()


class LiveShow:
    def __init__(
        self, show_id: str, hub: EventHub, loader: Loader, fallback: Loader | None = None
    ) -> None:
        self.show_id = show_id
        self.hub = hub
        self.loader = loader
        self.fallback = fallback
        # True while the view is only the latest snapshot (the journal did not answer): it is
        # served to viewers, not as current, and the load is tried again every RETRY_S.
        self.stale = False
        self._loaded_at = 0.0
        self.view: SeatMapView | None = None
        self.recent: deque[SeatMapDelta] = deque(maxlen=RECENT_DELTAS)
        self.pending: list[SeatMapDelta] = []
        self.viewers: set[Viewer] = set()
        self.ready = asyncio.Event()
        self.missing = False
        # Set when the first load failed (PostgreSQL or the journal down): the show is
        # dropped and the next viewer tries afresh.
        self.failed = False
        self.idle_since = asyncio.get_running_loop().time()
        self._snapshot_cache: tuple[int, str] | None = None
        self._merged_frames: dict[tuple[int, int], str] = {}
        self._sub: Subscription | None = None
        self._task = asyncio.create_task(self._run(), name=f"live-{show_id}")

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        if self._sub is not None:
            self._sub.close()

    def snapshot_frame(self) -> str:
        assert self.view is not None
        cached = self._snapshot_cache
        if cached is None or cached[0] != self.view.version:
            frame = orjson.dumps({"type": "snapshot", **snapshot_json(self.view)}).decode()
            self._snapshot_cache = cached = (self.view.version, frame)
        return cached[1]

    def resume_frame(self, since: int) -> tuple[str, int] | None:
        """A delta from `since` to now when every change after it is still at hand."""
        assert self.view is not None
        now = self.view.version
        if since == now:
            empty = SeatMapDelta(self.show_id, since, since, {}, {})
            return delta_frame(empty), since
        if since > now or not self.recent or self.recent[0].from_version > since:
            return None
        chain = [d for d in self.recent if d.from_version >= since]
        if not chain or chain[0].from_version != since:
            return None
        merged = merge_deltas(chain)
        return delta_frame(merged), merged.version

    async def _load(self) -> None:
        self._loaded_at = asyncio.get_running_loop().time()
        stale = False
        try:
            try:
                view = await self.loader(self.show_id)
            except JournalUnavailableError:
                if self.fallback is None or self.view is not None:
                    raise
                view = await self.fallback(self.show_id)
                if view is None:
                    raise
                stale = True
        except Exception as exc:  # storage or journal down: the viewers must not die with it
            log.warning("show %s: the seat map cannot be loaded now (%r)", self.show_id, exc)
            if self.view is None:
                self.failed = True
            # With a view already, it is kept; the load is tried again later.
            self.stale = self.stale or self.view is not None
            self.ready.set()
            return
        self.stale = stale
        if view is None:
            self.missing = True
            self.ready.set()
            return
        self.missing = False
        self.view = view
        self.recent.clear()
        self.pending.clear()
        for viewer in self.viewers:
            viewer._need_snapshot()
        self.ready.set()

    async def _run(self) -> None:
        # Subscribe before loading, so no event between the snapshot and "live" is missed;
        # events already in the loaded view are recognised by version and skipped.
        self._sub = self.hub.subscribe(SHOW_EVENTS, self.show_id, maxsize=100_000)
        await self._load()
        if self.failed:
            return
        loop = asyncio.get_running_loop()
        while True:
            flush_at = loop.time() + WINDOW_S
            while (left := flush_at - loop.time()) > 0:
                queue = self._sub.queue
                if queue.empty():
                    try:
                        record = await asyncio.wait_for(queue.get(), left)
                    except TimeoutError:
                        break
                else:
                    # What is queued is taken without a loop turn per event: wait_for runs
                    # each get as a task, and on a busy API a turn is 10-50 ms; one event a
                    # turn left the storm's viewers 30 s behind the journal.
                    record = queue.get_nowait()
                await self._apply(record.event)
            if self._sub.overflowed.is_set():
                self._sub.close()
                self._sub = self.hub.subscribe(SHOW_EVENTS, self.show_id, maxsize=100_000)
                await self._load()
                continue
            if self.stale and loop.time() - self._loaded_at >= RETRY_S:
                await self._load()
                continue
            self._flush()

    async def _apply(self, body: dict[str, Any]) -> None:
        try:
            event = TICKETING.from_dict(body)
        except DecodeError:
            log.warning("undecodable event for show %s", self.show_id)
            return
        if self.view is None:
            if event.version == 1:
                self.view = SeatMapView()
                self.missing = False
            else:
                await self._load()
                return
        if event.version <= self.view.version:
            return
        if event.version != self.view.version + 1:
            log.warning("gap in show %s at v%d; reloading", self.show_id, self.view.version)
            await self._load()
            return
        try:
            delta = self.view.apply(event)
        except JournalError:
            log.exception("show %s: the journal does not fold; reloading", self.show_id)
            await self._load()
            return
        if delta is not None:
            self.pending.append(delta)
            self.recent.append(delta)

    def _flush(self) -> None:
        if not self.pending:
            return
        merged = merge_deltas(self.pending)
        self.pending = []
        frame = delta_frame(merged)
        for viewer in self.viewers:
            viewer.offer(merged, frame)

    def join(self, viewer: Viewer) -> None:
        """Start `viewer` at the view's version. What is pending goes out first, to the viewers
        already here: its merged delta starts before that version, so the newcomer would take
        it for a gap and get a second snapshot (a resumed viewer, a snapshot instead of only
        what it missed)."""
        self._flush()
        self.viewers.add(viewer)

    def catch_up_frame(self, queued: list[tuple[SeatMapDelta, str]]) -> str:
        return catch_up_frame(queued, self._merged_frames)


def catch_up_frame(
    queued: list[tuple[SeatMapDelta, str]], merged: dict[tuple[int, int], str]
) -> str:
    """One frame for a viewer's queued deltas: the one frame itself, or their merge (one write
    instead of several), encoded once in `merged` for every viewer behind by the same range."""
    if len(queued) == 1:
        return queued[0][1]
    key = (queued[0][0].from_version, queued[-1][0].version)
    frame = merged.get(key)
    if frame is None:
        if len(merged) >= MERGED_FRAMES:
            merged.clear()
        frame = merged[key] = delta_frame(merge_deltas(d for d, _ in queued))
    return frame


class LiveSeatMaps(PerShow[LiveShow]):
    def __init__(self, hub: EventHub, loader: Loader, fallback: Loader | None = None) -> None:
        super().__init__("live-reaper", IDLE_S)
        self.hub = hub
        self.loader = loader
        self.fallback = fallback

    async def show(self, show_id: str) -> LiveShow | None:
        """The live show; None for an unknown show; SeatMapUnavailableError when it cannot be
        loaded now."""
        live = self.shows.get(show_id)
        if live is None:
            live = self.shows[show_id] = LiveShow(show_id, self.hub, self.loader, self.fallback)
        await live.ready.wait()
        if live.failed:
            await self.drop(show_id, live)
            raise SeatMapUnavailableError(show_id)
        if live.missing:
            return None
        return live

    async def forget_missing(self, show_id: str) -> None:
        """Drop the record that `show_id` was unknown, so the next `show` looks again."""
        live = self.shows.get(show_id)
        if live is not None and live.missing:
            await self.drop(show_id, live)

    def current(self, show_id: str) -> SeatMapView | None:
        live = self.shows.get(show_id)
        if live is None or live.view is None or live.stale:
            return None
        return live.view

    def idle(self, live: LiveShow, now: float) -> bool:
        if live.viewers:
            live.idle_since = now
            return False
        return now - live.idle_since > self.idle_s or live.missing
