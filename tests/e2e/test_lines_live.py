"""The lines' live sockets end to end (`WS .../waitlist/live`, `WS .../queue/live`): position
frames at once and on every change, merged to one a second, then `offered` / `admitted`; from
either of two API instances, against the real deciders, views, Kafka and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
import websockets

from boxoffice.settings import PROJECT_ROOT, Settings
from stack.processes import Daemon, wait_until
from stack.services import Stack, settings_env
from tests.e2e.test_lines import fans, hold, join
from tests.e2e.ticketing import add_organizer, auth, create_show, sign_in

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="session")
def organizer(settings: Settings, stack: Stack) -> str:
    return add_organizer(settings)


@pytest.fixture
async def http(settings: Settings, stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=settings.api_url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def second_api(settings: Settings, stack: Stack) -> Iterator[Settings]:
    """A second API instance on its own port, sharing the stack's Kafka and PostgreSQL."""
    other = settings.model_copy(update={"http_port": settings.http_port + 60})
    daemon = Daemon("api-lines", settings.run_dir, settings.log_dir, marker="boxoffice.cli api")
    daemon.start(
        [sys.executable, "-m", "boxoffice.cli", "api"], env=settings_env(other), cwd=PROJECT_ROOT
    )
    try:
        wait_until(Stack(other).api_ready, 60, "the second API instance", daemon=daemon)
        yield other
    finally:
        daemon.stop()


class Socket:
    """A live socket whose frames are collected, with the time each arrived."""

    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws
        self.frames: list[tuple[float, dict[str, Any]]] = []
        # When each frame arrived, by the wall clock the API's admission times are read off.
        self.arrived: list[datetime] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in self.ws:
                self.frames.append((asyncio.get_running_loop().time(), orjson.loads(raw)))
                self.arrived.append(datetime.now(UTC))

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [frame for _, frame in self.frames if frame["type"] == kind]

    @property
    def last(self) -> dict[str, Any]:
        return self.frames[-1][1]

    async def until(self, check: Callable[[], bool], what: str, timeout_s: float = 20) -> None:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not check():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{what}: frames so far {[f for _, f in self.frames]}")
            await asyncio.sleep(0.02)


def heard(socket: Socket, frames: int) -> Callable[[], bool]:
    return lambda: len(socket.frames) >= frames


def says(socket: Socket, status: str) -> Callable[[], bool]:
    return lambda: bool(socket.frames) and socket.last.get("status") == status


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def url(settings: Settings, show: str, line: str, token: str) -> str:
    base = settings.api_url.replace("http://", "ws://")
    return f"{base}/v1/shows/{show}/{line}/live?token={token}"


@contextlib.asynccontextmanager
async def live(settings: Settings, show: str, line: str, token: str) -> AsyncIterator[Socket]:
    async with websockets.connect(url(settings, show, line, token)) as ws:
        socket = Socket(ws)
        yield socket


async def refused(settings: Settings, show: str, line: str, token: str) -> tuple[str, int]:
    """The error code and close code of a socket the API refuses."""
    async with websockets.connect(url(settings, show, line, token)) as ws:
        try:
            frame = orjson.loads(await asyncio.wait_for(ws.recv(), 30))
        except TimeoutError:
            raise AssertionError(f"no frame within 30 s on the {line} socket of {show}") from None
        with pytest.raises(websockets.ConnectionClosed) as closed:
            try:
                await asyncio.wait_for(ws.recv(), 30)
            except TimeoutError:
                raise AssertionError(f"{frame} and then no close within 30 s") from None
    assert frame["type"] == "error", frame
    assert closed.value.rcvd is not None
    return frame["code"], closed.value.rcvd.code


