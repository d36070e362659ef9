"""The ticketing decider as the loop runs it: shows are the streams, keyed by show_id.

Declared once in domain/ticketing/declaration.py (decide, evolve, the hold-expiry timer) and
bound to its topics in producers/contexts.py; these names stay for the callers that know the
decider by its processor (bench/decider.py).
"""

from __future__ import annotations

from domain.ticketing.declaration import expiry_timer
from producers.contexts import TICKETING_CONTEXT as TICKETING_DECIDER

__all__ = ["TICKETING_DECIDER", "expiry_timer"]
