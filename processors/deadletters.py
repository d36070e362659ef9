"""Parking poison messages so a consumer never sticks on one."""

from __future__ import annotations

import logging

from faust.types import EventT

log = logging.getLogger(__name__)


async def park(event: EventT[bytes], reason: str) -> None:
    """Forward the message as it came to the dead-letter topic, with where and why."""
    from processors.app import topic
    from producers.topics import DEAD_LETTERS

    message = event.message
    log.warning(
        "dead-lettering %s[%s]@%s: %s", message.topic, message.partition, message.offset, reason
    )
    await topic(DEAD_LETTERS).send(
        key=message.key,
        value=message.value,
        headers={
            "origin-topic": message.topic.encode(),
            "origin-partition": str(message.partition).encode(),
            "origin-offset": str(message.offset).encode(),
            "reason": reason.encode()[:1000],
        },
    )
