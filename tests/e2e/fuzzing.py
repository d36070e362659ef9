"""Shared by the fuzz tests: synchronous helpers (Hypothesis and schemathesis drive plain
blocking clients), and a watch on the stack's logs, to catch tracebacks that never reach a
client: a fuzzer's request can be answered 4xx and still crash a projector later."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from stack.services import Stack
from tests.e2e.ticketing import PASSWORD, auth, unique

# The Python processes of the stack (Kafka and PostgreSQL log Java and C errors elsewhere).
WATCHED = ("api", "deciders", "views", "chatviews", "processors")


def sign_in(http: httpx.Client, name: str) -> str:
    session = http.post("/v1/sessions", json={"username": name, "password": PASSWORD})
    assert session.status_code == 200, session.text
    token: str = session.json()["token"]
    return token


def sign_up(http: httpx.Client) -> tuple[str, str]:
    """A new user's name and token."""
    name = unique("fz")
    created = http.post("/v1/users", json={"username": name, "password": PASSWORD})
    assert created.status_code == 201, created.text
    return name, sign_in(http, name)


def wait_for(what: str, done: Callable[[], bool], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def create_show(http: httpx.Client, token: str) -> str:
    headers = {**auth(token), "Idempotency-Key": uuid.uuid4().hex}
    body = {
        "name": "Fuzz Night",
        "starts_at": "2027-06-01T20:00:00Z",
        "hold_seconds": 630,
        "sections": [{"name": "A", "rows": 5, "seats_per_row": 10, "price_cents": 5000}],
        "zones": [{"name": "FLOOR", "capacity": 20, "price_cents": 3000}],
    }
    for _ in range(20):
        # As a real client would: 503 means come back later, and the key makes it safe.
        show = http.post("/v1/shows", headers=headers, json=body)
        if show.status_code != 503:
            break
        time.sleep(float(show.headers.get("Retry-After", "1")))
    assert show.status_code == 201, show.text
    show_id: str = show.json()["show_id"]
    return show_id


@dataclass(frozen=True)
class LogWatch:
    """Where each log of the stack's Python processes stood when the watch started."""

    offsets: dict[Path, int]

    @classmethod
    def start(cls, stack: Stack) -> LogWatch:
        files = [getattr(stack, name).log_file for name in WATCHED]
        return cls({path: path.stat().st_size if path.exists() else 0 for path in files})

    def new_text(self) -> dict[str, str]:
        """What each watched log gained since start."""
        gained: dict[str, str] = {}
        for path, offset in self.offsets.items():
            if not path.exists():
                continue
            with path.open("rb") as log:
                log.seek(offset)
                gained[path.name] = log.read().decode("utf-8", errors="replace")
        return gained

    def tracebacks(self) -> list[str]:
        """Every traceback logged since start, each with its file name and the lines after it."""
        found: list[str] = []
        for name, text in self.new_text().items():
            lines = text.splitlines()
            for i, line in enumerate(lines):
                if "Traceback" in line:
                    found.append(f"{name}:\n" + "\n".join(lines[i : i + 40]))
        return found
