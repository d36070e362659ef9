"""Operations routes: liveness, readiness, metrics, and the pipeline probe."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any

from confluent_kafka.admin import AdminClient
from fastapi import APIRouter, Depends, Response, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse

from api import metrics
from api.errors import ApiError
from api.services import Services, services, ws_services
from producers.envelope import CommandEnvelope
from producers.topics import SYSTEM_COMMANDS, SYSTEM_EVENTS

router = APIRouter()


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def _kafka_answers(bootstrap: str) -> bool:
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    return len(admin.list_topics(timeout=2).brokers) > 0


@router.get("/readyz")
async def readyz(svc: Annotated[Services, Depends(services)]) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        ok = await asyncio.wait_for(
            asyncio.to_thread(_kafka_answers, svc.settings.kafka_bootstrap), 3
        )
        checks["kafka"] = "ok" if ok else "no brokers"
    except Exception as exc:  # any failure means "not ready", with the reason shown
        checks["kafka"] = f"unreachable: {type(exc).__name__}"
    try:
        async with svc.pool.connection(timeout=3) as conn:
            await conn.execute("SELECT 1")
        checks["postgres"] = "ok"
    except Exception as exc:  # same: report, don't raise
        checks["postgres"] = f"unreachable: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks},
        status_code=200 if ready else 503,
        headers={} if ready else {"Retry-After": "2"},
    )


@router.get("/metrics")
async def prometheus() -> Response:
    return metrics.render()


@router.post("/ops/probes", status_code=201)
async def probe(svc: Annotated[Services, Depends(services)]) -> dict[str, Any]:
    """Walk the pipe: journal a probe command and wait for the processor's answer."""
    probe_id = f"probe-{uuid.uuid4().hex}"
    command = CommandEnvelope(
        command_id=uuid.uuid4().hex, stream_id=probe_id, type="Probe", payload={}
    )
    reply = await svc.bus.decide(SYSTEM_COMMANDS, command)
    if not reply.ok:
        raise ApiError(409, "probe_failed", "the processor refused the probe")
    metrics.COMMANDS.labels("Probe", "ok").inc()
    return {"probe_id": probe_id, "command_id": command.command_id, "events": reply.events}


@router.websocket("/ops/live/system")
async def live_system(websocket: WebSocket) -> None:
    """Every system event as it is journaled: the probe's live leg."""
    svc = ws_services(websocket)
    await websocket.accept()
    sub = svc.hub.subscribe(SYSTEM_EVENTS)
    try:
        await websocket.send_json({"type": "subscribed"})
        while True:
            record = await sub.queue.get()
            await websocket.send_json(
                {
                    "type": "event",
                    "stream_id": record.stream_id,
                    "version": record.version,
                    "event": record.event,
                }
            )
    except WebSocketDisconnect:
        pass
    finally:
        sub.close()
