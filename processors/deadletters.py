"""Parking poison messages so a Faust agent never sticks on one."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from faust.types import EventT

from processors.app import topic
from processors.poison import ATTEMPTS, BACKOFF_S, TRANSIENT_BACKOFF_S, describe, is_transient
from producers.deadletters import dead_letter_headers
from producers.topics import DEAD_LETTERS

log = logging.getLogger(__name__)

# The Faust worker's consumer, as the dead letters name it.
CONSUMER = "processors"


async def park(
    event: EventT[bytes], reason: str, *, consumer: str = CONSUMER, attempts: int = 1
) -> None:
    """Forward the message as it came to the dead-letter topic, with where and why."""
    message = event.message
    log.warning(
        "dead-lettering %s[%s]@%s: %s", message.topic, message.partition, message.offset, reason
    )
    await topic(DEAD_LETTERS).send(
        key=message.key,
        value=message.value,
        headers=dead_letter_headers(
            consumer=consumer,
            reason=reason,
            attempts=attempts,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
        ),
    )


async def apply_or_park(
    event: EventT[bytes],
    action: Callable[[], Awaitable[None]],
    *,
    consumer: str = CONSUMER,
    attempts: int = ATTEMPTS,
) -> None:
    """Run `action` for one message under the projectors' poison rule (`processors.poison`):
    connection loss is retried without bound, any other failure `attempts` times, and then
    the message is parked and the agent goes on. An agent that raised would stop its stream.
    """
    failures = transient = 0
    while True:
        try:
            await action()
            return
        except Exception as exc:  # every failure is either counted or retried
            if is_transient(exc):
                delay = TRANSIENT_BACKOFF_S[min(transient, len(TRANSIENT_BACKOFF_S) - 1)]
                transient += 1
                log.warning("cannot apply a message (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                continue
            failures += 1
            if failures >= attempts:
                await park(event, describe(exc), consumer=consumer, attempts=failures)
                return
            await asyncio.sleep(BACKOFF_S[min(failures - 1, len(BACKOFF_S) - 1)])
