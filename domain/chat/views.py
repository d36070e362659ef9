"""Read-side folds of chat events: the conversation list and buddy presence.

Projections and the API use these; they never touch the deciders. Like ``evolve``, the
folds update their mutable views in place, and they keep no dedupe windows, so a view
of a million-message conversation stays a few hundred bytes.

Unread rule: ``unread = last_seq - last_read_seq``. A member's own message moves their
marker up to it (replying implies having read what came before) and a member who joins
starts caught up, so ``unread`` counts exactly the messages by others since the member
last read, sent or joined. The decider keeps markers by the same rule.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import assert_never

from domain.chat.events import (
    GROUP,
    ConversationEvent,
    ConversationStarted,
    MemberAdded,
    MemberRemoved,
    MessageSent,
    MessagesRead,
    occurred_at,
)
from domain.chat.social import SocialGraph

ONLINE = "online"
OFFLINE = "offline"


@dataclass(frozen=True, slots=True)
class ConversationSummary:
    """One row of ``GET /v1/conversations`` for one user."""

    conversation_id: str
    kind: str
    title: str | None
    members: tuple[str, ...]
    last_seq: int
    last_read_seq: int
    unread: int
    last_message: MessageSent | None
    version: int
    last_activity_at: datetime
    """When the conversation started or last got a message; the list is newest first."""


@dataclass(slots=True)
class ConversationView:
    conversation_id: str
    kind: str
    title: str | None
    members: set[str]
    version: int
    last_activity_at: datetime
    last_seq: int = 0
    read: dict[str, int] = field(default_factory=dict)
    last_message: MessageSent | None = None

    def last_read_seq(self, user: str) -> int:
        return self.read.get(user, 0)

    def summary_for(self, user: str) -> ConversationSummary:
        last_read = self.last_read_seq(user)
        return ConversationSummary(
            conversation_id=self.conversation_id,
            kind=self.kind,
            title=self.title,
            members=tuple(sorted(self.members)),
            last_seq=self.last_seq,
            last_read_seq=last_read,
            unread=max(0, self.last_seq - last_read),
            last_message=self.last_message,
            version=self.version,
            last_activity_at=self.last_activity_at,
        )


def evolve_view(view: ConversationView | None, event: ConversationEvent) -> ConversationView:
    """Fold one event into a conversation's view, in place. Total, like ``evolve``."""
    if view is None:
        view = _bare_view(event)
    view.version = event.version
    match event:
        case ConversationStarted():
            pass
        case MessageSent():
            view.last_seq = max(view.last_seq, event.seq)
            view.last_message = event
            view.last_activity_at = event.sent_at
            if event.sender in view.members:
                view.read[event.sender] = max(view.last_read_seq(event.sender), event.seq)
        case MemberAdded():
            view.members.add(event.user)
            view.read[event.user] = max(view.last_read_seq(event.user), view.last_seq)
        case MemberRemoved():
            view.members.discard(event.user)
            view.read.pop(event.user, None)
        case MessagesRead():
            if event.user in view.members:
                view.read[event.user] = max(view.last_read_seq(event.user), event.seq)
        case _:
            assert_never(event)
    return view


@dataclass(slots=True)
class Inboxes:
    """Every user's conversation list, kept up to date event by event."""

    views: dict[str, ConversationView] = field(default_factory=dict)
    conversations_of: dict[str, set[str]] = field(default_factory=dict)
    """user -> ids of the conversations they are a member of now."""

    def apply(self, event: ConversationEvent) -> None:
        view = evolve_view(self.views.get(event.conversation_id), event)
        self.views[event.conversation_id] = view
        match event:
            case ConversationStarted():
                for member in view.members:
                    self.conversations_of.setdefault(member, set()).add(view.conversation_id)
            case MemberAdded():
                self.conversations_of.setdefault(event.user, set()).add(view.conversation_id)
            case MemberRemoved():
                self.conversations_of.get(event.user, set()).discard(view.conversation_id)
            case MessageSent() | MessagesRead():
                pass
            case _:
                assert_never(event)

    def summary(self, conversation_id: str, user: str) -> ConversationSummary | None:
        view = self.views.get(conversation_id)
        if view is None or user not in view.members:
            return None
        return view.summary_for(user)

    def inbox(self, user: str) -> list[ConversationSummary]:
        """``user``'s conversations, most recently active first."""
        summaries = [
            self.views[conversation_id].summary_for(user)
            for conversation_id in self.conversations_of.get(user, ())
        ]
        summaries.sort(key=lambda s: s.conversation_id)
        summaries.sort(key=lambda s: s.last_activity_at, reverse=True)
        return summaries


def fold_inboxes(events: Iterable[ConversationEvent]) -> Inboxes:
    inboxes = Inboxes()
    for event in events:
        inboxes.apply(event)
    return inboxes


@dataclass(frozen=True, slots=True)
class BuddyPresence:
    username: str
    presence: str


def presence_seen_by(viewer: str, subject: SocialGraph | None, online: bool) -> str:
    """How ``viewer`` sees the subject: offline whenever the subject has blocked them."""
    if not online or (subject is not None and subject.has_blocked(viewer)):
        return OFFLINE
    return ONLINE


def buddy_list(
    graph: SocialGraph | None, online: Collection[str], graphs: Mapping[str, SocialGraph]
) -> list[BuddyPresence]:
    """``GET /v1/buddies`` for ``graph.user``; ``graphs`` holds the buddies' own graphs."""
    if graph is None:
        return []
    return [
        BuddyPresence(
            username=buddy,
            presence=presence_seen_by(graph.user, graphs.get(buddy), buddy in online),
        )
        for buddy in sorted(graph.buddies)
    ]


def _bare_view(event: ConversationEvent) -> ConversationView:
    if isinstance(event, ConversationStarted):
        return ConversationView(
            conversation_id=event.conversation_id,
            kind=event.kind,
            title=event.title,
            members=set(event.members),
            version=event.version,
            last_activity_at=event.started_at,
            read=dict.fromkeys(event.members, 0),
        )
    # A stream whose start is missing: the same stand-in the decider uses.
    return ConversationView(
        conversation_id=event.conversation_id,
        kind=GROUP,
        title=None,
        members=set(),
        version=0,
        last_activity_at=occurred_at(event),
    )