async def test_waitlist_sockets_follow_positions_merged_then_the_offer_on_either_instance(
    settings: Settings, second_api: Settings, http: httpx.AsyncClient, organizer: str
) -> None:
    org = await sign_in(http, organizer)
    show = await create_show(http, org, rows=1, seats_per_row=2)
    people = await fans(http, 7)
    (_, buyer), waiters, (_, stranger) = people[0], people[1:6], people[6]
    orders = []
    for _ in range(2):
        held = await hold(http, buyer, show, {"best_available": {"quantity": 1}})
        assert held.status_code == 201, held.text
        orders.append(held.json()["order_id"])
    entries = []
    for _, token in waiters:
        joined = await join(http, token, show, {"quantity": 1})
        assert joined.status_code == 201, joined.text
        entries.append(joined.json())
    assert [e["position"] for e in entries] == [1, 2, 3, 4, 5]
    tokens = [token for _, token in waiters]

    # Fan 5 follows from the other instance (which took none of the joins), fan 4 from this.
    async with (
        live(second_api, show, "waitlist", tokens[4]) as five,
        live(settings, show, "waitlist", tokens[3]) as four,
    ):
        await five.until(lambda: len(five.frames) == 1, "fan 5's first frame")
        await four.until(lambda: len(four.frames) == 1, "fan 4's first frame")
        assert five.last == {
            "type": "position",
            "entry_id": entries[4]["entry_id"],
            "status": "waiting",
            "position": 5,
        }
        assert four.last["position"] == 4 and four.last["entry_id"] == entries[3]["entry_id"]

        # Three leave at once: every change is seen, merged to at most one frame a second.
        await asyncio.sleep(1.1)
        for token in tokens[:3]:
            left = await http.delete(f"/v1/shows/{show}/waitlist/me", headers=auth(token))
            assert left.status_code == 200, left.text
        await five.until(lambda: five.last["position"] == 2, "fan 5 moved up to 2")
        await four.until(lambda: four.last["position"] == 1, "fan 4 moved up to 1")
        for socket in (five, four):
            times = [at for at, _ in socket.frames]
            assert all(b - a >= 0.9 for a, b in itertools.pairwise(times)), times
            positions = [frame["position"] for _, frame in socket.frames]
            assert positions == sorted(positions, reverse=True), positions
            assert len(positions) == len(set(positions)) <= 4, positions

        # A seat comes back: it is offered to fan 4, the head of the line; fan 5 moves up.
        cancelled = await http.delete(f"/v1/orders/{orders[0]}", headers=auth(buyer))
        assert cancelled.status_code == 200, cancelled.text
        await four.until(lambda: bool(four.of_type("offered")), "fan 4's offer")
        mine = (await http.get(f"/v1/shows/{show}/waitlist/me", headers=auth(tokens[3]))).json()
        offer = (await http.get(f"/v1/orders/{mine['order_id']}", headers=auth(tokens[3]))).json()
        # The offer follows the position frame that first says so.
        assert [f for _, f in four.frames][-2:] == [
            {
                "type": "position",
                "entry_id": entries[3]["entry_id"],
                "status": "offered",
                "position": None,
            },
            {
                "type": "offered",
                "entry_id": entries[3]["entry_id"],
                "order_id": offer["order_id"],
                "seats": offer["seats"],
                "zone": offer["zone"],
                "expires_at": offer["expires_at"],
            },
        ]
        assert datetime.fromisoformat(offer["expires_at"]) > datetime.now(UTC)
        await five.until(lambda: five.last["position"] == 1, "fan 5 moved up to 1")
        assert not five.of_type("offered")

    # Connecting after the offer, on the instance that did not see it made: the same frames.
    async with live(second_api, show, "waitlist", tokens[3]) as again:
        await again.until(lambda: len(again.frames) == 2, "the offer again")
        assert [f for _, f in again.frames] == [f for _, f in four.frames][-2:]
    # A fan who left is told so, and who never joined is refused.
    async with live(settings, show, "waitlist", tokens[0]) as gone:
        await gone.until(lambda: len(gone.frames) == 1, "the left entry")
        assert gone.last == {
            "type": "position",
            "entry_id": entries[0]["entry_id"],
            "status": "left",
            "position": None,
        }
    assert await refused(settings, show, "waitlist", stranger) == ("not_in_line", 4404)
    assert await refused(settings, show, "waitlist", "forged") == ("unauthorized", 4401)
    assert await refused(settings, "s" + "0" * 16, "waitlist", stranger) == (
        "show_not_found",
        4404,
    )


