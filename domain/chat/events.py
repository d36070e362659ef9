"""What happened in chat: the facts the deciders journal and every view folds.

Each event carries its stream key (``conversation_id`` or ``user``), the stream's
``version`` right after it (1, 2, 3... with no gap) and the ``command_id`` that caused
it. The command id is in the event, not only in the envelope, because ``evolve`` sees
nothing else and must be able to answer a redelivered command from state alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import assert_never

DIRECT = "direct"
GROUP = "group"
KINDS = (DIRECT, GROUP)


@dataclass(frozen=True, slots=True)
class ConversationStarted:
    conversation_id: str
    version: int
    command_id: str
    creator: str
    kind: str
    title: str | None
    members: tuple[str, ...]
    """Every member, the creator included, sorted."""
    started_at: datetime


@dataclass(frozen=True, slots=True)
class MessageSent:
    conversation_id: str
    version: int
    command_id: str
    seq: int
    """1, 2, 3... per conversation; counts messages only, unlike ``version``."""
    sender: str
    client_msg_id: str
    text: str
    sent_at: datetime


@dataclass(frozen=True, slots=True)
class MemberAdded:
    conversation_id: str
    version: int
    command_id: str
    actor: str
    user: str
    added_at: datetime


@dataclass(frozen=True, slots=True)
class MemberRemoved:
    conversation_id: str
    version: int
    command_id: str
    actor: str
    """Equal to ``user`` when a member leaves."""
    user: str
    removed_at: datetime


@dataclass(frozen=True, slots=True)
class MessagesRead:
    """``user`` has read every message up to and including ``seq``."""

    conversation_id: str
    version: int
    command_id: str
    user: str
    seq: int
    read_at: datetime


ConversationEvent = ConversationStarted | MessageSent | MemberAdded | MemberRemoved | MessagesRead


@dataclass(frozen=True, slots=True)
class BuddyAdded:
    user: str
    version: int
    command_id: str
    buddy: str
    added_at: datetime


@dataclass(frozen=True, slots=True)
class BuddyRemoved:
    user: str
    version: int
    command_id: str
    buddy: str
    removed_at: datetime


@dataclass(frozen=True, slots=True)
class UserBlocked:
    user: str
    version: int
    command_id: str
    blocked: str
    blocked_at: datetime


@dataclass(frozen=True, slots=True)
class UserUnblocked:
    user: str
    version: int
    command_id: str
    blocked: str
    """The user who was blocked until now."""
    unblocked_at: datetime


SocialEvent = BuddyAdded | BuddyRemoved | UserBlocked | UserUnblocked

Event = ConversationEvent | SocialEvent

EVENT_TYPES: tuple[type[Event], ...] = (
    ConversationStarted,
    MessageSent,
    MemberAdded,
    MemberRemoved,
    MessagesRead,
    BuddyAdded,
    BuddyRemoved,
    UserBlocked,
    UserUnblocked,
)


def require_utc(now: datetime) -> datetime:
    """Events are stamped with ``now``; a naive or non-UTC time is the caller's bug."""
    if now.tzinfo is None or now.utcoffset() != timedelta(0):
        raise ValueError(f"now must be an aware UTC datetime, got {now!r}")
    return now


def occurred_at(event: Event) -> datetime:
    """When ``event`` happened, whatever its kind calls the moment."""
    match event:
        case ConversationStarted():
            return event.started_at
        case MessageSent():
            return event.sent_at
        case MemberAdded() | BuddyAdded():
            return event.added_at
        case MemberRemoved() | BuddyRemoved():
            return event.removed_at
        case MessagesRead():
            return event.read_at
        case UserBlocked():
            return event.blocked_at
        case UserUnblocked():
            return event.unblocked_at
        case _:
            assert_never(event)
