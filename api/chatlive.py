"""Live chat in one API instance: message fan-out to its sockets, presence and typing.

Messages. Every instance reads the chat event journal through the event hub (no consumer
group, no sticky routing), so a member's sockets get every message whichever instance they
are connected to. Each socket has an `Outbox`: the conversations its user belongs to (from
PostgreSQL when it connects, then from the membership events themselves), a bounded queue
of what is to be sent, and a `Sequencer` that keeps each conversation in seq order with no
gap and no repeat. Whatever the queue cannot take is remembered as "behind up to seq N" and
filled from the history later, so a slow socket never buffers without bound and never
skips.

Presence and typing are ephemeral: instances tell each other on the `chat.signals` topic
(one hour of retention, never replayed beyond the last heartbeat window), not the journals.

Read-your-writes. The REST reads come from the projection, which trails the journal by a
few milliseconds; the versions this instance has seen (in its commands' replies and in the
hub) let a read wait, briefly, until the projection has caught up with them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from starlette.requests import HTTPConnection

from api.chatframes import Sequencer, frame, sent_json, started_json
from api.directs import DirectPeers
from api.hub import Subscription
from api.presence import PresenceBoard
from api.services import Services
from domain.chat.conversations import is_direct
from domain.chat.events import (
    BuddyAdded,
    ConversationStarted,
    MemberAdded,
    MemberRemoved,
    MessageSent,
    MessagesRead,
    UserBlocked,
    UserUnblocked,
)
from domain.chat.views import OFFLINE, ONLINE
from producers.codec import DecodeError
from producers.envelope import EventRecord, Reply
from producers.registries import CONVERSATIONS, SOCIAL
from producers.topics import CHAT_EVENTS, CHAT_SIGNALS, SOCIAL_EVENTS, partitions_of
from snapshots import chat as store

log = logging.getLogger(__name__)

# Presence: held this long after a user's last socket closes, so reloads do not flap it.
OFFLINE_GRACE_S = 10.0
HEARTBEAT_S = 5.0
# An instance that stops heartbeating (crashed) loses its users after this long.
PRESENCE_TTL_S = 3 * HEARTBEAT_S
# A typing signal older than this is stale news, not worth a frame.
TYPING_FRESH_S = 5.0
# Membership events are remembered this long, so that a socket opening while the projection
# still trails them does not miss a conversation it just joined.
RECENT_MEMBERSHIP_S = 30.0
# Per socket: frames queued before messages are left to be filled from the history.
OUTBOX_LIMIT = 2000
# Large: overflowing the hub's subscription costs a resynchronisation of every socket.
HUB_QUEUE = 200_000
KNOWN_VERSIONS = 200_000
SOCIAL_SETTLE_S = 2.0
TICK_S = 0.5


@dataclass(frozen=True, slots=True)
class MessageItem:
    conversation_id: str
    seq: int
    text: str


@dataclass(frozen=True, slots=True)
class FrameItem:
    text: str


@dataclass(frozen=True, slots=True)
class JoinedItem:
    """The user was added to a conversation: send it, members and all, from the projection."""

    conversation_id: str
    version: int


@dataclass(frozen=True, slots=True)
class ResumeItem:
    cursors: dict[str, int]


@dataclass(frozen=True, slots=True)
class CatchUpItem:
    """Live events may have been lost: send whatever the history has after the position."""

    conversation_id: str


Item = MessageItem | FrameItem | JoinedItem | ResumeItem | CatchUpItem


class Outbox:
    """One socket's deliveries, fed by the instance and drained by the socket's writer."""

    def __init__(self, user: str, limit: int = OUTBOX_LIMIT) -> None:
        self.user = user
        self.limit = limit
        self.sequencer = Sequencer()
        self.items: deque[Item] = deque()
        self.behind: dict[str, int] = {}
        # conversation_id -> (version, member): the newest membership news wins.
        self.membership: dict[str, tuple[int, bool]] = {}
        self.wake = asyncio.Event()
        self.closed = False

    def is_member(self, conversation_id: str) -> bool:
        known = self.membership.get(conversation_id)
        return known is not None and known[1]

    def offer_message(self, conversation_id: str, seq: int, text: str) -> None:
        self.sequencer.offered(conversation_id, seq)
        if len(self.items) >= self.limit:
            self.behind[conversation_id] = max(self.behind.get(conversation_id, 0), seq)
        else:
            self.items.append(MessageItem(conversation_id, seq, text))
        self.wake.set()

    def offer_ephemeral(self, text: str) -> None:
        """Typing, presence, read receipts: dropped rather than queued past the limit."""
        if len(self.items) < self.limit:
            self.items.append(FrameItem(text))
            self.wake.set()

    def push(self, item: Item) -> None:
        """Answers to the client's own frames and joins: few, and never dropped."""
        self.items.append(item)
        self.wake.set()

    def push_first(self, item: Item) -> None:
        """A resume goes before whatever is queued (after earlier resumes, which keep their
        order): the queued messages then pass through the cursors it sets, so nothing it
        replays comes again."""
        at = 0
        while at < len(self.items) and isinstance(self.items[at], ResumeItem):
            at += 1
        self.items.insert(at, item)
        self.wake.set()


