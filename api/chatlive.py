"""Live chat in one API instance: the chat journal's messages fanned out to its sockets.

Every instance reads the chat event journal through the event hub (no consumer group, no
sticky routing), so a member's sockets get every message whichever instance they are
connected to. Each socket has an `Outbox` (api.chatoutbox): the conversations its user
belongs to (from PostgreSQL when it connects, then from the membership events themselves),
a bounded queue of what is to be sent, and a `Sequencer` that keeps each conversation in seq
order with no gap and no repeat.

The rest is composed here, each concern in a module of its own: the versions this instance
has seen, for read-your-writes (api.chatversions); presence as each viewer may see it
(api.chatpresence); presence and typing between instances (api.chatsignals); members of
direct conversations and block lists, for direct sends (api.directs).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from typing import Any

from starlette.requests import HTTPConnection

from api.chatframes import frame, sent_json, started_json
from api.chatoutbox import CatchUpItem, FrameItem, JoinedItem, Outbox
from api.chatpresence import BuddyPresence
from api.chatsignals import HEARTBEAT_S, Signals
from api.chatversions import SeenVersions
from api.directs import DirectPeers
from api.hub import Subscription
from api.services import Services
from domain.chat.conversations import is_direct
from domain.chat.events import (
    ConversationStarted,
    MemberAdded,
    MemberRemoved,
    MessageSent,
    MessagesRead,
)
from producers.codec import DecodeError
from producers.envelope import EventRecord
from producers.registries import CONVERSATIONS, SOCIAL
from producers.topics import CHAT_EVENTS, SOCIAL_EVENTS
from snapshots import chat as store

log = logging.getLogger(__name__)

# A typing signal older than this is stale news, not worth a frame.
TYPING_FRESH_S = 5.0
# Membership events are remembered this long, so that a socket opening while the projection
# still trails them does not miss a conversation it just joined.
RECENT_MEMBERSHIP_S = 30.0
# Large: overflowing the hub's subscription costs a resynchronisation of every socket.
HUB_QUEUE = 200_000
TICK_S = 0.5


class ChatLive:
    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self.outboxes: dict[str, set[Outbox]] = {}
        self.followers: dict[str, set[Outbox]] = {}
        self._recent: deque[tuple[float, str, str]] = deque()
        self._recent_by_user: dict[str, dict[str, tuple[int, bool, float]]] = {}
        # While memberships load, the messages dispatched meanwhile (they reached none of that
        # socket's conversations yet): one shared log, O(1) per message however many loads
        # are under way; each load remembers where in it it began (an absolute position).
        self._loading: dict[int, int] = {}
        self._dispatched: list[tuple[str, int]] = []
        self._dispatched_base = 0
        self.versions = SeenVersions()
        self.directs = DirectPeers()
        self.signals = Signals(svc, uuid.uuid4().hex, self._heard, self._after_signals)
        self.presence = BuddyPresence(svc, self.outboxes, self.signals, self.versions)
        self._tasks: list[asyncio.Task[None]] = []
        self._resync: asyncio.Task[None] | None = None
        self._chat_sub: Subscription | None = None
        self._social_sub: Subscription | None = None

    @classmethod
    async def start(cls, svc: Services) -> ChatLive:
        live = cls(svc)
        svc.reply_observers.append(live.versions.on_reply)
        live._chat_sub = svc.hub.subscribe(CHAT_EVENTS, maxsize=HUB_QUEUE)
        live._social_sub = svc.hub.subscribe(SOCIAL_EVENTS, maxsize=HUB_QUEUE)
        for name, job in (
            ("chat-dispatch", live._dispatch_chat),
            ("social-dispatch", live._dispatch_social),
            ("chat-signals", live.signals.run),
            ("chat-tick", live._tick),
            ("chat-presence", live.presence.run),
        ):
            live._tasks.append(asyncio.create_task(job(), name=name))
        return live

    async def stop(self) -> None:
        await self.presence.leave()
        tasks = [*self._tasks, *([self._resync] if self._resync is not None else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for sub in (self._chat_sub, self._social_sub):
            if sub is not None:
                sub.close()

    # -- sockets ----------------------------------------------------------------------------------

    def attach(self, box: Outbox) -> None:
        self.outboxes.setdefault(box.user, set()).add(box)
        self.presence.opened(box)

    def detach(self, box: Outbox) -> None:
        box.closed = True
        boxes = self.outboxes.get(box.user)
        if boxes is not None:
            boxes.discard(box)
            if not boxes:
                del self.outboxes[box.user]
        for conversation_id, (_, member) in box.membership.items():
            if member:
                self._unfollow(box, conversation_id)
        self.presence.closed(box.user)

    async def load_memberships(self, box: Outbox) -> None:
        """What the socket follows: the projection's memberships, corrected by the membership
        events of the last moments that the projection may not have folded yet. Events that
        arrive from now on reach the box directly (it is attached already)."""
        token = object()
        self._loading[id(token)] = self._dispatched_base + len(self._dispatched)
        try:
            stored = await store.conversations_of(self.svc.pool, box.user)
        finally:
            meanwhile = self._dispatched_since(self._loading.pop(id(token)))
        for conversation_id, version in stored.items():
            self.set_membership(box, conversation_id, version, True)
        for conversation_id, (version, member, _) in self._recent_by_user.get(box.user, {}).items():
            self.set_membership(box, conversation_id, version, member)
        # Messages sent while the socket was open but its conversations not yet known went to
        # no socket: they start the socket's conversation and come from the history, instead
        # of the socket starting after them (a gap the client never hears of).
        for conversation_id, (first, last) in meanwhile.items():
            if box.is_member(conversation_id):
                box.sequencer.offered(conversation_id, first)
                box.behind[conversation_id] = max(box.behind.get(conversation_id, 0), last)
                box.wake.set()

    def _dispatched_since(self, start: int) -> dict[str, tuple[int, int]]:
        """(first, last) seq per conversation of the messages dispatched from `start` on; the
        log keeps only what a load still under way began before."""
        meanwhile: dict[str, tuple[int, int]] = {}
        for conversation_id, seq in self._dispatched[start - self._dispatched_base :]:
            first, _ = meanwhile.get(conversation_id, (seq, 0))
            meanwhile[conversation_id] = (first, seq)
        keep_from = min(
            self._loading.values(), default=self._dispatched_base + len(self._dispatched)
        )
        del self._dispatched[: keep_from - self._dispatched_base]
        self._dispatched_base = keep_from
        return meanwhile

    def set_membership(self, box: Outbox, conversation_id: str, version: int, member: bool) -> None:
        known = box.membership.get(conversation_id)
        if box.closed or (known is not None and known[0] > version):
            return
        box.membership[conversation_id] = (version, member)
        if member:
            self.followers.setdefault(conversation_id, set()).add(box)
        else:
            self._unfollow(box, conversation_id)
            box.sequencer.forget(conversation_id)

    def _unfollow(self, box: Outbox, conversation_id: str) -> None:
        boxes = self.followers.get(conversation_id)
        if boxes is not None:
            boxes.discard(box)
            if not boxes:
                del self.followers[conversation_id]

    def recently_joined(self, user: str) -> dict[str, int]:
        """Conversations ``user`` joined in the last moments (and has not left since)."""
        return {
            conversation_id: version
            for conversation_id, (version, member, _) in self._recent_by_user.get(user, {}).items()
            if member
        }

    def joined(self, conversation_id: str, version: int, members: tuple[str, ...]) -> None:
        """This instance created the conversation: its list reads should show it at once."""
        self.versions.saw(conversation_id, version)
        if is_direct(conversation_id):
            self.directs.learn_members(conversation_id, members)
        for member in members:
            self._member_event(member, conversation_id, version, True)

    # -- the chat journal -------------------------------------------------------------------------

    async def _dispatch_chat(self) -> None:
        assert self._chat_sub is not None
        handled = 0
        while True:
            record = await self._chat_sub.queue.get()
            try:
                self._on_chat(record)
            except DecodeError as exc:
                log.warning("undecodable chat event of %s: %s", record.stream_id, exc)
            except Exception:  # one bad event must not end live delivery for everyone
                log.exception("chat event of %s not delivered", record.stream_id)
            handled += 1
            if handled % 200 == 0:
                await asyncio.sleep(0)  # a backlog must not starve the sockets' writers
            if self._chat_sub.overflowed.is_set() and self._chat_sub.queue.empty():
                self._chat_sub.close()
                self._chat_sub = self.svc.hub.subscribe(CHAT_EVENTS, maxsize=HUB_QUEUE)
                if self._resync is None or self._resync.done():
                    self._resync = asyncio.create_task(self._resync_all(), name="chat-resync")

    def _on_chat(self, record: EventRecord) -> None:
        event = CONVERSATIONS.from_dict(record.event)
        match event:
            case MessageSent():
                self.versions.saw(event.conversation_id, event.version)
                if self._loading:
                    self._dispatched.append((event.conversation_id, event.seq))
                boxes = self.followers.get(event.conversation_id)
                if boxes:
                    text = frame("message", sent_json(event))
                    for box in boxes:
                        box.offer_message(event.conversation_id, event.seq, text)
            case MessagesRead():
                self.versions.saw(event.conversation_id, event.version)
                boxes = self.followers.get(event.conversation_id)
                if boxes:
                    text = frame(
                        "read",
                        {
                            "conversation_id": event.conversation_id,
                            "user": event.user,
                            "seq": event.seq,
                        },
                    )
                    for box in boxes:
                        box.offer_ephemeral(text)
            case ConversationStarted():
                self.versions.saw(event.conversation_id, event.version)
                if is_direct(event.conversation_id):
                    self.directs.learn_members(event.conversation_id, event.members)
                text = frame("conversation", started_json(event))
                for member in event.members:
                    self._member_event(member, event.conversation_id, event.version, True)
                    for box in self.outboxes.get(member, ()):
                        box.push(FrameItem(text))
            case MemberAdded():
                self.versions.saw(event.conversation_id, event.version)
                self._member_event(event.user, event.conversation_id, event.version, True)
                for box in self.outboxes.get(event.user, ()):
                    box.push(JoinedItem(event.conversation_id, event.version))
            case MemberRemoved():
                self.versions.saw(event.conversation_id, event.version)
                self._member_event(event.user, event.conversation_id, event.version, False)
            case _:
                raise DecodeError(f"{type(event).__name__} is not a conversation event")

    def _member_event(self, user: str, conversation_id: str, version: int, member: bool) -> None:
        now = time.monotonic()
        mine = self._recent_by_user.setdefault(user, {})
        known = mine.get(conversation_id)
        if known is None or known[0] <= version:
            mine[conversation_id] = (version, member, now)
            self._recent.append((now, user, conversation_id))
        for box in tuple(self.outboxes.get(user, ())):
            self.set_membership(box, conversation_id, version, member)

    def _forget_old_memberships(self) -> None:
        horizon = time.monotonic() - RECENT_MEMBERSHIP_S
        while self._recent and self._recent[0][0] < horizon:
            at, user, conversation_id = self._recent.popleft()
            mine = self._recent_by_user.get(user)
            if mine is None:
                continue
            known = mine.get(conversation_id)
            if known is not None and known[2] <= at:
                del mine[conversation_id]
                if not mine:
                    del self._recent_by_user[user]

    async def _resync_all(self) -> None:
        """The hub dropped events for us: reload memberships, refill every followed
        conversation from the history."""
        log.warning("live chat events overflowed; resynchronising %d users", len(self.outboxes))
        for boxes in list(self.outboxes.values()):
            for box in tuple(boxes):
                with contextlib.suppress(Exception):
                    await self.load_memberships(box)
                for conversation_id, (_, member) in list(box.membership.items()):
                    if member:
                        box.push(CatchUpItem(conversation_id))

    # -- the social journal -----------------------------------------------------------------------

    async def _dispatch_social(self) -> None:
        assert self._social_sub is not None
        while True:
            record = await self._social_sub.queue.get()
            try:
                event = SOCIAL.from_dict(record.event)
            except DecodeError as exc:
                log.warning("undecodable social event of %s: %s", record.stream_id, exc)
                continue
            except Exception:  # same: the next events still count
                log.exception("social event of %s not handled", record.stream_id)
                continue
            self.versions.saw_social(record.stream_id, record.version)
            self.directs.social_event(record.stream_id, record.version, event)
            self.presence.social_event(event)
            if self._social_sub.overflowed.is_set() and self._social_sub.queue.empty():
                self._social_sub.close()
                self._social_sub = self.svc.hub.subscribe(SOCIAL_EVENTS, maxsize=HUB_QUEUE)

    # -- typing and signals -----------------------------------------------------------------------

    def typing(self, conversation_id: str, user: str) -> None:
        self._deliver_typing(conversation_id, user)
        self.signals.send(
            "typing", conversation_id, {"conversation_id": conversation_id, "user": user}
        )

    def _deliver_typing(self, conversation_id: str, user: str) -> None:
        boxes = self.followers.get(conversation_id)
        if not boxes:
            return
        text = frame("typing", {"conversation_id": conversation_id, "user": user})
        for box in boxes:
            if box.user != user:
                box.offer_ephemeral(text)

    def _heard(self, kind: str, instance: str, data: dict[str, Any], age_s: float) -> None:
        if kind == "typing":
            if age_s <= TYPING_FRESH_S:
                self._deliver_typing(str(data.get("conversation_id")), str(data.get("user")))
        else:
            self.presence.heard(kind, instance, data, age_s)

    def _after_signals(self) -> None:
        self.presence.queue_changes()

    async def _tick(self) -> None:
        last_heartbeat = 0.0
        while True:
            await asyncio.sleep(TICK_S)
            now = time.monotonic()
            heartbeat = now - last_heartbeat >= HEARTBEAT_S
            if heartbeat:
                last_heartbeat = now
            self.presence.tick(heartbeat)
            self._forget_old_memberships()


def chat_live(conn: HTTPConnection) -> ChatLive:
    found: ChatLive = conn.app.state.chat
    return found
