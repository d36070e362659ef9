"""How far behind each consumer is, for `boxoffice status`.

Two kinds of consumers keep their place in two places: consumer groups that commit offsets to
Kafka (the deciders, the Faust processors, and any other group of this stack's topic prefix),
and projectors that keep their checkpoints in PostgreSQL next to the rows they cover (the
ticketing and chat views; `projection_offsets`). Both are compared with the journals' last
stable offsets (what a read_committed consumer can reach).

A transactional journal ends each transaction with a commit marker that takes an offset but is
never delivered, so "end - position" over-counts. Where it is not zero, one read from the
position settles it: nothing left to read means caught up (exact zero); otherwise the figure
stays, marked as an upper bound.

Everything is bounded by a timeout and failures are reported, never raised: status must answer
quickly when Kafka or PostgreSQL is down.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import psycopg
from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    IsolationLevel,
    KafkaError,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]

from boxoffice.settings import Settings
from snapshots.database import conninfo

# (kind, name) -> (topic, partition) -> next offset to process
Positions = dict[tuple[str, str], dict[tuple[str, int], int]]


@dataclass(frozen=True)
class Lag:
    kind: str  # "group": offsets committed to Kafka; "view": checkpoints kept in PostgreSQL
    name: str  # the consumer group id, or the projection's name
    partitions: int
    lag: int | None  # entries not processed yet; None when Kafka could not be asked
    exact: bool = True  # False: an upper bound (commit markers may be part of it)

    def describe(self) -> str:
        if self.lag is None:
            return "lag unknown (Kafka did not answer)"
        return f"lag {'' if self.exact else '<= '}{self.lag}"


def measure_lags(settings: Settings, timeout_s: float = 3.0) -> tuple[list[Lag], list[str]]:
    """Every consumer's lag, and sentences saying what could not be measured."""
    problems: list[str] = []
    positions: Positions = {}
    deadline = time.monotonic() + timeout_s
    kafka = _kafka_answers(settings)
    admin: AdminClient | None = None
    if kafka is None:
        admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap, "log_level": 0})
        try:
            positions.update(_committed_offsets(settings, admin, deadline))
        except Exception as exc:  # whatever the client raises, status goes on
            problems.append(f"Kafka did not list the consumer groups: {exc}")
    else:
        problems.append(kafka)
    try:
        positions.update(_checkpoints(settings, timeout_s))
    except psycopg.Error as exc:
        problems.append(
            f"PostgreSQL did not give the views' checkpoints: {str(exc).strip() or type(exc)}"
        )
    ends: dict[tuple[str, int], int] | None = None
    if admin is not None:
        wanted = {tp for offsets in positions.values() for tp in offsets}
        try:
            # A position on a journal that no longer exists (a deleted test run's topic) is
            # reported and left out; asked for, it failed the whole request.
            listed = admin.list_topics(timeout=_left(deadline)).topics
            gone = sorted({topic for topic, _ in wanted if topic not in listed})
            if gone:
                problems.append(f"positions on journals that no longer exist: {', '.join(gone)}")
                wanted = {tp for tp in wanted if tp[0] in listed}
                for key, offsets in list(positions.items()):
                    positions[key] = {tp: o for tp, o in offsets.items() if tp[0] in listed}
            ends = _stable_ends(admin, wanted, deadline)
        except Exception as exc:
            problems.append(f"Kafka did not give the journals' ends: {exc}")
    behind: dict[tuple[str, int], set[int]] = {}
    if ends is not None:
        for offsets in positions.values():
            for tp, offset in offsets.items():
                if offset < ends.get(tp, 0):
                    behind.setdefault(tp, set()).add(offset)
    caught_up = _only_markers_left(settings, behind, deadline) if behind else set()
    lags = []
    for (kind, name), offsets in sorted(positions.items()):
        if ends is None:
            lags.append(Lag(kind, name, len(offsets), None))
            continue
        total, exact = 0, True
        for tp, offset in offsets.items():
            gap = max(0, ends.get(tp, 0) - offset)
            if gap and (tp, offset) not in caught_up:
                total, exact = total + gap, False
        lags.append(Lag(kind, name, len(offsets), total, exact))
    return lags, problems


