"""The payment saga end to end: no money is kept without a ticket, whatever dies when.

Each test ends by reading the provider's ledger (`payment_charges`) and the show journal: every
charge of an order is either `charged` and the order is paid with it, or `refunded` with its
ChargeRefunded journaled and the order not paid with it; never both, never neither.

The reconciler runs here with a short grace period (GRACE_S), so an interrupted payment ends
within GRACE_S + REFUND_GRACE_S + 2 ticks of its intent once the servers are back; the tests
allow SLACK_S more for a loaded machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
import pytest

from boxoffice.settings import Settings
from domain.ticketing import ChargeRefunded, OrderPaid, OrderRefunded
from processors.reconciler import REFUND_GRACE_S, TICK_S
from producers.envelope import EventRecord
from producers.registries import TICKETING
from producers.topics import SHOW_EVENTS
from snapshots.database import conninfo
from stack.services import Stack
from tests.e2e.ticketing import add_organizer, auth, create_show, sign_in, sign_up
from tests.integration.journal import read_all

pytestmark = pytest.mark.e2e

GRACE_S = 4.0
BOUND_S = GRACE_S + REFUND_GRACE_S + 2 * TICK_S
SLACK_S = 20.0


@pytest.fixture(scope="module")
def organizer(settings: Settings, stack: Stack) -> str:
    return add_organizer(settings)


@pytest.fixture(scope="module")
def reconciler(settings: Settings, stack: Stack) -> Iterator[Stack]:
    """The stack's reconciler, run with a grace period of GRACE_S while these tests run."""
    fast = Stack(settings.model_copy(update={"payment_grace_s": GRACE_S}))
    was_running = fast.reconciler.running()
    fast.reconciler.stop()
    fast.up(("reconciler",), say=lambda _: None)
    try:
        yield fast
    finally:
        fast.reconciler.stop()
        if was_running:
            stack.up(("reconciler",), say=lambda _: None)


@pytest.fixture
async def http(settings: Settings, stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=settings.api_url, timeout=60) as client:
        yield client


@dataclass(frozen=True)
class Charge:
    key: str
    charge_id: str | None
    status: str  # charged | refunded | voided
    sold: bool  # the order is paid with this charge (and not refunded since)
    recorded: bool  # ChargeRefunded is journaled for it
    ended_at: datetime | None  # when its end was journaled (OrderPaid or ChargeRefunded)

    @property
    def end(self) -> str | None:
        """'paid' or 'refunded' once the charge has exactly one end; None until then."""
        if self.status == "charged" and self.sold:
            return "paid"
        if self.status == "refunded" and not self.sold and self.recorded:
            return "refunded"
        return None


async def charges_of(settings: Settings, show_id: str, order_id: str) -> list[Charge]:
    """The order's charges (voided keys left out) as the ledger and the journal tell."""
    async with await psycopg.AsyncConnection.connect(conninfo(settings), autocommit=True) as conn:
        cursor = await conn.execute(
            "SELECT idempotency_key, charge_id, status FROM payment_charges"
            " WHERE starts_with(idempotency_key, %s) ORDER BY created_at",
            (f"{order_id}:",),
        )
        rows = await cursor.fetchall()
    records = await asyncio.to_thread(read_all, settings, SHOW_EVENTS.name(settings))
    journaled = [EventRecord.decode(value) for key, value in records if key == show_id]
    mine = [
        (TICKETING.from_dict(r.event), r.recorded_at)
        for r in journaled
        if r.event.get("order_id") == order_id
    ]
    paid = {e.charge_id: at for e, at in mine if isinstance(e, OrderPaid)}
    given_back = {e.charge_id for e, _ in mine if isinstance(e, OrderRefunded)}
    recorded = {e.charge_id: at for e, at in mine if isinstance(e, ChargeRefunded)}
    charges = []
    for key, charge_id, status in rows:
        if status == "voided":
            continue
        sold = charge_id in paid and charge_id not in given_back
        ended_at = paid.get(charge_id) if sold else recorded.get(charge_id)
        charges.append(Charge(key, charge_id, status, sold, charge_id in recorded, ended_at))
    return charges


async def settled(
    settings: Settings, show_id: str, order_id: str, within_s: float, since: datetime
) -> tuple[list[Charge], float]:
    """Poll until every charge of the order has its one end; the charges and how long after
    `since` the last end was journaled, which must be at most `within_s`."""
    deadline = time.monotonic() + within_s + 60  # reading the journal back takes time too
    while True:
        charges = await charges_of(settings, show_id, order_id)
        if charges and all(c.end is not None and c.ended_at is not None for c in charges):
            took = max((c.ended_at - since).total_seconds() for c in charges if c.ended_at)
            assert took <= within_s, f"settled {took:.1f}s after, not within {within_s}s"
            return charges, took
        assert time.monotonic() < deadline, f"not settled: {charges}"
        await asyncio.sleep(0.5)


async def until_charged(settings: Settings, order_ids: list[str], within_s: float = 20) -> None:
    """Wait until each order has a charge taken (the stand-in answers slow tokens later)."""
    deadline = time.monotonic() + within_s
    async with await psycopg.AsyncConnection.connect(conninfo(settings), autocommit=True) as conn:
        while True:
            cursor = await conn.execute(
                "SELECT count(DISTINCT split_part(idempotency_key, ':', 1)) FROM payment_charges"
                " WHERE status = 'charged' AND split_part(idempotency_key, ':', 1) = ANY(%s)",
                (order_ids,),
            )
            row = await cursor.fetchone()
            if row is not None and row[0] == len(order_ids):
                return
            assert time.monotonic() < deadline, "the charges were never taken"
            await asyncio.sleep(0.05)


