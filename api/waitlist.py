"""Lines routes: the online waitlist and the waiting room (the contract's Lines section).

Joining and leaving are commands to the show's decider, sent and mapped exactly as the other
ticketing commands (`api.ticketing`); the decider's event carries the position, so a join's
answer needs no read. Reads come from the line this instance keeps (`api.lines`), brought to
at least the show version this instance has seen decided, so a read never goes back behind
an answer already given.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from api.auth import User, current_user
from api.commands import command_id_for, last_event, rejection
from api.errors import ApiError
from api.lines import LiveLine
from api.services import Services, services
from api.text import Text
from api.ticketing import NAME_PATTERN, checked_show_id, decide
from domain.ticketing import JoinQueue, JoinWaitlist, LeaveWaitlist
from domain.ticketing.events import QueueJoined
from domain.ticketing.queue import QueuePlace, place_at
from domain.ticketing.waitlist import WaitEntry
from producers.registries import TICKETING

router = APIRouter(prefix="/v1")


class WaitlistIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Bounded here only against absurd input; the decider answers the contract's 422.
    quantity: StrictInt = Field(ge=-(2**31), le=2**31)
    section: Text | None = Field(default=None, pattern=NAME_PATTERN)
    zone: Text | None = Field(default=None, pattern=NAME_PATTERN)


def entry_json(show_id: str, entry: WaitEntry, position: int | None) -> dict[str, Any]:
    return {
        "entry_id": entry.entry_id,
        "show_id": show_id,
        "status": entry.status,
        "position": position,
        "quantity": entry.quantity,
        "section": entry.section,
        "zone": entry.zone,
        "order_id": entry.order_id,
    }


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def place_json(show_id: str, place: QueuePlace) -> dict[str, Any]:
    return {
        "show_id": show_id,
        "status": place.status,
        "position": place.position,
        "admitted_at": _time(place.admitted_at),
        "pass_expires_at": _time(place.pass_expires_at),
    }


async def _line(svc: Services, show_id: str, at_least: int = 0) -> LiveLine:
    """The show's line, at every version this instance has seen decided (or `at_least`)."""
    checked_show_id(show_id)
    live = await svc.lines.line(show_id, max(at_least, svc.known_show_version(show_id)))
    if live is None:
        raise ApiError(404, "show_not_found", "There is no such show.", {"show_id": show_id})
    return live


# -- the online waitlist ----------------------------------------------------------------------


