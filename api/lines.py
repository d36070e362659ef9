"""The lines as an API instance keeps them: one show's waitlist and waiting room in memory.

A line is loaded from the lines projection (`snapshots.lines.load_line`: the rows at the
show's version, read in one snapshot) into the domain's own Waitlist and WaitingRoom, then
kept current from the event hub, like the live seat maps. A position is then one prefix sum
of the Waitlist's order-statistics tree (O(log n)), and a place in the queue one bisection,
whatever the length of the line; nothing is counted per request.

Events arrive in version order per show. One that does not follow (this instance subscribed
after the projection's rows, or the hub overflowed) is kept aside and the rows are loaded
again, until they reach it; so is a version a caller knows of (from a command's reply) that
the line has not reached. Reads wait for that version (read-your-writes), briefly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime
from typing import Any

from psycopg_pool import AsyncConnectionPool

from api.errors import unavailable
from api.hub import EventHub, Subscription
from api.pershow import PerShow
from domain.ticketing.events import (
    Event,
    QueueJoined,
    ShowCreated,
    WaitlistJoined,
    WaitlistLeft,
    WaitlistOffered,
)
from domain.ticketing.queue import QueuePlace, QueueSpec, WaitingRoom
from domain.ticketing.waitlist import WaitEntry, Waitlist
from producers.codec import DecodeError
from producers.registries import TICKETING
from producers.topics import SHOW_EVENTS
from snapshots.lines import StoredLine, line_counts, load_line, queue_json

log = logging.getLogger(__name__)

# How often the rows are read again while the line is behind a version it knows of.
RELOAD_S = 0.1
# How long a read waits for the line to reach the version its caller has seen.
READ_WAIT_S = 3.0
# How long a read waits for a line's first load (its rows) before saying 503: a load stuck
# behind a busy connection pool must not hold a socket's answer for the pool's 30 s.
LOAD_WAIT_S = 10.0
# A line nobody read for this long is dropped (loaded again on the next read).
IDLE_S = 120.0
# Rows folded between two turns of the loop while a line is loaded.
ADOPT_SLICE = 2_000
# Out-of-order events kept while waiting for the rows; past this, only the rows are trusted.
AHEAD_MAX = 100_000


class LiveLine:
    """One show's lines at `version` (0: not loaded, or no such show yet)."""

    def __init__(self, show_id: str, hub: EventHub, pool: AsyncConnectionPool[Any]) -> None:
        self.show_id = show_id
        self._hub = hub
        self._pool = pool
        self.version = 0
        self.line = Waitlist()
        self.room: WaitingRoom | None = None
        # Set once the first load answered (found or not); `failed` if storage did not.
        self.ready = asyncio.Event()
        self.failed = False
        self.wanted = 0
        self.used_at = asyncio.get_running_loop().time()
        self._ahead: dict[int, Event] = {}
        self._loaded_at = 0.0
        # The offers this instance saw made, for the live sockets' `offered` frames (an offer
        # made before the line was loaded is read from its order instead).
        self.offers: dict[str, WaitlistOffered] = {}
        # The live sockets following this line, by user; it is not dropped while any is open.
        # A departure from the waitlist (or the line loaded again) may move everyone, so it
        # wakes them all; a join moves nobody already in line, so it wakes only the joiner's.
        self._watchers: dict[str, set[asyncio.Event]] = {}
        # Set (and replaced) whenever the version moves: what `reach` waits for.
        self._moved = asyncio.Event()
        # A departure was applied: every socket is woken once the batch is (after readers).
        self._everyone_pending = False
        self._sub: Subscription | None = None
        self._task = asyncio.create_task(self._run(), name=f"line-{show_id}")

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        if self._sub is not None:
            self._sub.close()

    # -- reading ----------------------------------------------------------------------------

    def position(self, entry: WaitEntry) -> int | None:
        return self.line.position(entry.entry_id)

    def place(self, user: str, now: datetime) -> QueuePlace | None:
        return None if self.room is None else self.room.place(user, now)

    async def reach(self, version: int, wait_s: float = READ_WAIT_S) -> bool:
        """Wait until the line is at `version` or later; False if it is not by `wait_s`."""
        self.used_at = asyncio.get_running_loop().time()
        if self.version >= version:
            return True
        self.wanted = max(self.wanted, version)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_s):
                while self.version < version:
                    await self._moved.wait()
        return self.version >= version

    # -- following ----------------------------------------------------------------------------

    @property
    def watchers(self) -> int:
        return sum(len(wakes) for wakes in self._watchers.values())

    def watch(self, user: str, wake: asyncio.Event) -> None:
        """Set `wake` whenever something changes that may move `user`'s places."""
        self._watchers.setdefault(user, set()).add(wake)

    def unwatch(self, user: str, wake: asyncio.Event) -> None:
        wakes = self._watchers.get(user)
        if wakes is not None:
            wakes.discard(wake)
            if not wakes:
                del self._watchers[user]

    def _move(self) -> None:
        self._moved.set()
        self._moved = asyncio.Event()

    def _changed_for_everyone(self) -> None:
        for wakes in self._watchers.values():
            for wake in wakes:
                wake.set()

    def _changed_for(self, user: str) -> None:
        for wake in self._watchers.get(user, ()):
            wake.set()

    # -- keeping current --------------------------------------------------------------------

    async def _run(self) -> None:
        # Subscribe before loading, so nothing between the rows and "live" is missed; events
        # already in the rows are recognised by version and skipped.
        self._sub = self._hub.subscribe(SHOW_EVENTS, self.show_id, maxsize=100_000)
        await self._load()
        while True:
            behind = bool(self._ahead) or self.version < self.wanted or self.version == 0
            try:
                record = await asyncio.wait_for(self._sub.queue.get(), RELOAD_S if behind else 1)
            except TimeoutError:
                pass
            else:
                self._take(record.event)
                while not self._sub.queue.empty():
                    self._take(self._sub.queue.get_nowait().event)
            if self._sub.overflowed.is_set():
                self._sub.close()
                self._sub = self._hub.subscribe(SHOW_EVENTS, self.show_id, maxsize=100_000)
                self._ahead.clear()
                self.wanted = max(self.wanted, self.version + 1)
            behind = bool(self._ahead) or self.version < self.wanted
            loop = asyncio.get_running_loop()
            if behind and loop.time() - self._loaded_at >= RELOAD_S:
                await self._load()

    async def _load(self) -> None:
        self._loaded_at = asyncio.get_running_loop().time()
        try:
            stored = await load_line(self._pool, self.show_id)
        except Exception as exc:  # storage down: keep what is known, try again later
            log.warning("show %s: the lines cannot be loaded now (%r)", self.show_id, exc)
            self.failed = self.version == 0
            self.ready.set()
            return
        self.failed = False
        if stored is not None and stored.version > self.version:
            await self._adopt(stored)
        self._drain()
        self.ready.set()

    async def _adopt(self, stored: StoredLine) -> None:
        """Build the line from its rows; a long line yields to the loop every ADOPT_SLICE
        rows, so this worker's other requests do not wait for all of it (100,000 rows take
        about 1.4 s here). The line in use is replaced only once the new one is whole."""
        line = await waitlist_of(stored)
        counts = stored.counts
        room = None if counts.queue is None else WaitingRoom(counts.queue, counts.queue_seed)
        if room is not None:
            for n, member in enumerate(stored.members, start=1):
                if n % ADOPT_SLICE == 0:
                    await asyncio.sleep(0)
                room.join(member.user, member.joined_at, member.early, member.version)
        self.line, self.room, self.version = line, room, stored.version
        self._move()
        self._changed_for_everyone()

    def _take(self, body: dict[str, Any]) -> None:
        try:
            event = TICKETING.from_dict(body)
        except DecodeError:
            log.warning("undecodable event for show %s", self.show_id)
            return
        if event.version <= self.version:
            return
        if len(self._ahead) < AHEAD_MAX:
            self._ahead[event.version] = event
        self.wanted = max(self.wanted, event.version)
        self._drain()

    def _drain(self) -> None:
        """Apply the kept events that follow the line's version, in order."""
        ahead = self._ahead
        for version in [v for v in ahead if v <= self.version]:
            del ahead[version]
        moved = False
        while (event := ahead.pop(self.version + 1, None)) is not None:
            self._apply(event)
            moved = True
        if moved:
            # Readers waiting for this version first (the leaver's own answer among them),
            # then the sockets: thousands of them must not delay that answer.
            self._move()
        if self._everyone_pending:
            self._everyone_pending = False
            self._changed_for_everyone()

    def _apply(self, event: Event) -> None:
        match event:
            case ShowCreated():
                self.line = Waitlist()
                spec = event.queue
                self.room = None if spec is None else WaitingRoom(spec, event.queue_seed)
                self._everyone_pending = True
            case WaitlistJoined():
                self.line.joined(event)
                self._changed_for(event.user)
            case WaitlistLeft() | WaitlistOffered():
                entry = self.line.entry(event.entry_id)
                if entry is None or entry.status != "waiting":
                    log.error("show %s: %s of an entry not waiting", self.show_id, event)
                elif isinstance(event, WaitlistLeft):
                    self.line.leave(entry, event.version)
                else:
                    self.line.offer(entry, event.order_id, event.version)
                    self.offers[event.entry_id] = event
                self._everyone_pending = True
            case QueueJoined():
                if self.room is not None and self.room.member(event.user) is None:
                    self.room.join(event.user, event.joined_at, event.early, event.version)
                    self._changed_for(event.user)
            case _:
                pass
        self.version = event.version


