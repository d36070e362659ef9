"""The chat contexts, declared once: each decider and the message types on its topics.

Conversations (streams keyed by conversation_id) and social graphs (keyed by username) are
two deciders, each with its own commands and events only: a command that lands on the other
context's topic fails to decode and is dead-lettered instead of reaching a decider that
cannot handle it.

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
    ConversationCommand,
    MarkRead,
    RemoveBuddy,
    RemoveMember,
    SendMessage,
    SocialCommand,
    StartConversation,
    UnblockUser,
)
from domain.chat.errors import ChatError
from domain.chat.events import (
    BuddyAdded,
    BuddyRemoved,
    ConversationEvent,
    ConversationStarted,
    MemberAdded,
    MemberRemoved,
    MessageSent,
    MessagesRead,
    SocialEvent,
    UserBlocked,
    UserUnblocked,
)
from domain.decider import Decider

CONVERSATION_TYPES: tuple[type, ...] = (
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
SOCIAL_TYPES: tuple[type, ...] = (
    AddBuddy,
    RemoveBuddy,
    BlockUser,
    UnblockUser,
    BuddyAdded,
    BuddyRemoved,
    UserBlocked,
    UserUnblocked,
)


def _conversation_of(command: ConversationCommand) -> str:
    return command.conversation_id


def _user_of(command: SocialCommand) -> str:
    return command.user


CONVERSATION_DECIDER: Decider[
    ConversationCommand, ConversationEvent, conversations.Conversation | None
] = Decider(
    name="conversations",
    decide=conversations.decide,
    evolve=conversations.evolve,
    errors=(ChatError,),
    stream_of=_conversation_of,
    initial=None,
)

SOCIAL_DECIDER: Decider[SocialCommand, SocialEvent, social.SocialGraph | None] = Decider(
    name="social",
    decide=social.decide,
    evolve=social.evolve,
    errors=(ChatError,),
    stream_of=_user_of,
    initial=None,
)
