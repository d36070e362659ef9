"""Authentication and rate limiting as HTTP behaviour, on a bare app (no servers): the
dependencies' 401s, the 429 with Retry-After, and what is and is not limited."""

from __future__ import annotations

from contextlib import suppress
from typing import Any

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.testclient import TestClient
from httpx import Response

from api import auth, errors, ratelimit
from api.auth import CurrentUser, OptionalUser, User
from boxoffice.settings import Settings

SETTINGS = Settings(token_secret="unit-test-secret", rate_limit_per_s=0.5, rate_limit_burst=3)


def make_app(settings: Settings = SETTINGS) -> FastAPI:
    app = FastAPI()
    errors.install(app)
    auth.install(app, settings)
    ratelimit.install(app, settings)

    @app.get("/v1/private")
    async def private(user: CurrentUser) -> dict[str, object]:
        return {"username": user.username, "organizer": user.organizer}

    @app.get("/v1/public")
    async def public(user: OptionalUser) -> dict[str, object]:
        return {"username": user.username if user else None}

    @app.post("/v1/things")
    async def command() -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/v1/things")
    async def read() -> dict[str, str]:
        return {"ok": "yes"}

    @app.post("/ops/things")
    async def ops() -> dict[str, str]:
        return {"ok": "yes"}

    @app.websocket("/v1/live")
    async def live(websocket: WebSocket) -> None:
        user = auth.user_from_token(websocket, websocket.query_params.get("token"))
        await websocket.accept()
        with suppress(WebSocketDisconnect):
            while True:
                await websocket.receive_text()
                if ratelimit.check_frame(websocket, user) is None:
                    await websocket.send_json({"type": "ack", "user": user and user.username})
                else:
                    await websocket.send_json({"type": "error", "code": "rate_limited"})

    return app


def signer(app: FastAPI) -> auth.TokenSigner:
    found: auth.TokenSigner = app.state.tokens
    return found


def bearer(app: FastAPI, user: User) -> dict[str, str]:
    token = signer(app).issue(user).token
    return {"Authorization": f"Bearer {token}"}


def assert_contract_error(response: Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert isinstance(body["error"]["details"], dict)
    return dict(body["error"])


def test_current_user_comes_from_the_bearer_token() -> None:
    app = make_app()
    client = TestClient(app)
    response = client.get("/v1/private", headers=bearer(app, User("alice", organizer=True)))
    assert response.json() == {"username": "alice", "organizer": True}
    # The scheme is case-insensitive (RFC 7235).
    token = bearer(app, User("bob"))["Authorization"].split()[1]
    response = client.get("/v1/private", headers={"Authorization": f"bearer {token}"})
    assert response.json() == {"username": "bob", "organizer": False}


def test_no_bad_or_foreign_token_is_a_401_in_the_contract_shape() -> None:
    app = make_app()
    client = TestClient(app)
    other = auth.TokenSigner("another deployment's secret", 60).issue(User("alice")).token
    for headers, why in [
        ({}, "missing"),
        ({"Authorization": "Basic YWxpY2U6c2VjcmV0"}, "missing"),
        ({"Authorization": "Bearer not-a-token"}, "invalid"),
        ({"Authorization": f"Bearer {other}"}, "invalid"),
    ]:
        response = client.get("/v1/private", headers=headers)
        error = assert_contract_error(response, 401, "unauthorized")
        assert error["details"] == {"reason": why}
        assert response.headers["WWW-Authenticate"] == "Bearer"


def test_an_expired_token_is_a_401() -> None:
    app = make_app()
    token = signer(app).issue(User("alice"), now=0).token
    response = TestClient(app).get("/v1/private", headers={"Authorization": f"Bearer {token}"})
    error = assert_contract_error(response, 401, "unauthorized")
    assert error["details"] == {"reason": "expired"}


def test_optional_user_is_none_without_a_token_but_a_bad_one_still_fails() -> None:
    app = make_app()
    client = TestClient(app)
    assert client.get("/v1/public").json() == {"username": None}
    assert client.get("/v1/public", headers=bearer(app, User("alice"))).json() == {
        "username": "alice"
    }
    response = client.get("/v1/public", headers={"Authorization": "Bearer junk"})
    assert_contract_error(response, 401, "unauthorized")


def test_commands_over_the_burst_get_429_with_retry_after() -> None:
    client = TestClient(make_app())
    for _ in range(3):
        assert client.post("/v1/things").status_code == 200
    response = client.post("/v1/things")
    error = assert_contract_error(response, 429, "rate_limited")
    # 0.5 tokens/s: the next one is 2 s away.
    assert response.headers["Retry-After"] == "2"
    assert error["details"] == {"retry_after_s": 2}
    # Reads are not commands; the operations probe writes to Kafka, so it is limited too.
    assert client.get("/v1/things").status_code == 200
    assert_contract_error(client.post("/ops/things"), 429, "rate_limited")


def test_each_user_has_a_bucket_apart_from_the_address_one() -> None:
    app = make_app()
    client = TestClient(app)
    for _ in range(3):
        client.post("/v1/things")
    assert client.post("/v1/things").status_code == 429  # the address is spent
    alice, bob = bearer(app, User("alice")), bearer(app, User("bob"))
    for _ in range(3):
        assert client.post("/v1/things", headers=alice).status_code == 200
    assert client.post("/v1/things", headers=alice).status_code == 429
    assert client.post("/v1/things", headers=bob).status_code == 200
    # A bad token does not buy a fresh bucket: it counts against the address.
    assert client.post("/v1/things", headers={"Authorization": "Bearer x"}).status_code == 429


def test_put_patch_and_delete_are_commands_too() -> None:
    app = make_app(SETTINGS.model_copy(update={"rate_limit_burst": 1}))

    @app.api_route("/v1/any", methods=["PUT", "PATCH", "DELETE"])
    async def anything() -> dict[str, str]:
        return {}

    for method in ("PUT", "PATCH", "DELETE"):
        client = TestClient(app, client=(f"10.0.0.{len(method)}", 5000))
        assert client.request(method, "/v1/any").status_code == 200
        assert client.request(method, "/v1/any").status_code == 429


def test_websocket_frames_spend_the_users_bucket() -> None:
    app = make_app()
    client = TestClient(app)
    token = signer(app).issue(User("alice")).token
    with client.websocket_connect(f"/v1/live?token={token}") as ws:
        for _ in range(3):
            ws.send_text("{}")
            assert ws.receive_json() == {"type": "ack", "user": "alice"}
        ws.send_text("{}")
        assert ws.receive_json() == {"type": "error", "code": "rate_limited"}
    # The same bucket as alice's HTTP commands.
    assert client.post("/v1/things", headers=bearer(app, User("alice"))).status_code == 429


def test_a_websocket_with_a_bad_token_is_anonymous() -> None:
    app = make_app()
    with TestClient(app).websocket_connect("/v1/live?token=forged") as ws:
        ws.send_text("{}")
        assert ws.receive_json() == {"type": "ack", "user": None}
