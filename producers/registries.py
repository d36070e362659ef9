"""The codec registries of each bounded context: which dataclasses travel on its topics.

The types are declared once beside each context's domain (`domain/*/declaration.py`); this
only turns them into codecs, which the domain must not know about.
"""

from __future__ import annotations

from domain.chat import commands as chat_commands
from domain.chat import events as chat_events
from domain.chat.declaration import CONVERSATION_TYPES, SOCIAL_TYPES
from domain.ticketing.declaration import MESSAGE_TYPES as TICKETING_TYPES
from producers.codec import Registry

TICKETING = Registry(TICKETING_TYPES)
# Each chat decider decodes its own commands and events only (see domain/chat/declaration.py).
CONVERSATIONS = Registry(CONVERSATION_TYPES)
SOCIAL = Registry(SOCIAL_TYPES)
# Both chat contexts at once: the API's command endpoints and the chat projector.
CHAT = Registry((*chat_commands.COMMAND_TYPES, *chat_events.EVENT_TYPES))