class ChatLive:
    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self.settings = svc.settings
        self.instance = uuid.uuid4().hex
        self.board = PresenceBoard(self.instance, OFFLINE_GRACE_S, PRESENCE_TTL_S)
        self.outboxes: dict[str, set[Outbox]] = {}
        self.followers: dict[str, set[Outbox]] = {}
        self._recent: deque[tuple[float, str, str]] = deque()
        self._recent_by_user: dict[str, dict[str, tuple[int, bool, float]]] = {}
        self._versions: OrderedDict[str, int] = OrderedDict()
        # Members of direct conversations and block lists, for direct sends (api.directs).
        self.directs = DirectPeers()
        self._social_versions: OrderedDict[str, int] = OrderedDict()
        self._jobs: asyncio.Queue[Callable[[], Awaitable[None]]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._sends: set[asyncio.Task[Any]] = set()
        self._signals_topic = CHAT_SIGNALS.name(self.settings)
        self._chat_sub: Subscription | None = None
        self._social_sub: Subscription | None = None

    @classmethod
    async def start(cls, svc: Services) -> ChatLive:
        live = cls(svc)
        svc.reply_observers.append(live._on_reply)
        live._chat_sub = svc.hub.subscribe(CHAT_EVENTS, maxsize=HUB_QUEUE)
        live._social_sub = svc.hub.subscribe(SOCIAL_EVENTS, maxsize=HUB_QUEUE)
        for name, job in (
            ("chat-dispatch", live._dispatch_chat),
            ("social-dispatch", live._dispatch_social),
            ("chat-signals", live._signals),
            ("chat-tick", live._tick),
            ("chat-presence", live._run_jobs),
        ):
            live._tasks.append(asyncio.create_task(job(), name=name))
        return live

    async def stop(self) -> None:
        if self.board.held():
            # Others would drop our users after the TTL anyway; this makes it immediate.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._send_signal("gone", self.instance, {}), 2)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for sub in (self._chat_sub, self._social_sub):
            if sub is not None:
                sub.close()

    # -- sockets ----------------------------------------------------------------------------------

    def attach(self, box: Outbox) -> None:
        self.outboxes.setdefault(box.user, set()).add(box)
        if self.board.opened(box.user):
            self._signal("online", box.user, {"user": box.user})
        self._queue_presence_changes()
        self._jobs.put_nowait(partial(self._send_buddy_presence, box))

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
        self.board.closed(box.user)

    async def load_memberships(self, box: Outbox) -> None:
        """What the socket follows: the projection's memberships, corrected by the membership
        events of the last moments that the projection may not have folded yet. Events that
        arrive from now on reach the box directly (it is attached already)."""
        stored = await store.conversations_of(self.svc.pool, box.user)
        for conversation_id, version in stored.items():
            self.set_membership(box, conversation_id, version, True)
        for conversation_id, (version, member, _) in self._recent_by_user.get(box.user, {}).items():
            self.set_membership(box, conversation_id, version, member)

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

    # -- versions, for reads that must see this instance's writes --------------------------------

    def saw(self, conversation_id: str, version: int) -> None:
        _remember(self._versions, conversation_id, version)

    def _on_reply(self, reply: Reply) -> None:
        """Any API process's decision: the versions its caller may read next through this one."""
        if not reply.ok or not reply.events:
            return
        kind = reply.events[-1].get("type")
        if kind in CONVERSATIONS:
            self.saw(reply.stream_id, reply.version)
        elif kind in SOCIAL:
            self.saw_social(reply.stream_id, reply.version)

    def saw_social(self, user: str, version: int) -> None:
        _remember(self._social_versions, user, version)

    def known_version(self, conversation_id: str) -> int:
        return self._versions.get(conversation_id, 0)

    def known_social_version(self, user: str) -> int:
        return self._social_versions.get(user, 0)

    def recently_joined(self, user: str) -> dict[str, int]:
        """Conversations ``user`` joined in the last moments (and has not left since)."""
        return {
            conversation_id: version
            for conversation_id, (version, member, _) in self._recent_by_user.get(user, {}).items()
            if member
        }

    def joined(self, conversation_id: str, version: int, members: tuple[str, ...]) -> None:
        """This instance created the conversation: its list reads should show it at once."""
        self.saw(conversation_id, version)
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
                self._jobs.put_nowait(self._resync_all)

    def _on_chat(self, record: EventRecord) -> None:
        event = CONVERSATIONS.from_dict(record.event)
        match event:
            case MessageSent():
                self.saw(event.conversation_id, event.version)
                boxes = self.followers.get(event.conversation_id)
                if boxes:
                    text = frame("message", sent_json(event))
                    for box in boxes:
                        box.offer_message(event.conversation_id, event.seq, text)
            case MessagesRead():
                self.saw(event.conversation_id, event.version)
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
                self.saw(event.conversation_id, event.version)
                if is_direct(event.conversation_id):
                    self.directs.learn_members(event.conversation_id, event.members)
                text = frame("conversation", started_json(event))
                for member in event.members:
                    self._member_event(member, event.conversation_id, event.version, True)
                    for box in self.outboxes.get(member, ()):
                        box.push(FrameItem(text))
            case MemberAdded():
                self.saw(event.conversation_id, event.version)
                self._member_event(event.user, event.conversation_id, event.version, True)
                for box in self.outboxes.get(event.user, ()):
                    box.push(JoinedItem(event.conversation_id, event.version))
            case MemberRemoved():
                self.saw(event.conversation_id, event.version)
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

    # -- the social journal: presence as each viewer may see it ----------------------------------

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
            self.saw_social(record.stream_id, record.version)
            self.directs.social_event(record.stream_id, record.version, event)
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
            if self._social_sub.overflowed.is_set() and self._social_sub.queue.empty():
                self._social_sub.close()
                self._social_sub = self.svc.hub.subscribe(SOCIAL_EVENTS, maxsize=HUB_QUEUE)

    async def _tell_new_buddy(self, viewer: str, subject: str) -> None:
        # Not asked of the projection whether they are buddies: it may not know yet.
        online = self.board.is_online(subject)
        if online and await store.has_blocked(self.svc.pool, subject, viewer):
            online = False
        self._tell(viewer, subject, ONLINE if online else OFFLINE)

    async def _tell_buddy(self, viewer: str, subject: str, presence: str) -> None:
        """A block or unblock changed what ``viewer`` may see of ``subject``, if a buddy."""
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

    def is_online(self, user: str) -> bool:
        return self.board.is_online(user)

    async def _social_settled(self, users: list[str]) -> None:
        """Wait (briefly) until the projection has these users' buddies and blocks at the
        versions this instance has seen: presence must not go by a list it just changed."""
        wanted = {u: v for u in users if (v := self.known_social_version(u)) > 0}
        if wanted:
            await self.svc.projected.until(
                lambda: store.social_versions_of(self.svc.pool, list(wanted)),
                lambda have: all(have.get(u, 0) >= v for u, v in wanted.items()),
                SOCIAL_SETTLE_S,
            )

    def _queue_presence_changes(self) -> None:
        for user, online in self.board.changes():
            self._jobs.put_nowait(partial(self._fan_out_presence, user, online))

    async def _fan_out_presence(self, subject: str, online: bool) -> None:
        local = [user for user in self.outboxes if user != subject]
        if not local:
            return
        await self._social_settled([subject, *local])
        viewers = await store.presence_viewers(self.svc.pool, subject, local)
        text = frame("presence", {"user": subject, "presence": ONLINE if online else OFFLINE})
        for viewer in viewers:
            for box in self.outboxes.get(viewer, ()):
                box.offer_ephemeral(text)

    async def _run_jobs(self) -> None:
        """Presence work, one job at a time, so a user's online and offline keep their order."""
        while True:
            job = await self._jobs.get()
            try:
                await job()
            except Exception:  # a failed presence update must not stop the next ones
                log.exception("live chat job failed")

    # -- typing -----------------------------------------------------------------------------------

    def typing(self, conversation_id: str, user: str) -> None:
        self._deliver_typing(conversation_id, user)
        self._signal("typing", conversation_id, {"conversation_id": conversation_id, "user": user})

    def _deliver_typing(self, conversation_id: str, user: str) -> None:
        boxes = self.followers.get(conversation_id)
        if not boxes:
            return
        text = frame("typing", {"conversation_id": conversation_id, "user": user})
        for box in boxes:
            if box.user != user:
                box.offer_ephemeral(text)

    # -- signals between instances ----------------------------------------------------------------

    def _signal(self, kind: str, key: str, body: dict[str, Any]) -> None:
        if not self.svc.kafka_up:
            return  # ephemeral: nobody will miss a signal that could not be sent
        task = asyncio.create_task(self._send_signal(kind, key, body))
        self._sends.add(task)
        task.add_done_callback(_settled(self._sends))

    async def _send_signal(self, kind: str, key: str, body: dict[str, Any]) -> None:
        value = orjson.dumps(
            {
                **body,
                "kind": kind,
                "instance": self.instance,
                "at": datetime.now(UTC).isoformat(),
            }
        )
        await self.svc.producer.send(self._signals_topic, key, value)

    async def _tick(self) -> None:
        last_heartbeat = 0.0
        while True:
            await asyncio.sleep(TICK_S)
            for user in self.board.release_due():
                self._signal("offline", user, {"user": user})
            self.board.expire()
            now = time.monotonic()
            if now - last_heartbeat >= HEARTBEAT_S:
                last_heartbeat = now
                held = self.board.held()
                for start in range(0, len(held), 1000):
                    self._signal("heartbeat", self.instance, {"users": held[start : start + 1000]})
            self._forget_old_memberships()
            self._queue_presence_changes()

    async def _signals(self) -> None:
        while True:
            try:
                await self._consume_signals()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker is down or restarting: try again shortly
                log.warning("chat signals unavailable (%r); retrying", exc)
                await asyncio.sleep(2)

    async def _consume_signals(self) -> None:
        topic = self._signals_topic
        partitions = await asyncio.to_thread(partitions_of, self.settings, [topic])
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="latest",
        )
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in partitions[topic]]
            consumer.assign(tps)
            # From one heartbeat window back: whoever is online elsewhere has said so since.
            since = int((time.time() - PRESENCE_TTL_S) * 1000)
            found = await consumer.offsets_for_times(dict.fromkeys(tps, since))
            for tp in tps:
                at = found.get(tp)
                if at is None:
                    await consumer.seek_to_end(tp)
                else:
                    consumer.seek(tp, at.offset)
            while True:
                batches = await consumer.getmany(timeout_ms=500, max_records=2000)
                for records in batches.values():
                    for record in records:
                        self._on_signal(record.value)
                self._queue_presence_changes()
        finally:
            await consumer.stop()

    def _on_signal(self, raw: bytes | None) -> None:
        try:
            data = orjson.loads(raw or b"")
            instance = str(data["instance"])
            kind = str(data["kind"])
            age_s = max(0.0, time.time() - datetime.fromisoformat(data["at"]).timestamp())
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("undecodable chat signal")
            return
        if instance == self.instance:
            return
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
            case "typing" if age_s <= TYPING_FRESH_S:
                self._deliver_typing(str(data.get("conversation_id")), str(data.get("user")))
            case _:
                pass


def _remember(versions: OrderedDict[str, int], key: str, version: int) -> None:
    if versions.get(key, 0) < version:
        versions[key] = version
        versions.move_to_end(key)
        if len(versions) > KNOWN_VERSIONS:
            versions.popitem(last=False)


def _settled(tasks: set[asyncio.Task[Any]]) -> Callable[[asyncio.Task[Any]], None]:
    def done(task: asyncio.Task[Any]) -> None:
        tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("chat signal not sent: %r", task.exception())

    return done


def chat_live(conn: HTTPConnection) -> ChatLive:
    found: ChatLive = conn.app.state.chat
    return found
