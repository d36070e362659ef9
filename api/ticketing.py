"""Ticketing routes: shows, holds, orders, payments, refunds (the contract's Ticketing section).

Commands go to the decider through the journal and wait for its decision; reads come from
the PostgreSQL projections and snapshots, never from the decider.
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, Header, Query
from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

from api.auth import User, current_user
from api.commands import STATUS_BY_CODE, command_id_for, last_event, rejection
from api.errors import ApiError, unavailable
from api.payments import ChargeVoidedError, PaymentDeclinedError, UnknownChargeError
from api.services import Services, services
from api.text import Text
from domain.ticketing import (
    AbandonPayment,
    BeginPayment,
    CancelHold,
    ConfirmPayment,
    CreateShow,
    OrderPaid,
    PlaceHold,
    QueueSpec,
    RecordRefund,
    RefundOrder,
    Section,
    Zone,
    refusal_error,
)
from domain.ticketing.payments import (
    abandon_command_id,
    confirm_command_id,
    refund_command_id,
)
from domain.ticketing.views import OrderView
from producers.envelope import Reply
from producers.registries import TICKETING
from producers.topics import SHOW_COMMANDS
from snapshots.orders import ShowListing

router = APIRouter(prefix="/v1")

NAME_PATTERN = r"^[A-Z0-9]{1,8}$"
SHOW_ID_PATTERN = re.compile(r"^s[0-9a-f]{16}$")
ORDER_ID_PATTERN = re.compile(r"^(s[0-9a-f]{16})\.[A-Za-z0-9_-]{22}$")
# How long a list of the caller's orders waits for the order view to have what they just did.
ORDERS_WAIT_S = 2.0

# -- request bodies ---------------------------------------------------------------------------


class SectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Text = Field(pattern=NAME_PATTERN)
    rows: StrictInt = Field(ge=1, le=200_000)
    seats_per_row: StrictInt = Field(ge=1, le=200_000)
    price_cents: StrictInt = Field(ge=0, le=10**9)


class ZoneIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Text = Field(pattern=NAME_PATTERN)
    capacity: StrictInt = Field(ge=1, le=200_000)
    price_cents: StrictInt = Field(ge=0, le=10**9)


class QueueIn(BaseModel):
    """A waiting room's shape; its rules (ranges) are the decider's to check."""

    model_config = ConfigDict(extra="forbid")
    opens_at: datetime
    admit_per_minute: StrictInt = Field(ge=-(2**31), le=2**31)
    pass_seconds: StrictInt = Field(ge=-(2**31), le=2**31)

    @field_validator("opens_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("opens_at needs a time zone (RFC 3339)")
        return value.astimezone(UTC)


class ShowIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Text = Field(min_length=1, max_length=200)
    starts_at: datetime
    hold_seconds: StrictInt = Field(default=630, ge=1, le=86_400)
    sections: list[SectionIn] = Field(default_factory=list, max_length=1000)
    zones: list[ZoneIn] = Field(default_factory=list, max_length=50)
    queue: QueueIn | None = None

    @field_validator("starts_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("starts_at needs a time zone (RFC 3339)")
        return value.astimezone(UTC)


class BestAvailableIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Bounded here only against absurd input; the decider gives the contract's 422.
    quantity: StrictInt = Field(ge=-(2**31), le=2**31)
    section: Text | None = Field(default=None, pattern=NAME_PATTERN)


class HoldIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seats: list[Text] | None = Field(default=None, max_length=10_000)
    zone: Text | None = None
    quantity: StrictInt | None = Field(default=None, ge=-(2**31), le=2**31)
    best_available: BestAvailableIn | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> HoldIn:
        ways = [self.seats is not None, self.zone is not None, self.best_available is not None]
        if sum(ways) != 1:
            raise ValueError("give exactly one of seats, zone + quantity, or best_available")
        if self.zone is not None and self.quantity is None:
            raise ValueError("a zone hold needs a quantity")
        if self.zone is None and self.quantity is not None:
            raise ValueError("quantity goes with zone")
        return self


class PaymentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    payment_token: Text = Field(min_length=1, max_length=500)


# -- helpers ----------------------------------------------------------------------------------


def show_of_order(order_id: str) -> str:
    # Order ids carry their show so a command about an order reaches the show's single
    # writer without a lookup; the random part keeps them unguessable.
    match = ORDER_ID_PATTERN.match(order_id)
    if match is None:
        raise ApiError(404, "order_not_found", "no such order", {"order_id": order_id})
    return match.group(1)


def checked_show_id(show_id: str) -> str:
    if SHOW_ID_PATTERN.match(show_id) is None:
        raise ApiError(404, "show_not_found", "no such show", {"show_id": show_id})
    return show_id


async def decide(svc: Services, command: Any, stream_id: str) -> Reply:
    """Send a show command through the gateway; the show version it made is remembered, so
    this instance's reads never go back behind it."""
    reply = await svc.bus.send(SHOW_COMMANDS, TICKETING, stream_id, command)
    svc.shows_seen.saw(stream_id, reply.version)
    return reply


