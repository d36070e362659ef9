"""The one text rule (no NUL, no lone surrogate) and the integer bounds, on a bare app: bodies,
paths, query strings and WebSocket URLs get the contract's 422, never a 500; chat frames get a
FrameError (an error frame, the socket kept)."""

from __future__ import annotations

import json

import orjson
import pytest
from fastapi import FastAPI, Query, WebSocket
from fastapi.testclient import TestClient
from httpx import Response
from pydantic import BaseModel, ConfigDict, StrictInt, ValidationError
from pydantic import Field as PydanticField
from starlette.websockets import WebSocketDisconnect

from api import errors
from api.chatframes import FrameError, client_msg_id_of, parse_client_frame
from api.errors import ApiError
from api.printable import printable, safe_json
from api.text import BIGINT_MAX, Text, UrlGuard, check_text, text_problem

BAD = ["\x00", "a\x00b", "\ud800", "x\udfff", "\udbff\x00"]
GOOD = ["", "plain", "\u00e9t\u00e9", "\U0001f600 astral is fine", "\ud7ff\ue000", "tab\tnew\nline"]


@pytest.mark.parametrize("value", GOOD)
def test_text_storage_can_hold_passes(value: str) -> None:
    assert text_problem(value) is None
    assert check_text(value, "name") == value


@pytest.mark.parametrize("value", BAD)
def test_nul_and_lone_surrogates_are_refused_with_422(value: str) -> None:
    assert text_problem(value) is not None
    with pytest.raises(ApiError) as refused:
        check_text(value, "username")
    assert refused.value.status == 422
    assert refused.value.code == "invalid_text"
    assert refused.value.message.startswith("The username must not contain")
    assert refused.value.details == {"location": "username"}


