"""The dead-letter record: one set of headers for every consumer that parks a message.

A parked message keeps its key and value exactly as they came; the headers say where it came
from, who gave up on it, why, after how many attempts and when. Every writer (the deciders,
both projectors, the Faust agents) builds them here, so an operator reads one format whatever
the client library (confluent-kafka, aiokafka and Faust all take a list of (str, bytes)).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

# Headers are not free: a reason is for a person to read, not a full traceback.
REASON_LIMIT = 1000

ORIGIN_TOPIC = "origin-topic"
ORIGIN_PARTITION = "origin-partition"
ORIGIN_OFFSET = "origin-offset"
ORIGIN_CONSUMER = "origin-consumer"
REASON = "reason"
ATTEMPTS = "attempts"
FAILED_AT = "failed-at"


def truncate(reason: str, limit: int = REASON_LIMIT) -> str:
    """At most `limit` UTF-8 bytes of the reason, never cutting a character in two."""
    encoded = reason.encode("utf-8", "backslashreplace")
    if len(encoded) <= limit:
        return encoded.decode()
    return encoded[: limit - 3].decode("utf-8", "ignore") + "..."


def dead_letter_headers(
    *,
    consumer: str,
    reason: str,
    attempts: int = 1,
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
    failed_at: datetime | None = None,
    extra: Mapping[str, str] | None = None,
) -> list[tuple[str, bytes]]:
    """The headers of a dead letter.

    `topic`/`partition`/`offset` locate the original message; they are left out for
    something that never was one (a command the decider gave itself). `extra` adds
    writer-specific headers (a command id, say) after the common ones.
    """
    headers: list[tuple[str, bytes]] = []
    if topic is not None:
        headers.append((ORIGIN_TOPIC, topic.encode()))
    if partition is not None:
        headers.append((ORIGIN_PARTITION, str(partition).encode()))
    if offset is not None:
        headers.append((ORIGIN_OFFSET, str(offset).encode()))
    headers += [
        (ORIGIN_CONSUMER, consumer.encode()),
        (REASON, truncate(reason).encode()),
        (ATTEMPTS, str(attempts).encode()),
        (FAILED_AT, (failed_at or datetime.now(UTC)).isoformat().encode()),
    ]
    for name, value in (extra or {}).items():
        headers.append((name, truncate(value).encode()))
    return headers