async def hold(http: httpx.AsyncClient, fan: str, show_id: str, seat: str) -> dict[str, Any]:
    held = await http.post(f"/v1/shows/{show_id}/holds", headers=auth(fan), json={"seats": [seat]})
    assert held.status_code == 201, held.text
    order: dict[str, Any] = held.json()
    return order


async def order_status(
    http: httpx.AsyncClient, fan: str, order_id: str, expected: str, within_s: float = 10
) -> str:
    """The order's status once it is `expected` (the views trail the journal a little)."""
    deadline = time.monotonic() + within_s
    while True:
        got = await http.get(f"/v1/orders/{order_id}", headers=auth(fan))
        status: str = got.json()["status"] if got.status_code == 200 else got.text
        if status == expected or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.2)


async def test_a_payment_a_refund_and_a_declined_card_each_end_one_way(
    http: httpx.AsyncClient, organizer: str, settings: Settings, reconciler: Stack
) -> None:
    org = await sign_in(http, organizer)
    show = await create_show(http, org, rows=1, seats_per_row=4)
    fan = await sign_up(http)
    order = await hold(http, fan, show, "A-1-1")
    url = f"/v1/orders/{order['order_id']}/payment"

    asked = datetime.now(UTC)
    declined = await http.post(url, headers=auth(fan), json={"payment_token": "decline_me"})
    assert declined.status_code == 402, declined.text
    # Three tries at once (a double click, a retry): one charge, one sale, the same tickets.
    paid = await asyncio.gather(
        *(http.post(url, headers=auth(fan), json={"payment_token": "tok_visa"}) for _ in range(3))
    )
    assert [p.status_code for p in paid] == [200] * 3, [p.text for p in paid]
    assert len({str(p.json()["tickets"]) for p in paid}) == 1
    (charge,) = (await settled(settings, show, order["order_id"], 10, asked))[0]
    assert charge.end == "paid"
    assert charge.key == f"{order['order_id']}:2"  # the declined attempt's key was voided

    asked = datetime.now(UTC)
    refunded = await http.post(f"/v1/orders/{order['order_id']}/refund", headers=auth(fan))
    assert refunded.status_code == 200, refunded.text
    (after,) = (await settled(settings, show, order["order_id"], 10, asked))[0]
    assert (after.charge_id, after.end) == (charge.charge_id, "refunded")


async def test_an_api_killed_between_the_charge_and_the_confirmation_ends_one_way(
    http: httpx.AsyncClient,
    organizer: str,
    settings: Settings,
    stack: Stack,
    reconciler: Stack,
) -> None:
    org = await sign_in(http, organizer)
    long_show = await create_show(http, org, rows=1, seats_per_row=4)
    short_show = await create_show(http, org, rows=1, seats_per_row=4, hold_seconds=3)
    fan = await sign_up(http)
    keeps = await hold(http, fan, long_show, "A-1-1")
    lapses = await hold(http, fan, short_show, "A-1-1")
    paying = [
        asyncio.create_task(
            http.post(
                f"/v1/orders/{order['order_id']}/payment",
                headers=auth(fan),
                json={"payment_token": "slow_visa"},
            )
        )
        for order in (keeps, lapses)
    ]
    # The money is taken; the provider's answer (and so the confirmation) is slow_s away.
    await until_charged(settings, [keeps["order_id"], lapses["order_id"]])
    assert stack.api.kill()
    killed = datetime.now(UTC)
    for task in paying:
        with contextlib.suppress(httpx.HTTPError):
            await task
    stack.up(("api",), say=lambda _: None)

    # Counted from the kill: the reconciler needs no API.
    sold, took = await settled(
        settings, long_show, keeps["order_id"], BOUND_S + SLACK_S, since=killed
    )
    assert [c.end for c in sold] == ["paid"]
    assert await order_status(http, fan, keeps["order_id"], "paid") == "paid"
    given_back, took_too = await settled(
        settings, short_show, lapses["order_id"], BOUND_S + SLACK_S, since=killed
    )
    assert [c.end for c in given_back] == ["refunded"]
    assert await order_status(http, fan, lapses["order_id"], "expired") == "expired"
    print(f"settled {took:.1f}s / {took_too:.1f}s after the kill (bound {BOUND_S:.0f}s)")


@pytest.mark.disruptive
async def test_kafka_stopped_during_a_payment_ends_one_way_once_it_is_back(
    http: httpx.AsyncClient,
    organizer: str,
    settings: Settings,
    stack: Stack,
    reconciler: Stack,
) -> None:
    org = await sign_in(http, organizer)
    show = await create_show(http, org, rows=1, seats_per_row=4)
    fan = await sign_up(http)
    order = await hold(http, fan, show, "A-1-2")
    paying = asyncio.create_task(
        http.post(
            f"/v1/orders/{order['order_id']}/payment",
            headers=auth(fan),
            json={"payment_token": "slow_visa"},
        )
    )
    await until_charged(settings, [order["order_id"]])
    assert stack.kafka.stop()
    try:
        answer = await paying
        # The confirmation could not be journaled: "come back later", and the charge stays.
        assert answer.status_code in (200, 503), answer.text
    finally:
        # Generous: on a loaded machine the broker takes a while to reload its logs.
        stack.kafka.start(wait_s=300)
        back = datetime.now(UTC)
    # Counted from Kafka's return; the deciders may need a while to decide again.
    charges, took = await settled(settings, show, order["order_id"], 120, since=back)
    assert [c.end for c in charges] == ["paid"]
    assert await order_status(http, fan, order["order_id"], "paid") == "paid"
    print(f"settled {took:.1f}s after Kafka was back")
