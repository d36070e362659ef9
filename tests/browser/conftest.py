"""Browser fixtures: Debian's Chromium driven by Playwright against the real stack (the
`stack` fixture: Kafka, PostgreSQL, the processors and the API as processes), and the HTTP
helpers the tests use to set the scene (organizers, shows, fans, holds by someone else).

Playwright's own browser download does not work on these machines, so the browser is
/usr/bin/chromium (stack/bootstrap.sh installs it); without it the tests fail and say so.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Locator,
    Page,
    Playwright,
    expect,
    sync_playwright,
)
from playwright.sync_api import Error as PlaywrightError

from boxoffice.settings import PROJECT_ROOT, Settings
from stack.services import Stack
from tests.e2e.ticketing import PASSWORD, add_organizer, unique

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = PROJECT_ROOT / "var" / "test" / "artifacts"
# Generous but bounded: the machine is small and shares its cores with Kafka and PostgreSQL.
WAIT_MS = 15_000
expect.set_options(timeout=WAIT_MS)

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class Fan:
    username: str
    token: str


class Scene:
    """The API as the tests' own hands: what other users do while the browser watches."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.http = httpx.Client(base_url=settings.api_url, timeout=60)
        self._organizer: str | None = None

    def close(self) -> None:
        self.http.close()

    def fan(self) -> Fan:
        name = unique("fan")
        created = self.http.post("/v1/users", json={"username": name, "password": PASSWORD})
        assert created.status_code == 201, created.text
        return Fan(name, self.sign_in(name))

    def sign_in(self, name: str) -> str:
        session = self.http.post("/v1/sessions", json={"username": name, "password": PASSWORD})
        assert session.status_code == 200, session.text
        token: str = session.json()["token"]
        return token

    def show(
        self,
        name: str | None = None,
        *,
        rows: int = 6,
        seats_per_row: int = 8,
        zones: list[dict[str, Any]] | None = None,
        hold_seconds: int = 630,
    ) -> tuple[str, str]:
        """A new show on sale: (show_id, name)."""
        if self._organizer is None:
            self._organizer = add_organizer(self.settings)
        token = self.sign_in(self._organizer)
        name = name or f"Browser Night {uuid.uuid4().hex[:8]}"
        body = {
            "name": name,
            "starts_at": "2027-06-01T20:00:00Z",
            "hold_seconds": hold_seconds,
            "sections": [
                {"name": "A", "rows": rows, "seats_per_row": seats_per_row, "price_cents": 5000}
            ],
            "zones": zones or [],
        }
        response = self.command("POST", "/v1/shows", token, body)
        assert response.status_code == 201, response.text
        show_id: str = response.json()["show_id"]
        return show_id, name

    def hold(self, show_id: str, fan: Fan, seats: list[str]) -> dict[str, Any]:
        response = self.command("POST", f"/v1/shows/{show_id}/holds", fan.token, {"seats": seats})
        assert response.status_code == 201, response.text
        held: dict[str, Any] = response.json()
        return held

    def command(self, method: str, path: str, token: str, body: Any) -> httpx.Response:
        # As a real client would: 503 means come back later, and the key makes that safe.
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex}
        for _ in range(20):
            response = self.http.request(method, path, headers=headers, json=body)
            if response.status_code != 503:
                return response
            time.sleep(float(response.headers.get("Retry-After", "1")))
        return response


@pytest.fixture(scope="package")
def scene(settings: Settings, stack: Stack) -> Iterator[Scene]:
    made = Scene(settings)
    yield made
    made.close()


@pytest.fixture(scope="package")
def app_url(settings: Settings, stack: Stack) -> str:
    return settings.api_url


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests drive Debian's Chromium "
            "(run `make bootstrap`, or `sudo apt-get install chromium`).",
            pytrace=False,
        )
    launched = playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )
    yield launched
    launched.close()


Opener = Callable[..., Page]


@pytest.fixture
def open_page(browser: Browser, app_url: str, request: pytest.FixtureRequest) -> Iterator[Opener]:
    """Opens a page in a context of its own (its own storage, so its own user), optionally
    signed in as a fan. Every page is screenshotted when the test ends, pass or fail."""
    contexts: list[BrowserContext] = []
    pages: list[Page] = []

    def opener(
        fan: Fan | None = None, path: str = "/", width: int = 1100, height: int = 900
    ) -> Page:
        context = browser.new_context(base_url=app_url, viewport={"width": width, "height": height})
        context.set_default_timeout(WAIT_MS)
        if fan is not None:
            # The session as the app keeps it after signing in (signing in through the UI is
            # tested on its own), seeded once per tab so that a sign-out sticks.
            saved = json.dumps({"username": fan.username, "token": fan.token, "expires_at": None})
            context.add_init_script(
                "if (!sessionStorage.getItem('seeded')) {"
                f" localStorage.setItem('boxoffice.session', {json.dumps(saved)});"
                " sessionStorage.setItem('seeded', '1'); }"
            )
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        contexts.append(context)
        pages.append(page)
        page.goto(path)
        return page

    errors: list[str] = []
    yield opener
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)
    for i, page in enumerate(pages):
        # A page already closed still lets the others be saved.
        with contextlib.suppress(PlaywrightError):
            page.screenshot(path=str(ARTIFACTS / f"{name}-end-{i}.png"), full_page=True)
    for context in contexts:
        context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


# -- what several pages' tests look at ----------------------------------------------------


def seat(page: Page, seat_id: str) -> Locator:
    return page.locator(f'svg.seatmap [data-seat="{seat_id}"]')


def wait_live(page: Page) -> None:
    """The map has had its snapshot: the page says which version it shows."""
    expect(page.locator(".live-state")).to_have_attribute("data-version", re.compile(r"^\d+$"))


def mark_page(page: Page) -> None:
    """A marker that a reload or a navigation would wipe out."""
    page.evaluate("window.__sameDocument = true")


def assert_same_page(page: Page) -> None:
    assert page.evaluate("window.__sameDocument === true"), "the page was reloaded"
