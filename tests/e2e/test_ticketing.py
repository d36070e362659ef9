"""Ticketing end to end: HTTP and WebSocket against the real API, deciders, views, Kafka and
PostgreSQL, as fans and organizers use it."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
import websockets

from boxoffice.settings import Settings
from stack.services import Stack
from tests.e2e.ticketing import (
    LiveViewer,
    add_organizer,
    auth,
    create_show,
    seatmap,
    sign_in,
    sign_up,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="session")
def organizer(settings: Settings, stack: Stack) -> str:
    return add_organizer(settings)


@pytest.fixture
async def http(settings: Settings, stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(base_url=settings.api_url, timeout=60, limits=limits) as client:
        yield client


async def sign_up_many(http: httpx.AsyncClient, n: int) -> list[str]:
    gate = asyncio.Semaphore(8)  # password hashing is deliberately slow

    async def one() -> str:
        async with gate:
            return await sign_up(http)

    return list(await asyncio.gather(*(one() for _ in range(n))))


def ws_url(settings: Settings, show_id: str) -> str:
    return settings.api_url.replace("http://", "ws://") + f"/v1/shows/{show_id}/live"


async def test_300_fans_race_for_100_seats_and_viewers_see_exactly_the_outcome(
    settings: Settings, http: httpx.AsyncClient, organizer: str
) -> None:
    org = await sign_in(http, organizer)
    show = await create_show(http, org, rows=10, seats_per_row=10)
    fans = await sign_up_many(http, 300)

    stop = asyncio.Event()
    steady = LiveViewer(ws_url(settings, show))
    steady_task = asyncio.create_task(steady.follow(stop))
    await steady.until_version(1)

    async def fan(token: str) -> dict[str, Any]:
        rng = random.Random(token)
        row, seat = rng.randint(1, 10), rng.randint(1, 9)
        wanted = [f"A-{row}-{seat}", f"A-{row}-{seat + 1}"][: rng.randint(1, 2)]
        outcome: dict[str, Any] = {"token": token, "rejected": []}
        response = await http.post(
            f"/v1/shows/{show}/holds", headers=auth(token), json={"seats": wanted}
        )
        if response.status_code == 409:
            outcome["rejected"].append(response.json()["error"])
            response = await http.post(
                f"/v1/shows/{show}/holds",
                headers=auth(token),
                json={"best_available": {"quantity": 1}},
            )
        outcome["status"] = response.status_code
        outcome["body"] = response.json()
        return outcome

    # A second viewer drops halfway through the storm and resumes from where it was.
    dropper = LiveViewer(ws_url(settings, show))
    drop_stop = asyncio.Event()
    drop_task = asyncio.create_task(dropper.follow(drop_stop))
    first_half = [asyncio.create_task(fan(t)) for t in fans[:150]]
    await asyncio.sleep(0.3)
    drop_stop.set()
    await drop_task
    resumed_from = dropper.version
    results = await asyncio.gather(*first_half, *(fan(t) for t in fans[150:]))
    resume_stop = asyncio.Event()
    resume_task = asyncio.create_task(dropper.follow(resume_stop, since=resumed_from))

    won = [r for r in results if r["status"] == 201]
    lost = [r for r in results if r["status"] != 201]
    held_seats = [seat for r in won for seat in r["body"]["seats"]]
    assert len(held_seats) == len(set(held_seats)) == 100
    assert {r["status"] for r in lost} == {409}
    assert {r["body"]["error"]["code"] for r in lost} == {"not_enough_seats"}
    for r in results:
        for rejection in r["rejected"]:
            assert rejection["code"] == "seats_unavailable"
            assert set(rejection["details"]["unavailable"]) <= set(held_seats)

    final = await seatmap(http, show)
    assert final["version"] == 1 + len(won)
    assert {s for s, status in final["seats"].items() if status == "held"} == set(held_seats)
    assert set(final["seats"].values()) == {"held"}

    await steady.until_version(final["version"])
    await dropper.until_version(final["version"])
    stop.set()
    resume_stop.set()
    await asyncio.gather(steady_task, resume_task)
    for viewer in (steady, dropper):
        assert viewer.problems == []
        assert viewer.seats == final["seats"]
        assert viewer.version == final["version"]
    # The resumed viewer got only what it missed: a delta, not a second snapshot.
    assert dropper.snapshots == 1


async def test_a_hold_expires_on_time_and_a_late_payment_is_refused(
    http: httpx.AsyncClient, organizer: str
) -> None:
    org = await sign_in(http, organizer)
    show = await create_show(http, org, rows=1, seats_per_row=4, hold_seconds=2)
    fan = await sign_up(http)
    held = await http.post(f"/v1/shows/{show}/holds", headers=auth(fan), json={"seats": ["A-1-1"]})
    assert held.status_code == 201, held.text
    order = held.json()
    expires_at = datetime.fromisoformat(order["expires_at"])

    while (await seatmap(http, show))["seats"]["A-1-1"] != "available":
        assert datetime.now(UTC) < expires_at.replace(microsecond=0) + _seconds(4)
        await asyncio.sleep(0.1)
    # The contract: available on the map within 2 s of expires_at.
    assert datetime.now(UTC) <= expires_at + _seconds(2)

    late = await http.post(
        f"/v1/orders/{order['order_id']}/payment",
        headers=auth(fan),
        json={"payment_token": "tok_visa"},
    )
    assert late.status_code == 409, late.text
    assert late.json()["error"]["code"] == "hold_expired"
    status = await http.get(f"/v1/orders/{order['order_id']}", headers=auth(fan))
    assert status.json()["status"] == "expired"


async def test_a_slow_payment_that_outlives_the_hold_is_refunded_not_sold(
    http: httpx.AsyncClient, organizer: str, settings: Settings
) -> None:
    org = await sign_in(http, organizer)
    hold_s = max(1, int(settings.fake_payment_slow_s) - 1)
    show = await create_show(http, org, rows=1, seats_per_row=4, hold_seconds=hold_s)
    fan = await sign_up(http)
    held = await http.post(f"/v1/shows/{show}/holds", headers=auth(fan), json={"seats": ["A-1-2"]})
    assert held.status_code == 201
    order_id = held.json()["order_id"]
    paid = await http.post(
        f"/v1/orders/{order_id}/payment", headers=auth(fan), json={"payment_token": "slow_visa"}
    )
    assert paid.status_code == 409, paid.text
    assert paid.json()["error"]["code"] == "hold_expired"
    assert paid.json()["error"]["details"]["refunded_charge_id"]
    assert (await http.get(f"/v1/orders/{order_id}", headers=auth(fan))).json()["status"] == (
        "expired"
    )
    assert (await seatmap(http, show))["seats"]["A-1-2"] == "available"


async def test_pay_decline_cancel_and_refund(http: httpx.AsyncClient, organizer: str) -> None:
    org = await sign_in(http, organizer)
    show = await create_show(
        http,
        org,
        rows=2,
        seats_per_row=5,
        zones=[{"name": "FLOOR", "capacity": 10, "price_cents": 3000}],
    )
    fan = await sign_up(http)
    held = await http.post(
        f"/v1/shows/{show}/holds",
        headers=auth(fan),
        json={"best_available": {"quantity": 2, "section": "A"}},
    )
    assert held.status_code == 201, held.text
    order = held.json()
    assert order["total_cents"] == 10000 and order["zone"] is None
    row = {seat.rsplit("-", 1)[0] for seat in order["seats"]}
    assert len(row) == 1  # adjacent seats in one row

    declined = await http.post(
        f"/v1/orders/{order['order_id']}/payment",
        headers=auth(fan),
        json={"payment_token": "decline_me"},
    )
    assert declined.status_code == 402
    assert declined.json()["error"]["code"] == "payment_declined"
    assert (await http.get(f"/v1/orders/{order['order_id']}", headers=auth(fan))).json()[
        "status"
    ] == "held"

    paid = await http.post(
        f"/v1/orders/{order['order_id']}/payment",
        headers=auth(fan),
        json={"payment_token": "tok_visa"},
    )
    assert paid.status_code == 200, paid.text
    assert paid.json()["status"] == "paid"
    tickets = paid.json()["tickets"]
    assert sorted(t["seat"] for t in tickets) == sorted(order["seats"])
    assert len({t["ticket_id"] for t in tickets}) == 2
    assert {(await seatmap(http, show))["seats"][s] for s in order["seats"]} == {"sold"}

    other = await sign_up(http)
    stranger = await http.get(f"/v1/orders/{order['order_id']}", headers=auth(other))
    assert stranger.status_code == 404

    refunded = await http.post(f"/v1/orders/{order['order_id']}/refund", headers=auth(fan))
    assert refunded.status_code == 200, refunded.text
    assert refunded.json()["status"] == "refunded"
    assert {(await seatmap(http, show))["seats"][s] for s in order["seats"]} == {"available"}

    zone = await http.post(
        f"/v1/shows/{show}/holds", headers=auth(fan), json={"zone": "FLOOR", "quantity": 4}
    )
    assert zone.status_code == 201, zone.text
    assert zone.json()["zone"] == {"name": "FLOOR", "quantity": 4}
    cancelled = await http.delete(f"/v1/orders/{zone.json()['order_id']}", headers=auth(fan))
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    again = await http.delete(f"/v1/orders/{zone.json()['order_id']}", headers=auth(fan))
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "order_not_held"
    floor = (await seatmap(http, show))["zones"]["FLOOR"]
    assert floor == {"capacity": 10, "available": 10, "held": 0, "sold": 0}

    mine = await http.get("/v1/users/me/orders", headers=auth(fan))
    assert [o["order_id"] for o in mine.json()["orders"]] == [
        zone.json()["order_id"],
        order["order_id"],
    ]


async def test_the_same_idempotency_key_returns_the_first_answer(
    http: httpx.AsyncClient, organizer: str
) -> None:
    org = await sign_in(http, organizer)
    show = await create_show(http, org, rows=1, seats_per_row=10)
    fan = await sign_up(http)
    key = uuid.uuid4().hex
    headers = {**auth(fan), "Idempotency-Key": key}
    answers = await asyncio.gather(
        *(
            http.post(
                f"/v1/shows/{show}/holds", headers=headers, json={"best_available": {"quantity": 2}}
            )
            for _ in range(5)
        )
    )
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["order_id"] for a in answers}) == 1
    final = await seatmap(http, show)
    assert list(final["seats"].values()).count("held") == 2
    assert final["version"] == 2


async def test_time_travel_shows_the_map_as_it_stood(
    http: httpx.AsyncClient, organizer: str
) -> None:
    org = await sign_in(http, organizer)
    show = await create_show(http, org, rows=1, seats_per_row=3)
    fan = await sign_up(http)
    for seat in ("A-1-1", "A-1-2"):
        r = await http.post(f"/v1/shows/{show}/holds", headers=auth(fan), json={"seats": [seat]})
        assert r.status_code == 201
    at_1 = await seatmap(http, show, version=1)
    at_2 = await seatmap(http, show, version=2)
    assert set(at_1["seats"].values()) == {"available"}
    assert at_2["seats"] == {"A-1-1": "held", "A-1-2": "available", "A-1-3": "available"}
    beyond = await http.get(f"/v1/shows/{show}/seatmap", params={"version": 99})
    assert beyond.status_code == 404
    assert beyond.json()["error"]["code"] == "version_not_found"


async def test_bad_input_gets_a_clear_4xx(http: httpx.AsyncClient, organizer: str) -> None:
    org = await sign_in(http, organizer)
    show = await create_show(http, org, rows=2, seats_per_row=5)
    fan = await sign_up(http)
    holds = f"/v1/shows/{show}/holds"

    async def code(path: str, body: Any, expect: int, **kw: Any) -> str:
        response = await http.post(path, headers=auth(fan), json=body, **kw)
        assert response.status_code == expect, (body, response.text)
        error_code: str = response.json()["error"]["code"]
        return error_code

    assert await code(holds, {"seats": ["Z-1-1"]}, 404) == "unknown_seat"
    assert await code(holds, {"seats": ["A-9-9"]}, 404) == "unknown_seat"
    assert await code(holds, {"seats": ["nonsense"]}, 404) == "unknown_seat"
    assert await code(holds, {"seats": ["A-1-1", "A-1-1"]}, 422) == "duplicate_seat"
    many = [f"A-{r}-{s}" for r in range(1, 11) for s in range(1, 7)]
    assert await code(holds, {"seats": many}, 422) == "too_many_seats"
    assert await code(holds, {"best_available": {"quantity": 0}}, 422) == "invalid_quantity"
    assert await code(holds, {"zone": "FLOOR", "quantity": -1}, 422) == "invalid_quantity"
    assert await code(holds, {"best_available": {"quantity": "two"}}, 422) == "invalid_request"
    assert await code(holds, {"seats": "A-1-1"}, 422) == "invalid_request"
    assert await code(holds, {}, 422) == "invalid_request"
    assert await code(holds, {"seats": ["A-1-1"], "zone": "X", "quantity": 1}, 422) == (
        "invalid_request"
    )
    assert await code(holds, {"zone": "NOPE", "quantity": 1}, 404) == "unknown_zone"
    unknown = "/v1/shows/s0000000000000000/holds"
    assert await code(unknown, {"seats": ["A-1-1"]}, 404) == "show_not_found"
    assert await code("/v1/shows/not-an-id/holds", {"seats": ["A-1-1"]}, 404) == "show_not_found"

    huge = b'{"seats": ["' + b"A" * (10 * 1024 * 1024) + b'"]}'
    response = await http.post(
        holds, headers={**auth(fan), "content-type": "application/json"}, content=huge
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"

    anonymous = await http.post(holds, json={"seats": ["A-1-1"]})
    assert anonymous.status_code == 401
    not_organizer = await http.post(
        "/v1/shows",
        headers=auth(fan),
        json={"name": "x", "starts_at": "2027-01-01T00:00:00Z", "sections": []},
    )
    assert not_organizer.status_code == 403
    bad_show = await http.post(
        "/v1/shows",
        headers=auth(org),
        json={
            "name": "x",
            "starts_at": "2027-01-01T00:00:00Z",
            "sections": [{"name": "a lower", "rows": 1, "seats_per_row": 1, "price_cents": 1}],
        },
    )
    assert bad_show.status_code == 422
    assert (await http.get("/v1/shows/s0000000000000000")).status_code == 404
    assert (await http.get(f"/v1/shows/{show}/seatmap", params={"version": "x"})).status_code == 422
    listed = (await http.get("/v1/shows")).json()["shows"]
    assert any(s["show_id"] == show and s["seats_total"] == 10 for s in listed)


def _seconds(n: float) -> timedelta:
    return timedelta(seconds=n)


async def test_a_show_is_readable_by_anyone_on_any_worker_right_after_its_201(
    settings: Settings, http: httpx.AsyncClient, organizer: str
) -> None:
    """Read-after-write: what a 201 announced is there at once, for an anonymous reader on a
    connection of its own (whichever API worker takes it), while the views project it."""
    org = await sign_in(http, organizer)
    for _ in range(15):
        limits = httpx.Limits(max_keepalive_connections=6)
        async with httpx.AsyncClient(base_url=settings.api_url, timeout=30, limits=limits) as fresh:
            # Connections open beforehand, to either worker: the reads go out the moment the
            # 201 is in, as a second browser tab's would.
            await asyncio.gather(*(fresh.get("/healthz") for _ in range(6)))
            show = await create_show(http, org, rows=2, seats_per_row=3)
            listed, mapped = await asyncio.gather(
                fresh.get(f"/v1/shows/{show}"), fresh.get(f"/v1/shows/{show}/seatmap")
            )
        assert listed.status_code == 200, listed.text
        assert listed.json()["show_id"] == show and listed.json()["seats_total"] == 6
        assert mapped.status_code == 200, mapped.text
        assert mapped.json()["version"] >= 1 and len(mapped.json()["seats"]) == 6


async def test_a_live_map_opened_before_the_views_have_the_show_waits_for_it(
    settings: Settings, http: httpx.AsyncClient, organizer: str, stack: Stack
) -> None:
    # The views are paused, so the show is journaled (201) but not yet projected.
    pid = stack.views.pid()
    assert pid is not None
    group = os.getpgid(pid)
    org = await sign_in(http, organizer)
    os.killpg(group, signal.SIGSTOP)
    try:
        show = await create_show(http, org, rows=2, seats_per_row=2)
        async with websockets.connect(ws_url(settings, show), max_size=None) as ws:
            await asyncio.sleep(1.0)
            os.killpg(group, signal.SIGCONT)
            try:
                first = orjson.loads(await asyncio.wait_for(ws.recv(), 30))
            except TimeoutError:
                # Once seen in CI and never here: say what the API logged of the show.
                log = (settings.log_dir / "api.log").read_text(errors="replace").splitlines()
                said = "\n".join(line for line in log if show in line)
                raise AssertionError(f"no first frame in 30 s; the API log:\n{said}") from None
    finally:
        os.killpg(group, signal.SIGCONT)
    assert first["type"] == "snapshot" and first["show_id"] == show
    assert first["version"] >= 1 and len(first["seats"]) == 4


async def test_a_live_map_of_an_unknown_show_closes_with_4404(
    settings: Settings, stack: Stack
) -> None:
    async with websockets.connect(ws_url(settings, "s" + "0" * 16)) as ws:
        frame = orjson.loads(await asyncio.wait_for(ws.recv(), 30))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 30)
    assert frame["type"] == "error" and frame["code"] == "show_not_found"
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4404
