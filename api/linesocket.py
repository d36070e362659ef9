"""`WS /v1/shows/{id}/waitlist/live` and `WS /v1/shows/{id}/queue/live`: one fan's place in
a line, live (the contract's Lines section).

Each socket follows its user in the line this API instance keeps (`api.lines`), which is fed
from the journal: so any instance serves any fan, whichever instance took the join. A socket
sends a `position` frame at once, then again whenever what it says changes, merged to at
most one a second (the latest state is sent when the second is up, never a backlog); then,
once, the `offered` or `admitted` frame right after the first `position` frame that shows
that status.

What wakes a socket: a departure from the waitlist (an entry ahead may have gone, so every
socket recomputes its position, one O(log n) lookup), its own user's join, and for the
waiting room the clock (admission and pass expiry are pure functions of position and time,
as in the domain, so no event announces them).

Where the contract is silent: a socket for a fan who is not (yet) in the line looks again
for a few seconds (the join may have been taken by another instance a moment ago), then
closes 4404 `not_in_line` / `not_in_queue`; after leaving, the socket says `left` and stays
open, following the user's next entry if they join again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from api.auth import User, user_from_token
from api.errors import ApiError
from api.lines import LiveLine
from api.services import Services, ws_services
from api.shows import checked_or_none
from api.sockets import close_with_error, until_closed
from domain.ticketing.queue import QueuePlace
from snapshots.orders import order as stored_order

router = APIRouter(prefix="/v1")

# At most one position frame a second per socket (the contract's merge).
MERGE_S = 1.0
# How long a socket looks for a show, or a fan in its line, that this instance does not know
# yet: longer than the views take to catch up with a join or a new show under load.
FIND_S = 5.0
# How often an offer whose order the views do not have yet is looked for again.
OFFER_RETRY_S = 0.5


@dataclass(frozen=True, slots=True)
class Seen:
    """What a socket would say now: its position frame, the frame that follows it once (or
    None), and when the clock alone will change it (None: only events will)."""

    position: dict[str, Any]
    then: dict[str, Any] | None = None
    next_at: datetime | None = None


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


async def _open(websocket: WebSocket, show_id: str) -> tuple[Services, User, LiveLine] | None:
    """Accept, check the token and find the show's line; None when refused (and closed)."""
    svc = ws_services(websocket)
    user = user_from_token(websocket, websocket.query_params.get("token"))
    await websocket.accept()
    if user is None:
        await close_with_error(websocket, "unauthorized", "Connect with ?token=<a valid token>.")
        return None
    live = None
    if checked_or_none(show_id):
        deadline = asyncio.get_running_loop().time() + FIND_S
        while True:
            try:
                live = await svc.lines.line(show_id, svc.known_show_version(show_id))
            except ApiError:
                await close_with_error(
                    websocket, "unavailable", "The line cannot be loaded now; reconnect later."
                )
                return None
            if live is not None or asyncio.get_running_loop().time() >= deadline:
                break
            await asyncio.sleep(0.25)
    if live is None:
        await close_with_error(websocket, "show_not_found", f"There is no show {show_id}.")
        return None
    return svc, user, live


async def _found(live: LiveLine, user: str, present: Callable[[], bool]) -> bool:
    """Whether `present()` holds now or within FIND_S, woken by the user's own changes."""
    wake = asyncio.Event()
    live.watch(user, wake)
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(FIND_S):
                while not present():
                    wake.clear()
                    await wake.wait()
        return present()
    finally:
        live.unwatch(user, wake)


async def _follow(
    websocket: WebSocket, live: LiveLine, user: str, observe: Callable[[], Awaitable[Seen]]
) -> None:
    """Send what `observe()` says, as the module docstring tells, until the client goes away.

    One event per socket, set by the line (or by the client going away), and no task per
    wakeup: a departure near the head of a long line wakes every socket of the show at once.
    """
    loop = asyncio.get_running_loop()
    wake = asyncio.Event()
    reader = asyncio.create_task(until_closed(websocket))
    reader.add_done_callback(lambda _: wake.set())
    live.watch(user, wake)
    sent: dict[str, Any] | None = None
    sent_at = -MERGE_S
    then_sent: dict[str, Any] | None = None
    try:
        while not reader.done():
            # Cleared before looking, so a change made while this socket sends is not missed.
            wake.clear()
            seen = await observe()
            wake_in: float | None = None
            if seen.position != sent:
                early_by = sent_at + MERGE_S - loop.time()
                if early_by > 0:
                    wake_in = early_by
                else:
                    await websocket.send_text(orjson.dumps(seen.position).decode())
                    sent, sent_at = seen.position, loop.time()
            if seen.position == sent and seen.then is not None and seen.then != then_sent:
                await websocket.send_text(orjson.dumps(seen.then).decode())
                then_sent = seen.then
            if seen.next_at is not None:
                until = (seen.next_at - datetime.now(UTC)).total_seconds() + 0.001
                wake_in = until if wake_in is None else min(wake_in, until)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(None if wake_in is None else max(wake_in, 0.0)):
                    await wake.wait()
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass
    finally:
        live.unwatch(user, wake)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader


