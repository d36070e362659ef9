"""Rules for the message types themselves: what an adapter may rely on."""

from __future__ import annotations

import dataclasses
import types
import typing
from datetime import datetime

import pytest

from domain.ticketing.commands import COMMAND_TYPES
from domain.ticketing.errors import ERROR_TYPES, ERRORS_BY_CODE, SeatsUnavailableError
from domain.ticketing.events import EVENT_TYPES

CONTRACT_CODES = {
    "seats_unavailable",
    "zone_sold_out",
    "not_enough_seats",
    "unknown_seat",
    "show_not_found",
    "order_not_found",
    "order_not_held",
    "hold_expired",
    "not_order_owner",
    "order_not_paid",
    "invalid_show",
    "show_exists",
    "too_many_seats",
    "duplicate_seat",
    "invalid_quantity",
    "unknown_zone",
    "unknown_section",
}
SCALARS = (str, int, bool, datetime, type(None))


def _codec_friendly(hint: object) -> bool:
    """str, int, bool, datetime, None-unions, tuples of those or of frozen dataclasses, and
    optional frozen dataclasses (a show's queue)."""
    if hint in SCALARS:
        return True
    origin = typing.get_origin(hint)
    arguments = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return all(_codec_friendly(argument) or _is_message(argument) for argument in arguments)
    if origin is tuple and len(arguments) == 2 and arguments[1] is Ellipsis:
        item = arguments[0]
        return _codec_friendly(item) or _is_message(item)
    return False


def _is_message(cls: object) -> bool:
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        return False
    params = getattr(cls, "__dataclass_params__")  # noqa: B009 - not in the stubs
    hints = typing.get_type_hints(cls)
    return bool(params.frozen) and all(
        _codec_friendly(hints[field.name]) for field in dataclasses.fields(cls)
    )


@pytest.mark.parametrize(
    "cls", [*COMMAND_TYPES, *EVENT_TYPES, *ERROR_TYPES], ids=lambda c: c.__name__
)
def test_messages_are_frozen_dataclasses_of_codec_friendly_fields(cls: type) -> None:
    assert _is_message(cls)
    assert "__slots__" in vars(cls)


def test_every_event_carries_show_id_version_and_command_id() -> None:
    for cls in EVENT_TYPES:
        names = [field.name for field in dataclasses.fields(cls)]
        assert names[:3] == ["show_id", "version", "command_id"], cls


def test_every_command_carries_command_id_and_show_id() -> None:
    for cls in COMMAND_TYPES:
        names = [field.name for field in dataclasses.fields(cls)]
        assert names[:2] == ["command_id", "show_id"], cls


def test_message_class_names_are_unique_so_adapters_can_register_them_by_name() -> None:
    names = [cls.__name__ for cls in (*COMMAND_TYPES, *EVENT_TYPES)]
    assert len(names) == len(set(names))


def test_every_contract_error_code_has_exactly_one_error() -> None:
    codes = [error.code for error in ERROR_TYPES]
    assert len(codes) == len(set(codes))
    assert set(codes) >= CONTRACT_CODES
    assert all(ERRORS_BY_CODE[error.code] is error for error in ERROR_TYPES)


def test_errors_are_immutable_values() -> None:
    error = SeatsUnavailableError(seats=("A-1-1",))
    assert error == SeatsUnavailableError(seats=("A-1-1",))
    with pytest.raises(dataclasses.FrozenInstanceError):
        error.seats = ()  # type: ignore[misc]
    error.add_note("notes still work, for test reports")
    assert str(error) == "These seats are not available: A-1-1."
