"""The chat API's edges: ids, dedupe keys, how refusals map to statuses, the outbox's bound."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import orjson
import pytest

from api.auth import User
from api.chat import checked_conversation_id, checked_username
from api.chatoutbox import FrameItem, MessageItem, Outbox, ResumeItem
from api.chatsocket import LiveSocket
from api.commands import STATUS_BY_CODE, command_id_for, rejection
from api.errors import ApiError
from api.ratelimit import TokenBuckets
from domain.chat.conversations import direct_conversation_id
from domain.chat.errors import ERROR_TYPES


def test_every_domain_refusal_has_a_status_and_the_contract_ones_are_right() -> None:
    codes = {error.code for error in ERROR_TYPES} - {"chat_error"}
    assert codes <= set(STATUS_BY_CODE)
    assert STATUS_BY_CODE["not_a_member"] == 403
    assert STATUS_BY_CODE["blocked"] == 403
    assert STATUS_BY_CODE["conversation_not_found"] == 404
    refused = rejection({"code": "blocked", "message": "no", "details": {"conversation_id": "c"}})
    assert (refused.status, refused.code, refused.details) == (
        403,
        "blocked",
        {"conversation_id": "c"},
    )


def test_ids_that_cannot_exist_are_404_without_asking_anyone() -> None:
    assert checked_conversation_id(direct_conversation_id("ann", "bob"))
    assert checked_conversation_id("grp:" + "a" * 32)
    for bad in ("", "dm:xyz", "grp:" + "A" * 32, "x" * 500):
        with pytest.raises(ApiError) as caught:
            checked_conversation_id(bad)
        assert caught.value.status == 404
    with pytest.raises(ApiError):
        checked_username("Bob!")


def test_the_same_key_from_the_same_user_is_the_same_command() -> None:
    assert command_id_for("ann", "send:c", "m1") == command_id_for("ann", "send:c", "m1")
    assert command_id_for("ann", "send:c", "m1") != command_id_for("bob", "send:c", "m1")
    assert command_id_for("ann", "send:c", "m1") != command_id_for("ann", "send:d", "m1")
    assert command_id_for("ann", "x", None) != command_id_for("ann", "x", None)


def test_an_outbox_past_its_limit_remembers_how_far_behind_it_is() -> None:
    box = Outbox("ann", limit=2)
    box.offer_message("c", 1, "m1")
    box.offer_ephemeral("typing")
    box.offer_message("c", 2, "m2")
    box.offer_message("c", 3, "m3")
    box.offer_ephemeral("dropped")
    assert list(box.items) == [MessageItem("c", 1, "m1"), FrameItem("typing")]
    assert box.behind == {"c": 3}
    box.push(FrameItem("ack"))  # answers are never dropped
    box.push_first(ResumeItem({"c": 0}))  # a resume jumps the queue, behind earlier resumes
    box.push_first(ResumeItem({"c": 5}))
    assert list(box.items)[:3] == [
        ResumeItem({"c": 0}),
        ResumeItem({"c": 5}),
        MessageItem("c", 1, "m1"),
    ]
    assert box.items[-1] == FrameItem("ack")


def socket_with(rate_per_s: float, burst: int) -> LiveSocket:
    websocket = SimpleNamespace(
        app=SimpleNamespace(state=SimpleNamespace(rate_limits=TokenBuckets(rate_per_s, burst))),
        client=SimpleNamespace(host="127.0.0.1"),
    )
    return LiveSocket(cast(Any, websocket), cast(Any, None), cast(Any, None), User("ann"))


def errors_of(socket: LiveSocket) -> list[dict[str, Any]]:
    return [
        orjson.loads(item.text)
        for item in socket.box.items
        if isinstance(item, FrameItem) and orjson.loads(item.text)["type"] == "error"
    ]


async def test_frames_over_the_rate_limit_get_an_error_frame_and_do_nothing() -> None:
    socket = socket_with(rate_per_s=0.001, burst=1)
    send = '{"type": "send", "conversation_id": "c", "text": "hi", "client_msg_id": "m1"}'
    await socket._on_frame(send)
    assert socket.lane.qsize() == 1
    await socket._on_frame(send.replace("m1", "m2"))
    assert socket.lane.qsize() == 1
    (error,) = errors_of(socket)
    assert error["code"] == "rate_limited"
    assert error["client_msg_id"] == "m2"
    assert error["retry_after_s"] >= 1


async def test_a_malformed_frame_gets_an_error_frame_and_the_next_one_is_read() -> None:
    socket = socket_with(rate_per_s=100, burst=100)
    await socket._on_frame("{")
    await socket._on_frame('{"type": "resume", "cursors": {"c": 4}}')
    (error,) = errors_of(socket)
    assert error["code"] == "invalid_frame"
    assert ResumeItem({"c": 4}) in socket.box.items


async def test_typing_in_a_conversation_one_is_not_in_is_refused() -> None:
    socket = socket_with(rate_per_s=100, burst=100)
    await socket._on_frame('{"type": "typing", "conversation_id": "c"}')
    (error,) = errors_of(socket)
    assert (error["code"], error["conversation_id"]) == ("not_a_member", "c")
