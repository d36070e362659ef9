"""Reading the live socket's client frames: what is accepted, and what an error names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest

from api.chatframes import (
    FrameError,
    ReadFrame,
    ResumeFrame,
    SendFrame,
    TypingFrame,
    client_msg_id_of,
    error_frame,
    parse_client_frame,
    rfc3339,
)


def test_each_client_frame_type_is_read() -> None:
    assert parse_client_frame(
        '{"type": "send", "conversation_id": "c", "text": "hi", "client_msg_id": "m"}'
    ) == SendFrame("c", "hi", "m")
    assert parse_client_frame(b'{"type": "typing", "conversation_id": "c"}') == TypingFrame("c")
    assert parse_client_frame('{"type": "read", "conversation_id": "c", "seq": 0}') == ReadFrame(
        "c", 0
    )
    assert parse_client_frame('{"type": "resume", "cursors": {"a": 3, "b": 0}}') == ResumeFrame(
        {"a": 3, "b": 0}
    )


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "nope",
        "[]",
        "null",
        '{"type": 1}',
        '{"type": "shout"}',
        '{"type": "send", "conversation_id": "c", "text": "", "client_msg_id": "m"}',
        '{"type": "send", "conversation_id": "c", "text": "hi"}',
        '{"type": "send", "conversation_id": "", "text": "hi", "client_msg_id": "m"}',
        '{"type": "send", "conversation_id": "c", "text": 5, "client_msg_id": "m"}',
        '{"type": "read", "conversation_id": "c", "seq": -1}',
        '{"type": "read", "conversation_id": "c", "seq": true}',
        '{"type": "read", "conversation_id": "c", "seq": 1.5}',
        '{"type": "typing"}',
        '{"type": "resume", "cursors": [1]}',
        '{"type": "resume", "cursors": {"c": "1"}}',
        '{"type": "resume", "cursors": {"": 1}}',
    ],
)
def test_a_malformed_frame_is_an_invalid_frame_error(raw: str) -> None:
    with pytest.raises(FrameError) as caught:
        parse_client_frame(raw)
    assert caught.value.code == "invalid_frame"
    assert caught.value.message


def test_a_refused_send_still_names_its_client_msg_id() -> None:
    raw = '{"type": "send", "conversation_id": "c", "client_msg_id": "m7"}'
    with pytest.raises(FrameError) as caught:
        parse_client_frame(raw)
    assert caught.value.client_msg_id == "m7"
    assert client_msg_id_of(raw) == "m7"
    assert client_msg_id_of("not json") is None
    assert client_msg_id_of('{"client_msg_id": ""}') is None


def test_text_and_ids_are_bounded_like_rest() -> None:
    long = "x" * 100_001
    with pytest.raises(FrameError):
        parse_client_frame(
            f'{{"type": "send", "conversation_id": "c", "text": "{long}", "client_msg_id": "m"}}'
        )
    ok = "y" * 100_000
    parsed = parse_client_frame(
        f'{{"type": "send", "conversation_id": "c", "text": "{ok}", "client_msg_id": "m"}}'
    )
    assert isinstance(parsed, SendFrame)
    assert len(parsed.text) == 100_000


def test_times_have_one_spelling_whatever_their_zone() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    elsewhere = moment.astimezone(timezone(timedelta(hours=2)))
    assert rfc3339(moment) == rfc3339(elsewhere) == "2026-01-02T03:04:05.678000Z"


def test_an_error_frame_carries_the_client_msg_id_only_when_there_is_one() -> None:
    # Messages are told as sentences, whoever wrote them.
    assert error_frame("blocked", "no") == '{"type":"error","code":"blocked","message":"No."}'
    assert orjson.loads(error_frame("blocked", "no", "m1", conversation_id="c")) == {
        "type": "error",
        "code": "blocked",
        "message": "No.",
        "client_msg_id": "m1",
        "conversation_id": "c",
    }
