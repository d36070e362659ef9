"""Public reads of shows and seat maps, and the live seat map WebSocket.

These work with or without a token so they can be cached. They are served from the
PostgreSQL catalogue and snapshots plus the journal after them, never from the decider;
when Kafka is down they answer from the latest snapshot, flagged `X-Boxoffice-Stale: true`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, WebSocket, WebSocketDisconnect
from fastapi.responses import Response

from api.errors import ApiError, unavailable
from api.lines import show_fields
from api.seatmaps import LiveShow, SeatMapUnavailableError, Viewer, delta_frame, snapshot_json
from api.services import Services, services, ws_services
from api.sockets import close_with_error, until_closed
from api.text import BIGINT_MAX
from api.ticketing import checked_show_id
from domain.ticketing.views import delta_between
from producers.journal import JournalUnavailableError
from snapshots.orders import ShowListing

log = logging.getLogger(__name__)

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
    checked_show_id(show_id)
    show = await listed_show(svc, show_id)
    live = svc.seatmaps.current(show_id)
    version = max(show.version, live.version if live is not None else 0)
    lines = await show_fields(svc.lines, svc.pool, show_id, datetime.now(UTC))
    return _json({**show.as_created(), **lines, "version": version}, stale=not svc.kafka_up)


# How long a seat-map read waits for a silent journal before answering from the snapshot.
JOURNAL_WAIT_S = 5.0


@router.get("/shows/{show_id}/seatmap")
async def get_seatmap(
    show_id: str,
    svc: Annotated[Services, Depends(services)],
    version: Annotated[int | None, Query(ge=1, le=BIGINT_MAX)] = None,
) -> Response:
    from snapshots import timetravel

    checked_show_id(show_id)
    if svc.seatmaps.current(show_id) is None and svc.kafka_up:
        await listed_show(svc, show_id)  # a show just created: its map once it is projected
    if version is not None:
        try:
            view = await timetravel.seatmap_at(
                svc.settings,
                svc.pool,
                show_id,
                version,
                JOURNAL_WAIT_S,
                journal=svc.kafka_up,
            )
        except timetravel.VersionNotFound as exc:
            raise ApiError(
                404,
                "version_not_found",
                f"Show {show_id} has no version {version}.",
                {"version": version, "current_version": exc.current_version},
            ) from exc
        except JournalUnavailableError as exc:
            # Only the journal knows that version, and it does not answer now.
            raise unavailable("the show journal") from exc
        if view is None:
            raise _no_show(show_id)
        return _json(snapshot_json(view))
    if svc.kafka_up:
        live = svc.seatmaps.current(show_id)
        if live is not None:
            return _json(snapshot_json(live))
        try:
            live = await timetravel.current_seatmap(svc.settings, svc.pool, show_id, JOURNAL_WAIT_S)
        except JournalUnavailableError:
            pass  # Kafka went away a moment ago: serve what PostgreSQL has, flagged stale
        else:
            if live is None:
                raise _no_show(show_id)
            return _json(snapshot_json(live))
    stale_view = svc.seatmaps.current(show_id) or await timetravel.latest_snapshot_view(
        svc.pool, show_id
    )
    if stale_view is None:
        if await store_show(svc, show_id):
            # The show exists but has no snapshot yet; only the journal can draw its map.
            raise unavailable("the show journal")
        raise _no_show(show_id)
    return _json(snapshot_json(stale_view), stale=True)


# How long a read of a show this process has seen created waits for the views to list it.
NEW_SHOW_WAIT_S = 2.0


async def listed_show(svc: Services, show_id: str) -> ShowListing:
    """The show from the catalogue, read-your-writes: a show whose creation was answered
    (by any API process: the replies are caught up with first) is waited for while the
    views project it, then 503 with Retry-After if they are behind; 404 only for a show
    never created."""
    from snapshots import orders as store

    found = await store.show(svc.pool, show_id)
    if found is not None:
        return found
    if await svc.decided_show_version(show_id) == 0:
        raise _no_show(show_id)
    found = await svc.projected.until(
        lambda: store.show(svc.pool, show_id), lambda s: s is not None, NEW_SHOW_WAIT_S
    )
    if found is None:
        raise unavailable("the show catalogue")
    return found


async def store_show(svc: Services, show_id: str) -> bool:
    from snapshots import orders as store

    return await store.show(svc.pool, show_id) is not None


def _no_show(show_id: str) -> ApiError:
    return ApiError(404, "show_not_found", "There is no such show.", {"show_id": show_id})


# How long the live seat map looks for a show it does not find, before closing with 4404:
# longer than the views take to project a new show under load.
NEW_SHOW_GRACE_S = 5.0
# However the loads go (each is bounded, the journal read by JOURNAL_WAIT_S), a viewer hears
# within this long: a snapshot, or an error frame and a close.
OPEN_BUDGET_S = NEW_SHOW_GRACE_S + 15.0


@router.websocket("/shows/{show_id}/live")
async def live_seatmap(websocket: WebSocket, show_id: str) -> None:
    svc = ws_services(websocket)
    since_raw = websocket.query_params.get("since")
    await websocket.accept()
    try:
        since = int(since_raw) if since_raw is not None else None
        if since is not None and not 0 <= since <= BIGINT_MAX:
            raise ValueError
    except ValueError:
        await close_with_error(
            websocket,
            "invalid_request",
            f"The since parameter must be a version, 0 to {BIGINT_MAX}.",
        )
        return
    try:
        async with asyncio.timeout(OPEN_BUDGET_S):
            live = await _find_show(svc, show_id)
    except (SeatMapUnavailableError, TimeoutError) as exc:
        if isinstance(exc, TimeoutError):
            log.warning("show %s: no seat map %.0f s after a viewer asked", show_id, OPEN_BUDGET_S)
        await close_with_error(
            websocket, "unavailable", "The seat map cannot be loaded now; reconnect later."
        )
        return
    if live is None:
        await close_with_error(websocket, "show_not_found", f"There is no show {show_id}.")
        return
    first = None
    if since is not None:
        first = live.resume_frame(since) or await _resume_from_journal(svc, live, since)
    await _serve(websocket, live, first)


async def _find_show(svc: Services, show_id: str) -> LiveShow | None:
    if not checked_or_none(show_id):
        return None
    # A show created a moment ago may not be in the views yet (its 201 means journaled):
    # look again for a few seconds before calling it unknown.
    deadline = asyncio.get_running_loop().time() + NEW_SHOW_GRACE_S
    while True:
        live = await svc.seatmaps.show(show_id)
        if live is not None or asyncio.get_running_loop().time() >= deadline:
            return live
        await svc.seatmaps.forget_missing(show_id)
        await asyncio.sleep(0.25)


def checked_or_none(show_id: str) -> bool:
    try:
        checked_show_id(show_id)
    except ApiError:
        return False
    return True


# How long a resume may take to read the map at its version from the journal before the
# viewer gets a snapshot instead.
RESUME_READ_S = 5.0


async def _resume_from_journal(svc: Services, live: LiveShow, since: int) -> tuple[str, int] | None:
    """A delta from `since` to now when this process no longer (or never) kept the deltas:
    the map at `since` read back (snapshot + journal) and compared with the current one. A
    viewer resuming through another worker or instance than before still gets only what it
    missed. None (a snapshot then) when that version cannot be read in time."""
    from snapshots import timetravel

    assert live.view is not None
    if not 1 <= since < live.view.version:
        return None
    try:
        old = await asyncio.wait_for(
            timetravel.seatmap_at(
                svc.settings, svc.pool, live.show_id, since, journal=svc.kafka_up
            ),
            RESUME_READ_S,
        )
    except (TimeoutError, timetravel.VersionNotFoundError, JournalUnavailableError):
        return None
    if old is None or live.view is None:
        return None
    # No await from here until the viewer is registered: the delta ends where it starts.
    delta = delta_between(old, live.view)
    return delta_frame(delta), delta.version


async def _serve(websocket: WebSocket, live: LiveShow, first: tuple[str, int] | None) -> None:
    assert live.view is not None
    if first is None:
        viewer = Viewer(live.view.version)
        frame = live.snapshot_frame()
    else:
        frame, version = first
        viewer = Viewer(version)
    live.join(viewer)
    # The client never sends anything we need; reading only notices that it went away.
    reader = asyncio.create_task(until_closed(websocket))
    # The client going away wakes the writer like a frame would: one wait per frame, not a
    # task and an asyncio.wait per frame (5,000 of them a second per worker in a storm).
    reader.add_done_callback(lambda _: viewer.wakeup.set())
    try:
        await websocket.send_text(frame)
        while True:
            await viewer.wakeup.wait()
            if reader.done():
                break
            viewer.wakeup.clear()
            if viewer.resync.is_set():
                # Too slow, or the view was reloaded: drop what is queued, start over.
                viewer.take()
                assert live.view is not None
                viewer.version = live.view.version
                viewer.resync.clear()
                await websocket.send_text(live.snapshot_frame())
                continue
            queued = viewer.take()
            if queued:
                # Whatever queued while the last send was in flight goes as one frame.
                await websocket.send_text(live.catch_up_frame(queued))
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        live.viewers.discard(viewer)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
            await reader
