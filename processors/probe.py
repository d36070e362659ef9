"""The pipeline probe: a command that walks the whole pipe and is projected into PostgreSQL.

It is how `boxoffice up` and the integration tests know that producer, processor, event
journal, projection, reply and live push all work, end to end, on the real servers.
"""

from __future__ import annotations

import functools
import logging
from datetime import datetime
from typing import Any

from faust.types import EventT, StreamT

from processors.app import app, settings, topic
from processors.deadletters import apply_or_park, park
from producers.codec import DecodeError
from producers.envelope import CommandEnvelope, EventRecord, Reply, utcnow
from producers.topics import REPLIES, SYSTEM_COMMANDS, SYSTEM_EVENTS
from snapshots.database import async_pool

log = logging.getLogger(__name__)

PROBE_COMMAND = "Probe"
PROBE_ANSWERED = "ProbeAnswered"

commands = topic(SYSTEM_COMMANDS)
events = topic(SYSTEM_EVENTS)
replies = topic(REPLIES)
pool = async_pool(settings, "processors-probe")


@app.task  # type: ignore[untyped-decorator]
async def open_pool() -> None:
    await pool.open(wait=True)


@app.agent(commands)
async def answer_probes(stream: StreamT[bytes]) -> None:
    async for event in stream.events():
        try:
            command = CommandEnvelope.decode(event.value)
            if command.type != PROBE_COMMAND:
                raise DecodeError(f"unknown system command {command.type!r}")
        except DecodeError as exc:
            await park(event, str(exc))
            continue
        # Each probe is a stream of its own, so it is always that stream's first event.
        record = EventRecord(
            stream_id=command.stream_id,
            version=1,
            command_id=command.command_id,
            recorded_at=utcnow(),
            event={
                "type": PROBE_ANSWERED,
                "probe_id": command.stream_id,
                "issued_at": command.issued_at.isoformat(),
            },
        )
        key = command.stream_id.encode()
        await events.send(key=key, value=record.encode())
        await replies.send(
            key=key,
            value=Reply(
                command_id=command.command_id,
                stream_id=command.stream_id,
                ok=True,
                events=(record.event,),
                version=record.version,
            ).encode(),
        )


@app.agent(events)
async def project_probes(stream: StreamT[bytes]) -> None:
    async for event in stream.events():
        try:
            record = EventRecord.decode(event.value)
        except DecodeError as exc:
            await park(event, str(exc))
            continue
        await apply_or_park(event, functools.partial(_log_probe, record, event))


async def _log_probe(record: EventRecord, event: EventT[bytes]) -> None:
    body: dict[str, Any] = record.event
    async with pool.connection() as conn:
        # Redelivery after a crash is harmless: the probe id is the key.
        await conn.execute(
            "INSERT INTO probe_log (probe_id, command_id, issued_at, answered_at,"
            " journal_partition, journal_offset) VALUES (%s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (probe_id) DO NOTHING",
            (
                body.get("probe_id", record.stream_id),
                record.command_id,
                datetime.fromisoformat(str(body.get("issued_at"))),
                record.recorded_at,
                event.message.partition,
                event.message.offset,
            ),
        )
