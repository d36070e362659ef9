"""JSON codec for the domain's frozen dataclasses, and the envelopes that carry them.

The domain stays free of serialisation concerns: this module walks dataclass fields and
their type hints. Every message names its class in "type", so a journal can be read
without knowing in advance what it holds.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Iterable
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
        self._builders: dict[type[Any], Callable[[dict[str, Any]], Any]] = {}
        for cls in classes:
            self.register(cls)

    def register(self, cls: type[Any]) -> None:
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"{cls!r} is not a dataclass")
        self._by_name[cls.__name__] = cls
        self._builder(cls)

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
        if not isinstance(data, dict):
            raise DecodeError("a message must be an object with a string 'type'")
        name = data.get("type")
        if not isinstance(name, str):
            raise DecodeError("a message must be an object with a string 'type'")
        cls = self._by_name.get(name)
        if cls is None:
            raise DecodeError(f"unknown message type {name!r}")
        return self._build(cls, data)

    def decode(self, raw: bytes) -> Any:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise DecodeError(f"not JSON: {exc}") from exc
        return self.from_dict(data)

    def _build(self, cls: type[Any], data: dict[str, Any]) -> Any:
        build = self._builders.get(cls)
        if build is None:
            build = self._builder(cls)
        return build(data)

    def _builder(self, cls: type[Any]) -> Callable[[dict[str, Any]], Any]:
        """`cls` from a JSON object: a function written for this class alone, as `dataclasses`
        writes `__init__`, one straight line per field. Replay decodes every event of every
        journal, and a generic loop over the fields cost about twice as much.

        A field's JSON value of its exact type (most are plain strings and integers) is kept
        as it is; any other goes through the field's converter, which checks it and says
        where it does not fit."""
        hints = typing.get_type_hints(cls)
        name = cls.__name__
        scope: dict[str, Any] = {"cls": cls, "_MISSING": _MISSING, "DecodeError": DecodeError}
        lines = ["def build(data):", "    get = data.get"]
        arguments, optional = [], []
        for n, field in enumerate(dataclasses.fields(cls)):
            hint = hints[field.name]
            scope[f"c{n}"] = self._converter(hint)
            value, where = f"v{n}", repr(field.name)
            fast = "str" if hint is str else "int" if hint is int else None
            lines.append(f"    {value} = get({where}, _MISSING)")
            if (
                field.default is dataclasses.MISSING
                and field.default_factory is dataclasses.MISSING
            ):
                missing = f"{name}: missing field {field.name!r}"
                lines += [
                    f"    if type({value}) is not {fast}:" if fast else "    if True:",
                    f"        if {value} is _MISSING:",
                    f"            raise DecodeError({missing!r})",
                    f"        {value} = c{n}({value}, {where})",
                ]
                arguments.append(f"{field.name}={value}")
            else:
                fits = f" and type({value}) is not {fast}" if fast else ""
                lines += [
                    f"    if {value} is not _MISSING{fits}:",
                    f"        {value} = c{n}({value}, {where})",
                ]
                optional.append((field.name, value))
        if optional:
            lines.append("    kwargs = {}")
            for field_name, value in optional:
                lines += [
                    f"    if {value} is not _MISSING:",
                    f"        kwargs[{field_name!r}] = {value}",
                ]
            arguments.append("**kwargs")
        lines += [
            "    try:",
            f"        return cls({', '.join(arguments)})",
            "    except (TypeError, ValueError) as exc:",
            f"        raise DecodeError({name + ': '!r} + str(exc)) from exc",
        ]
        # Written from the field names (identifiers) and the class's own hints only.
        exec("\n".join(lines), scope)
        builder: Callable[[dict[str, Any]], Any] = scope["build"]
        self._builders[cls] = builder
        return builder

    def _converter(self, hint: Any) -> _Convert:
        """A function checking and converting one JSON value to `hint`, DecodeError saying
        where when it does not fit."""
        if hint is Any:
            return _keep
        origin = typing.get_origin(hint)
        if origin in (typing.Union, types.UnionType):
            return self._union(hint)
        if origin is typing.Literal:
            allowed = typing.get_args(hint)

            def literal(value: Any, where: str) -> Any:
                if value not in allowed:
                    raise DecodeError(f"{where}: {value!r} is not one of {allowed}")
                return value

            return literal
        if origin is tuple:
            return self._tuple(typing.get_args(hint))
        if origin is dict:
            item = self._converter(typing.get_args(hint)[1])

            def mapping(value: Any, where: str) -> Any:
                if not isinstance(value, dict):
                    raise DecodeError(f"{where}: expected an object")
                return {k: item(v, where) for k, v in value.items()}

            return mapping
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            cls = hint

            def nested(value: Any, where: str) -> Any:
                if not isinstance(value, dict):
                    raise DecodeError(f"{where}: expected an object")
                return self._build(cls, value)

            return nested
        if hint is datetime:
            return _datetime
        if hint is bool:
            return _bool
        if hint is int:
            return _int
        if hint is float:
            return _float
        if hint is str:
            return _str
        if isinstance(hint, type) and issubclass(hint, Enum):
            enum = hint

            def member(value: Any, where: str) -> Any:
                try:
                    return enum(value)
                except ValueError as exc:
                    raise DecodeError(f"{where}: {exc}") from exc

            return member

        def undecodable(value: Any, where: str) -> Any:
            raise DecodeError(f"{where}: cannot decode a {hint!r}")

        return undecodable

    def _union(self, hint: Any) -> _Convert:
        args = typing.get_args(hint)
        optional = type(None) in args
        variants = [
            (arg if arg is str or arg is int else _NEVER, self._converter(arg))
            for arg in args
            if arg is not type(None)
        ]

        def union(value: Any, where: str) -> Any:
            if value is None and optional:
                return None
            errors = []
            for exact, convert in variants:
                if type(value) is exact:
                    return value
                try:
                    return convert(value, where)
                except DecodeError as exc:
                    errors.append(str(exc))
            raise DecodeError(f"{where}: no variant fits ({'; '.join(errors)})")

        return union

    def _tuple(self, args: tuple[Any, ...]) -> _Convert:
        if len(args) == 2 and args[1] is Ellipsis:
            item_hint = args[0]
            item = self._converter(item_hint)
            if item_hint is str or item_hint is int:
                exact = item_hint

                def plain_items(value: Any, where: str) -> Any:
                    if type(value) is not list:
                        raise DecodeError(f"{where}: expected a list")
                    for v in value:
                        if type(v) is not exact:
                            item(v, where)  # raises, saying why
                    return tuple(value)

                return plain_items

            def items(value: Any, where: str) -> Any:
                if type(value) is not list:
                    raise DecodeError(f"{where}: expected a list")
                return tuple(item(v, where) for v in value)

            return items
        converters = [self._converter(arg) for arg in args]

        def fixed(value: Any, where: str) -> Any:
            if type(value) is not list:
                raise DecodeError(f"{where}: expected a list")
            if len(converters) != len(value):
                raise DecodeError(f"{where}: expected {len(converters)} items")
            return tuple(c(v, where) for c, v in zip(converters, value, strict=True))

        return fixed


# One field's converter: (JSON value, field name for messages) -> the value.
_Convert = Callable[[Any, str], Any]


class _Never:
    """The type no JSON value has: a union variant with no as-is fast path."""


_NEVER: type[Any] = _Never
# A field absent from the JSON object.
_MISSING = object()


def _keep(value: Any, where: str) -> Any:
    return value


def _datetime(value: Any, where: str) -> datetime:
    if not isinstance(value, str):
        raise DecodeError(f"{where}: expected an RFC 3339 string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise DecodeError(f"{where}: {exc}") from exc
    if parsed.tzinfo is None:
        raise DecodeError(f"{where}: a time needs a zone")
    return parsed


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise DecodeError(f"{where}: expected a boolean")
    return value


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DecodeError(f"{where}: expected an integer")
    return value


def _float(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DecodeError(f"{where}: expected a number")
    return float(value)


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise DecodeError(f"{where}: expected a string")
    return value


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
