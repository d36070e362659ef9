"""The Faust application of the processors: one app, its topics declared from producers.topics.

Topics are created by the project (`producers.topics.ensure_topics`) with journal settings,
so Faust is told not to declare them itself.
"""

from __future__ import annotations

import faust

from boxoffice.settings import Settings, get_settings
from producers.topics import Topic


def make_app(settings: Settings) -> faust.App:
    return faust.App(
        # The prefix isolates consumer groups exactly as it isolates topics.
        f"{settings.topic_prefix}-{settings.processor_id}",
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        topic_replication_factor=settings.topic_replication_factor,
        topic_partitions=settings.topic_partitions,
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        broker_commit_every=100,
        broker_commit_interval=0.5,
        autodiscover=False,
        datadir=str(settings.var_dir / "faust"),
    )


settings = get_settings()
app = make_app(settings)


def topic(spec: Topic) -> faust.TopicT:
    # Raw bytes in and out: our envelopes carry their own codec, and a poison message
    # must reach the agent (to be parked) rather than crash Faust's deserializer.
    return app.topic(
        spec.name(settings),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        internal=False,
    )


# Agents register themselves on import.
from processors import probe  # noqa: E402, F401


def main() -> None:
    app.main()
