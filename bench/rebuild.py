"""How long a decider takes to rebuild a partition: the whole journal, or a snapshot + tail.

The journal is filled with realistic sales made by the real decider
(tests/unit/snapshots/journals.py), all on partition 0 of a show journal of its own. Then the
decider's own `_rebuild` runs three times on that partition: with no snapshot (every event
folded), to take a snapshot, and from the snapshot with a tail of `--tail` events after it.

Run: `python -m bench.rebuild` against a running stack (BOXOFFICE_* settings); `--help` for
the knobs. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from typing import Any

from confluent_kafka import Producer

from boxoffice.settings import get_settings
from processors.deciders import DeciderLoop, _Partition
from producers.contexts import TICKETING_CONTEXT
from producers.topics import SHOW_EVENTS, ensure_topics
from snapshots import decider_snapshots
from snapshots.database import migrate
from snapshots.decider_snapshots import Snapshot
from tests.unit.snapshots.journals import record, sale


def fill(producer: Producer, topic: str, shows: int, commands: int, tag: str) -> int:
    total = 0
    for n in range(shows):
        show_id = f"{tag}-{n}"
        for event in sale(show_id, commands, seed=n):
            producer.produce(topic, key=show_id.encode(), value=record(event), partition=0)
            producer.poll(0)
            total += 1
    producer.flush(60)
    return total


def rebuild(loop: DeciderLoop) -> tuple[_Partition, float]:
    part = _Partition(TICKETING_CONTEXT, 0)
    started = time.perf_counter()
    loop._rebuild(part)
    return part, time.perf_counter() - started


def main_async(args: argparse.Namespace) -> dict[str, Any]:
    base = get_settings()
    prefix = f"bench-rebuild-{uuid.uuid4().hex[:8]}"
    settings = base.model_copy(update={"topic_prefix": prefix})
    ensure_topics(settings)
    migrate(settings)
    topic = SHOW_EVENTS.name(settings)
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "linger.ms": 20})
    events = fill(producer, topic, args.shows, args.commands, "before")
    loop = DeciderLoop(settings, [TICKETING_CONTEXT])
    try:
        full, full_s = rebuild(loop)
        assert full.last_record is not None
        snapshot = Snapshot(
            topic,
            0,
            full.last_offset,
            decider_snapshots.digest_of(full.last_record),
            dict(full.streams),
        )
        started = time.perf_counter()
        state = snapshot.encode()
        encode_s = time.perf_counter() - started
        decider_snapshots.save(settings, snapshot, state)
        tail = fill(producer, topic, 1, args.tail, "after")
        restored, restored_s = rebuild(loop)
        assert restored.events_read == tail, (restored.events_read, tail)
        return {
            "events": events,
            "shows": args.shows,
            "full_rebuild_s": round(full_s, 2),
            "full_events_per_s": round(full.events_read / full_s),
            "snapshot_bytes": len(state),
            "snapshot_encode_s": round(encode_s, 3),
            "tail_events": tail,
            "rebuild_from_snapshot_s": round(restored_s, 2),
            "speedup": round(full_s / restored_s, 1),
            "prefix": prefix,
        }
    finally:
        loop.consumer.close()
        loop.snapshot_writer.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shows", type=int, default=20, help="shows in the partition")
    parser.add_argument("--commands", type=int, default=2500, help="commands per show")
    parser.add_argument("--tail", type=int, default=500, help="commands after the snapshot")
    print(json.dumps(main_async(parser.parse_args())))


if __name__ == "__main__":
    main()
