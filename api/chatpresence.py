"""Presence as each viewer may see it: who of a user's buddies is online, told to the user's
sockets when it changes, never for someone who blocked the viewer.

Online means "has a socket on some instance": the instance's `PresenceBoard` keeps its own
sockets' users (held for a grace period after the last socket closes, so reloads do not
flap) and what the other instances said in their signals. The social journal (buddies and
blocks) changes what a viewer may see; each change is one job, run in order, so a user's
online and offline keep their order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from api.chatframes import frame
from api.chatoutbox import Outbox
from api.chatsignals import PRESENCE_TTL_S, Signals
from api.chatversions import SeenVersions
from api.presence import PresenceBoard
from api.services import Services
from domain.chat.events import BuddyAdded, UserBlocked, UserUnblocked
from domain.chat.views import OFFLINE, ONLINE
from snapshots import chat as store

log = logging.getLogger(__name__)

# Presence: held this long after a user's last socket closes, so reloads do not flap it.
OFFLINE_GRACE_S = 10.0
SOCIAL_SETTLE_S = 2.0


class BuddyPresence:
    def __init__(
        self,
        svc: Services,
        outboxes: dict[str, set[Outbox]],
        signals: Signals,
        versions: SeenVersions,
    ) -> None:
        self.svc = svc
        # The instance's sockets by user (owned by the live chat, read here).
        self.outboxes = outboxes
        self.signals = signals
        self.versions = versions
        self.board = PresenceBoard(signals.instance, OFFLINE_GRACE_S, PRESENCE_TTL_S)
        self._jobs: asyncio.Queue[Callable[[], Awaitable[None]]] = asyncio.Queue()

    def is_online(self, user: str) -> bool:
        return self.board.is_online(user)

    # -- this instance's sockets ---------------------------------------------------------------

    def opened(self, box: Outbox) -> None:
        if self.board.opened(box.user):
            self.signals.send("online", self.signals.instance, {"user": box.user})
        self.queue_changes()
        self._jobs.put_nowait(partial(self._send_buddy_presence, box))

    def closed(self, user: str) -> None:
        self.board.closed(user)

    async def leave(self) -> None:
        """This instance stops: others would drop its users after the TTL; now is better."""
        if self.board.held():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.signals.send_now("gone", self.signals.instance, {}), 2)

    def tick(self, heartbeat: bool) -> None:
        for user in self.board.release_due():
            # Keyed like the heartbeats, by this instance: one partition, so every instance
            # reads them in the order sent. Keyed by user, a heartbeat sent before this could
            # be read after it and hold the user online again until the TTL.
            self.signals.send("offline", self.signals.instance, {"user": user})
        self.board.expire()
        if heartbeat:
            held = self.board.held()
            for start in range(0, len(held), 1000):
                self.signals.send(
                    "heartbeat", self.signals.instance, {"users": held[start : start + 1000]}
                )
        self.queue_changes()

    # -- other instances ------------------------------------------------------------------------

    def heard(self, kind: str, instance: str, data: dict[str, Any], age_s: float) -> None:
        match kind:
            case "online":
                self.board.remote_online(instance, [str(data.get("user"))], age_s)
            case "heartbeat":
                users = data.get("users")
                if isinstance(users, list):
                    self.board.remote_online(instance, [str(u) for u in users], age_s)
            case "offline":
                self.board.remote_offline(instance, str(data.get("user")))
            case "gone":
                self.board.remote_gone(instance)
            case _:
                pass

    # -- the social journal ---------------------------------------------------------------------

    def social_event(self, event: object) -> None:
        match event:
            case BuddyAdded(user=viewer, buddy=subject) if viewer in self.outboxes:
                self._jobs.put_nowait(partial(self._tell_new_buddy, viewer, subject))
            case UserBlocked(user=subject, blocked=viewer) if (
                viewer in self.outboxes and self.board.is_online(subject)
            ):
                self._jobs.put_nowait(partial(self._tell_buddy, viewer, subject, OFFLINE))
            case UserUnblocked(user=subject, blocked=viewer) if (
                viewer in self.outboxes and self.board.is_online(subject)
            ):
                self._jobs.put_nowait(partial(self._tell_buddy, viewer, subject, ONLINE))
            case _:
                pass

    async def _tell_new_buddy(self, viewer: str, subject: str) -> None:
        # Not asked of the projection whether they are buddies: it may not know yet.
        await self._social_settled([viewer, subject])
        online = self.board.is_online(subject)
        if online and await store.has_blocked(self.svc.pool, subject, viewer):
            online = False
        self._tell(viewer, subject, ONLINE if online else OFFLINE)

    async def _tell_buddy(self, viewer: str, subject: str, presence: str) -> None:
        """A block or unblock changed what ``viewer`` may see of ``subject``, if a buddy."""
        await self._social_settled([viewer, subject])
        if await store.has_buddy(self.svc.pool, viewer, subject):
            self._tell(viewer, subject, presence)

    def _tell(self, viewer: str, subject: str, presence: str) -> None:
        text = frame("presence", {"user": subject, "presence": presence})
        for box in self.outboxes.get(viewer, ()):
            box.offer_ephemeral(text)

    async def _send_buddy_presence(self, box: Outbox) -> None:
        """A new socket learns which of its buddies are online (those it may see)."""
        await self._social_settled([box.user])
        for buddy, blocked_me in await store.buddies_of(self.svc.pool, box.user):
            if not blocked_me and self.board.is_online(buddy):
                box.offer_ephemeral(frame("presence", {"user": buddy, "presence": ONLINE}))

    async def _social_settled(self, users: list[str]) -> None:
        """Wait (briefly) until the projection has these users' buddies and blocks at the
        versions this instance has seen: presence must not go by a list it just changed.

        The versions are read once this process has every reply committed so far: a block
        made through another API worker a moment ago is otherwise unknown here, nothing is
        waited for, and a stale projection let the blocked user see presence."""
        await self.svc.caught_up()
        wanted = {u: v for u in users if (v := self.versions.known_social_version(u)) > 0}
        if wanted:
            await self.svc.projected.until(
                lambda: store.social_versions_of(self.svc.pool, list(wanted)),
                lambda have: all(have.get(u, 0) >= v for u, v in wanted.items()),
                SOCIAL_SETTLE_S,
            )

    def queue_changes(self) -> None:
        for user, online in self.board.changes():
            self._jobs.put_nowait(partial(self._fan_out, user, online))

    async def _fan_out(self, subject: str, online: bool) -> None:
        local = [user for user in self.outboxes if user != subject]
        if not local:
            return
        await self._social_settled([subject, *local])
        viewers = await store.presence_viewers(self.svc.pool, subject, local)
        text = frame("presence", {"user": subject, "presence": ONLINE if online else OFFLINE})
        for viewer in viewers:
            for box in self.outboxes.get(viewer, ()):
                box.offer_ephemeral(text)

    async def run(self) -> None:
        """Presence work, one job at a time, so a user's online and offline keep their order."""
        while True:
            job = await self._jobs.get()
            try:
                await job()
            except Exception:  # a failed presence update must not stop the next ones
                log.exception("live chat presence job failed")
