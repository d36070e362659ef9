"""The chat deciders' wiring: conversations keyed by conversation_id, social graphs by username.

Each decider gets a registry of its own commands and events only, so a command that lands on
the other context's topic fails to decode and is dead-lettered instead of reaching a decider
that cannot handle it.

Blocks live in the social streams, which the conversation decider cannot read: the API looks
them up in the social projection and passes them in `SendMessage.sender_blocked_by` (see the
README for the short window this leaves).
"""

from __future__ import annotations

from domain.chat import conversations, social
from domain.chat.commands import (
    AddBuddy,
    AddMember,
    BlockUser,
    MarkRead,
    RemoveBuddy,
    RemoveMember,
    SendMessage,
    StartConversation,
    UnblockUser,
)
from domain.chat.errors import ChatError
from domain.chat.events import (
    BuddyAdded,
    BuddyRemoved,
    ConversationStarted,
    MemberAdded,
    MemberRemoved,
    MessageSent,
    MessagesRead,
    UserBlocked,
    UserUnblocked,
)
from processors.deciders import DeciderSpec
from producers.codec import Registry
from producers.topics import (
    CHAT_COMMANDS,
    CHAT_EVENTS,
    CHAT_REJECTIONS,
    SOCIAL_COMMANDS,
    SOCIAL_EVENTS,
    SOCIAL_REJECTIONS,
)

CONVERSATIONS = Registry(
    (
        StartConversation,
        SendMessage,
        AddMember,
        RemoveMember,
        MarkRead,
        ConversationStarted,
        MessageSent,
        MemberAdded,
        MemberRemoved,
        MessagesRead,
    )
)
SOCIAL = Registry(
    (
        AddBuddy,
        RemoveBuddy,
        BlockUser,
        UnblockUser,
        BuddyAdded,
        BuddyRemoved,
        UserBlocked,
        UserUnblocked,
    )
)

# The loop treats events whose first version is not above the stream's as a duplicate
# answer; that is exactly `already_journaled` of both deciders.
CONVERSATION_DECIDER = DeciderSpec(
    name="conversations",
    commands=CHAT_COMMANDS,
    events=CHAT_EVENTS,
    rejections=CHAT_REJECTIONS,
    registry=CONVERSATIONS,
    decide=conversations.decide,
    evolve=conversations.evolve,
    errors=(ChatError,),
    stream_of=lambda command: str(command.conversation_id),
)

SOCIAL_DECIDER = DeciderSpec(
    name="social",
    commands=SOCIAL_COMMANDS,
    events=SOCIAL_EVENTS,
    rejections=SOCIAL_REJECTIONS,
    registry=SOCIAL,
    decide=social.decide,
    evolve=social.evolve,
    errors=(ChatError,),
    stream_of=lambda command: str(command.user),
)
