"""The live chat socket's pure parts: reading client frames, and keeping each conversation's
messages in seq order with no gap and no repeat on one socket.

No I/O here: `api.chatlive` feeds these from the event hub and the history, the unit tests
feed them by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from api.errors import sentence
from api.text import BIGINT_MAX, text_problem
from domain.chat.conversations import MAX_CLIENT_MSG_ID_CHARS, MAX_TEXT_CHARS
from domain.chat.events import ConversationStarted, MessageSent
from snapshots.chat import MessageRow

MAX_CONVERSATION_ID_CHARS = 100
MAX_RESUME_CURSORS = 10_000


class FrameError(Exception):
    """A client frame the server cannot act on: answered with an error frame, socket kept."""

    def __init__(self, message: str, client_msg_id: str | None = None) -> None:
        super().__init__(message)
        self.code = "invalid_frame"
        self.message = message
        self.client_msg_id = client_msg_id


@dataclass(frozen=True, slots=True)
class SendFrame:
    conversation_id: str
    text: str
    client_msg_id: str


@dataclass(frozen=True, slots=True)
class TypingFrame:
    conversation_id: str


@dataclass(frozen=True, slots=True)
class ReadFrame:
    conversation_id: str
    seq: int


@dataclass(frozen=True, slots=True)
class ResumeFrame:
    cursors: Mapping[str, int]


ClientFrame = SendFrame | TypingFrame | ReadFrame | ResumeFrame


def client_msg_id_of(raw: str | bytes) -> str | None:
    """The frame's client_msg_id if it has a usable one, so even a refusal can name it."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if isinstance(data, dict):
        value = data.get("client_msg_id")
        if (
            isinstance(value, str)
            and 0 < len(value) <= MAX_CLIENT_MSG_ID_CHARS
            and text_problem(value) is None
        ):
            return value
    return None


def parse_client_frame(raw: str | bytes) -> ClientFrame:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise FrameError(f"a frame must be a JSON object: {exc}") from None
    if not isinstance(data, dict):
        raise FrameError("a frame must be a JSON object")
    client_msg_id = client_msg_id_of(raw)
    kind = data.get("type")
    try:
        match kind:
            case "send":
                return SendFrame(
                    conversation_id=_conversation_id(data),
                    text=_text(data),
                    client_msg_id=_string(data, "client_msg_id", MAX_CLIENT_MSG_ID_CHARS),
                )
            case "typing":
                return TypingFrame(conversation_id=_conversation_id(data))
            case "read":
                return ReadFrame(conversation_id=_conversation_id(data), seq=_seq(data, "seq"))
            case "resume":
                return ResumeFrame(cursors=_cursors(data))
            case _:
                raise FrameError(
                    "type must be one of 'send', 'typing', 'read', 'resume', not " + repr(kind)[:50]
                )
    except FrameError as exc:
        raise FrameError(exc.message, client_msg_id) from None


def _string(data: dict[str, Any], key: str, limit: int) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise FrameError(f"{key} must be a string of 1 to {limit} characters")
    problem = text_problem(value)
    if problem is not None:
        raise FrameError(f"{key} {problem}")
    return value


def _conversation_id(data: dict[str, Any]) -> str:
    return _string(data, "conversation_id", MAX_CONVERSATION_ID_CHARS)


def _text(data: dict[str, Any]) -> str:
    return _string(data, "text", MAX_TEXT_CHARS)


