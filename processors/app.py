"""The Faust application of the processors: one app, its topics declared from producers.topics.

Topics are created by the project (`producers.topics.ensure_topics`) with journal settings,
so Faust is told not to declare them itself. This module imports no agent: the agents import
it, and `processors.__main__` imports the agents (an import circle otherwise).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import faust
from faust.sensors import Monitor
from faust.types import TP, EventT, Message, StreamT

from boxoffice.settings import Settings, get_settings
from producers.topics import Topic, partitions_of

log = logging.getLogger(__name__)


class QuietMonitor(Monitor):
    """Faust's Monitor without its statistics on every message and event.

    Nothing reads them here (no web view, no statsd), and they cost the projector engine a
    share of its time per event. Kept: when a partition's stream last took an event, which
    Faust's own slow-processing check reads.
    """

    def on_message_in(self, tp: TP, offset: int, message: Message) -> None:
        return None

    def on_stream_event_in(
        self, tp: TP, offset: int, stream: StreamT[Any], event: EventT[Any]
    ) -> dict[str, Any] | None:
        self.stream_inbound_time[tp] = time.monotonic()
        return None

    def on_stream_event_out(
        self,
        tp: TP,
        offset: int,
        stream: StreamT[Any],
        event: EventT[Any],
        state: dict[str, Any] | None = None,
    ) -> None:
        return None

    def on_message_out(self, tp: TP, offset: int, message: Message) -> None:
        return None

    def track_tp_end_offset(self, tp: TP, offset: int) -> None:
        return None


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
        # Offsets are only a hint to the projector engine (its truth is its PostgreSQL
        # checkpoint), and a commit every 100 messages costs it most of its throughput.
        broker_commit_every=100 if settings.processor_id == "processors" else 100_000,
        broker_commit_interval=0.5 if settings.processor_id == "processors" else 2.0,
        stream_buffer_maxsize=16_384,
        # A topic created after the worker joined its group is noticed within seconds
        # (aiokafka rejoins when the metadata of a subscribed topic changes).
        consumer_metadata_max_age_ms=10_000,
        # A restarted worker gets its partitions back once its killed predecessor's session
        # has expired (Faust has no static membership): keep that short.
        broker_session_timeout=10.0,
        # A channel's queue pauses its partitions at 1/1.25 of stream_buffer_maxsize; one fetch
        # more must still fit, so that delivering a message never waits on a full queue (the
        # engine delivers inline while the flow is active: `engine.inline_delivery`).
        broker_max_poll_records=2_000,
        autodiscover=False,
        datadir=str(settings.var_dir / "faust"),
        monitor=QuietMonitor(),
    )


settings = get_settings()
app = make_app(settings)


def await_topics(names: list[str], timeout_s: float = 120.0) -> None:
    """Until the broker lists every topic: a worker that joins its group before then is
    assigned nothing for them until the next metadata refresh."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            partitions_of(settings, names)
            return
        except Exception as exc:  # the broker is still coming up, or the topics are
            if time.monotonic() > deadline:
                raise
            log.info("waiting for the topics: %s", exc)
            time.sleep(0.5)


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
