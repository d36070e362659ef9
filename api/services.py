"""What the API's routes share: the journal producer, reply waiter, event hub, DB pool, live
seat maps, the payment provider, and whether Kafka answers right now."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka.admin import AdminClient
from fastapi import Request, WebSocket
from psycopg_pool import AsyncConnectionPool

from api.commands import CommandBus
from api.hub import EventHub
from api.lines import LiveLines
from api.payments import LocalPaymentProvider, PaymentProvider
from api.seatmaps import LiveSeatMaps
from api.settle import ProjectionWatch
from boxoffice.settings import Settings
from domain.ticketing.views import SeatMapView
from producers.envelope import Reply
from producers.journal import JournalProducer
from producers.registries import TICKETING
from producers.replies import ReplyWaiter
from producers.tailing import Tail
from producers.topics import CHAT_EVENTS, SHOW_EVENTS, SOCIAL_EVENTS, SYSTEM_EVENTS
from snapshots.database import async_pool

log = logging.getLogger(__name__)

KAFKA_CHECK_S = 1.0
# How long a read about to say "not found" waits to have read every reply (one Kafka request).
CATCH_UP_S = 1.0
SEEN_VERSIONS = 100_000
# How long loading a live seat map waits for a silent journal before using the snapshot.
JOURNAL_WAIT_S = 5.0


class SeenVersions:
    """The newest version of each stream this process has seen decided (in its commands'
    replies). A read that finds the projection below it knows the projection is behind, and
    can say "come back later" rather than "no such thing". Bounded: the least recently
    updated streams are forgotten first, which only makes reads less sure, never wrong."""

    def __init__(self, most: int = SEEN_VERSIONS) -> None:
        self._most = most
        self._versions: OrderedDict[str, int] = OrderedDict()

    def saw(self, stream_id: str, version: int) -> None:
        if self._versions.get(stream_id, 0) < version:
            self._versions[stream_id] = version
            self._versions.move_to_end(stream_id)
            if len(self._versions) > self._most:
                self._versions.popitem(last=False)

    def get(self, stream_id: str) -> int:
        return self._versions.get(stream_id, 0)


class UserShows:
    """For each user this process has seen decided about, the newest version of each show
    their orders changed at (a hold, a payment, an offer made to them): a list of the user's
    orders read from a projection below those versions would lack what they just did. Bounded
    like `SeenVersions` (users, and shows per user)."""

    def __init__(self, most_users: int = SEEN_VERSIONS, shows_per_user: int = 16) -> None:
        self._most = most_users
        self._per_user = shows_per_user
        self._users: OrderedDict[str, OrderedDict[str, int]] = OrderedDict()

    def saw(self, user: str, show_id: str, version: int) -> None:
        shows = self._users.get(user)
        if shows is None:
            shows = self._users[user] = OrderedDict()
            if len(self._users) > self._most:
                self._users.popitem(last=False)
        else:
            self._users.move_to_end(user)
        if shows.get(show_id, 0) < version:
            shows[show_id] = version
            shows.move_to_end(show_id)
            if len(shows) > self._per_user:
                shows.popitem(last=False)

    def get(self, user: str) -> dict[str, int]:
        return dict(self._users.get(user, {}))


@dataclass
class Services:
    settings: Settings
    producer: JournalProducer
    tail: Tail
    replies: ReplyWaiter
    hub: EventHub
    pool: AsyncConnectionPool
    bus: CommandBus
    seatmaps: LiveSeatMaps
    payments: PaymentProvider
    lines: LiveLines
    # Wakes read-your-writes waiters when a projector batch commits.
    projected: ProjectionWatch
    # Commands answer 503 at once while this is False; reads are served stale.
    kafka_up: bool = False
    connected: bool = False
    shows_seen: SeenVersions = field(default_factory=SeenVersions)
    users_seen: UserShows = field(default_factory=UserShows)
    # Told of every decision's reply, whichever API process sent the command (chat's versions).
    reply_observers: list[Callable[[Reply], None]] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def start(cls, settings: Settings) -> Services:
        producer = JournalProducer(settings)
        seen = SeenVersions()
        users = UserShows()
        observers: list[Callable[[Reply], None]] = []

        def on_reply(reply: Reply) -> None:
            if reply.ok and reply.events and reply.events[-1].get("type") in TICKETING:
                seen.saw(reply.stream_id, reply.version)
                for event in reply.events:
                    user = event.get("user")
                    if isinstance(user, str) and "order_id" in event:
                        users.saw(user, reply.stream_id, reply.version)
            for observe in observers:
                observe(reply)

        # One consumer reads the replies and the journals alike (producers/tailing.py).
        tail = Tail(settings)
        replies = ReplyWaiter(settings, on_reply=on_reply, tail=tail)
        hub = EventHub(settings, (SHOW_EVENTS, CHAT_EVENTS, SOCIAL_EVENTS, SYSTEM_EVENTS), tail)
        pool = async_pool(settings, "api")
        await pool.open(wait=True, timeout=30)

        async def load(show_id: str) -> SeatMapView | None:
            from snapshots import timetravel

            return await timetravel.current_seatmap(
                settings, pool, show_id, timeout_s=JOURNAL_WAIT_S
            )

        async def load_stale(show_id: str) -> SeatMapView | None:
            from snapshots import timetravel

            return await timetravel.latest_snapshot_view(pool, show_id)

        svc = cls(
            settings,
            producer,
            tail,
            replies,
            hub,
            pool,
            CommandBus(settings, producer, replies),
            LiveSeatMaps(hub, load, load_stale),
            LocalPaymentProvider(pool, settings.fake_payment_slow_s),
            LiveLines(hub, pool),
            ProjectionWatch(settings),
            shows_seen=seen,
            users_seen=users,
            reply_observers=observers,
        )
        svc.bus.available = lambda: svc.kafka_up
        # Reads must come up even while Kafka is down, so the Kafka side starts in the
        # background and retries until the broker answers.
        await svc._connect_kafka(first_try=True)
        svc._tasks.append(asyncio.create_task(svc._watch_kafka(), name="kafka-watch"))
        svc.seatmaps.start()
        svc.lines.start()
        svc.projected.start()
        return svc

    async def _connect_kafka(self, first_try: bool = False) -> None:
        try:
            await self.tail.start()
            await self.replies.start()
        except Exception as exc:  # any failure: the broker is not there yet; retry later
            if first_try:
                log.warning("Kafka is not reachable yet (%s); serving reads only", exc)
            with contextlib.suppress(Exception):
                await self.replies.stop()
            with contextlib.suppress(Exception):
                await self.tail.stop()
            self.kafka_up = False
            return
        self.kafka_up = True
        self.connected = True

    async def _watch_kafka(self) -> None:
        bootstrap = self.settings.kafka_bootstrap
        while True:
            await asyncio.sleep(KAFKA_CHECK_S)
            up = await asyncio.to_thread(kafka_answers, bootstrap)
            if up and not self.connected:
                await self._connect_kafka()
            elif up != self.kafka_up:
                log.warning("Kafka is %s", "back" if up else "unreachable")
                self.kafka_up = up

    def known_show_version(self, show_id: str) -> int:
        """The newest version of the show this process knows of: from its replies, or from the
        live seat map it keeps from the journal for viewers."""
        live = self.seatmaps.current(show_id)
        return max(self.shows_seen.get(show_id), live.version if live is not None else 0)

    async def caught_up(self) -> None:
        """Read every reply committed so far (for at most CATCH_UP_S), whichever API process
        sent the command: what a caller did through another worker a moment ago is then known
        here, and a read can wait for the projection to have it. Every read-your-writes wait
        starts here (the chat reads, the presence fan-out, the lines and the shows)."""
        await self.replies.caught_up(CATCH_UP_S)

    async def decided_show_version(self, show_id: str) -> int:
        """`known_show_version` once caught up: for a read about to answer "not found", when
        the caller's last command may have been answered by another worker a moment ago."""
        await self.caught_up()
        return self.known_show_version(show_id)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.seatmaps.stop()
        await self.lines.stop()
        await self.projected.stop()
        with contextlib.suppress(Exception):
            await self.replies.stop()
        with contextlib.suppress(Exception):
            await self.tail.stop()
        await self.pool.close()
        await asyncio.to_thread(self.producer.close)


def kafka_answers(bootstrap: str, timeout_s: float = KAFKA_CHECK_S) -> bool:
    """Whether the broker gives metadata within `timeout_s` (blocking: run it in a thread)."""
    try:
        admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
        return len(admin.list_topics(timeout=timeout_s).brokers) > 0
    except Exception:  # any failure to get metadata means "not reachable"
        return False


async def services(request: Request) -> Services:
    # async: a plain `def` dependency would be run on FastAPI's thread pool.
    found: Services = request.app.state.services
    return found


def ws_services(websocket: WebSocket) -> Services:
    found: Services = websocket.app.state.services
    return found
