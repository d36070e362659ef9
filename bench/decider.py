"""Decider capacity without HTTP: how many ticketing commands the transactional decider loop
decides per second, journal to journal, on the real broker.

It fills a scratch command journal (its own topic prefix) with CreateShow commands and then
PlaceHold commands spread over the shows, and runs the same DeciderLoop the deciders process
runs, timing it from its first decision to its last. Every decision is a real one: events
and replies are appended in Kafka transactions with the consumed offsets.

Run: `python -m bench.decider` against the running stack's Kafka (`make run`).
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
import uuid
from datetime import UTC, datetime

from confluent_kafka import Producer

from boxoffice.settings import get_settings
from domain.ticketing import CreateShow, PlaceHold, Section
from processors.deciders import DeciderLoop
from processors.ticketing import TICKETING_DECIDER
from producers.envelope import CommandEnvelope
from producers.registries import TICKETING
from producers.topics import SHOW_COMMANDS, ensure_topics


def envelope(command: CreateShow | PlaceHold) -> bytes:
    payload = TICKETING.to_dict(command)
    kind = payload.pop("type")
    return CommandEnvelope(command.command_id, command.show_id, kind, payload).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shows", type=int, default=12)
    parser.add_argument("--holds", type=int, default=30_000)
    args = parser.parse_args()

    prefix = f"benchdec{int(time.time())}"
    settings = get_settings().model_copy(update={"topic_prefix": prefix})
    ensure_topics(settings)
    topic = SHOW_COMMANDS.name(settings)
    producer = Producer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "linger.ms": 20,
            "acks": "all",
            "partitioner": "murmur2_random",
        }
    )
    shows = [f"s{uuid.uuid4().hex[:16]}" for _ in range(args.shows)]
    for show in shows:
        create = CreateShow(
            command_id=uuid.uuid4().hex,
            show_id=show,
            organizer="bench",
            name="bench",
            starts_at=datetime(2027, 1, 1, tzinfo=UTC),
            hold_seconds=630,
            sections=(Section("A", 100, 200, 5000),),
            zones=(),
        )
        producer.produce(topic, key=show, value=envelope(create))
    rng = random.Random(1)
    for i in range(args.holds):
        show = rng.choice(shows)
        base = {
            "command_id": uuid.uuid4().hex,
            "show_id": show,
            "user": f"fan{i % 1000}",
            "order_id": f"{show}.{uuid.uuid4().hex}",
        }
        if rng.random() < 0.5:
            row, seat, n = rng.randint(1, 100), rng.randint(1, 197), rng.randint(1, 4)
            command = PlaceHold.of_seats(
                **base, seats=tuple(f"A-{row}-{s}" for s in range(seat, seat + n))
            )
        else:
            command = PlaceHold.best(**base, quantity=rng.randint(1, 4))
        producer.produce(topic, key=show, value=envelope(command))
        if i % 10_000 == 0:
            producer.poll(0)
    producer.flush(60)
    total = args.shows + args.holds

    loop = DeciderLoop(settings, [TICKETING_DECIDER])
    first: list[float] = []

    def watch() -> None:
        while loop.decided == 0:
            time.sleep(0.001)
        first.append(time.monotonic())
        while loop.decided < total:
            time.sleep(0.01)
        loop.stop()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    started = time.monotonic()
    loop.run()
    ended = time.monotonic()
    decided_s = ended - first[0]
    print(
        json.dumps(
            {
                "prefix": prefix,
                "commands": total,
                "decided_per_s": round(total / decided_s, 1),
                "seconds_deciding": round(decided_s, 2),
                "seconds_including_assignment": round(ended - started, 2),
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "command": "python -m bench.decider "
                + " ".join(f"--{k} {v}" for k, v in vars(args).items()),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