async def test_queue_sockets_say_early_then_position_then_admitted_then_expired(
    settings: Settings, second_api: Settings, http: httpx.AsyncClient, organizer: str
) -> None:
    org = await sign_in(http, organizer)
    early = await fans(http, 2)
    (_, later), (_, stranger) = await fans(http, 2)
    opens_at = (datetime.now(UTC) + timedelta(seconds=6)).replace(microsecond=0)
    created = await http.post(
        "/v1/shows",
        headers=auth(org),
        json={
            "name": "The Hot Night",
            "starts_at": "2027-06-01T20:00:00Z",
            "sections": [{"name": "A", "rows": 2, "seats_per_row": 5, "price_cents": 5000}],
            # One fan every 2 s, passes of 3 s: every status is seen within the test.
            "queue": {"opens_at": opens_at.isoformat(), "admit_per_minute": 30, "pass_seconds": 3},
        },
    )
    assert created.status_code == 201, created.text
    show = created.json()["show_id"]
    for _, token in early:
        joined = await http.post(f"/v1/shows/{show}/queue", headers=auth(token))
        assert joined.status_code == 201 and joined.json()["status"] == "early", joined.text

    async with (
        live(settings, show, "queue", early[0][1]) as one,
        live(second_api, show, "queue", early[1][1]) as two,
    ):
        for socket in (one, two):
            await socket.until(heard(socket, 1), "the early frame")
            assert socket.frames[0][1] == {
                "type": "position",
                "status": "early",
                "position": None,
                "admitted_at": None,
            }
        # After opens_at, by the clock alone: waiting or admitted, admitted, then expired.
        for socket in (one, two):
            await socket.until(says(socket, "expired"), "the pass expiring", 30)
        seed = (await http.get(f"/v1/shows/{show}")).json()["queue"]["seed"]
        assert isinstance(seed, str)
        for socket in (one, two):
            positions = {f["position"] for f in socket.of_type("position")} - {None}
            assert len(positions) == 1, socket.frames
            position = positions.pop()
            admitted_at = opens_at + timedelta(seconds=(position - 1) * 2)
            frames = [f for _, f in socket.frames]
            statuses = [f["status"] for f in frames if f["type"] == "position"]
            assert statuses in (
                ["early", "admitted", "expired"],
                ["early", "waiting", "admitted", "expired"],
            ), frames
            kinds = [f["type"] for f in frames]
            admitted = kinds.index("admitted")
            assert _at(frames[admitted]["pass_expires_at"]) == admitted_at + timedelta(seconds=3)
            # The admitted frame follows the position frame that first says so.
            assert frames[admitted - 1]["status"] == "admitted", frames
            for frame in frames[1:]:
                if frame["type"] == "position":
                    assert frame["position"] == position
                    assert _at(frame["admitted_at"]) == admitted_at
            # Nothing is said before its time.
            for arrived, frame in zip(socket.arrived, frames, strict=True):
                if frame.get("status") == "admitted":
                    assert arrived >= admitted_at, (arrived, frame)
                if frame.get("status") == "expired":
                    assert arrived >= admitted_at + timedelta(seconds=3), (arrived, frame)
        assert sorted(
            {f["position"] for s in (one, two) for f in s.of_type("position")} - {None}
        ) == [1, 2]

    # A later joiner, following from the other instance: position 3, admitted at its time.
    joined = await http.post(f"/v1/shows/{show}/queue", headers=auth(later))
    assert joined.status_code == 201, joined.text
    async with live(second_api, show, "queue", later) as three:
        await three.until(lambda: len(three.frames) >= 1, "the later joiner's frame")
        assert three.frames[0][1] == {
            "type": "position",
            "status": joined.json()["status"],
            "position": 3,
            "admitted_at": joined.json()["admitted_at"],
        }
        await three.until(lambda: bool(three.of_type("admitted")), "the later joiner admitted")
    assert await refused(settings, show, "queue", stranger) == ("not_in_queue", 4404)
    plain = await create_show(http, org, rows=1, seats_per_row=1)
    assert await refused(settings, plain, "queue", stranger) == ("no_queue", 4404)