class Thing(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Text = PydanticField(max_length=50)
    tags: list[Text] = []
    seq: StrictInt = PydanticField(default=0, ge=0, le=BIGINT_MAX)


@pytest.mark.parametrize("value", BAD)
def test_the_pydantic_type_refuses_the_same(value: str) -> None:
    with pytest.raises(ValidationError):
        Thing(name=value)
    with pytest.raises(ValidationError):
        Thing(name="ok", tags=["fine", value])
    assert Thing(name="ok", tags=["fine"]).name == "ok"


def test_printable_text_replaces_only_what_cannot_be_written() -> None:
    assert printable("a\x00b\ud800c\U0001f600") == "a\ufffdb\ufffdc\U0001f600"
    assert safe_json({"k\ud800": ["v\x00", 1, None, ("t",)]}) == {
        "k\ufffd": ["v\ufffd", 1, None, ["t"]]
    }


def make_app() -> FastAPI:
    app = FastAPI()
    errors.install(app)
    app.add_middleware(UrlGuard)

    @app.post("/v1/things/{thing_id}")
    async def create(thing_id: str, body: Thing) -> dict[str, object]:
        return {"thing_id": thing_id, "name": body.name}

    @app.get("/v1/things")
    async def search(
        q: str = "", version: int | None = Query(default=None, ge=1, le=BIGINT_MAX)
    ) -> dict[str, object]:
        return {"q": q, "version": version}

    @app.websocket("/v1/live")
    async def live(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_json({"type": "hello"})
        await websocket.close()

    return app


def assert_422(response: Response) -> dict[str, object]:
    assert response.status_code == 422, response.text
    body = orjson.loads(response.content)  # strict UTF-8 JSON: no surrogate got through
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] in ("invalid_text", "invalid_request")
    assert body["error"]["message"][:1].isupper()
    error: dict[str, object] = body["error"]
    return error


def raw_json(text: str) -> bytes:
    """JSON as a client may send it: escapes for NUL and lone surrogates (valid JSON text)."""
    return text.encode()


@pytest.mark.parametrize(
    "body",
    [
        r'{"name": "a\u0000b"}',
        r'{"name": "\ud800"}',
        r'{"name": "ok", "tags": ["\udfff"]}',
        # An unknown key is echoed in the error's location: it must not break the answer.
        r'{"name": "ok", "\ud800": 1}',
        r'{"name": "ok", "seq": 18446744073709551616}',
        r'{"name": "ok", "seq": -1}',
    ],
)
def test_bodies_with_bad_text_or_numbers_get_422(body: str) -> None:
    client = TestClient(make_app())
    response = client.post(
        "/v1/things/t1", content=raw_json(body), headers={"content-type": "application/json"}
    )
    assert_422(response)


@pytest.mark.parametrize(
    "url",
    [
        "/v1/things/a%00b",
        "/v1/things/a%ED%A0%80",
    ],
)
def test_paths_with_bad_text_get_422(url: str) -> None:
    client = TestClient(make_app())
    error = assert_422(client.post(url, json={"name": "ok"}))
    assert error["code"] == "invalid_text"
    assert error["details"] == {"location": "path"}


@pytest.mark.parametrize("query", ["q=a%00", "q=%ED%BF%BF", "version=18446744073709551616"])
def test_query_strings_with_bad_text_or_numbers_get_422(query: str) -> None:
    client = TestClient(make_app())
    assert_422(client.get(f"/v1/things?{query}"))


def test_good_input_passes_the_guard() -> None:
    client = TestClient(make_app())
    assert client.get("/v1/things?q=caf%C3%A9&version=9223372036854775807").json() == {
        "q": "caf\u00e9",
        "version": BIGINT_MAX,
    }
    assert client.post("/v1/things/t1", json={"name": "ok"}).status_code == 200


def test_a_websocket_url_with_bad_text_gets_an_error_frame_and_4400() -> None:
    client = TestClient(make_app())
    with client.websocket_connect("/v1/live?since=1%00") as ws:
        frame = ws.receive_json()
        assert frame["type"] == "error"
        assert frame["code"] == "invalid_text"
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 4400
    with client.websocket_connect("/v1/live?since=1") as ws:
        assert ws.receive_json() == {"type": "hello"}


# -- chat frames ----------------------------------------------------------------------------------


def frame(**fields: object) -> bytes:
    return json.dumps(fields).encode()


@pytest.mark.parametrize(
    "raw",
    [
        frame(type="send", conversation_id="dm:1", text="a\x00", client_msg_id="c1"),
        frame(type="send", conversation_id="dm:1", text="hi", client_msg_id="c\x00"),
        frame(type="send", conversation_id="dm\x00", text="hi", client_msg_id="c1"),
        frame(type="typing", conversation_id="\x00"),
        frame(type="read", conversation_id="\x00", seq=1),
        frame(type="read", conversation_id="dm:1", seq=2**64),
        frame(type="read", conversation_id="dm:1", seq=BIGINT_MAX + 1),
        frame(type="resume", cursors={"dm:\x00": 1}),
        frame(type="resume", cursors={"dm:1": 2**64}),
        # orjson refuses lone surrogates outright: a malformed frame, answered the same way.
        rb'{"type": "send", "conversation_id": "dm:1", "text": "\ud800", "client_msg_id": "c"}',
    ],
)
def test_chat_frames_with_bad_text_or_numbers_are_refused(raw: bytes) -> None:
    with pytest.raises(FrameError) as refused:
        parse_client_frame(raw)
    assert refused.value.message
    assert "\x00" not in refused.value.message


def test_a_bad_client_msg_id_is_not_echoed_in_the_error() -> None:
    raw = frame(type="send", conversation_id="dm:1", text="hi", client_msg_id="c\x00")
    assert client_msg_id_of(raw) is None
    with pytest.raises(FrameError) as refused:
        parse_client_frame(raw)
    assert refused.value.client_msg_id is None
    good = frame(type="read", conversation_id="dm:1", seq=BIGINT_MAX)
    assert parse_client_frame(good) is not None


def test_a_guarded_app_answers_ok_websockets() -> None:
    client = TestClient(make_app())
    with client.websocket_connect("/v1/live") as ws:
        assert ws.receive_json() == {"type": "hello"}
        with pytest.raises(WebSocketDisconnect):
            ws.receive_json()
