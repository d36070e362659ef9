"""Replay speed: `boxoffice replay` beside a bare confluent-kafka consume of the same journals.

Writes a ticketing journal (on-sale histories decided by the domain) and a chat journal
(conversations and social streams, likewise) onto topics of its own, then in the same run:

- bare: a confluent-kafka consumer (assign, read_committed, batches of 5,000) reading each
  journal to its end and doing nothing with the messages: the ceiling of any replay;
- decode: the same, decoding each message into its domain event (replay's first step);
- replay: `snapshots.replay.rebuild` into a fresh schema, i.e. decode, the projectors' own
  folds and SQL, one PostgreSQL transaction per batch with its offsets; every partition in a
  worker process (`--workers` at once, by default one a core), the journals side by side.

and prints entries/s of both per journal and their ratio (target: replay >= 0.3x bare). A
journal's replay rate is over the time from its first partition begun to its last finished,
while the other journals' partitions compete for the cores; "all" is every entry over the
whole rebuild's wall time, worker start-up included. Everything shares this machine's cores
with Kafka and PostgreSQL.

Run: `python -m bench.replay` against a running stack (`make run`, or a test slot's servers
through the BOXOFFICE_* settings); `--help` for the knobs. The topics and schemas it makes
are dropped at the end unless `--keep`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
from confluent_kafka import Consumer, KafkaError, TopicPartition

from boxoffice.settings import Settings, get_settings
from producers.topics import ALL_TOPICS, CHAT_EVENTS, SHOW_EVENTS, SOCIAL_EVENTS, ensure_topics
from producers.topics import partitions_of as topic_partitions
from snapshots.database import migrate
from snapshots.projection import decode_event
from snapshots.replay import decode_chat, rebuild
from tests.integration.chat_journals import conversation_journal, produce_chat, social_journal
from tests.integration.test_views import produce
from tests.unit.snapshots.journals import sale


def bare_consume(settings: Settings, topic: str, decode: bool = False) -> tuple[int, float]:
    """Every committed message of `topic`, read and dropped (with `decode`, decoded into its
    event first, as replay does): (messages, seconds)."""
    decoder = _decoder(settings, topic)
    partitions = topic_partitions(settings, [topic])[topic]
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"bench-bare-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
            "fetch.wait.max.ms": 20,
            "log_level": 2,
        }
    )
    began = time.perf_counter()
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    reading, count = set(partitions), 0
    while reading:
        for message in consumer.consume(5000, 0.1):
            err = message.error()
            if err is None:
                count += 1
                if decode:
                    decoder(message.value())
            elif err.code() == KafkaError._PARTITION_EOF:
                reading.discard(message.partition())
    seconds = time.perf_counter() - began
    consumer.close()
    return count, seconds


def _decoder(settings: Settings, topic: str) -> Callable[[bytes | None], object]:
    if topic == SHOW_EVENTS.name(settings):
        return decode_event
    social = topic == SOCIAL_EVENTS.name(settings)
    return lambda raw: decode_chat(raw, social)


def populate(settings: Settings, args: argparse.Namespace) -> dict[str, int]:
    rng = random.Random(args.seed)
    began = time.perf_counter()
    shows = [
        sale(f"show-{uuid.uuid4().hex[:10]}", args.commands, seed=rng.randrange(1 << 30))
        for _ in range(args.shows)
    ]
    produce(settings, shows)
    users = [f"fan{n}" for n in range(args.users)]
    chats = [
        conversation_journal(f"g-{n}", users, args.messages, rng) for n in range(args.conversations)
    ]
    socials = [social_journal(user, users, args.social, rng) for user in users]
    produce_chat(settings, chats, socials)
    written = {
        SHOW_EVENTS.name(settings): sum(map(len, shows)),
        CHAT_EVENTS.name(settings): sum(map(len, chats)),
        SOCIAL_EVENTS.name(settings): sum(map(len, socials)),
    }
    print(f"wrote {sum(written.values()):,} events in {time.perf_counter() - began:.1f} s")
    return written


def run(args: argparse.Namespace) -> dict[str, Any]:
    base = get_settings()
    tag = uuid.uuid4().hex[:6]
    settings = base.model_copy(
        update={"topic_prefix": f"benchreplay{tag}", "pg_schema": f"benchreplay{tag}"}
    )
    ensure_topics(settings)
    migrate(settings)
    schema = ""
    try:
        written = populate(settings, args)
        bare = {topic: bare_consume(settings, topic) for topic in written}
        decoded = {topic: bare_consume(settings, topic, decode=True) for topic in written}
        began = time.perf_counter()
        rebuilt = asyncio.run(rebuild(settings, progress=None, workers=args.workers))
        replay_wall = time.perf_counter() - began
        schema = rebuilt.schema
        replayed = {j.topic: j for j in rebuilt.journals}
        journals = []
        for topic, events in written.items():
            count, seconds = bare[topic]
            bare_rate = count / seconds
            replay_rate = replayed[topic].rate
            journals.append(
                {
                    "journal": topic.removeprefix(f"{settings.topic_prefix}."),
                    "events": events,
                    "bare_per_s": round(bare_rate),
                    "bare_decode_per_s": round(decoded[topic][0] / decoded[topic][1]),
                    "replay_per_s": round(replay_rate),
                    "ratio": round(replay_rate / bare_rate, 3),
                }
            )
        total_bare = sum(c for c, _ in bare.values()) / sum(s for _, s in bare.values())
        # The journals are replayed side by side: all of them over the whole rebuild's wall
        # time (worker processes' start-up included).
        total_replay = sum(j.entries for j in rebuilt.journals) / replay_wall
        return {
            "machine": f"{platform.machine()}, {platform.python_version()}",
            "partitions": settings.topic_partitions,
            "workers": args.workers or os.cpu_count(),
            "journals": journals,
            "all": {
                "bare_per_s": round(total_bare),
                "replay_per_s": round(total_replay),
                "ratio": round(total_replay / total_bare, 3),
            },
        }
    finally:
        if not args.keep:
            drop(settings, schema)


def drop(settings: Settings, replay_schema: str) -> None:
    with psycopg.connect(settings.pg_dsn, autocommit=True) as conn:
        for schema in (settings.pg_schema, replay_schema):
            if schema:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    for future in admin.delete_topics([t.name(settings) for t in ALL_TOPICS]).values():
        future.result(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--shows", type=int, default=10)
    parser.add_argument("--commands", type=int, default=2000, help="commands per show")
    parser.add_argument("--conversations", type=int, default=200)
    parser.add_argument("--messages", type=int, default=100, help="events per conversation")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--social", type=int, default=10, help="events per user's stream")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--keep", action="store_true", help="keep the topics and schemas")
    parser.add_argument(
        "--workers", type=int, default=None, help="replay worker processes (default: one a core)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"{'journal':<20} {'events':>8} {'bare/s':>10} {'decode/s':>10} {'replay/s':>10} "
        f"{'ratio':>6}"
    )
    for j in result["journals"]:
        print(
            f"{j['journal']:<20} {j['events']:>8,} {j['bare_per_s']:>10,} "
            f"{j['bare_decode_per_s']:>10,} {j['replay_per_s']:>10,} {j['ratio']:>6.2f}"
        )
    a = result["all"]
    print(
        f"{'all':<20} {'':>8} {a['bare_per_s']:>10,} {'':>10} {a['replay_per_s']:>10,} "
        f"{a['ratio']:>6.2f}"
    )


if __name__ == "__main__":
    main()