@router.post("/shows/{show_id}/waitlist", status_code=201)
async def join_waitlist(
    show_id: str,
    body: WaitlistIn,
    *,
    response: Response,
    user: Annotated[User, Depends(current_user)],
    svc: Annotated[Services, Depends(services)],
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> dict[str, Any]:
    checked_show_id(show_id)
    command_id = command_id_for(user.username, f"waitlist:{show_id}", idempotency_key)
    command = JoinWaitlist(
        command_id=command_id,
        show_id=show_id,
        user=user.username,
        # Random like order ids; the offer's order id is drawn now so the decider can make
        # the offer later without asking anyone.
        entry_id=secrets.token_urlsafe(16),
        offer_order_id=f"{show_id}.{secrets.token_urlsafe(16)}",
        quantity=body.quantity,
        section=body.section,
        zone=body.zone,
    )
    reply = await decide(svc, command, show_id)
    if not reply.ok:
        error = reply.error or {}
        if error.get("code") == "already_in_line":
            # One entry per user and show: joining again answers the live entry.
            live: dict[str, Any] = dict(error.get("details") or {})
            response.status_code = 200
            return {
                "entry_id": live.get("entry_id"),
                "show_id": show_id,
                "status": live.get("status"),
                "position": live.get("position"),
                "quantity": live.get("quantity"),
                "section": live.get("section"),
                "zone": live.get("zone"),
                "order_id": live.get("order_id"),
            }
        raise rejection(error)
    joined = last_event(reply, "WaitlistJoined")
    return {
        "entry_id": joined["entry_id"],
        "show_id": show_id,
        "status": "waiting",
        "position": joined["position"],
        "quantity": joined["quantity"],
        "section": joined["section"],
        "zone": joined["zone"],
        "order_id": None,
    }


@router.get("/shows/{show_id}/waitlist/me")
async def my_entry(
    show_id: str,
    user: Annotated[User, Depends(current_user)],
    svc: Annotated[Services, Depends(services)],
) -> dict[str, Any]:
    live = await _line(svc, show_id)
    entry = live.line.latest_of(user.username)
    if entry is None:
        # The join may have been answered by another API worker a moment ago.
        live = await _line(svc, show_id, await svc.decided_show_version(show_id))
        entry = live.line.latest_of(user.username)
    if entry is None:
        raise ApiError(
            404, "not_in_line", "You are not waiting in this show's line.", {"show_id": show_id}
        )
    return entry_json(show_id, entry, live.position(entry))


@router.delete("/shows/{show_id}/waitlist/me")
async def leave_waitlist(
    show_id: str,
    user: Annotated[User, Depends(current_user)],
    svc: Annotated[Services, Depends(services)],
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> dict[str, Any]:
    checked_show_id(show_id)
    command = LeaveWaitlist(
        command_id=command_id_for(user.username, f"leave:{show_id}", idempotency_key),
        show_id=show_id,
        user=user.username,
    )
    reply = await decide(svc, command, show_id)
    if not reply.ok:
        raise rejection(reply.error or {})
    left = last_event(reply, "WaitlistLeft")
    # The event names the entry only: its request comes from the line, brought up to it.
    live = await _line(svc, show_id, at_least=int(left["version"]))
    entry = live.line.entry(str(left["entry_id"]))
    if entry is None:
        raise ApiError(409, "conflict", "The line does not know the entry that was left.")
    return entry_json(show_id, entry, None)


# -- the waiting room -------------------------------------------------------------------------


@router.post("/shows/{show_id}/queue", status_code=201)
async def join_queue(
    show_id: str,
    response: Response,
    user: Annotated[User, Depends(current_user)],
    svc: Annotated[Services, Depends(services)],
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> dict[str, Any]:
    checked_show_id(show_id)
    command = JoinQueue(
        command_id=command_id_for(user.username, f"queue:{show_id}", idempotency_key),
        show_id=show_id,
        user=user.username,
    )
    reply = await decide(svc, command, show_id)
    if not reply.ok:
        error = reply.error or {}
        if error.get("code") == "already_in_queue":
            place: dict[str, Any] = dict(error.get("details") or {})
            response.status_code = 200
            return {
                "show_id": show_id,
                "status": place.get("status"),
                "position": place.get("position"),
                "admitted_at": place.get("admitted_at"),
                "pass_expires_at": place.get("pass_expires_at"),
            }
        raise rejection(error)
    joined = TICKETING.from_dict(last_event(reply, "QueueJoined"))
    assert isinstance(joined, QueueJoined)
    if joined.early or joined.position is None:
        return place_json(show_id, QueuePlace("early", None, None, None))
    # A later joiner's place is fixed by the event; only the room's rules (never changed after
    # the show's creation) are read from the line.
    live = await _line(svc, show_id, at_least=1)
    if live.room is None:
        raise ApiError(409, "conflict", "The line does not know this show's waiting room.")
    now = datetime.now(UTC)
    return place_json(
        show_id, place_at(live.room.spec, joined.position, joined.joined_at, False, now)
    )


@router.get("/shows/{show_id}/queue/me")
async def my_place(
    show_id: str,
    user: Annotated[User, Depends(current_user)],
    svc: Annotated[Services, Depends(services)],
) -> dict[str, Any]:
    live = await _line(svc, show_id)
    if live.room is None:
        raise ApiError(
            404, "no_queue", f"Show {show_id} has no waiting room.", {"show_id": show_id}
        )
    place = live.place(user.username, datetime.now(UTC))
    if place is None:
        # The join may have been answered by another API worker a moment ago.
        live = await _line(svc, show_id, await svc.decided_show_version(show_id))
        place = live.place(user.username, datetime.now(UTC))
    if place is None:
        raise ApiError(
            404, "not_in_queue", "You are not in this show's queue.", {"show_id": show_id}
        )
    return place_json(show_id, place)
