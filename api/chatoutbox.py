"""One live chat socket's deliveries: what is queued for it, in what order, and how far
behind it may fall before messages are left to be filled from the history."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

from api.chatframes import Sequencer

# Per socket: frames queued before messages are left to be filled from the history.
OUTBOX_LIMIT = 2000


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
