"""Each decided context bound to its Kafka topics and codec: what the decider loop serves.

The deciders themselves are declared once beside their domain (`domain/*/declaration.py`,
pure); the domain may not know about topics or codecs, so the binding lives here, in the
message layer that both the transactional loop (processors/deciders.py) and the API import.
Dependencies point one way: domain <- producers (this) <- processors, api.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic

from domain.chat.declaration import CONVERSATION_DECIDER, SOCIAL_DECIDER
from domain.decider import C, Decider, E, S
from domain.ticketing.declaration import DECIDER as TICKETING
from producers.codec import Registry
from producers.registries import CONVERSATIONS, SOCIAL
from producers.registries import TICKETING as TICKETING_CODEC
from producers.topics import (
    CHAT_COMMANDS,
    CHAT_EVENTS,
    CHAT_REJECTIONS,
    SHOW_COMMANDS,
    SHOW_EVENTS,
    SHOW_REJECTIONS,
    SOCIAL_COMMANDS,
    SOCIAL_EVENTS,
    SOCIAL_REJECTIONS,
    Topic,
)


@dataclass(frozen=True)
class DecidedContext(Generic[C, E, S]):
    """A decider with the topics it reads and writes and the codec of its messages."""

    decider: Decider[C, E, S]
    registry: Registry
    commands: Topic
    events: Topic
    # Where its rejections are journaled, so a later copy of a command gets the first answer.
    rejections: Topic

    @property
    def name(self) -> str:
        return self.decider.name


TICKETING_CONTEXT = DecidedContext(
    TICKETING, TICKETING_CODEC, SHOW_COMMANDS, SHOW_EVENTS, SHOW_REJECTIONS
)
CONVERSATION_CONTEXT = DecidedContext(
    CONVERSATION_DECIDER, CONVERSATIONS, CHAT_COMMANDS, CHAT_EVENTS, CHAT_REJECTIONS
)
SOCIAL_CONTEXT = DecidedContext(
    SOCIAL_DECIDER, SOCIAL, SOCIAL_COMMANDS, SOCIAL_EVENTS, SOCIAL_REJECTIONS
)

# Every context the decider loop serves, in the order it subscribes to them.
DECIDED: tuple[DecidedContext[Any, Any, Any], ...] = (
    TICKETING_CONTEXT,
    CONVERSATION_CONTEXT,
    SOCIAL_CONTEXT,
)
