"""Hostile frames on every WebSocket of the real API: the live chat socket, the live seat map and
the system events socket. Every malformed frame gets an `error` frame where the socket takes
frames, no frame kills a socket (a valid frame afterwards still works), a socket that must
close closes with a code of its own (never 1011, never without a close frame), and nothing
logs a traceback."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import hypothesis
import pytest
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from boxoffice.settings import Settings
from stack.services import Stack
from tests.e2e.fuzzing import LogWatch, create_show, sign_in, sign_up, wait_for
from tests.e2e.ticketing import add_organizer, auth

pytestmark = pytest.mark.e2e

BIGINT_MAX = 2**63 - 1
# Close codes a server may end a socket with on its own terms: 1000-1003, 1007-1009 (the
# client broke the protocol), 1013 (try again later) and the application's 4xxx. Never 1011
# (the server failed) nor 1006 (no close frame at all).
SERVER_FAILED = (1006, 1011)
GENERATED_FRAMES = 150
CLIENT_FRAME_TYPES = ("send", "typing", "read", "resume")


@dataclass(frozen=True)
class Chat:
    token: str
    conversation_id: str  # a group of the two
    foreign_id: str  # a direct conversation the token's user is not in


def ws_base(settings: Settings) -> str:
    return settings.api_url.replace("http://", "ws://")


def open_socket(url: str) -> ClientConnection:
    return connect(url, max_size=None, open_timeout=30, close_timeout=10, proxy=None)


def decoded(raw: str | bytes) -> dict[str, Any]:
    frame = json.loads(raw)
    assert isinstance(frame, dict) and isinstance(frame.get("type"), str), frame
    return frame


def frames_until(ws: ClientConnection, done: Any, timeout_s: float = 30) -> list[dict[str, Any]]:
    """Every frame up to and including the first that `done` accepts. Fails if the server
    closes the socket or stays silent."""
    frames: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no awaited frame within {timeout_s} s; got {frames[-5:]}"
        try:
            frame = decoded(ws.recv(timeout=left))
        except TimeoutError:
            continue
        except ConnectionClosed as exc:
            raise AssertionError(f"the server closed the socket: {exc!r}; {frames[-5:]}") from None
        frames.append(frame)
        if done(frame):
            return frames


def closed_by_server(ws: ClientConnection, timeout_s: float = 30) -> tuple[int | None, list[Any]]:
    """Reads until the server closes; returns its close code and the frames before it."""
    frames: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            frames.append(decoded(ws.recv(timeout=deadline - time.monotonic())))
        except TimeoutError:
            break
        except ConnectionClosed as exc:
            return (exc.rcvd.code if exc.rcvd is not None else 1006), frames
    raise AssertionError(f"the server did not close the socket; got {frames[-5:]}")


def json_frame(body: dict[str, Any]) -> str:
    return json.dumps(body)


def malformed_chat_frames(chat: Chat) -> list[str | bytes]:
    """Frames each of which must get exactly one error frame, and nothing else."""
    cid = chat.conversation_id
    huge = "x" * 100_001

    def send(**fields: Any) -> str:
        body = {"type": "send", "conversation_id": cid, "text": "hi", "client_msg_id": "c1"}
        return json_frame({**body, **fields})

    frames: list[str | bytes] = [
        "",
        "not json",
        "{",
        "[]",
        "null",
        "42",
        '"send"',
        "{}",
        "{'type': 'send'}",
        json_frame({"type": None}),
        json_frame({"type": 1}),
        json_frame({"type": "SEND"}),
        json_frame({"type": "subscribe", "conversation_id": cid}),
        json_frame({"type": ["send"]}),
        json_frame({"type": "send"}),
        send(conversation_id=7),
        send(conversation_id=None),
        send(conversation_id=""),
        send(conversation_id="c" * 101),
        send(conversation_id="a\x00b"),
        send(conversation_id={"$ne": None}),
        send(text=""),
        send(text=7),
        send(text=["hi"]),
        send(text=huge),
        send(text="a\x00b"),
        send(client_msg_id=""),
        send(client_msg_id=None),
        send(client_msg_id=2**64),
        send(client_msg_id="i" * 10_000),
        send(client_msg_id="\x00"),
        send(conversation_id="grp:" + uuid.uuid4().hex),  # no such conversation
        send(conversation_id=chat.foreign_id),  # someone else's
        # json.dumps escapes a lone surrogate: valid JSON text, not valid Unicode.
        send(text="a\ud800"),
        send(client_msg_id="\udfff"),
        send(conversation_id="grp:\ud800"),
        json_frame({"type": "typing"}),
        json_frame({"type": "typing", "conversation_id": 1.5}),
        json_frame({"type": "typing", "conversation_id": "a\x00"}),
        json_frame({"type": "typing", "conversation_id": chat.foreign_id}),
        json_frame({"type": "read", "conversation_id": cid}),
        json_frame({"type": "read", "conversation_id": cid, "seq": 2**64}),
        json_frame({"type": "read", "conversation_id": cid, "seq": 2**63}),
        json_frame({"type": "read", "conversation_id": cid, "seq": BIGINT_MAX}),  # past the end
        json_frame({"type": "read", "conversation_id": cid, "seq": -1}),
        json_frame({"type": "read", "conversation_id": cid, "seq": "1"}),
        json_frame({"type": "read", "conversation_id": cid, "seq": 1.5}),
        json_frame({"type": "read", "conversation_id": cid, "seq": True}),
        json_frame({"type": "read", "conversation_id": cid, "seq": None}),
        json_frame({"type": "read", "conversation_id": cid, "seq": 10**400}),
        f'{{"type": "read", "conversation_id": "{cid}", "seq": 1e400}}',
        f'{{"type": "read", "conversation_id": "{cid}", "seq": NaN}}',
        json_frame({"type": "read", "conversation_id": "grp:" + uuid.uuid4().hex, "seq": 1}),
        json_frame({"type": "resume"}),
        json_frame({"type": "resume", "cursors": None}),
        json_frame({"type": "resume", "cursors": [cid, 1]}),
        json_frame({"type": "resume", "cursors": "all"}),
        json_frame({"type": "resume", "cursors": {cid: 2**64}}),
        json_frame({"type": "resume", "cursors": {cid: -1}}),
        json_frame({"type": "resume", "cursors": {cid: "3"}}),
        json_frame({"type": "resume", "cursors": {cid: 2.5}}),
        json_frame({"type": "resume", "cursors": {cid: None}}),
        json_frame({"type": "resume", "cursors": {cid: {"seq": 1}}}),
        json_frame({"type": "resume", "cursors": {"": 1}}),
        json_frame({"type": "resume", "cursors": {"\x00": 1}}),
        json_frame({"type": "resume", "cursors": {"c" * 101: 1}}),
        json_frame({"type": "resume", "cursors": {f"grp:{i}": 0 for i in range(10_001)}}),
        json_frame({"type": "resume", "cursors": {"grp:\ud800": 1}}),
        json_frame({"type": "resume", "cursors": {"grp:" + uuid.uuid4().hex: 0}}),
        json_frame({"type": "resume", "cursors": {chat.foreign_id: 0}}),
        json_frame({"type": "send", "nested": {"a": [1, {"b": [None] * 10}]}}),
        "[" * 100_000 + "]" * 100_000,
        '{"a":' * 5_000 + "1" + "}" * 5_000,
        b"\x00\xff\xfe\xfd",
        b"\x80not utf-8",
        json.dumps({"type": "read", "conversation_id": cid, "seq": -5}).encode(),
        json.dumps({"type": "typing"}).encode(),
    ]
    return frames


def odd_but_valid_chat_frames(chat: Chat) -> list[str]:
    """Frames the contract allows: they may get messages back, but no error."""
    cid = chat.conversation_id
    return [
        json_frame({"type": "resume", "cursors": {}}),
        json_frame({"type": "resume", "cursors": {cid: 0}}),
        json_frame({"type": "resume", "cursors": {cid: BIGINT_MAX}}),
        json_frame({"type": "read", "conversation_id": cid, "seq": 0}),
        json_frame({"type": "typing", "conversation_id": cid}),
        json_frame({"type": "typing", "conversation_id": cid, "extra": [1, 2, 3]}),
    ]


def probe_send(ws: ClientConnection, conversation_id: str) -> list[dict[str, Any]]:
    """A valid send: the socket is usable if its ack comes. Returns the frames up to the ack."""
    client_msg_id = uuid.uuid4().hex
    ws.send(
        json_frame(
            {
                "type": "send",
                "conversation_id": conversation_id,
                "text": "still listening?",
                "client_msg_id": client_msg_id,
            }
        )
    )
    return frames_until(
        ws, lambda f: f["type"] == "ack" and f.get("client_msg_id") == client_msg_id
    )


def errors_in(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    errors = [f for f in frames if f["type"] == "error"]
    for error in errors:
        assert isinstance(error.get("code"), str) and error["code"], error
        assert isinstance(error.get("message"), str) and error["message"], error
        assert error["code"] not in ("internal_error", "unavailable"), error
    return errors


def not_a_client_frame(raw: str | bytes) -> bool:
    """Surely malformed: not a JSON object, or not one of the four client frame types."""
    try:
        data = json.loads(raw)
    except ValueError:
        return True
    return not isinstance(data, dict) or data.get("type") not in CLIENT_FRAME_TYPES


# JSON-ish values, frames and raw bytes, from plausible to absurd.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=12,
)
chat_frames = st.one_of(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["send", "typing", "read", "resume", "ack", "error", ""])},
        optional={
            "conversation_id": json_values,
            "text": json_values,
            "client_msg_id": json_values,
            "seq": json_values,
            "cursors": st.dictionaries(st.text(max_size=12), json_values, max_size=4) | json_values,
        },
    ).map(json.dumps),
    json_values.map(json.dumps),
    st.text(st.characters(codec="utf-8"), max_size=200),  # a text frame must be UTF-8
    st.binary(max_size=200),
)


@pytest.fixture
def http(settings: Settings, stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=settings.api_url, timeout=60) as client:
        yield client


@pytest.fixture
def watch(stack: Stack) -> LogWatch:
    return LogWatch.start(stack)


@pytest.fixture
def chat(http: httpx.Client) -> Chat:
    (_, token), (other, other_token), (third, _) = (sign_up(http) for _ in range(3))
    # A group of the three, and a direct conversation of the other two.
    group = http.post(
        "/v1/conversations", headers=auth(token), json={"members": [other, third], "title": "f"}
    )
    assert group.status_code == 201, group.text
    foreign = http.post("/v1/conversations", headers=auth(other_token), json={"members": [third]})
    assert foreign.status_code in (200, 201), foreign.text
    return Chat(token, group.json()["conversation_id"], foreign.json()["conversation_id"])


def test_the_chat_socket_answers_every_malformed_frame_and_stays_usable(
    settings: Settings, chat: Chat, watch: LogWatch
) -> None:
    url = f"{ws_base(settings)}/v1/chat/live?token={chat.token}"
    malformed = malformed_chat_frames(chat)
    with open_socket(url) as ws:
        probe_send(ws, chat.conversation_id)
        # In batches, each followed by a valid send: every bad frame before it got one error.
        for start in range(0, len(malformed), 8):
            batch = malformed[start : start + 8]
            for raw in batch:
                ws.send(raw)
            errors = errors_in(probe_send(ws, chat.conversation_id))
            assert len(errors) == len(batch), (batch, errors)
        for raw in odd_but_valid_chat_frames(chat):
            ws.send(raw)
            assert errors_in(probe_send(ws, chat.conversation_id)) == [], raw

        @hypothesis.settings(
            max_examples=GENERATED_FRAMES,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @hypothesis.given(raw=chat_frames)
        def generate(raw: str | bytes) -> None:
            generated.append(raw)

        generated: list[str | bytes] = []
        generate()
        for raw in generated:
            ws.send(raw)
        errors = errors_in(probe_send(ws, chat.conversation_id))
        surely_bad = sum(1 for raw in generated if not_a_client_frame(raw))
        assert surely_bad <= len(errors) <= len(generated), (surely_bad, errors)
        ws.close()
    assert watch.tracebacks() == []


def test_a_chat_text_frame_that_is_not_utf8_closes_with_1007_and_others_go_on(
    settings: Settings, chat: Chat, watch: LogWatch
) -> None:
    url = f"{ws_base(settings)}/v1/chat/live?token={chat.token}"
    with open_socket(url) as bystander, open_socket(url) as ws:
        probe_send(ws, chat.conversation_id)
        ws.send(b'{"type": "typing", "conversation_id": "\xff\xfe"}', text=True)
        code, _ = closed_by_server(ws)
        assert code == 1007
        probe_send(bystander, chat.conversation_id)
    assert watch.tracebacks() == []


# A URL holding text storage cannot keep is refused before any route (4400 `invalid_text`).
@pytest.mark.parametrize(
    ("query", "close", "code"),
    [
        ("", 4401, "unauthorized"),
        ("?token=", 4401, "unauthorized"),
        ("?token=junk", 4401, "unauthorized"),
        ("?token=%FF%FE", 4401, "unauthorized"),
        ("?token=%00", 4400, "invalid_text"),
        ("?token=%ED%A0%80", 4400, "invalid_text"),
        ("?token=" + "t" * 10_000, 0, ""),
    ],
)
def test_the_chat_socket_refuses_a_bad_token(
    settings: Settings, stack: Stack, query: str, close: int, code: str
) -> None:
    try:
        ws = open_socket(f"{ws_base(settings)}/v1/chat/live{query}")
    except InvalidStatus as exc:
        # Refused at the handshake (a URL too long for the server): an answer all the same.
        assert close == 0 and 400 <= exc.response.status_code < 500, exc.response.status_code
        return
    with ws:
        closed, frames = closed_by_server(ws)
    assert (closed, [f["code"] for f in frames]) == (close, [code])


def test_the_seat_map_socket_ignores_junk_and_goes_on_streaming(
    settings: Settings, http: httpx.Client, chat: Chat, watch: LogWatch
) -> None:
    organizer = sign_in(http, add_organizer(settings))
    show_id = create_show(http, organizer)
    # The live map serves shows the views have applied; a 201 does not wait for them.
    wait_for("the new show's seat map", lambda: http.get(f"/v1/shows/{show_id}/seatmap").is_success)
    url = f"{ws_base(settings)}/v1/shows/{show_id}/live"
    with open_socket(url) as ws:
        first = frames_until(ws, lambda f: True)[0]
        assert first["type"] == "snapshot", first
        # It takes no frames: whatever comes is read and dropped, and the stream goes on.
        for raw in malformed_chat_frames(chat):
            ws.send(raw)
        held = http.post(
            f"/v1/shows/{show_id}/holds", headers=auth(chat.token), json={"seats": ["A-1-1"]}
        )
        assert held.status_code == 201, held.text
        frames = frames_until(ws, lambda f: f["type"] == "delta" and "A-1-1" in f["seats"])
        assert [f["type"] for f in frames] == ["delta"] * len(frames)
        ws.close()
    version = held.json()["version"]
    for since in ("-1", str(2**64), str(BIGINT_MAX + 1), "abc", "1e3", "", "1.5", "%FF", "%00"):
        with open_socket(f"{url}?since={since}") as ws:
            code, frames = closed_by_server(ws)
        expected = "invalid_text" if since == "%00" else "invalid_request"
        assert (code, [f["code"] for f in frames]) == (4400, [expected]), since
    for since in ("0", str(version), str(version + 1_000), str(BIGINT_MAX)):
        with open_socket(f"{url}?since={since}") as ws:
            first = frames_until(ws, lambda f: True)[0]
            assert first["type"] in ("snapshot", "delta"), (since, first)
    for show, close, error in (
        ("nope", 4404, "show_not_found"),
        ("x" * 2_000, 4404, "show_not_found"),
        ("%FF%FE", 4404, "show_not_found"),
        ("%00", 4400, "invalid_text"),
        ("%ED%A0%80", 4400, "invalid_text"),
    ):
        with open_socket(f"{ws_base(settings)}/v1/shows/{show}/live") as ws:
            code, frames = closed_by_server(ws)
        assert (code, [f["code"] for f in frames]) == (close, [error]), show
    assert watch.tracebacks() == []


def test_the_system_socket_answers_every_frame_and_goes_on_streaming(
    settings: Settings, http: httpx.Client, chat: Chat, watch: LogWatch
) -> None:
    organizer = sign_in(http, add_organizer(settings))
    url = f"{ws_base(settings)}/ops/live/system"
    for token, close in (("", 4401), ("?token=junk", 4401), (f"?token={chat.token}", 4403)):
        with open_socket(url + token) as ws:
            code, frames = closed_by_server(ws)
        assert code == close, token
        assert len(errors_in(frames)) == 1, frames
    junk = malformed_chat_frames(chat)
    with open_socket(f"{url}?token={organizer}") as ws:
        assert frames_until(ws, lambda f: True)[0]["type"] == "subscribed"
        for raw in junk:
            ws.send(raw)
        errors: list[dict[str, Any]] = []
        deadline = time.monotonic() + 60
        while len(errors) < len(junk):
            assert time.monotonic() < deadline, f"{len(errors)} errors for {len(junk)} frames"
            errors += errors_in(frames_until(ws, lambda f: f["type"] == "error"))
        assert {e["code"] for e in errors} == {"invalid_frame"}
        probe = http.post("/ops/probes", headers=auth(organizer))
        assert probe.status_code == 201, probe.text
        probe_id = probe.json()["probe_id"]
        frames_until(ws, lambda f: f["type"] == "event" and f["stream_id"] == probe_id)
        ws.close()
    assert watch.tracebacks() == []
