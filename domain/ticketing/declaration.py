"""The ticketing context, declared once: its decider and the message types on its topics.

The transactional loop, the API and the projectors take both from here (through the topic
binding in producers/contexts.py and the codecs in producers/registries.py), so no two of
them need each other.
"""

from __future__ import annotations

from datetime import datetime

from domain.decider import Decider
from domain.ticketing.commands import COMMAND_TYPES, Command, ExpireHolds
from domain.ticketing.decider import decide, evolve
from domain.ticketing.errors import TicketingError
from domain.ticketing.events import EVENT_TYPES, PART_TYPES, Event
from domain.ticketing.show import Show

# Every dataclass that travels on the ticketing topics (commands, events and their parts).
MESSAGE_TYPES: tuple[type, ...] = (*COMMAND_TYPES, *EVENT_TYPES, *PART_TYPES)


def expiry_timer(show_id: str, show: Show | None, now: datetime) -> ExpireHolds | None:
    """Journal HoldExpired for lapsed holds, so viewers see the seats turn free on time.

    Decisions never wait for this: a lapsed hold already counts as free. The command id is
    tied to the show's version, so a redelivery is recognised and not decided twice.
    """
    if show is None or not show.lapsed_holds(now):
        return None
    return ExpireHolds(command_id=f"expire:{show_id}:{show.version}", show_id=show_id)


def _show_of(command: Command) -> str:
    return command.show_id


# Shows are the streams, keyed by show_id.
DECIDER: Decider[Command, Event, Show | None] = Decider(
    name="ticketing",
    decide=decide,
    evolve=evolve,
    errors=(TicketingError,),
    stream_of=_show_of,
    initial=None,
    timer=expiry_timer,
)
