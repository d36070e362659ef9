"""Every Kafka topic of the system, declared once.

Names carry a prefix from settings so that tests (and several deployments on one cluster)
isolate themselves by name rather than by restarting servers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import Enum

from boxoffice.settings import Settings


class Retention(Enum):
    # Journals are the source of truth: kept forever.
    FOREVER = "-1"
    # Replies only matter while a caller waits for one.
    ONE_HOUR = str(3600 * 1000)
    # A rejection is a first answer for as long as a caller may retry with its
    # Idempotency-Key: a week (the deciders also forget older ones, see REJECTIONS_KEPT_S).
    SEVEN_DAYS = str(7 * 24 * 3600 * 1000)


@dataclass(frozen=True)
class Topic:
    suffix: str
    retention: Retention = Retention.FOREVER

    def name(self, settings: Settings) -> str:
        return f"{settings.topic_prefix}.{self.suffix}"


# Kafka keys are stream ids: show_id, conversation_id, username.
SHOW_COMMANDS = Topic("ticketing.commands")
SHOW_EVENTS = Topic("ticketing.events")
CHAT_COMMANDS = Topic("chat.commands")
CHAT_EVENTS = Topic("chat.events")
SOCIAL_COMMANDS = Topic("social.commands")
SOCIAL_EVENTS = Topic("social.events")
# The pipeline probe: one command type that walks the whole pipe (producer, processor,
# event journal, projection, reply, live push). `boxoffice up` and /readyz?deep use it.
SYSTEM_COMMANDS = Topic("system.commands")
SYSTEM_EVENTS = Topic("system.events")
REPLIES = Topic("replies", Retention.ONE_HOUR)
# The deciders' rejections (the ok=False reply as first sent), keyed by stream id and written
# to the partition number of the command, in the transaction of the reply: a later copy of the
# command id is answered with it, never decided again. One journal per decider.
SHOW_REJECTIONS = Topic("ticketing.rejections", Retention.SEVEN_DAYS)
CHAT_REJECTIONS = Topic("chat.rejections", Retention.SEVEN_DAYS)
SOCIAL_REJECTIONS = Topic("social.rejections", Retention.SEVEN_DAYS)
REJECTIONS_KEPT_S = 7 * 24 * 3600
# Chat presence and typing between API instances: ephemeral by nature, never replayed.
CHAT_SIGNALS = Topic("chat.signals", Retention.ONE_HOUR)
# Poison messages: anything a processor could not decode or decide on is parked here.
DEAD_LETTERS = Topic("deadletters")

ALL_TOPICS: tuple[Topic, ...] = (
    SHOW_COMMANDS,
    SHOW_EVENTS,
    CHAT_COMMANDS,
    CHAT_EVENTS,
    SOCIAL_COMMANDS,
    SOCIAL_EVENTS,
    SYSTEM_COMMANDS,
    SYSTEM_EVENTS,
    REPLIES,
    SHOW_REJECTIONS,
    CHAT_REJECTIONS,
    SOCIAL_REJECTIONS,
    CHAT_SIGNALS,
    DEAD_LETTERS,
)


def ensure_topics(settings: Settings, topics: tuple[Topic, ...] = ALL_TOPICS) -> list[str]:
    """Create the missing topics; return the names created. Existing ones are left alone."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    existing = set(admin.list_topics(timeout=10).topics)
    wanted = [
        NewTopic(
            t.name(settings),
            num_partitions=settings.topic_partitions,
            replication_factor=settings.topic_replication_factor,
            config={
                "retention.ms": t.retention.value,
                "retention.bytes": "-1",
                "min.insync.replicas": str(settings.topic_min_insync_replicas),
            },
        )
        for t in topics
        if t.name(settings) not in existing
    ]
    if not wanted:
        return []
    created: list[str] = []
    for name, future in admin.create_topics(wanted, operation_timeout=30).items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            # Another process won the race to create it: that is the state we wanted.
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    # The controller has committed them; the broker's metadata can trail by a moment, and a
    # client started right after must find every partition.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        known = admin.list_topics(timeout=10).topics
        if all(name in known and known[name].error is None for name in created):
            break
        time.sleep(0.1)
    return created


def partitions_of(settings: Settings, names: list[str]) -> dict[str, list[int]]:
    """The partition numbers of each named topic; a missing topic is an error."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap, "log_level": 3})
    metadata = admin.list_topics(timeout=10)
    found: dict[str, list[int]] = {}
    for name in names:
        topic = metadata.topics.get(name)
        if topic is None or topic.error is not None:
            raise RuntimeError(f"topic {name} does not exist; run `boxoffice topics`")
        found[name] = sorted(topic.partitions)
    return found
