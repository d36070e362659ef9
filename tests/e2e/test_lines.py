"""Lines end to end: the online waitlist and the waiting room over HTTP, against the real API,
deciders, views, Kafka and PostgreSQL (the contract's Lines section)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from boxoffice.settings import Settings
from stack.services import Stack
from tests.e2e.ticketing import add_organizer, auth, create_show, sign_in, sign_up, unique

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="session")
def organizer(settings: Settings, stack: Stack) -> str:
    return add_organizer(settings)


@pytest.fixture
async def http(settings: Settings, stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=settings.api_url, timeout=60) as client:
        yield client


async def fans(http: httpx.AsyncClient, n: int) -> list[tuple[str, str]]:
    """n new users: (username, token)."""
    names = [unique("fan") for _ in range(n)]
    tokens = await asyncio.gather(*(sign_up(http, name) for name in names))
    return list(zip(names, tokens, strict=True))


async def eventually(
    check: Callable[[], Awaitable[Any]], done: Callable[[Any], bool], timeout_s: float = 30
) -> Any:
    """Poll `check` until `done` holds for its result; the last result."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        result = await check()
        if done(result):
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"still {result!r} after {timeout_s} s")
        await asyncio.sleep(0.1)


async def hold(http: httpx.AsyncClient, token: str, show: str, body: Any) -> httpx.Response:
    return await http.post(f"/v1/shows/{show}/holds", headers=auth(token), json=body)


async def join(http: httpx.AsyncClient, token: str, show: str, body: Any) -> httpx.Response:
    return await http.post(f"/v1/shows/{show}/waitlist", headers=auth(token), json=body)


async def entry(http: httpx.AsyncClient, token: str, show: str) -> dict[str, Any]:
    response = await http.get(f"/v1/shows/{show}/waitlist/me", headers=auth(token))
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def order(http: httpx.AsyncClient, token: str, order_id: str) -> dict[str, Any]:
    response = await http.get(f"/v1/orders/{order_id}", headers=auth(token))
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def waiting(http: httpx.AsyncClient, show: str) -> int:
    response = await http.get(f"/v1/shows/{show}")
    assert response.status_code == 200, response.text
    count: int = response.json()["waiting"]
    return count


async def test_the_waitlist_refuses_free_seats_orders_joins_and_offers_freed_seats_first_fit(
    http: httpx.AsyncClient, organizer: str
) -> None:
    org = await sign_in(http, organizer)
    show = await create_show(http, org, rows=1, seats_per_row=4)
    (_, buyer), (_, f1), (_, f2), (_, f3), (_, late) = await fans(http, 5)

    # Nobody queues in front of free seats.
    refused = await join(http, f1, show, {"quantity": 1})
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "seats_available"
    assert refused.json()["error"]["details"]["available"] == 4

    first = await hold(http, buyer, show, {"best_available": {"quantity": 2}})
    second = await hold(http, buyer, show, {"best_available": {"quantity": 2}})
    assert first.status_code == second.status_code == 201, (first.text, second.text)

    joined = []
    for token, body in (
        (f1, {"quantity": 3, "section": "A"}),
        (f2, {"quantity": 1}),
        (f3, {"quantity": 2}),
    ):
        response = await join(http, token, show, body)
        assert response.status_code == 201, response.text
        joined.append(response.json())
    assert [j["position"] for j in joined] == [1, 2, 3]
    assert all(j["status"] == "waiting" and j["order_id"] is None for j in joined)
    assert joined[0] == {**joined[0], "show_id": show, "quantity": 3, "section": "A", "zone": None}

    # One entry per user and show: joining again answers the live entry, 200.
    again = await join(http, f1, show, {"quantity": 1})
    assert again.status_code == 200, again.text
    assert again.json() == joined[0]
    assert await entry(http, f2, show) == joined[1]
    assert await eventually(lambda: waiting(http, show), lambda n: n == 3) == 3

    # Two seats come back: f1 (3) does not fit, f2 (1) does and is offered first, and the seat
    # left over is too few for f3 (2). It stays the line's: nobody new may wait before it.
    cancelled = await http.delete(f"/v1/orders/{first.json()['order_id']}", headers=auth(buyer))
    assert cancelled.status_code == 200, cancelled.text
    offered = await entry(http, f2, show)
    assert offered["status"] == "offered" and offered["position"] is None, offered
    offer = await order(http, f2, offered["order_id"])
    assert offer["status"] == "held" and len(offer["seats"]) == 1, offer
    assert set(offer["seats"]) < set(first.json()["seats"])
    assert (await entry(http, f1, show))["position"] == 1
    assert (await entry(http, f3, show))["position"] == 2
    refused = await join(http, late, show, {"quantity": 1})
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["details"]["available"] == 1

    # Leaving: everyone behind moves up; an offer is declined by cancelling its order.
    left = await http.delete(f"/v1/shows/{show}/waitlist/me", headers=auth(f1))
    assert left.status_code == 200, left.text
    assert left.json() == {**joined[0], "status": "left", "position": None}
    assert (await entry(http, f3, show))["position"] == 1
    assert (await entry(http, f1, show))["status"] == "left"
    assert await eventually(lambda: waiting(http, show), lambda n: n == 1) == 1
    gone = await http.delete(f"/v1/shows/{show}/waitlist/me", headers=auth(f1))
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_in_line", gone.text
    busy = await http.delete(f"/v1/shows/{show}/waitlist/me", headers=auth(f2))
    assert busy.status_code == 409 and busy.json()["error"]["code"] == "not_waiting", busy.text
    never = await http.get(f"/v1/shows/{show}/waitlist/me", headers=auth(late))
    assert never.status_code == 404 and never.json()["error"]["code"] == "not_in_line"


