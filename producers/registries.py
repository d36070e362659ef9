"""The codec registries of each bounded context: which dataclasses travel on its topics."""

from __future__ import annotations

from domain.chat import commands as chat_commands
from domain.chat import events as chat_events
from domain.ticketing import COMMAND_TYPES, EVENT_TYPES, PART_TYPES
from producers.codec import Registry

TICKETING = Registry((*COMMAND_TYPES, *EVENT_TYPES, *PART_TYPES))
CHAT = Registry((*chat_commands.COMMAND_TYPES, *chat_events.EVENT_TYPES))
