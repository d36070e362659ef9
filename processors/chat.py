"""The chat deciders as the loop runs them: conversations keyed by conversation_id, social
graphs by username.

Declared once in domain/chat/declaration.py (each decider and its message types), with their
codecs in producers/registries.py and their topics in producers/contexts.py; these names stay
for the callers that know them by their processor (the chat projector, tests).
"""

from __future__ import annotations

from producers.contexts import CONVERSATION_CONTEXT as CONVERSATION_DECIDER
from producers.contexts import SOCIAL_CONTEXT as SOCIAL_DECIDER
from producers.registries import CONVERSATIONS, SOCIAL

__all__ = ["CONVERSATIONS", "CONVERSATION_DECIDER", "SOCIAL", "SOCIAL_DECIDER"]
