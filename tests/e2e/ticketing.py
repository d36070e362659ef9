"""Helpers for driving the ticketing API as users would: accounts, shows, seat maps, live views."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import websockets

from boxoffice.settings import Settings
from stack.services import settings_env

PASSWORD = "correct horse battery"


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def add_organizer(settings: Settings) -> str:
    name = unique("org")
    done = subprocess.run(
        [".venv/bin/boxoffice", "user", "add", name, "--password", PASSWORD, "--organizer"],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return name


async def sign_up(http: httpx.AsyncClient, name: str | None = None) -> str:
    """A new user's bearer token."""
    name = name or unique("fan")
    created = await http.post("/v1/users", json={"username": name, "password": PASSWORD})
    assert created.status_code in (201, 409), created.text
    return await sign_in(http, name)


async def sign_in(http: httpx.AsyncClient, name: str) -> str:
    session = await http.post("/v1/sessions", json={"username": name, "password": PASSWORD})
    assert session.status_code == 200, session.text
    token: str = session.json()["token"]
    return token


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def create_show(
    http: httpx.AsyncClient,
    token: str,
    *,
    rows: int = 10,
    seats_per_row: int = 10,
    hold_seconds: int = 630,
    zones: list[dict[str, Any]] | None = None,
) -> str:
    body = {
        "name": "The Test Night",
        "starts_at": "2027-06-01T20:00:00Z",
        "hold_seconds": hold_seconds,
        "sections": [
            {"name": "A", "rows": rows, "seats_per_row": seats_per_row, "price_cents": 5000}
        ],
        "zones": zones if zones is not None else [],
    }
    key = {"Idempotency-Key": uuid.uuid4().hex}
    for _ in range(20):
        # As a real client would: 503 means come back later, and the key makes it safe.
        response = await http.post("/v1/shows", headers={**auth(token), **key}, json=body)
        if response.status_code != 503:
            break
        await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
    assert response.status_code == 201, response.text
    assert response.json()["version"] == 1
    show_id: str = response.json()["show_id"]
    return show_id


async def seatmap(http: httpx.AsyncClient, show_id: str, version: int | None = None) -> Any:
    params = {"version": version} if version is not None else None
    response = await http.get(f"/v1/shows/{show_id}/seatmap", params=params)
    assert response.status_code == 200, response.text
    return response.json()


@dataclass
class LiveViewer:
    """A WebSocket viewer that folds frames into a seat map and checks that they chain."""

    url: str
    seats: dict[str, str] = field(default_factory=dict)
    zones: dict[str, Any] = field(default_factory=dict)
    version: int = 0
    frames: int = 0
    snapshots: int = 0
    problems: list[str] = field(default_factory=list)

    def apply(self, frame: dict[str, Any]) -> None:
        self.frames += 1
        if frame["type"] == "snapshot":
            self.snapshots += 1
            self.seats = dict(frame["seats"])
            self.zones = dict(frame["zones"])
            self.version = frame["version"]
        elif frame["type"] == "delta":
            if frame["from_version"] != self.version:
                self.problems.append(f"delta from {frame['from_version']} at v{self.version}")
            self.seats.update(frame["seats"])
            self.zones.update(frame["zones"])
            self.version = frame["version"]
        else:
            self.problems.append(f"unexpected frame {frame}")

    async def follow(self, stop: asyncio.Event, since: int | None = None) -> None:
        url = self.url if since is None else f"{self.url}?since={since}"
        async with websockets.connect(url, max_size=None) as ws:
            while not stop.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(), 0.2)
                except TimeoutError:
                    continue
                self.apply(orjson.loads(raw))

    async def until_version(self, version: int, timeout_s: float = 20) -> None:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while self.version < version:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"viewer at v{self.version}, expected v{version}")
            await asyncio.sleep(0.05)
