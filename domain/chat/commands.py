"""What users ask of chat. The acting user always comes from the token, never the body.

Every command carries a ``command_id`` (unique per request, kept on redelivery) so a
command delivered twice acts once.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StartConversation:
    """Start a direct or group conversation.

    ``members`` may or may not list the creator; the creator is always a member and
    repeated names count once. A direct conversation has exactly two members and must
    use ``direct_conversation_id`` of the pair; asking again for the same pair answers
    the original ``ConversationStarted``.
    """

    command_id: str
    conversation_id: str
    creator: str
    members: tuple[str, ...]
    kind: str
    title: str | None


@dataclass(frozen=True, slots=True)
class SendMessage:
    """Send ``text`` (1..100,000 characters) to a conversation.

    ``sender_blocked_by``: blocks live in each user's social stream, which the
    conversation's writer cannot read, so the adapter looks up which members of the
    conversation have blocked ``sender`` (``SocialGraph.has_blocked``) and passes them
    here. Only direct conversations honour it; in a group a block hides presence but
    does not silence the sender. Required, not defaulted, so that no adapter can
    forget blocks by omission.
    """

    command_id: str
    conversation_id: str
    sender: str
    client_msg_id: str
    text: str
    sender_blocked_by: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AddMember:
    """A member of a group adds ``user``."""

    command_id: str
    conversation_id: str
    actor: str
    user: str


@dataclass(frozen=True, slots=True)
class RemoveMember:
    """A member of a group removes ``user``; removing oneself is leaving."""

    command_id: str
    conversation_id: str
    actor: str
    user: str


@dataclass(frozen=True, slots=True)
class MarkRead:
    """``user`` has read up to ``seq``. A marker never moves backwards."""

    command_id: str
    conversation_id: str
    user: str
    seq: int


ConversationCommand = StartConversation | SendMessage | AddMember | RemoveMember | MarkRead


@dataclass(frozen=True, slots=True)
class AddBuddy:
    command_id: str
    user: str
    buddy: str


@dataclass(frozen=True, slots=True)
class RemoveBuddy:
    command_id: str
    user: str
    buddy: str


@dataclass(frozen=True, slots=True)
class BlockUser:
    command_id: str
    user: str
    blocked: str


@dataclass(frozen=True, slots=True)
class UnblockUser:
    command_id: str
    user: str
    blocked: str


SocialCommand = AddBuddy | RemoveBuddy | BlockUser | UnblockUser

Command = ConversationCommand | SocialCommand

COMMAND_TYPES: tuple[type[Command], ...] = (
    StartConversation,
    SendMessage,
    AddMember,
    RemoveMember,
    MarkRead,
    AddBuddy,
    RemoveBuddy,
    BlockUser,
    UnblockUser,
)
