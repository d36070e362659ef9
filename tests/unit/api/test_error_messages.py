"""Every domain error reaches people as a sentence: the reply carries `message` (or `str(err)`,
see processors.deciders.error_payload), and neither may be a Python repr such as
`unknown_seat(seats=('A-1-1',))`."""

from __future__ import annotations

import re
import types
import typing
from dataclasses import fields

import pytest

from domain.chat import errors as chat_errors
from domain.ticketing import errors as ticketing_errors
from processors.deciders import error_payload

SAMPLES: dict[str, object] = {
    "str": "A-1-1",
    "int": 3,
    "tuple[str, ...]": ("A-1-1", "A-1-2"),
}

ERRORS = [*ticketing_errors.ERROR_TYPES, *chat_errors.ERROR_TYPES]

REPR = re.compile(r"\w\(.*=|\(\w+=|\w+=['\"\[(]|\('|\['")


def sample(error_type: type[Exception]) -> Exception:
    hints = typing.get_type_hints(error_type)
    values = {}
    for f in fields(error_type):  # type: ignore[arg-type]
        hint = hints[f.name]
        # An optional field (`int | None`) is sampled with its value present.
        if isinstance(hint, types.UnionType):
            hint = next(arm for arm in typing.get_args(hint) if arm is not type(None))
        name = "tuple[str, ...]" if hint == tuple[str, ...] else getattr(hint, "__name__", "")
        values[f.name] = SAMPLES[name]
    return error_type(**values)


@pytest.mark.parametrize("error_type", ERRORS, ids=lambda t: t.__name__)
def test_every_domain_error_message_is_a_sentence(error_type: type[Exception]) -> None:
    error = sample(error_type)
    message = error_payload(error)["message"]
    assert message == str(error)
    assert message[:1].isupper() or message[:1].isdigit(), message
    assert message.endswith("."), message
    assert REPR.search(message) is None, message
    assert message.rstrip(".") != getattr(error, "code", None), message
    assert "_error" not in message and "Error" not in message, message
