"""Commands and events stay within what a generic JSON codec can carry."""

from __future__ import annotations

import dataclasses
import types
import typing
from datetime import datetime
from typing import Any

import pytest

from domain.chat.commands import COMMAND_TYPES
from domain.chat.errors import ERROR_TYPES
from domain.chat.events import EVENT_TYPES

SCALARS: tuple[Any, ...] = (str, int, bool, datetime, type(None))
MESSAGE_TYPES = (*COMMAND_TYPES, *EVENT_TYPES)


def carriable(hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return all(carriable(arg) for arg in typing.get_args(hint))
    if origin is tuple:
        item, ellipsis = typing.get_args(hint)
        return ellipsis is Ellipsis and carriable(item)
    if dataclasses.is_dataclass(hint):
        return all(carriable(h) for h in typing.get_type_hints(hint).values())
    return hint in SCALARS


@pytest.mark.parametrize("cls", [*MESSAGE_TYPES, *ERROR_TYPES], ids=lambda c: c.__name__)
def test_fields_are_scalars_tuples_or_frozen_dataclasses(cls: type[Any]) -> None:
    params = cls.__dataclass_params__
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}

    assert params.frozen
    assert "__slots__" in vars(cls)
    assert all(carriable(hints[name]) for name in fields), hints


def test_class_names_are_unique_so_an_adapter_can_register_them_by_name() -> None:
    names = [cls.__name__ for cls in MESSAGE_TYPES]

    assert len(names) == len(set(names))


def test_every_event_names_its_stream_version_and_cause() -> None:
    for cls in EVENT_TYPES:
        fields = {f.name for f in dataclasses.fields(cls)}
        assert {"version", "command_id"} <= fields
        assert fields & {"conversation_id", "user"}


def test_every_command_carries_a_command_id() -> None:
    for cls in COMMAND_TYPES:
        assert "command_id" in {f.name for f in dataclasses.fields(cls)}