async def waitlist_of(stored: StoredLine) -> Waitlist:
    """The domain's Waitlist from the projection's rows; a long line yields to the loop every
    ADOPT_SLICE rows."""
    line = Waitlist()
    for n, row in enumerate(stored.entries, start=1):
        if n % ADOPT_SLICE == 0:
            await asyncio.sleep(0)
        entry = line.join(
            entry_id=row.entry_id,
            user=row.user,
            quantity=row.quantity,
            section=row.section,
            zone=row.zone,
            offer_order_id=row.offer_order_id,
            joined_at=row.joined_at,
            version=row.version,
        )
        if entry.seq != row.seq:
            log.error("show %s: entry %s stored as #%d", row.show_id, row.entry_id, row.seq)
        if row.status == "left":
            line.leave(entry, row.version)
        elif row.status == "offered":
            line.offer(entry, row.order_id or entry.offer_order_id, row.version)
    return line


class LiveLines(PerShow[LiveLine]):
    """The lines this instance keeps, loaded on first read and dropped when idle."""

    def __init__(self, hub: EventHub, pool: AsyncConnectionPool[Any]) -> None:
        super().__init__("lines-reaper", IDLE_S)
        self._hub = hub
        self._pool = pool

    async def line(self, show_id: str, known: int, wait_s: float = READ_WAIT_S) -> LiveLine | None:
        """The show's line at version `known` (what the caller knows of) or later; None for a
        show nobody knows of; 503 when the views do not get there in time."""
        live = self.shows.get(show_id)
        if live is None:
            live = self.shows[show_id] = LiveLine(show_id, self._hub, self._pool)
        try:
            async with asyncio.timeout(LOAD_WAIT_S):
                await live.ready.wait()
        except TimeoutError:
            log.warning("show %s: the line is not loaded after %.0f s", show_id, LOAD_WAIT_S)
            raise unavailable("the line view") from None
        if await live.reach(max(known, 1), wait_s if known > 0 else 0):
            return live
        if known == 0 and not live.failed:
            # Unknown here and in the views: drop it, so ids cannot be used to pile up lines.
            await self.drop(show_id, live)
            return None
        raise unavailable("the line view")

    def current(self, show_id: str) -> LiveLine | None:
        live = self.shows.get(show_id)
        return live if live is not None and live.version > 0 else None

    def idle(self, live: LiveLine, now: float) -> bool:
        return live.watchers == 0 and now - live.used_at > self.idle_s


def queue_block(spec: QueueSpec | None, seed: str, now: datetime) -> dict[str, Any] | None:
    """The show's `queue` block: as created, plus the seed once `opens_at` has come."""
    block = queue_json(spec)
    if block is None or spec is None:
        return None
    return {**block, "seed": seed if now >= spec.opens_at else None}


async def show_fields(lines: LiveLines, pool: Any, show_id: str, now: datetime) -> dict[str, Any]:
    """What `GET /v1/shows/{id}` adds for the lines: `waiting` and the `queue` block; from
    the live line when this instance keeps one, else from the row."""
    live = lines.current(show_id)
    if live is not None:
        room = live.room
        seed = None if room is None else room.seed(now)
        return {
            "waiting": live.line.waiting,
            "queue": queue_block(None if room is None else room.spec, seed or "", now),
        }
    counts = (await line_counts(pool, [show_id])).get(show_id)
    if counts is None:
        return {"waiting": 0, "queue": None}
    return {"waiting": counts.waiting, "queue": queue_block(counts.queue, counts.queue_seed, now)}
