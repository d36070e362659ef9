"""The first slice through the whole pipe, on the real servers and real processes:
producer -> Kafka command journal -> Faust processor -> event journal -> PostgreSQL
projection, reply to the waiting API call, and a live push to a WebSocket client."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import orjson
import psycopg
import pytest
import websockets
from confluent_kafka import Producer

from api.auth import service_token
from boxoffice.settings import Settings
from producers.envelope import CommandEnvelope, EventRecord
from producers.journal import JournalProducer
from producers.topics import DEAD_LETTERS, SYSTEM_COMMANDS, SYSTEM_EVENTS
from snapshots.database import conninfo
from stack.services import Stack
from tests.integration.journal import read_all

pytestmark = pytest.mark.integration


async def test_a_command_is_journaled_with_acks_all_and_keyed_by_stream(
    settings: Settings,
) -> None:
    producer = JournalProducer(settings)
    stream = f"stream-{uuid.uuid4().hex}"
    command = CommandEnvelope(
        command_id=uuid.uuid4().hex, stream_id=stream, type="Unroutable", payload={"n": 1}
    )
    try:
        delivered = await producer.send(SYSTEM_COMMANDS.name(settings), stream, command.encode())
    finally:
        producer.close()
    assert delivered.offset >= 0
    journal = read_all(settings, SYSTEM_COMMANDS.name(settings))
    mine = [CommandEnvelope.decode(v) for k, v in journal if k == stream]
    assert mine == [command]


async def test_a_probe_walks_the_whole_pipe(settings: Settings, stack: Stack) -> None:
    url = settings.api_url
    token = service_token(settings)
    ws_url = url.replace("http://", "ws://") + f"/ops/live/system?token={token}"
    async with websockets.connect(ws_url) as ws, httpx.AsyncClient(base_url=url) as http:
        assert orjson.loads(await ws.recv()) == {"type": "subscribed"}
        response = await http.post(
            "/ops/probes", headers={"Authorization": f"Bearer {token}"}, timeout=20
        )
        assert response.status_code == 201, response.text
        body = response.json()
        probe_id = body["probe_id"]
        assert body["events"][0]["type"] == "ProbeAnswered"
        assert body["events"][0]["probe_id"] == probe_id

        # The live leg: the API consumed the event journal and pushed the event to us.
        while True:
            frame = orjson.loads(await asyncio.wait_for(ws.recv(), 20))
            if frame["stream_id"] == probe_id:
                break
        assert frame["version"] == 1
        assert frame["event"]["type"] == "ProbeAnswered"

    # The event journal holds the event, keyed by its stream.
    journal = read_all(settings, SYSTEM_EVENTS.name(settings))
    records = [EventRecord.decode(v) for k, v in journal if k == probe_id]
    assert [r.event["type"] for r in records] == ["ProbeAnswered"]
    assert records[0].command_id == body["command_id"]

    # The projection leg: a psycopg pool wrote the row.
    deadline = time.monotonic() + 20
    row = None
    with psycopg.connect(conninfo(settings), autocommit=True) as conn:
        while row is None and time.monotonic() < deadline:
            row = conn.execute(
                "SELECT command_id, journal_offset FROM probe_log WHERE probe_id = %s",
                (probe_id,),
            ).fetchone()
            if row is None:
                await asyncio.sleep(0.2)
    assert row is not None, "the projection never wrote the probe's row"
    assert row[0] == body["command_id"]


async def test_readiness_and_metrics_answer(settings: Settings, stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=settings.api_url) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        ready = await http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"kafka": "ok", "postgres": "ok", "deciders": "ok"}
        metrics = await http.get("/metrics")
        assert metrics.status_code == 200
        assert "boxoffice_http_requests_total" in metrics.text


async def test_a_poison_command_is_dead_lettered_and_the_processor_goes_on(
    settings: Settings, stack: Stack
) -> None:
    poison_key = f"poison-{uuid.uuid4().hex}"
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "acks": "all"})
    producer.produce(SYSTEM_COMMANDS.name(settings), key=poison_key, value=b"{not json")
    producer.flush(10)

    async with httpx.AsyncClient(base_url=settings.api_url) as http:
        response = await http.post(
            "/ops/probes",
            headers={"Authorization": f"Bearer {service_token(settings)}"},
            timeout=20,
        )
        assert response.status_code == 201

    deadline = time.monotonic() + 20
    parked: list[bytes] = []
    while not parked and time.monotonic() < deadline:
        parked = [v for k, v in read_all(settings, DEAD_LETTERS.name(settings)) if k == poison_key]
        if not parked:
            await asyncio.sleep(0.5)
    assert parked == [b"{not json"]