def zone_json(zone: str | None, quantity: int) -> dict[str, Any] | None:
    return None if zone is None else {"name": zone, "quantity": quantity}


def order_json(order: OrderView) -> dict[str, Any]:
    return {
        "order_id": order.order_id,
        "show_id": order.show_id,
        "status": order.status,
        "seats": list(order.seats),
        "zone": zone_json(order.zone, order.quantity),
        "expires_at": order.expires_at.isoformat(),
        "total_cents": order.total_cents,
        # A refund voids the tickets: a refunded order lists none, whatever the view kept.
        "tickets": []
        if order.status == "refunded"
        else [{"ticket_id": t.ticket_id, "seat": t.seat} for t in order.tickets],
        "version": order.version,
    }


async def owned_order(svc: Services, user: User, order_id: str, wait_s: float = 2.0) -> OrderView:
    """The caller's order from the projection; a hold just made may take a moment to land.

    Not found while the projection is behind what this process has seen of the show (the
    views process is down or slow): 503 with Retry-After, since the order may well exist.
    404 only from a projection that has caught up."""
    from snapshots import orders as order_store

    show_id = show_of_order(order_id)
    order = await svc.projected.until(
        lambda: order_store.order(svc.pool, order_id), lambda found: found is not None, wait_s
    )
    if order is None:
        known = await svc.decided_show_version(show_id)
        if known > 0:
            listing = await order_store.show(svc.pool, show_id)
            if listing is None or listing.version < known:
                raise unavailable("the order view")
    # Someone else's order answers like a missing one: ids must not be probed for existence.
    if order is None or order.user != user.username:
        raise ApiError(404, "order_not_found", "There is no such order.", {"order_id": order_id})
    return order


# -- shows ------------------------------------------------------------------------------------


