"""Public reads of shows and seat maps, and the live seat map WebSocket.

These work with or without a token so they can be cached. They are served from the
PostgreSQL catalogue and snapshots plus the journal after them, never from the decider;
when Kafka is down they answer from the latest snapshot, flagged `X-Boxoffice-Stale: true`.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, WebSocket, WebSocketDisconnect
from fastapi.responses import Response

from api.errors import ApiError
from api.seatmaps import LiveShow, Viewer, snapshot_json
from api.services import Services, services, ws_services
from api.ticketing import checked_show_id

router = APIRouter(prefix="/v1")

STALE = {"X-Boxoffice-Stale": "true"}


def _json(body: dict[str, Any], stale: bool = False) -> Response:
    return Response(
        orjson.dumps(body), media_type="application/json", headers=STALE if stale else None
    )


@router.get("/shows")
async def list_shows(svc: Annotated[Services, Depends(services)]) -> Response:
    from snapshots import orders as store

    shows = await store.shows(svc.pool)
    return _json(
        {
            "shows": [
                {
                    "show_id": s.show_id,
                    "name": s.name,
                    "starts_at": s.starts_at.isoformat(),
                    "seats_total": s.seats_total,
                    "seats_available": s.seats_available,
                }
                for s in shows
            ]
        },
        stale=not svc.kafka_up,
    )


@router.get("/shows/{show_id}")
async def get_show(show_id: str, svc: Annotated[Services, Depends(services)]) -> Response:
    from snapshots import orders as store

    checked_show_id(show_id)
    show = await store.show(svc.pool, show_id)
    if show is None:
        raise ApiError(404, "show_not_found", "no such show", {"show_id": show_id})
    live = svc.seatmaps.current(show_id)
    version = max(show.version, live.version if live is not None else 0)
    return _json({**show.as_created(), "version": version}, stale=not svc.kafka_up)


@router.get("/shows/{show_id}/seatmap")
async def get_seatmap(
    show_id: str,
    svc: Annotated[Services, Depends(services)],
    version: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    from snapshots import timetravel

    checked_show_id(show_id)
    if version is not None:
        try:
            view = await timetravel.seatmap_at(svc.settings, svc.pool, show_id, version)
        except timetravel.VersionNotFound as exc:
            raise ApiError(
                404,
                "version_not_found",
                f"show {show_id} has no version {version}",
                {"version": version, "current_version": exc.current_version},
            ) from exc
        if view is None:
            raise ApiError(404, "show_not_found", "no such show", {"show_id": show_id})
        return _json(snapshot_json(view))
    if not svc.kafka_up:
        stale_view = await timetravel.latest_snapshot_view(svc.pool, show_id)
        if stale_view is None:
            raise ApiError(404, "show_not_found", "no such show", {"show_id": show_id})
        return _json(snapshot_json(stale_view), stale=True)
    live = svc.seatmaps.current(show_id)
    if live is None:
        live = await timetravel.current_seatmap(svc.settings, svc.pool, show_id)
    if live is None:
        raise ApiError(404, "show_not_found", "no such show", {"show_id": show_id})
    return _json(snapshot_json(live))


@router.websocket("/shows/{show_id}/live")
async def live_seatmap(websocket: WebSocket, show_id: str) -> None:
    svc = ws_services(websocket)
    since_raw = websocket.query_params.get("since")
    await websocket.accept()
    try:
        since = int(since_raw) if since_raw is not None else None
        if since is not None and since < 0:
            raise ValueError
    except ValueError:
        await _close_with_error(websocket, "invalid_request", "since must be a version number")
        return
    live = await svc.seatmaps.show(show_id) if checked_or_none(show_id) else None
    if live is None:
        await _close_with_error(websocket, "show_not_found", f"no show {show_id}")
        return
    await _serve(websocket, live, since)


def checked_or_none(show_id: str) -> bool:
    try:
        checked_show_id(show_id)
    except ApiError:
        return False
    return True


async def _close_with_error(websocket: WebSocket, code: str, message: str) -> None:
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        await websocket.send_text(
            orjson.dumps({"type": "error", "code": code, "message": message}).decode()
        )
        await websocket.close(code=4404 if code == "show_not_found" else 4400)


async def _serve(websocket: WebSocket, live: LiveShow, since: int | None) -> None:
    assert live.view is not None
    first = live.resume_frame(since) if since is not None else None
    if first is None:
        viewer = Viewer(live.view.version)
        frame = live.snapshot_frame()
    else:
        frame, version = first
        viewer = Viewer(version)
    live.viewers.add(viewer)
    # The client never sends anything we need; reading only notices that it went away.
    reader = asyncio.create_task(_drain(websocket))
    try:
        await websocket.send_text(frame)
        while not reader.done():
            waiter = asyncio.create_task(viewer.wakeup.wait())
            done, _ = await asyncio.wait({waiter, reader}, return_when=asyncio.FIRST_COMPLETED)
            if reader in done:
                waiter.cancel()
                break
            viewer.wakeup.clear()
            if viewer.resync.is_set():
                # Too slow, or the view was reloaded: drop what is queued, start over.
                while not viewer.queue.empty():
                    viewer.queue.get_nowait()
                assert live.view is not None
                viewer.version = live.view.version
                viewer.resync.clear()
                await websocket.send_text(live.snapshot_frame())
                continue
            while not viewer.queue.empty():
                await websocket.send_text(viewer.queue.get_nowait())
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        live.viewers.discard(viewer)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
            await reader


async def _drain(websocket: WebSocket) -> None:
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
