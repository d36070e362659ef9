"""Operations routes: liveness, readiness, metrics, and the pipeline probe."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse

from api import metrics
from api.auth import Organizer, User, user_from_token
from api.errors import ApiError
from api.ratelimit import check_frame
from api.services import Services, kafka_answers, services, ws_services
from producers.envelope import CommandEnvelope
from producers.health import decider_health
from producers.topics import SYSTEM_COMMANDS, SYSTEM_EVENTS

router = APIRouter()


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(svc: Annotated[Services, Depends(services)]) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        ok = await asyncio.wait_for(
            asyncio.to_thread(kafka_answers, svc.settings.kafka_bootstrap, 2.0), 3
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
    # Commands are decided again, not only accepted (see producers/health.py); cached 1 s.
    checks["deciders"] = (
        await decider_health(svc.settings).check()
        if checks["kafka"] == "ok"
        else "unknown: Kafka does not answer"
    )
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
async def probe(
    svc: Annotated[Services, Depends(services)], _organizer: Organizer
) -> dict[str, Any]:
    """Walk the pipe: journal a probe command and wait for the processor's answer. Organizers
    only (it writes to Kafka), and rate limited like every command."""
    probe_id = f"probe-{uuid.uuid4().hex}"
    command = CommandEnvelope(
        command_id=uuid.uuid4().hex, stream_id=probe_id, type="Probe", payload={}
    )
    reply = await svc.bus.decide(SYSTEM_COMMANDS, command)
    if not reply.ok:
        raise ApiError(409, "probe_failed", "The processor refused the probe.")
    metrics.COMMANDS.labels("Probe", "ok").inc()
    return {"probe_id": probe_id, "command_id": command.command_id, "events": reply.events}


@router.websocket("/ops/live/system")
async def live_system(websocket: WebSocket) -> None:
    """Every system event as it is journaled: the probe's live leg. Organizers only
    (`?token=`); every frame a client sends spends a rate-limit token."""
    svc = ws_services(websocket)
    user = user_from_token(websocket, websocket.query_params.get("token"))
    await websocket.accept()
    if user is None or not user.organizer:
        code, message, close = (
            ("unauthorized", "Connect with ?token=<a valid token>.", 4401)
            if user is None
            else ("not_organizer", "Only organizers may watch the system events.", 4403)
        )
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
            await websocket.send_json({"type": "error", "code": code, "message": message})
            await websocket.close(code=close)
        return
    sub = svc.hub.subscribe(SYSTEM_EVENTS)
    lock = asyncio.Lock()
    reader = asyncio.create_task(_read_frames(websocket, user, lock))
    try:
        await websocket.send_json({"type": "subscribed"})
        while not reader.done():
            getter = asyncio.create_task(sub.queue.get())
            done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                break
            record = getter.result()
            async with lock:
                await websocket.send_json(
                    {
                        "type": "event",
                        "stream_id": record.stream_id,
                        "version": record.version,
                        "event": record.event,
                    }
                )
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass
    finally:
        sub.close()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
            await reader


async def _read_frames(websocket: WebSocket, user: User, lock: asyncio.Lock) -> None:
    """The socket takes no commands, but a client's frames still cost: each spends a token,
    and is answered with an error frame (`rate_limited` over the limit)."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            wait = check_frame(websocket, user)
            if wait is not None:
                body = {
                    "type": "error",
                    "code": "rate_limited",
                    "message": f"Too many frames; retry in {wait} s.",
                    "retry_after_s": wait,
                }
            else:
                body = {
                    "type": "error",
                    "code": "invalid_frame",
                    "message": "This socket takes no frames; it only streams system events.",
                }
            async with lock:
                await websocket.send_json(body)
