"""What travels on the topics: command envelopes, event records, replies.

The payloads inside are plain JSON objects made by a codec Registry from the domain's
dataclasses; the envelopes add what the pipe needs (ids, stream, time, outcome).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from producers.codec import DecodeError


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class CommandEnvelope:
    command_id: str
    stream_id: str
    type: str
    payload: dict[str, Any]
    issued_at: datetime = field(default_factory=utcnow)

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "command_id": self.command_id,
                "stream_id": self.stream_id,
                "type": self.type,
                "payload": self.payload,
                "issued_at": self.issued_at.isoformat(),
            }
        )

    @staticmethod
    def decode(raw: bytes | None) -> CommandEnvelope:
        data = _object(raw)
        try:
            return CommandEnvelope(
                command_id=_str(data, "command_id"),
                stream_id=_str(data, "stream_id"),
                type=_str(data, "type"),
                payload=_dict(data, "payload"),
                issued_at=datetime.fromisoformat(_str(data, "issued_at")),
            )
        except ValueError as exc:
            raise DecodeError(str(exc)) from exc


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One event in an event journal: the stream's version after it, and what caused it."""

    stream_id: str
    version: int
    command_id: str
    recorded_at: datetime
    event: dict[str, Any]

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "stream_id": self.stream_id,
                "version": self.version,
                "command_id": self.command_id,
                "recorded_at": self.recorded_at.isoformat(),
                "event": self.event,
            }
        )

    @staticmethod
    def decode(raw: bytes | None) -> EventRecord:
        data = _object(raw)
        version = data.get("version")
        if not isinstance(version, int):
            raise DecodeError("version must be an integer")
        try:
            return EventRecord(
                stream_id=_str(data, "stream_id"),
                version=version,
                command_id=_str(data, "command_id"),
                recorded_at=datetime.fromisoformat(_str(data, "recorded_at")),
                event=_dict(data, "event"),
            )
        except ValueError as exc:
            raise DecodeError(str(exc)) from exc


@dataclass(frozen=True, slots=True)
class Reply:
    """The decider's answer to one command, for the caller waiting on it."""

    command_id: str
    stream_id: str
    ok: bool
    events: tuple[dict[str, Any], ...] = ()
    error: dict[str, Any] | None = None
    # True when the command id had been decided before: the events are the first outcome.
    duplicate: bool = False
    version: int = 0

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "command_id": self.command_id,
                "stream_id": self.stream_id,
                "ok": self.ok,
                "events": list(self.events),
                "error": self.error,
                "duplicate": self.duplicate,
                "version": self.version,
            }
        )

    @staticmethod
    def decode(raw: bytes | None) -> Reply:
        data = _object(raw)
        events = data.get("events", [])
        error = data.get("error")
        if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
            raise DecodeError("events must be a list of objects")
        if error is not None and not isinstance(error, dict):
            raise DecodeError("error must be an object")
        version = data.get("version", 0)
        return Reply(
            command_id=_str(data, "command_id"),
            stream_id=_str(data, "stream_id"),
            ok=bool(data.get("ok")),
            events=tuple(events),
            error=error,
            duplicate=bool(data.get("duplicate", False)),
            version=version if isinstance(version, int) else 0,
        )


def _object(raw: bytes | None) -> dict[str, Any]:
    if raw is None:
        raise DecodeError("empty message")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise DecodeError("a message must be a JSON object")
    return data


def _str(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise DecodeError(f"{key} must be a non-empty string")
    return value


def _dict(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise DecodeError(f"{key} must be an object")
    return value