def _kafka_answers(settings: Settings) -> str | None:
    """None when the first bootstrap server accepts a connection; else why not. A plain
    connect first, because librdkafka retries a refused connection loudly until its timeout."""
    host, _, port = settings.kafka_bootstrap.split(",")[0].rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return None
    except (OSError, ValueError) as exc:
        return f"Kafka is not reachable at {settings.kafka_bootstrap} ({exc})"


def _left(deadline: float) -> float:
    return max(0.1, deadline - time.monotonic())


def _ours(settings: Settings, group: str) -> bool:
    prefix = settings.topic_prefix
    # The deciders' rebuild readers use throwaway groups that never commit anything.
    return group.startswith((f"{prefix}.", f"{prefix}-")) and not group.startswith(
        f"{prefix}.rebuild."
    )


def _committed_offsets(settings: Settings, admin: AdminClient, deadline: float) -> Positions:
    listed: Any = admin.list_consumer_groups(request_timeout=_left(deadline)).result(
        timeout=_left(deadline)
    )
    out: Positions = {}
    for group in sorted(g.group_id for g in listed.valid if _ours(settings, g.group_id)):
        # One group per request: the client accepts no more.
        futures = admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group)], request_timeout=_left(deadline)
        )
        result: Any = futures[group].result(timeout=_left(deadline))
        offsets = {
            (tp.topic, tp.partition): tp.offset
            for tp in result.topic_partitions
            if tp.offset >= 0  # -1001: nothing committed for that partition
        }
        if offsets:
            out[("group", group)] = offsets
    return out


def _checkpoints(settings: Settings, timeout_s: float) -> Positions:
    out: Positions = {}
    with psycopg.connect(conninfo(settings), connect_timeout=max(1, int(timeout_s))) as conn:
        rows = conn.execute(
            "SELECT projection, topic, partition, next_offset FROM projection_offsets"
        ).fetchall()
    for projection, topic, partition, next_offset in rows:
        out.setdefault(("view", projection), {})[(topic, partition)] = next_offset
    return out


def _stable_ends(
    admin: AdminClient, wanted: Iterable[tuple[str, int]], deadline: float
) -> dict[tuple[str, int], int]:
    request = {
        TopicPartition(topic, partition): OffsetSpec.latest()  # type: ignore[no-untyped-call]
        for topic, partition in wanted
    }
    if not request:
        return {}
    futures = admin.list_offsets(
        request,
        isolation_level=IsolationLevel.READ_COMMITTED,
        request_timeout=_left(deadline),
    )
    return {
        (tp.topic, tp.partition): future.result(timeout=_left(deadline)).offset
        for tp, future in futures.items()
    }


def _only_markers_left(
    settings: Settings, behind: dict[tuple[str, int], set[int]], deadline: float
) -> set[tuple[tuple[str, int], int]]:
    """The (partition, position) pairs from which a read_committed read finds nothing more.
    Each partition is read once from its lowest position; a higher position of the same
    partition is caught up when the lowest one is."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            # Assigned, never subscribed nor committed: the group is never created.
            "group.id": f"{settings.topic_prefix}.status.{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "log_level": 0,
        }
    )
    caught_up: set[tuple[tuple[str, int], int]] = set()
    unresolved = set(behind)
    try:
        consumer.assign([TopicPartition(t, p, min(behind[(t, p)])) for t, p in behind])
        while unresolved and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=1000, timeout=0.1):
                tp = (msg.topic(), msg.partition())
                if tp not in unresolved:
                    continue
                unresolved.discard(tp)
                err = msg.error()
                if err is not None and err.code() == KafkaError._PARTITION_EOF:
                    caught_up.update((tp, offset) for offset in behind[tp])
    except Exception:  # a status line is not worth an error: the upper bound stands
        return caught_up
    finally:
        consumer.close()
    return caught_up