# -- the online waitlist ----------------------------------------------------------------------


@router.websocket("/shows/{show_id}/waitlist/live")
async def waitlist_live(websocket: WebSocket, show_id: str) -> None:
    opened = await _open(websocket, show_id)
    if opened is None:
        return
    svc, user, live = opened
    name = user.username
    if not await _found(live, name, lambda: live.line.latest_of(name) is not None):
        await close_with_error(websocket, "not_in_line", "You are not waiting in this show's line.")
        return
    offers: dict[str, dict[str, Any]] = {}

    async def offered(entry_id: str, order_id: str) -> dict[str, Any] | None:
        """The `offered` frame; from the event when this instance saw it, else the order."""
        if entry_id in offers:
            return offers[entry_id]
        event = live.offers.get(entry_id)
        frame: dict[str, Any] | None = None
        if event is not None:
            frame = {
                "type": "offered",
                "entry_id": entry_id,
                "order_id": event.order_id,
                "seats": list(event.seats),
                "zone": event.zone,
                "expires_at": event.expires_at.isoformat(),
            }
        else:
            with contextlib.suppress(Exception):  # the views down: looked for again shortly
                view = await stored_order(svc.pool, order_id)
                if view is not None:
                    frame = {
                        "type": "offered",
                        "entry_id": entry_id,
                        "order_id": order_id,
                        "seats": list(view.seats),
                        "zone": view.zone,
                        "expires_at": view.expires_at.isoformat(),
                    }
        if frame is not None:
            offers[entry_id] = frame
        return frame

    async def observe() -> Seen:
        entry = live.line.latest_of(name)
        assert entry is not None  # an entry, once journaled, is never forgotten
        position = {
            "type": "position",
            "entry_id": entry.entry_id,
            "status": entry.status,
            "position": live.position(entry),
        }
        if entry.status != "offered" or entry.order_id is None:
            return Seen(position)
        then = await offered(entry.entry_id, entry.order_id)
        if then is not None:
            return Seen(position, then)
        # The offer's order is not in the views yet: its frame follows when it is.
        return Seen(position, None, datetime.now(UTC) + timedelta(seconds=OFFER_RETRY_S))

    await _follow(websocket, live, name, observe)


# -- the waiting room -------------------------------------------------------------------------


def _next_change(place: QueuePlace, opens_at: datetime) -> datetime | None:
    match place.status:
        case "early":
            return opens_at
        case "waiting":
            return place.admitted_at
        case "admitted":
            return place.pass_expires_at
        case _:
            return None


@router.websocket("/shows/{show_id}/queue/live")
async def queue_live(websocket: WebSocket, show_id: str) -> None:
    opened = await _open(websocket, show_id)
    if opened is None:
        return
    _, user, live = opened
    name = user.username
    if live.room is None:
        await close_with_error(websocket, "no_queue", f"Show {show_id} has no waiting room.")
        return
    if not await _found(live, name, lambda: live.place(name, datetime.now(UTC)) is not None):
        await close_with_error(websocket, "not_in_queue", "You are not in this show's queue.")
        return

    async def observe() -> Seen:
        now = datetime.now(UTC)
        place = live.place(name, now)
        room = live.room
        assert place is not None and room is not None  # a member stays a member
        position = {
            "type": "position",
            "status": place.status,
            "position": place.position,
            "admitted_at": _time(place.admitted_at),
        }
        then = None
        if place.status == "admitted":
            then = {"type": "admitted", "pass_expires_at": _time(place.pass_expires_at)}
        return Seen(position, then, _next_change(place, room.spec.opens_at))

    await _follow(websocket, live, name, observe)
