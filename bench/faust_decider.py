"""The same ticketing decisions as bench/decider.py, made by a Faust agent instead, to measure
what the choice of the confluent-kafka transactional loop for the hot decider buys.

The agent decodes, decides, evolves and sends the events and the reply for each command, as
the loop does, but without Kafka transactions (Faust's exactly-once mode is not relied on);
so it does less work per command than the loop it is compared with.

Run: `python -m bench.faust_decider --prefix PREFIX --total N` on a journal that
bench/decider.py filled (it prints its prefix); prints the rate when all N are decided.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from typing import Any

import faust

from boxoffice.settings import get_settings
from domain.ticketing import TicketingError, decide, evolve
from producers.codec import DecodeError
from producers.envelope import CommandEnvelope, EventRecord, Reply
from producers.registries import TICKETING
from producers.topics import REPLIES, SHOW_COMMANDS, SHOW_EVENTS


def build(prefix: str, total: int) -> faust.App:
    settings = get_settings().model_copy(update={"topic_prefix": prefix})
    app = faust.App(
        f"{prefix}-faust-decider-{int(time.time())}",
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        producer_acks=-1,
        datadir=str(settings.var_dir / "faust-bench"),
    )

    def raw(name: str) -> Any:
        return app.topic(
            name,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            internal=False,
        )

    commands = raw(SHOW_COMMANDS.name(settings))
    events = raw(SHOW_EVENTS.name(settings) + ".faust")
    replies = raw(REPLIES.name(settings) + ".faust")
    states: dict[str, Any] = {}
    counted = {"n": 0, "first": 0.0}

    @app.agent(commands)
    async def decider(stream: Any) -> None:
        async for value in stream:
            if counted["n"] == 0:
                counted["first"] = time.monotonic()
            try:
                envelope = CommandEnvelope.decode(value)
                command = TICKETING.from_dict({**envelope.payload, "type": envelope.type})
            except DecodeError:
                continue
            now = datetime.now(UTC)
            state = states.get(envelope.stream_id)
            try:
                decided = decide(state, command, now)
                reply = Reply(envelope.command_id, envelope.stream_id, ok=True)
            except TicketingError as err:
                decided = []
                reply = Reply(
                    envelope.command_id, envelope.stream_id, ok=False, error={"code": err.code}
                )
            key = envelope.stream_id.encode()
            for event in decided:
                state = evolve(state, event)
                record = EventRecord(
                    envelope.stream_id,
                    event.version,
                    envelope.command_id,
                    now,
                    TICKETING.to_dict(event),
                )
                await events.send(key=key, value=record.encode())
            if state is not None:
                states[envelope.stream_id] = state
            await replies.send(key=key, value=reply.encode())
            counted["n"] += 1
            if counted["n"] == total:
                seconds = time.monotonic() - counted["first"]
                print(
                    json.dumps(
                        {
                            "faust_decided_per_s": round(total / seconds, 1),
                            "commands": total,
                            "seconds": round(seconds, 2),
                        }
                    ),
                    flush=True,
                )
                os._exit(0)

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--total", type=int, required=True)
    args, rest = parser.parse_known_args()
    app = build(args.prefix, args.total)
    # The new topics the agent writes to must exist before Faust starts (the broker does not
    # create topics on demand).
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    settings = get_settings()
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    names = [f"{args.prefix}.ticketing.events.faust", f"{args.prefix}.replies.faust"]
    for future in admin.create_topics(
        [NewTopic(n, num_partitions=settings.topic_partitions, replication_factor=1) for n in names]
    ).values():
        try:
            future.result()
        except Exception as exc:  # already there from an earlier run: fine
            print(exc, file=sys.stderr)
    sys.argv = [sys.argv[0], "worker", "-l", "info", "--without-web", *rest]
    app.main()


if __name__ == "__main__":
    main()
