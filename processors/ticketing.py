"""The ticketing decider's wiring: shows are the streams, keyed by show_id."""

from __future__ import annotations

from datetime import datetime

from domain.ticketing import ExpireHolds, Show, TicketingError, decide, evolve
from processors.deciders import DeciderSpec
from producers.registries import TICKETING
from producers.topics import SHOW_COMMANDS, SHOW_EVENTS, SHOW_REJECTIONS


def expiry_timer(show_id: str, show: Show | None, now: datetime) -> ExpireHolds | None:
    """Journal HoldExpired for lapsed holds, so viewers see the seats turn free on time.

    Decisions never wait for this: a lapsed hold already counts as free. The command id is
    tied to the show's version, so a redelivery is recognised and not decided twice.
    """
    if show is None or not show.lapsed_holds(now):
        return None
    return ExpireHolds(command_id=f"expire:{show_id}:{show.version}", show_id=show_id)


TICKETING_DECIDER = DeciderSpec(
    name="ticketing",
    commands=SHOW_COMMANDS,
    events=SHOW_EVENTS,
    rejections=SHOW_REJECTIONS,
    registry=TICKETING,
    decide=decide,
    evolve=evolve,
    errors=(TicketingError,),
    stream_of=lambda command: str(command.show_id),
    timer=expiry_timer,
)
