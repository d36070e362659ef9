"""JSON codec for the domain's frozen dataclasses, and the envelopes that carry them.

The domain stays free of serialisation concerns: this module walks dataclass fields and
their type hints. Every message names its class in "type", so a journal can be read
without knowing in advance what it holds.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

import orjson

T = TypeVar("T")


class DecodeError(ValueError):
    """A message that cannot be turned back into a known type: a poison message."""


class Registry:
    """Maps a message's "type" name to its dataclass."""

    def __init__(self, classes: Iterable[type[Any]] = ()) -> None:
        self._by_name: dict[str, type[Any]] = {}
        self._hints: dict[type[Any], dict[str, Any]] = {}
        self._fields: dict[type[Any], tuple[dataclasses.Field[Any], ...]] = {}
        for cls in classes:
            self.register(cls)

    def register(self, cls: type[Any]) -> None:
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"{cls!r} is not a dataclass")
        self._by_name[cls.__name__] = cls
        self._hints[cls] = typing.get_type_hints(cls)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def to_dict(self, obj: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"type": type(obj).__name__}
        for field in dataclasses.fields(obj):
            out[field.name] = _plain(getattr(obj, field.name))
        return out

    def encode(self, obj: Any) -> bytes:
        return orjson.dumps(self.to_dict(obj))

    def from_dict(self, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            raise DecodeError("a message must be an object with a string 'type'")
        cls = self._by_name.get(data["type"])
        if cls is None:
            raise DecodeError(f"unknown message type {data['type']!r}")
        return self._build(cls, data)

    def decode(self, raw: bytes) -> Any:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise DecodeError(f"not JSON: {exc}") from exc
        return self.from_dict(data)

    def _build(self, cls: type[Any], data: dict[str, Any]) -> Any:
        hints = self._hints.get(cls)
        if hints is None:
            hints = self._hints[cls] = typing.get_type_hints(cls)
        fields = self._fields.get(cls)
        if fields is None:
            fields = self._fields[cls] = dataclasses.fields(cls)
        kwargs: dict[str, Any] = {}
        for field in fields:
            if field.name in data:
                kwargs[field.name] = self._value(hints[field.name], data[field.name], field.name)
            elif (
                field.default is dataclasses.MISSING
                and field.default_factory is dataclasses.MISSING
            ):
                raise DecodeError(f"{cls.__name__}: missing field {field.name!r}")
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as exc:
            raise DecodeError(f"{cls.__name__}: {exc}") from exc

    def _value(self, hint: Any, value: Any, where: str) -> Any:
        # Most fields are plain strings and integers: answered before the typing introspection
        # below, which costs several times more (replay decodes every event of a journal).
        if (hint is str or hint is int) and type(value) is hint:
            return value
        origin = typing.get_origin(hint)
        if hint is Any:
            return value
        if origin in (typing.Union, types.UnionType):
            args = typing.get_args(hint)
            if value is None and type(None) in args:
                return None
            errors = []
            for arg in args:
                if arg is type(None):
                    continue
                try:
                    return self._value(arg, value, where)
                except DecodeError as exc:
                    errors.append(str(exc))
            raise DecodeError(f"{where}: no variant fits ({'; '.join(errors)})")
        if origin is typing.Literal:
            if value not in typing.get_args(hint):
                raise DecodeError(f"{where}: {value!r} is not one of {typing.get_args(hint)}")
            return value
        if origin is tuple:
            if not isinstance(value, list):
                raise DecodeError(f"{where}: expected a list")
            args = typing.get_args(hint)
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(self._value(args[0], v, where) for v in value)
            if len(args) != len(value):
                raise DecodeError(f"{where}: expected {len(args)} items")
            return tuple(self._value(a, v, where) for a, v in zip(args, value, strict=True))
        if origin is dict:
            if not isinstance(value, dict):
                raise DecodeError(f"{where}: expected an object")
            _, vt = typing.get_args(hint)
            return {k: self._value(vt, v, where) for k, v in value.items()}
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise DecodeError(f"{where}: expected an object")
            return self._build(hint, value)
        if hint is datetime:
            if not isinstance(value, str):
                raise DecodeError(f"{where}: expected an RFC 3339 string")
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError as exc:
                raise DecodeError(f"{where}: {exc}") from exc
            if parsed.tzinfo is None:
                raise DecodeError(f"{where}: a time needs a zone")
            return parsed
        if hint is bool:
            if not isinstance(value, bool):
                raise DecodeError(f"{where}: expected a boolean")
            return value
        if hint is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise DecodeError(f"{where}: expected an integer")
            return value
        if hint is float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise DecodeError(f"{where}: expected a number")
            return float(value)
        if hint is str:
            if not isinstance(value, str):
                raise DecodeError(f"{where}: expected a string")
            return value
        if isinstance(hint, type) and issubclass(hint, Enum):
            try:
                return hint(value)
            except ValueError as exc:
                raise DecodeError(f"{where}: {exc}") from exc
        raise DecodeError(f"{where}: cannot decode a {hint!r}")


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    return value
