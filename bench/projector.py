"""Projector events/s on the ticketing journal: the Faust engine beside a bare aiokafka loop.

Both run the same per-batch function (`processors.engine.TicketingViews.project`: the fold
and the SQL of `snapshots.projection`, the checkpoint rule, the poison guard), on the same
topic, in the same run, each into a PostgreSQL schema of its own:

- bare: an aiokafka consumer, `getmany(max_records=2000)`, in this process;
- faust: `python -m processors views worker` (the component's command): a `noack` stream,
  batches of at most 2000 gathered while the batch before is written (`engine.Batches`).

The journal is filled first with realistic sales made by the real decider
(tests/unit/snapshots/journals.py). Each rate is events over the time from the first
checkpoint written to the last one (start-up and the consumer group's join are excluded),
with each driver's CPU time per event over the same span (this process's for bare, the
worker's for faust): on a shared machine the rates swing with the load, the CPU cost far less.

Run: `python -m bench.projector` against a running stack (BOXOFFICE_* settings);
`--help` for the knobs. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from boxoffice.settings import PROJECT_ROOT, Settings, get_settings
from processors.engine import Entry, TicketingViews
from producers.topics import SHOW_EVENTS, ensure_topics
from snapshots.database import conninfo, migrate
from snapshots.projection import PROJECTION
from tests.unit.snapshots.journals import record, sale


async def fill(settings: Settings, shows: int, commands: int) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=20)
    await producer.start()
    total = 0
    try:
        for n in range(shows):
            show_id = f"bench-{n}"
            for event in sale(show_id, commands, seed=n):
                await producer.send(
                    SHOW_EVENTS.name(settings), key=show_id.encode(), value=record(event)
                )
                total += 1
        await producer.flush()
    finally:
        await producer.stop()
    return total


async def progress(settings: Settings) -> int:
    async with await psycopg.AsyncConnection.connect(conninfo(settings), autocommit=True) as conn:
        cursor = await conn.execute(
            "SELECT coalesce(sum(next_offset), 0) FROM projection_offsets"
            " WHERE projection = %s AND topic = %s",
            (PROJECTION, SHOW_EVENTS.name(settings)),
        )
        row = await cursor.fetchone()
        return int(row[0]) if row else 0


def worker_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads (Linux)."""
    fields = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def watch(
    settings: Settings, total: int, timeout_s: float, cpu: Callable[[], float]
) -> tuple[float, float]:
    """Events/s from the first checkpoint to the last (polled every 50 ms), and the driver's
    CPU microseconds per event over the same span: on a shared machine the rate follows the
    load, the CPU cost much less."""
    started: tuple[float, int, float] | None = None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done = await progress(settings)
        now = time.monotonic()
        if started is None and done > 0:
            started = (now, done, cpu())
        if done >= total and started is not None:
            if done == started[1]:
                raise RuntimeError("the journal is too short to time: fill more events")
            events = done - started[1]
            return events / (now - started[0]), 1e6 * (cpu() - started[2]) / events
        await asyncio.sleep(0.05)
    raise TimeoutError(f"projected {await progress(settings)} of {total} in {timeout_s} s")


async def bare(settings: Settings, total: int, timeout_s: float) -> tuple[float, float]:
    async def park(entry: Entry, reason: str, attempts: int) -> None:
        raise AssertionError(f"the bench journal holds no poison: {reason}")

    projection = TicketingViews(settings, park)
    consumer = AIOKafkaConsumer(
        SHOW_EVENTS.name(settings),
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"{settings.topic_prefix}.bench-bare",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()

    async def loop() -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=100, max_records=2000)
            entries = [
                Entry(m.topic, m.partition, m.offset, m.key, m.value)
                for messages in batches.values()
                for m in messages
            ]
            if entries:
                await projection.project(entries)

    task = asyncio.create_task(loop())
    try:
        # This process's CPU: the loop, and the bench's own 50 ms polls besides.
        return await watch(settings, total, timeout_s, time.process_time)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await consumer.stop()
        await projection.close()


async def faust(settings: Settings, total: int, timeout_s: float) -> tuple[float, float]:
    env = {
        **os.environ,
        "BOXOFFICE_TOPIC_PREFIX": settings.topic_prefix,
        "BOXOFFICE_PG_SCHEMA": settings.pg_schema,
        "BOXOFFICE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "BOXOFFICE_VAR_DIR": str(settings.var_dir),
        "BOXOFFICE_PG_PORT": str(settings.pg_port),
    }
    log = (settings.var_dir / "bench-projector-faust.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "processors", "views", "worker", "-l", "info", "--without-web"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        return await watch(settings, total, timeout_s, lambda: worker_cpu_s(worker.pid))
    finally:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.close()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    base = get_settings()
    prefix = f"bench-proj-{uuid.uuid4().hex[:8]}"
    settings = base.model_copy(update={"topic_prefix": prefix})
    await asyncio.to_thread(ensure_topics, settings)
    started = time.monotonic()
    total = await fill(settings, args.shows, args.commands)
    filled_s = time.monotonic() - started
    rates: dict[str, float] = {}
    cpu: dict[str, float] = {}
    for driver in args.order.split(","):
        schema = f"{prefix.replace('-', '_')}_{driver}"
        driven = settings.model_copy(update={"pg_schema": schema})
        await asyncio.to_thread(migrate, driven)
        run = bare if driver == "bare" else faust
        rates[driver], cpu[driver] = await run(driven, total, args.timeout)
    return {
        "events": total,
        "partitions": settings.topic_partitions,
        "fill_s": round(filled_s, 1),
        "bare_events_per_s": round(rates["bare"]),
        "faust_events_per_s": round(rates["faust"]),
        "faust_over_bare": round(rates["faust"] / rates["bare"], 2),
        "bare_cpu_us_per_event": round(cpu["bare"]),
        "faust_cpu_us_per_event": round(cpu["faust"]),
        "prefix": prefix,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shows", type=int, default=40, help="shows in the journal")
    parser.add_argument("--commands", type=int, default=800, help="commands per show")
    parser.add_argument("--order", default="bare,faust", help="drivers, in the order run")
    parser.add_argument("--timeout", type=float, default=600.0, help="per driver, seconds")
    print(json.dumps(asyncio.run(main_async(parser.parse_args()))))


if __name__ == "__main__":
    main()