@router.post("/shows", status_code=201)
async def create_show(
    body: ShowIn,
    user: Annotated[User, Depends(current_user)],
    svc: Annotated[Services, Depends(services)],
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> dict[str, Any]:
    if not user.organizer:
        raise ApiError(403, "not_organizer", "only organizers may create shows")
    if not body.sections and not body.zones:
        raise ApiError(422, "invalid_show", "a show needs at least one section or zone")
    command_id = command_id_for(user.username, "create_show", idempotency_key)
    # With an Idempotency-Key the show id is derived from it, so a retry names the same show.
    show_id = "s" + (command_id[:16] if idempotency_key else secrets.token_hex(8))
    command = CreateShow(
        command_id=command_id,
        show_id=show_id,
        organizer=user.username,
        name=body.name,
        starts_at=body.starts_at,
        hold_seconds=body.hold_seconds,
        sections=tuple(
            Section(s.name, s.rows, s.seats_per_row, s.price_cents) for s in body.sections
        ),
        zones=tuple(Zone(z.name, z.capacity, z.price_cents) for z in body.zones),
        queue=None
        if body.queue is None
        else QueueSpec(body.queue.opens_at, body.queue.admit_per_minute, body.queue.pass_seconds),
        # The seed that orders the early joiners: secret until opens_at, so drawn here from a
        # secure source (the domain draws nothing); a retry's seed is never used, since the
        # decider answers it with the first decision.
        queue_seed="" if body.queue is None else secrets.token_hex(32),
    )
    reply = await decide(svc, command, show_id)
    if not reply.ok:
        raise rejection(reply.error or {})
    return {"show_id": show_id, "version": last_event(reply, "ShowCreated")["version"]}


# -- holds and orders -------------------------------------------------------------------------


def validated_seats(seats: list[str]) -> tuple[str, ...]:
    """The body's shape only: seats named. How many, which, and whether twice is the
    decider's to say (domain.ticketing.holds), as for every other rule."""
    if not seats:
        raise ApiError(422, "invalid_quantity", "hold at least one seat")
    return tuple(seats)


@router.post("/shows/{show_id}/holds", status_code=201)
async def place_hold(
    show_id: str,
    body: HoldIn,
    user: Annotated[User, Depends(current_user)],
    svc: Annotated[Services, Depends(services)],
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> dict[str, Any]:
    checked_show_id(show_id)
    command_id = command_id_for(user.username, f"hold:{show_id}", idempotency_key)
    order_id = f"{show_id}.{secrets.token_urlsafe(16)}"
    common = {
        "command_id": command_id,
        "show_id": show_id,
        "user": user.username,
        "order_id": order_id,
    }
    if body.seats is not None:
        command = PlaceHold.of_seats(**common, seats=validated_seats(body.seats))
    elif body.zone is not None:
        assert body.quantity is not None
        command = PlaceHold.of_zone(**common, zone=body.zone, quantity=body.quantity)
    else:
        assert body.best_available is not None
        command = PlaceHold.best(
            **common,
            quantity=body.best_available.quantity,
            section=body.best_available.section,
        )
    reply = await decide(svc, command, show_id)
    if not reply.ok:
        raise rejection(reply.error or {})
    held = last_event(reply, "SeatsHeld")
    return {
        "order_id": held["order_id"],
        "show_id": show_id,
        "status": "held",
        "seats": held["seats"],
        "zone": zone_json(held["zone"], held["quantity"]),
        "expires_at": held["expires_at"],
        "total_cents": held["total_cents"],
        "version": held["version"],
    }


@router.get("/orders/{order_id}")
async def get_order(
    order_id: str,
    user: Annotated[User, Depends(current_user)],
    svc: Annotated[Services, Depends(services)],
) -> dict[str, Any]:
    return order_json(await owned_order(svc, user, order_id, wait_s=0.5))


@router.get("/users/me/orders")
async def my_orders(
    user: Annotated[User, Depends(current_user)],
    svc: Annotated[Services, Depends(services)],
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """Read-your-writes: an order the caller changed a moment ago (through any API process)
    is in the list as changed, or the answer is 503 while the order view is behind it."""
    from snapshots import orders as order_store

    await svc.caught_up()
    changed = svc.users_seen.get(user.username)
    if changed:

        def settled(listings: dict[str, ShowListing]) -> bool:
            return all(
                show_id in listings and listings[show_id].version >= version
                for show_id, version in changed.items()
            )

        listings = await svc.projected.until(
            lambda: order_store.shows_by_id(svc.pool, list(changed)), settled, ORDERS_WAIT_S
        )
        if not settled(listings):
            raise unavailable("the order view")
    orders = await order_store.orders_of(svc.pool, user.username, limit=limit)
    return {"orders": [order_json(o) for o in orders]}


async def _end_order(
    svc: Services,
    user: User,
    order_id: str,
    idempotency_key: str | None,
    kind: type[CancelHold] | type[RefundOrder],
) -> tuple[OrderView, dict[str, Any]]:
    """Cancel or refund the caller's order: the order as it was and the decider's event.

    A repeated request is a new command (409 the second time, as the contract says); only an
    Idempotency-Key makes it a retry of the first.
    """
    show_id = show_of_order(order_id)
    # Read first: an order the view does not show yet is 503 (or 404) before anything is done.
    order = await owned_order(svc, user, order_id)
    verb = "cancel" if kind is CancelHold else "refund"
    command = kind(
        command_id=command_id_for(user.username, f"{verb}:{order_id}", idempotency_key),
        show_id=show_id,
        user=user.username,
        order_id=order_id,
    )
    reply = await decide(svc, command, show_id)
    if not reply.ok:
        raise decider_refusal(reply.error or {}, order_id)
    return order, last_event(reply, "HoldCancelled" if kind is CancelHold else "OrderRefunded")


def decider_refusal(error: dict[str, Any], order_id: str) -> ApiError:
    """The decider's refusal of an order command. Someone else's order answers like a missing
    one, so order ids cannot be probed for existence; so does an order of no show."""
    if error.get("code") in {"not_order_owner", "show_not_found"}:
        return ApiError(404, "order_not_found", "There is no such order.", {"order_id": order_id})
    return rejection(error)


@router.delete("/orders/{order_id}")
async def cancel_order(
    order_id: str,
    user: Annotated[User, Depends(current_user)],
    svc: Annotated[Services, Depends(services)],
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> dict[str, Any]:
    order, event = await _end_order(svc, user, order_id, idempotency_key, CancelHold)
    return order_json(replace(order, status="cancelled", version=event["version"]))


# -- payments: the API's part of the payment saga ----------------------------------------------
#
# Intent (BeginPayment -> PaymentStarted, naming the provider idempotency key), then the charge
# under that key, then its outcome (ConfirmPayment -> OrderPaid or PaymentRefused; a declined
# card -> void the key, AbandonPayment). A charge owed back is refunded and journaled
# (RecordRefund -> ChargeRefunded). Wherever this stops (a crash, Kafka or PostgreSQL away),
# `processors.reconciler` finishes the saga after BOXOFFICE_PAYMENT_GRACE_S.

log = logging.getLogger(__name__)


async def _paid_order(svc: Services, user: User, order_id: str) -> OrderView | None:
    """The order once the projection shows it paid (it may lag the decider a moment)."""
    from snapshots import orders as order_store

    def paid(order: OrderView | None) -> bool:
        return order is not None and order.user == user.username and order.status == "paid"

    order = await svc.projected.until(lambda: order_store.order(svc.pool, order_id), paid, 2.0)
    return order if paid(order) else None


async def _abandon_declined(svc: Services, show_id: str, order_id: str, charge_key: str) -> None:
    """End the intent of a declined card, so the next card gets a fresh key; best effort (the
    reconciler does the same later). The key is voided first: no charge can follow it."""
    try:
        if await svc.payments.void(charge_key) is not None:
            return  # a concurrent retry charged under this key: its confirmation ends the intent
        command = AbandonPayment(
            command_id=abandon_command_id(charge_key),
            show_id=show_id,
            order_id=order_id,
            charge_key=charge_key,
            reason="payment_declined",
        )
        await decide(svc, command, show_id)
    except (ApiError, psycopg.OperationalError) as exc:
        log.warning("left intent %s to the reconciler: %s", charge_key, exc)


async def _refund_charge(svc: Services, show_id: str, order_id: str, charge_id: str) -> None:
    """Refund a charge the journal owes back and journal that it was; best effort, since the
    reconciler guarantees both (idempotently) if this is cut short."""
    try:
        await svc.payments.refund(charge_id)
        command = RecordRefund(
            command_id=refund_command_id(charge_id),
            show_id=show_id,
            order_id=order_id,
            charge_id=charge_id,
        )
        await decide(svc, command, show_id)
    except (ApiError, psycopg.OperationalError, UnknownChargeError) as exc:
        log.warning("left the refund of %s to the reconciler: %s", charge_id, exc)


@router.post("/orders/{order_id}/payment")
async def pay_order(
    order_id: str,
    body: PaymentIn,
    user: Annotated[User, Depends(current_user)],
    svc: Annotated[Services, Depends(services)],
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> dict[str, Any]:
    show_id = show_of_order(order_id)
    # Read first: an order the view does not show yet is 503 (or 404) before any money moves.
    # Whether it can be paid (its status, its hold's time) is the decider's to say.
    order = await owned_order(svc, user, order_id)
    begin = BeginPayment(
        command_id=command_id_for(user.username, f"pay:{order_id}", idempotency_key),
        show_id=show_id,
        user=user.username,
        order_id=order_id,
    )
    # Journaled before any charge: a 409 or 503 here means no money moved.
    reply = await decide(svc, begin, show_id)
    if not reply.ok:
        error = reply.error or {}
        if (error.get("details") or {}).get("status") == "paid":
            paid_already = await _paid_order(svc, user, order_id)
            if paid_already is not None:
                return order_json(paid_already)
        raise decider_refusal(error, order_id)
    started = last_event(reply, "PaymentStarted")
    charge_key = str(started["charge_key"])
    try:
        charge = await svc.payments.charge(
            body.payment_token, int(started["amount_cents"]), charge_key
        )
    except PaymentDeclinedError as exc:
        await _abandon_declined(svc, show_id, order_id, charge_key)
        raise ApiError(402, "payment_declined", exc.reason, {"order_id": order_id}) from exc
    except ChargeVoidedError as exc:
        # This attempt outlived the grace period and the reconciler gave it up: nothing was
        # charged, and paying again starts a fresh attempt.
        raise unavailable("this payment attempt") from exc
    except psycopg.OperationalError as exc:
        # Unknown whether the charge was taken; the reconciler finds out and settles it.
        raise unavailable("the payment provider") from exc
    confirm = ConfirmPayment(
        command_id=confirm_command_id(charge.charge_id),
        show_id=show_id,
        user=user.username,
        order_id=order_id,
        charge_id=charge.charge_id,
        amount_cents=charge.amount_cents,
    )
    # A 503 from here leaves a charge with its intent journaled: the reconciler confirms it
    # (or refunds it) within the grace period, and a retry finds the same charge by its key.
    reply = await decide(svc, confirm, show_id)
    if not reply.ok:
        # Not for an intent of the payer's own order; should it happen, the money goes back.
        try:
            await svc.payments.refund(charge.charge_id)
        except (psycopg.OperationalError, UnknownChargeError) as exc:
            log.error("could not refund unconfirmable charge %s: %s", charge.charge_id, exc)
        raise rejection(reply.error or {})
    events = [TICKETING.from_dict(e) for e in reply.events]
    refused = refusal_error(events)
    if refused is not None:
        # The hold ran out while the card was being charged: the money goes back.
        await _refund_charge(svc, show_id, order_id, charge.charge_id)
        raise ApiError(
            STATUS_BY_CODE.get(refused.code, 409),
            refused.code,
            "The hold ran out before the payment was confirmed; the charge was refunded."
            if refused.code == "hold_expired"
            else str(refused),
            {**refused.details(), "refunded_charge_id": charge.charge_id},
        )
    paid = next((e for e in events if isinstance(e, OrderPaid)), None)
    if paid is None:
        # The same charge was confirmed before: the order is paid already.
        return order_json(await owned_order(svc, user, order_id))
    return order_json(replace(order, status="paid", tickets=paid.tickets, version=paid.version))


@router.post("/orders/{order_id}/refund")
async def refund_order(
    order_id: str,
    user: Annotated[User, Depends(current_user)],
    svc: Annotated[Services, Depends(services)],
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> dict[str, Any]:
    # OrderRefunded is the durable instruction to refund; the provider's refund and its
    # ChargeRefunded follow here, or from the reconciler if this process dies in between.
    order, event = await _end_order(svc, user, order_id, idempotency_key, RefundOrder)
    if event.get("charge_id"):
        await _refund_charge(svc, show_of_order(order_id), order_id, str(event["charge_id"]))
    return order_json(replace(order, status="refunded", version=event["version"]))
