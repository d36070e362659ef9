"""Accounts over HTTP against the running API and PostgreSQL: sign up, sign in, who am I, and
organizers made by the CLI."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from boxoffice.settings import PROJECT_ROOT, Settings
from snapshots.database import conninfo
from stack.services import Stack, settings_env

pytestmark = pytest.mark.integration

BOXOFFICE = str(PROJECT_ROOT / ".venv" / "bin" / "boxoffice")


@pytest.fixture
async def http(settings: Settings, stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=settings.api_url, timeout=20) as client:
        yield client


def fresh_name() -> str:
    return f"u_{uuid.uuid4().hex[:12]}"


def contract_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    return dict(body["error"])


async def sign_in(http: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await http.post("/v1/sessions", json={"username": username, "password": password})


async def test_sign_up_then_sign_in_then_who_am_i(http: httpx.AsyncClient) -> None:
    name = fresh_name()
    response = await http.post("/v1/users", json={"username": name, "password": "s3cret-pass"})
    assert response.status_code == 201, response.text
    assert response.json() == {"username": name}

    response = await sign_in(http, name, "s3cret-pass")
    assert response.status_code == 200, response.text
    session = response.json()
    assert set(session) == {"token", "expires_at"}
    assert session["expires_at"].endswith("Z")
    expires = datetime.fromisoformat(session["expires_at"])
    assert timedelta(hours=23) < expires - datetime.now(UTC) <= timedelta(hours=24)

    me = await http.get("/v1/users/me", headers={"Authorization": f"Bearer {session['token']}"})
    assert me.status_code == 200, me.text
    assert me.json() == {"username": name, "organizer": False}


async def test_the_password_is_stored_only_as_a_slow_salted_hash(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    name = fresh_name()
    await http.post("/v1/users", json={"username": name, "password": "plain-text-never"})
    with psycopg.connect(conninfo(settings)) as conn:
        row = conn.execute("SELECT password_hash FROM users WHERE username = %s", (name,))
        stored = row.fetchone()
    assert stored is not None
    assert stored[0].startswith("$argon2id$")
    assert "plain-text-never" not in stored[0]


async def test_a_taken_username_is_409(http: httpx.AsyncClient) -> None:
    name = fresh_name()
    first = await http.post("/v1/users", json={"username": name, "password": "password-1"})
    assert first.status_code == 201
    again = await http.post("/v1/users", json={"username": name, "password": "password-2"})
    contract_error(again, 409, "username_taken")
    # The first password still holds.
    assert (await sign_in(http, name, "password-1")).status_code == 200
    contract_error(await sign_in(http, name, "password-2"), 401, "bad_credentials")


@pytest.mark.parametrize(
    "body",
    [
        {"username": "ab", "password": "long enough"},
        {"username": "a" * 33, "password": "long enough"},
        {"username": "Alice", "password": "long enough"},
        {"username": "al-ice", "password": "long enough"},
        {"username": "alice\n", "password": "long enough"},
        {"username": "ålice", "password": "long enough"},
        {"username": "valid_name", "password": "short"},
        {"username": "valid_name", "password": "x" * 1025},
        {"username": "valid_name"},
        {"password": "long enough"},
        {"username": 12345, "password": "long enough"},
        {"username": "valid_name", "password": 12345678},
        {"username": None, "password": None},
        [],
        "alice",
    ],
)
async def test_invalid_sign_ups_are_422_in_the_contract_shape(
    http: httpx.AsyncClient, body: object
) -> None:
    error = contract_error(await http.post("/v1/users", json=body), 422, "invalid_request")
    assert error["details"]["problems"]


async def test_malformed_json_is_422(http: httpx.AsyncClient) -> None:
    for path in ("/v1/users", "/v1/sessions"):
        response = await http.post(
            path, content=b'{"username": ', headers={"Content-Type": "application/json"}
        )
        contract_error(response, 422, "invalid_request")


async def test_wrong_password_and_unknown_user_get_the_same_answer(
    http: httpx.AsyncClient,
) -> None:
    name = fresh_name()
    await http.post("/v1/users", json={"username": name, "password": "right-password"})
    wrong = contract_error(await sign_in(http, name, "wrong-password"), 401, "bad_credentials")
    unknown = contract_error(
        await sign_in(http, fresh_name(), "right-password"), 401, "bad_credentials"
    )
    assert wrong == unknown
    # A name that could never have been registered is just another failed sign-in.
    contract_error(await sign_in(http, "NOT VALID", "right-password"), 401, "bad_credentials")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": "Basic dTpw"},
    ],
)
async def test_who_am_i_needs_a_valid_token(
    http: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await http.get("/v1/users/me", headers=headers)
    contract_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_the_cli_makes_organizers(http: httpx.AsyncClient, settings: Settings) -> None:
    name = fresh_name()

    def cli(*args: str) -> str:
        done = subprocess.run(
            [BOXOFFICE, "user", "add", name, *args],
            env=settings_env(settings),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    async def me(password: str) -> dict[str, Any]:
        session = await sign_in(http, name, password)
        assert session.status_code == 200, session.text
        token = session.json()["token"]
        response = await http.get("/v1/users/me", headers={"Authorization": f"Bearer {token}"})
        return dict(response.json())

    assert cli("--password", "organizer-pw", "--organizer") == f"created user {name} (organizer)\n"
    assert await me("organizer-pw") == {"username": name, "organizer": True}

    # Again without the flag: a new password, and the organizer stays one.
    assert cli("--password", "another-pw") == f"updated user {name} (organizer)\n"
    assert await me("another-pw") == {"username": name, "organizer": True}
    contract_error(await sign_in(http, name, "organizer-pw"), 401, "bad_credentials")

    assert cli("--password", "another-pw", "--no-organizer") == f"updated user {name} (fan)\n"
    assert await me("another-pw") == {"username": name, "organizer": False}


def test_the_cli_refuses_an_invalid_username(settings: Settings) -> None:
    done = subprocess.run(
        [BOXOFFICE, "user", "add", "No Good", "--password", "long enough"],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "NAME" in done.stderr
