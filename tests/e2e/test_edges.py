"""The API's edges against the real stack: input storage cannot hold is refused with 422 (or an
error frame), numbers past bigint are 422, a direct conversation's existence is not told to
outsiders, refunded orders list no tickets, the operations routes want an organizer, a
WebSocket upgrade with an oversized URL is answered, and outages answer 503 or stale, not 500."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from api.auth import service_token
from boxoffice.settings import Settings
from domain.chat.conversations import direct_conversation_id
from stack.services import Stack
from tests.e2e.ticketing import (
    add_organizer,
    auth,
    create_show,
    sign_in,
    sign_up,
    unique,
)

pytestmark = pytest.mark.e2e

TOO_BIG = 2**64  # one past what PostgreSQL bigint (and a 64-bit JSON codec) can hold


@pytest.fixture
async def http(settings: Settings, stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=settings.api_url, timeout=60) as client:
        yield client


def ws_base(settings: Settings) -> str:
    return settings.api_url.replace("http://", "ws://")


def raw(body: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """A JSON body as a client may write it, `\\u0000` and `\\ud800` escapes included (valid
    JSON text, which httpx's own encoder could not produce from a Python string)."""
    return {
        "content": body.encode(),
        "headers": {**(headers or {}), "content-type": "application/json"},
    }


def assert_refused(response: httpx.Response, status: int = 422) -> dict[str, Any]:
    assert response.status_code == status, f"{response.request.url}: {response.text}"
    body = orjson.loads(response.content)  # strict: the answer itself is valid UTF-8 JSON
    error: dict[str, Any] = body["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["message"][:1].isupper(), error
    return error


async def recv(ws: ClientConnection, timeout_s: float = 20) -> dict[str, Any]:
    frame: dict[str, Any] = orjson.loads(await asyncio.wait_for(ws.recv(), timeout_s))
    return frame


async def recv_until(ws: ClientConnection, kind: str, timeout_s: float = 20) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        frame = await recv(ws, max(0.1, deadline - asyncio.get_running_loop().time()))
        if frame["type"] == kind:
            return frame


# -- text storage cannot hold -------------------------------------------------------------------


async def test_nul_and_lone_surrogates_are_422_in_every_kind_of_http_input(
    settings: Settings, http: httpx.AsyncClient
) -> None:
    org = await sign_in(http, add_organizer(settings))
    show = await create_show(http, org, rows=1, seats_per_row=5)
    fan_name = unique("fan")
    fan = await sign_up(http, fan_name)
    friend_name = unique("fr")
    await sign_up(http, friend_name)
    held = await http.post(f"/v1/shows/{show}/holds", headers=auth(fan), json={"seats": ["A-1-1"]})
    assert held.status_code == 201, held.text
    order = held.json()["order_id"]
    started = await http.post(
        "/v1/conversations", headers=auth(fan), json={"members": [friend_name]}
    )
    assert started.status_code in (200, 201), started.text
    dm = started.json()["conversation_id"]
    section = {"rows": 1, "seats_per_row": 1, "price_cents": 1}
    show_body = {"name": "Night", "starts_at": "2027-06-01T20:00:00Z", "sections": []}

    refusals = [
        # accounts: sign-up and sign-in, names and passwords
        http.post("/v1/users", **raw(r'{"username": "ab\u0000c", "password": "long enough"}')),
        http.post("/v1/users", **raw(r'{"username": "abcd", "password": "long\u0000enough"}')),
        http.post("/v1/sessions", **raw(r'{"username": "ab\u0000c", "password": "whatever1"}')),
        http.post("/v1/sessions", **raw(r'{"username": "ab\ud800", "password": "whatever1"}')),
        http.post("/v1/sessions", **raw(r'{"username": "abcd", "password": "what\udfffever"}')),
        # ticketing bodies
        http.post(
            "/v1/shows",
            headers=auth(org),
            json={**show_body, "name": "N\x00ght", "sections": [{"name": "A", **section}]},
        ),
        http.post(
            "/v1/shows",
            headers=auth(org),
            json={**show_body, "sections": [{"name": "A\x00", **section}]},
        ),
        http.post(
            "/v1/shows",
            headers=auth(org),
            json={**show_body, "zones": [{"name": "F\x00", "capacity": 1, "price_cents": 1}]},
        ),
        http.post(f"/v1/shows/{show}/holds", headers=auth(fan), json={"seats": ["A-1-\x00"]}),
        http.post(
            f"/v1/shows/{show}/holds", headers=auth(fan), json={"zone": "F\x00", "quantity": 1}
        ),
        http.post(
            f"/v1/shows/{show}/holds",
            headers=auth(fan),
            json={"best_available": {"quantity": 1, "section": "A\x00"}},
        ),
        http.post(
            f"/v1/orders/{order}/payment", headers=auth(fan), json={"payment_token": "ok\x00"}
        ),
        http.post(
            f"/v1/orders/{order}/payment",
            **raw(r'{"payment_token": "ok\ud800"}', auth(fan)),
        ),
        # ids in paths and query parameters
        http.get(f"/v1/shows/{show}%00"),
        http.get(f"/v1/shows/{show}/seatmap?version=1%00"),
        http.get(f"/v1/orders/{order}%00", headers=auth(fan)),
        http.delete(f"/v1/orders/{order}%00", headers=auth(fan)),
        http.put("/v1/buddies/ab%00c", headers=auth(fan)),
        http.get(f"/v1/conversations/{dm}%00/messages", headers=auth(fan)),
        http.get(f"/v1/conversations/{dm}/messages?before=1%00", headers=auth(fan)),
        http.get(f"/v1/conversations/{dm}/messages?before=%ED%A0%80", headers=auth(fan)),
        # chat bodies
        http.post(
            "/v1/conversations", headers=auth(fan), json={"members": [friend_name, "x\x00y"]}
        ),
        http.post(
            "/v1/conversations",
            headers=auth(fan),
            json={"members": [friend_name, unique("z")], "title": "T\x00"},
        ),
        http.post(
            f"/v1/conversations/{dm}/messages",
            headers=auth(fan),
            json={"text": "hi\x00", "client_msg_id": "c1"},
        ),
        http.post(
            f"/v1/conversations/{dm}/messages",
            headers=auth(fan),
            json={"text": "hi", "client_msg_id": "c\x00"},
        ),
        http.post(
            f"/v1/conversations/{dm}/messages",
            **raw(r'{"text": "\ud83d", "client_msg_id": "c2"}', auth(fan)),
        ),
        http.post(f"/v1/conversations/{dm}/members", headers=auth(fan), json={"username": "a\x00"}),
    ]
    for response in await asyncio.gather(*refusals):
        error = assert_refused(response)
        assert error["code"] in ("invalid_text", "invalid_request"), error

    # Nothing of it was journaled: the conversation is still empty, the order still held.
    messages = await http.get(f"/v1/conversations/{dm}/messages", headers=auth(fan))
    assert messages.status_code == 200 and messages.json()["messages"] == []
    still = await http.get(f"/v1/orders/{order}", headers=auth(fan))
    assert still.json()["status"] == "held"


async def test_numbers_past_bigint_are_422_not_500(
    settings: Settings, http: httpx.AsyncClient
) -> None:
    org = await sign_in(http, add_organizer(settings))
    show = await create_show(http, org, rows=1, seats_per_row=2)
    fan = await sign_up(http)
    friend = unique("fr")
    await sign_up(http, friend)
    started = await http.post("/v1/conversations", headers=auth(fan), json={"members": [friend]})
    dm = started.json()["conversation_id"]

    refusals = [
        http.post(f"/v1/conversations/{dm}/read", headers=auth(fan), json={"seq": TOO_BIG}),
        http.post(f"/v1/conversations/{dm}/read", headers=auth(fan), json={"seq": 2**63}),
        http.get(f"/v1/conversations/{dm}/messages?before={TOO_BIG}", headers=auth(fan)),
        http.get(f"/v1/conversations/{dm}/messages?limit={TOO_BIG}", headers=auth(fan)),
        http.get(f"/v1/shows/{show}/seatmap?version={TOO_BIG}"),
        http.get(f"/v1/users/me/orders?limit={TOO_BIG}", headers=auth(fan)),
        http.post(
            f"/v1/shows/{show}/holds", headers=auth(fan), json={"zone": "F", "quantity": TOO_BIG}
        ),
        http.post(
            f"/v1/shows/{show}/holds",
            headers=auth(fan),
            json={"best_available": {"quantity": TOO_BIG}},
        ),
        http.post(
            "/v1/shows",
            headers=auth(org),
            json={
                "name": "Big",
                "starts_at": "2027-06-01T20:00:00Z",
                "hold_seconds": TOO_BIG,
                "sections": [
                    {"name": "A", "rows": TOO_BIG, "seats_per_row": 1, "price_cents": TOO_BIG}
                ],
            },
        ),
    ]
    for response in await asyncio.gather(*refusals):
        assert_refused(response)
    # The largest bigint itself is a number like any other: past the end, so 422 invalid_seq.
    last = await http.post(
        f"/v1/conversations/{dm}/read", headers=auth(fan), json={"seq": 2**63 - 1}
    )
    assert assert_refused(last)["code"] == "invalid_seq"


async def test_bad_text_in_chat_frames_gets_an_error_frame_and_the_socket_goes_on(
    settings: Settings, http: httpx.AsyncClient
) -> None:
    fan = await sign_up(http)
    friend = unique("fr")
    await sign_up(http, friend)
    started = await http.post("/v1/conversations", headers=auth(fan), json={"members": [friend]})
    dm = started.json()["conversation_id"]
    bad_frames = [
        {"type": "send", "conversation_id": dm, "text": "hi\x00", "client_msg_id": "c1"},
        {"type": "send", "conversation_id": dm, "text": "hi", "client_msg_id": "c\x00"},
        {"type": "send", "conversation_id": dm + "\x00", "text": "hi", "client_msg_id": "c2"},
        {"type": "typing", "conversation_id": "\x00"},
        {"type": "read", "conversation_id": dm, "seq": TOO_BIG},
        {"type": "read", "conversation_id": "\x00", "seq": 1},
        {"type": "resume", "cursors": {dm + "\x00": 0}},
        {"type": "resume", "cursors": {dm: TOO_BIG}},
    ]
    async with websockets.connect(f"{ws_base(settings)}/v1/chat/live?token={fan}") as ws:
        for bad in bad_frames:
            await ws.send(json.dumps(bad))
            error = await recv_until(ws, "error")
            assert error["code"] == "invalid_frame", error
            assert error.get("client_msg_id") in (None, "c1", "c2"), error
        # Lone surrogates do not even parse as JSON: a malformed frame, answered the same way.
        await ws.send(
            r'{"type": "send", "conversation_id": "x", "text": "\udc00", "client_msg_id": "c"}'
        )
        assert (await recv_until(ws, "error"))["code"] == "invalid_frame"
        # Still usable: a good send is acknowledged.
        await ws.send(
            json.dumps({"type": "send", "conversation_id": dm, "text": "ok", "client_msg_id": "c9"})
        )
        ack = await recv_until(ws, "ack")
        assert ack["client_msg_id"] == "c9" and ack["seq"] == 1


async def test_bad_text_or_numbers_in_websocket_urls_get_an_error_frame(
    settings: Settings, http: httpx.AsyncClient
) -> None:
    org = await sign_in(http, add_organizer(settings))
    show = await create_show(http, org, rows=1, seats_per_row=2)
    for query, code in (("since=1%00", "invalid_text"), (f"since={TOO_BIG}", "invalid_request")):
        async with websockets.connect(f"{ws_base(settings)}/v1/shows/{show}/live?{query}") as ws:
            error = await recv(ws)
            assert error["type"] == "error" and error["code"] == code, error
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await recv(ws)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4400
    async with websockets.connect(f"{ws_base(settings)}/v1/chat/live?token=a%00b") as ws:
        assert (await recv(ws))["code"] == "invalid_text"


# -- a direct conversation is not an oracle -----------------------------------------------------


async def test_an_outsider_cannot_tell_whether_two_users_have_a_direct_conversation(
    settings: Settings, http: httpx.AsyncClient
) -> None:
    names = {who: unique(who) for who in ("alice", "bob", "carol", "eve")}
    tokens = {who: await sign_up(http, name) for who, name in names.items()}
    eve = auth(tokens["eve"])
    started = await http.post(
        "/v1/conversations", headers=auth(tokens["alice"]), json={"members": [names["bob"]]}
    )
    existing = started.json()["conversation_id"]
    sent = await http.post(
        f"/v1/conversations/{existing}/messages",
        headers=auth(tokens["alice"]),
        json={"text": "hi bob", "client_msg_id": "m1"},
    )
    assert sent.status_code == 201
    never = direct_conversation_id(names["alice"], names["carol"])

    async def answers(conversation_id: str) -> list[tuple[int, str]]:
        calls = [
            http.get(f"/v1/conversations/{conversation_id}/messages", headers=eve),
            http.post(
                f"/v1/conversations/{conversation_id}/messages",
                headers=eve,
                json={"text": "hello?", "client_msg_id": uuid.uuid4().hex},
            ),
            http.post(f"/v1/conversations/{conversation_id}/read", headers=eve, json={"seq": 1}),
            http.post(
                f"/v1/conversations/{conversation_id}/members",
                headers=eve,
                json={"username": names["eve"]},
            ),
            http.delete(
                f"/v1/conversations/{conversation_id}/members/{names['alice']}", headers=eve
            ),
        ]
        return [
            (r.status_code, assert_refused(r, r.status_code)["code"])
            for r in await asyncio.gather(*calls)
        ]

    assert await answers(existing) == await answers(never)
    assert set(await answers(never)) == {(404, "conversation_not_found")}

    # On the live socket too: a resume names both the same way.
    async with websockets.connect(f"{ws_base(settings)}/v1/chat/live?token={tokens['eve']}") as ws:
        await ws.send(json.dumps({"type": "resume", "cursors": {existing: 0, never: 0}}))
        first, second = await recv_until(ws, "error"), await recv_until(ws, "error")
        assert {first["conversation_id"], second["conversation_id"]} == {existing, never}
        assert first["code"] == second["code"] == "conversation_not_found"

    # Group ids are random, not derived from names: a group's outsider is told 403.
    group = await http.post(
        "/v1/conversations",
        headers=auth(tokens["alice"]),
        json={"members": [names["bob"], names["carol"]], "title": "g"},
    )
    group_id = group.json()["conversation_id"]
    outsider = await http.get(f"/v1/conversations/{group_id}/messages", headers=eve)
    assert assert_refused(outsider, 403)["code"] == "not_a_member"
    # Members still read their direct conversation.
    mine = await http.get(f"/v1/conversations/{existing}/messages", headers=auth(tokens["bob"]))
    assert [m["text"] for m in mine.json()["messages"]] == ["hi bob"]


# -- refunds void the tickets -------------------------------------------------------------------


async def test_a_refunded_order_lists_no_tickets(
    settings: Settings, http: httpx.AsyncClient
) -> None:
    org = await sign_in(http, add_organizer(settings))
    show = await create_show(http, org, rows=1, seats_per_row=4)
    fan = await sign_up(http)
    held = await http.post(
        f"/v1/shows/{show}/holds", headers=auth(fan), json={"seats": ["A-1-1", "A-1-2"]}
    )
    order = held.json()["order_id"]
    paid = await http.post(
        f"/v1/orders/{order}/payment", headers=auth(fan), json={"payment_token": "tok_visa"}
    )
    assert paid.status_code == 200, paid.text
    assert len(paid.json()["tickets"]) == 2
    refunded = await http.post(f"/v1/orders/{order}/refund", headers=auth(fan))
    assert refunded.status_code == 200, refunded.text
    assert refunded.json()["status"] == "refunded"
    assert refunded.json()["tickets"] == []

    deadline = asyncio.get_running_loop().time() + 20
    while True:
        got = (await http.get(f"/v1/orders/{order}", headers=auth(fan))).json()
        if got["status"] == "refunded" or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.1)
    assert got["status"] == "refunded" and got["tickets"] == []
    mine = (await http.get("/v1/users/me/orders", headers=auth(fan))).json()["orders"]
    assert [(o["status"], o["tickets"]) for o in mine if o["order_id"] == order] == [
        ("refunded", [])
    ]


# -- operations routes want an organizer --------------------------------------------------------


async def test_the_probe_and_the_system_socket_need_an_organizer_token(
    settings: Settings, http: httpx.AsyncClient
) -> None:
    fan = await sign_up(http)
    organizer = service_token(settings)

    assert assert_refused(await http.post("/ops/probes"), 401)["code"] == "unauthorized"
    forbidden = await http.post("/ops/probes", headers=auth(fan))
    assert assert_refused(forbidden, 403)["code"] == "not_organizer"

    url = f"{ws_base(settings)}/ops/live/system"
    for query, code, close in (
        ("", "unauthorized", 4401),
        (f"?token={fan}", "not_organizer", 4403),
    ):
        async with websockets.connect(url + query) as ws:
            assert (await recv(ws))["code"] == code
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await recv(ws)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == close

    async with websockets.connect(f"{url}?token={organizer}") as ws:
        assert await recv(ws) == {"type": "subscribed"}
        probe = await http.post("/ops/probes", headers=auth(organizer), timeout=30)
        assert probe.status_code == 201, probe.text
        event = await recv_until(ws, "event")
        assert event["stream_id"].startswith("probe-")
        # A client frame is a command like any other: it spends a token and gets an answer.
        await ws.send("{}")
        assert (await recv_until(ws, "error"))["code"] == "invalid_frame"


# -- an oversized WebSocket URL is answered -----------------------------------------------------


async def test_a_websocket_upgrade_with_a_url_over_8_kib_gets_414_at_once(
    settings: Settings, stack: Stack
) -> None:
    host, port = settings.api_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    token = "x" * 10_000
    writer.write(
        (
            f"GET /v1/chat/live?token={token} HTTP/1.1\r\nHost: {host}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    try:
        status_line = await asyncio.wait_for(reader.readline(), 10)
        assert status_line.startswith(b"HTTP/1.1 414"), status_line
        # ... and the server hangs up.
        rest = await asyncio.wait_for(reader.read(), 10)
        assert rest.endswith(b"\n") or rest
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    # An ordinary upgrade still works.
    async with websockets.connect(f"{ws_base(settings)}/v1/chat/live?token=bad") as ws:
        assert (await recv(ws))["code"] == "unauthorized"


# -- outages: 503 or stale, never 500 -----------------------------------------------------------


@pytest.mark.disruptive
async def test_with_the_views_down_paying_cancelling_or_listing_a_fresh_hold_is_503_not_404(
    settings: Settings, stack: Stack, http: httpx.AsyncClient
) -> None:
    org = await sign_in(http, add_organizer(settings))
    show = await create_show(http, org, rows=1, seats_per_row=4)
    fan = await sign_up(http)
    assert stack.views.kill()
    try:
        held = await http.post(
            f"/v1/shows/{show}/holds", headers=auth(fan), json={"seats": ["A-1-1"]}
        )
        assert held.status_code == 201, held.text
        order = held.json()["order_id"]
        for response in (
            await http.delete(f"/v1/orders/{order}", headers=auth(fan)),
            await http.post(
                f"/v1/orders/{order}/payment", headers=auth(fan), json={"payment_token": "tok"}
            ),
            await http.get(f"/v1/orders/{order}", headers=auth(fan)),
            # The list would lack the hold just made: not an answer either.
            await http.get("/v1/users/me/orders", headers=auth(fan)),
        ):
            error = assert_refused(response, 503)
            assert error["code"] == "unavailable"
            assert response.headers["Retry-After"]
    finally:
        stack.up(("views",), say=lambda _: None)
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        cancelled = await http.delete(f"/v1/orders/{order}", headers=auth(fan))
        if cancelled.status_code != 503 or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.5)
    assert cancelled.status_code == 200, cancelled.text
    mine = await http.get("/v1/users/me/orders", headers=auth(fan))
    assert mine.status_code == 200, mine.text
    assert [(o["order_id"], o["status"]) for o in mine.json()["orders"]] == [(order, "cancelled")]
    missing = await http.get(f"/v1/orders/{show}.{'B' * 22}", headers=auth(fan))
    assert assert_refused(missing, 404)["code"] == "order_not_found"


@pytest.mark.disruptive
async def test_with_kafka_just_gone_the_seat_map_is_stale_or_503_never_500(
    settings: Settings, stack: Stack, http: httpx.AsyncClient
) -> None:
    org = await sign_in(http, add_organizer(settings))
    show = await create_show(http, org, rows=1, seats_per_row=4)
    fan = await sign_up(http)
    held = await http.post(f"/v1/shows/{show}/holds", headers=auth(fan), json={"seats": ["A-1-1"]})
    assert held.status_code == 201
    version = held.json()["version"]
    # A snapshot with the hold, then one more event the snapshot does not have.
    await asyncio.sleep(settings.snapshot_every_s + 1)
    more = await http.post(f"/v1/shows/{show}/holds", headers=auth(fan), json={"seats": ["A-1-2"]})
    assert more.status_code == 201

    assert stack.kafka.stop()
    try:
        # At once (before the API's broker check notices) and after it has noticed.
        for _ in range(2):
            stale = await http.get(f"/v1/shows/{show}/seatmap")
            assert stale.status_code == 200, stale.text
            assert stale.headers.get("X-Boxoffice-Stale") == "true"
            assert stale.json()["seats"]["A-1-1"] == "held"
            # Past any snapshot: only the journal could answer.
            past = await http.get(f"/v1/shows/{show}/seatmap", params={"version": version + 100})
            assert assert_refused(past, 503)["code"] == "unavailable"
            assert past.headers["Retry-After"]
            async with websockets.connect(f"{ws_base(settings)}/v1/shows/{show}/live") as ws:
                first = await recv(ws, 30)
                assert first["type"] in ("snapshot", "error"), first
                if first["type"] == "snapshot":
                    assert first["seats"]["A-1-1"] == "held"
                else:
                    assert first["code"] == "unavailable"
            await asyncio.sleep(2)
    finally:
        stack.up(("kafka",), say=lambda _: None)
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        fresh = await http.get(f"/v1/shows/{show}/seatmap")
        if "X-Boxoffice-Stale" not in fresh.headers or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.5)
    assert fresh.status_code == 200
    assert fresh.json()["seats"]["A-1-2"] == "held"