def _seq(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= BIGINT_MAX:
        raise FrameError(f"{key} must be a whole number from 0 to {BIGINT_MAX}")
    return value


def _cursors(data: dict[str, Any]) -> dict[str, int]:
    cursors = data.get("cursors")
    if not isinstance(cursors, dict):
        raise FrameError("cursors must be an object of conversation_id: last_seen_seq")
    if len(cursors) > MAX_RESUME_CURSORS:
        raise FrameError(f"at most {MAX_RESUME_CURSORS} cursors")
    checked: dict[str, int] = {}
    for conversation_id, seq in cursors.items():
        if not 0 < len(conversation_id) <= MAX_CONVERSATION_ID_CHARS:
            raise FrameError("a cursor's conversation_id is not valid")
        problem = text_problem(conversation_id)
        if problem is not None:
            raise FrameError(f"a cursor's conversation_id {problem}")
        if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= BIGINT_MAX:
            raise FrameError(
                f"the cursor of {conversation_id} must be a seq from 0 to {BIGINT_MAX}"
            )
        checked[conversation_id] = seq
    return checked


# -- server frames ----------------------------------------------------------------------------


def rfc3339(moment: datetime) -> str:
    """One spelling for every time we send, whichever path (reply, hub, history) it took."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def message_json(row: MessageRow) -> dict[str, Any]:
    return {
        "conversation_id": row.conversation_id,
        "seq": row.seq,
        "sender": row.sender,
        "text": row.text,
        "sent_at": rfc3339(row.sent_at),
        "client_msg_id": row.client_msg_id,
    }


def sent_json(event: MessageSent) -> dict[str, Any]:
    return message_json(
        MessageRow(
            event.conversation_id,
            event.seq,
            event.sender,
            event.text,
            event.sent_at,
            event.client_msg_id,
        )
    )


def conversation_json(
    conversation_id: str, kind: str, members: tuple[str, ...] | list[str], title: str | None
) -> dict[str, Any]:
    return {
        "conversation_id": conversation_id,
        "kind": kind,
        "members": sorted(members),
        "title": title,
    }


def started_json(event: ConversationStarted) -> dict[str, Any]:
    return conversation_json(event.conversation_id, event.kind, event.members, event.title)


def frame(kind: str, body: Mapping[str, Any]) -> str:
    return orjson.dumps({"type": kind, **body}).decode()


def error_frame(code: str, message: str, client_msg_id: str | None = None, **extra: Any) -> str:
    body: dict[str, Any] = {"code": code, "message": sentence(message)}
    if client_msg_id is not None:
        body["client_msg_id"] = client_msg_id
    body.update(extra)
    return frame("error", body)


# -- ordering ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Skip:
    """Already sent on this socket."""


@dataclass(frozen=True, slots=True)
class Send:
    """Next in line: send it."""


@dataclass(frozen=True, slots=True)
class Fill:
    """Messages ``after + 1 .. upto`` are missing: send them from the history first."""

    after: int
    upto: int


Plan = Skip | Send | Fill


class Sequencer:
    """Where one socket stands in each conversation.

    A conversation's starting point on a socket is the first message of it the socket is
    offered (it gets what is sent while it is connected, not the history), unless the client
    says where it stands with `resume`. From there messages go out strictly one after the
    other: a repeat is skipped, a jump is filled from the history first.
    """

    def __init__(self) -> None:
        self.cursors: dict[str, int] = {}
        self._floors: dict[str, int] = {}

    def offered(self, conversation_id: str, seq: int) -> None:
        """A live message reached the socket (queued or not): it fixes the start if none is."""
        if conversation_id not in self.cursors and conversation_id not in self._floors:
            self._floors[conversation_id] = seq - 1

    def position(self, conversation_id: str) -> int | None:
        """The last seq sent (or deemed sent) in the conversation; None before anything."""
        found = self.cursors.get(conversation_id)
        return found if found is not None else self._floors.get(conversation_id)

    def plan(self, conversation_id: str, seq: int) -> Plan:
        at = self.position(conversation_id)
        if at is None:
            at = seq - 1
        if seq <= at:
            return Skip()
        if seq == at + 1:
            return Send()
        return Fill(after=at, upto=seq - 1)

    def sent(self, conversation_id: str, seq: int) -> None:
        self.cursors[conversation_id] = seq
        self._floors.pop(conversation_id, None)

    def resume(self, conversation_id: str, last_seen: int) -> None:
        """The client has everything up to ``last_seen``: the next one it gets follows it."""
        self.cursors[conversation_id] = last_seen
        self._floors.pop(conversation_id, None)

    def forget(self, conversation_id: str) -> None:
        self.cursors.pop(conversation_id, None)
        self._floors.pop(conversation_id, None)