async def test_a_lapsed_offer_goes_to_the_next_in_line(
    http: httpx.AsyncClient, organizer: str
) -> None:
    org = await sign_in(http, organizer)
    show = await create_show(http, org, rows=1, seats_per_row=1, hold_seconds=8)
    (_, buyer), (_, f1), (_, f2) = await fans(http, 3)
    held = await hold(http, buyer, show, {"seats": ["A-1-1"]})
    assert held.status_code == 201, held.text
    key = {"Idempotency-Key": unique("key")}
    one = await http.post(
        f"/v1/shows/{show}/waitlist", headers={**auth(f1), **key}, json={"quantity": 1}
    )
    # The same key is the same command: the first answer again, never a second entry.
    retry = await http.post(
        f"/v1/shows/{show}/waitlist", headers={**auth(f1), **key}, json={"quantity": 1}
    )
    two = await join(http, f2, show, {"quantity": 1})
    assert (one.status_code, retry.status_code, two.status_code) == (201, 201, 201), two.text
    assert retry.json() == one.json()
    assert (one.json()["position"], two.json()["position"]) == (1, 2)

    cancelled = await http.delete(f"/v1/orders/{held.json()['order_id']}", headers=auth(buyer))
    assert cancelled.status_code == 200, cancelled.text
    first_offer = await entry(http, f1, show)
    assert first_offer["status"] == "offered", first_offer
    assert (await order(http, f1, first_offer["order_id"]))["seats"] == ["A-1-1"]
    assert (await entry(http, f2, show))["position"] == 1

    # f1 lets the offer lapse: the seat goes to f2, as an offer of its own.
    second_offer = await eventually(
        lambda: entry(http, f2, show), lambda e: e["status"] == "offered", timeout_s=40
    )
    assert second_offer["order_id"] != first_offer["order_id"]
    assert (await order(http, f2, second_offer["order_id"]))["seats"] == ["A-1-1"]
    lapsed = await eventually(
        lambda: order(http, f1, first_offer["order_id"]), lambda o: o["status"] == "expired"
    )
    assert lapsed["status"] == "expired"


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def test_a_queued_show_admits_by_the_published_seed_then_in_journal_order(
    http: httpx.AsyncClient, organizer: str
) -> None:
    org = await sign_in(http, organizer)
    early = await fans(http, 4)
    (_, outsider_token), (_, later_token) = await fans(http, 2)
    opens_at = (datetime.now(UTC) + timedelta(seconds=8)).replace(microsecond=0)
    created = await http.post(
        "/v1/shows",
        headers=auth(org),
        json={
            "name": "The Hot Night",
            "starts_at": "2027-06-01T20:00:00Z",
            "sections": [{"name": "A", "rows": 10, "seats_per_row": 10, "price_cents": 5000}],
            # One fan every 10 s: admission times far enough apart to check exactly.
            "queue": {"opens_at": opens_at.isoformat(), "admit_per_minute": 6, "pass_seconds": 900},
        },
    )
    assert created.status_code == 201, created.text
    show = created.json()["show_id"]

    for _, token in early:
        joined = await http.post(f"/v1/shows/{show}/queue", headers=auth(token))
        assert joined.status_code == 201, joined.text
        assert joined.json() == {
            "show_id": show,
            "status": "early",
            "position": None,
            "admitted_at": None,
            "pass_expires_at": None,
        }
    again = await http.post(f"/v1/shows/{show}/queue", headers=auth(early[0][1]))
    assert again.status_code == 200 and again.json()["status"] == "early", again.text

    # Before opens_at: no holds, and the seed is kept private.
    for token, status in ((early[0][1], "early"), (outsider_token, "not_in_queue")):
        refused = await hold(http, token, show, {"best_available": {"quantity": 1}})
        assert refused.status_code == 403, refused.text
        error = refused.json()["error"]
        assert error["code"] == "queue_pass_required"
        assert error["details"] == {"status": status, "position": None, "admitted_at": None}
    described = (await http.get(f"/v1/shows/{show}")).json()
    assert described["queue"] == {
        "opens_at": opens_at.isoformat(),
        "admit_per_minute": 6,
        "pass_seconds": 900,
        "seed": None,
    }
    assert described["waiting"] == 0

    await asyncio.sleep(max(0.0, (opens_at - datetime.now(UTC)).total_seconds()) + 0.2)
    seed = (await http.get(f"/v1/shows/{show}")).json()["queue"]["seed"]
    assert isinstance(seed, str) and len(seed) == 64
    # Anyone can re-derive the early order from the published seed.
    order = sorted(early, key=lambda fan: hashlib.sha256(f"{seed}:{fan[0]}".encode()).hexdigest())
    for position, (name, token) in enumerate(order, start=1):
        response = await http.get(f"/v1/shows/{show}/queue/me", headers=auth(token))
        assert response.status_code == 200, (name, response.text)
        place = response.json()
        admitted = opens_at + timedelta(seconds=(position - 1) * 10)
        assert place["position"] == position, (name, place)
        assert _at(place["admitted_at"]) == admitted
        assert _at(place["pass_expires_at"]) == admitted + timedelta(seconds=900)
        assert place["status"] == ("admitted" if position == 1 else "waiting")

    # A later joiner follows every early one, in journal order.
    joined = await http.post(f"/v1/shows/{show}/queue", headers=auth(later_token))
    assert joined.status_code == 201, joined.text
    assert joined.json()["position"] == 5 and joined.json()["status"] == "waiting"
    assert _at(joined.json()["admitted_at"]) == opens_at + timedelta(seconds=40)
    assert (
        await http.get(f"/v1/shows/{show}/queue/me", headers=auth(later_token))
    ).json() == joined.json()

    # Admitted: holds; not yet: 403 with where the fan stands.
    allowed = await hold(http, order[0][1], show, {"best_available": {"quantity": 2}})
    assert allowed.status_code == 201, allowed.text
    refused = await hold(http, order[1][1], show, {"best_available": {"quantity": 2}})
    assert refused.status_code == 403, refused.text
    details = refused.json()["error"]["details"]
    assert details["status"] == "waiting" and details["position"] == 2
    assert _at(details["admitted_at"]) == opens_at + timedelta(seconds=10)
    unknown = await http.get(f"/v1/shows/{show}/queue/me", headers=auth(outsider_token))
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_in_queue"


async def test_a_show_without_a_queue_has_none_to_join(
    http: httpx.AsyncClient, organizer: str
) -> None:
    org = await sign_in(http, organizer)
    show = await create_show(http, org, rows=1, seats_per_row=2)
    [(_, fan)] = await fans(http, 1)
    refused = await http.post(f"/v1/shows/{show}/queue", headers=auth(fan))
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "no_queue"
    described = (await http.get(f"/v1/shows/{show}")).json()
    assert (described["waiting"], described["queue"]) == (0, None)
    missing = await http.get("/v1/shows/s0000000000000000/waitlist/me", headers=auth(fan))
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "show_not_found"
