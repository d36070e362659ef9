"""Errors are values with stable codes that survive the trip through any handler."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import pickle
import re
from collections.abc import Iterator

import pytest

from domain.chat.errors import ERROR_TYPES, ChatError, NotAMemberError, TextTooLongError

CODES_THE_API_RELIES_ON = {
    "not_a_member",
    "blocked",
    "conversation_not_found",
    "conversation_exists",
    "too_many_members",
    "invalid_members",
    "not_a_group",
    "already_member",
    "cannot_block_self",
    "cannot_buddy_self",
    "text_too_long",
    "empty_text",
    "invalid_seq",
}


def test_every_error_has_its_own_snake_case_code() -> None:
    codes = [error.code for error in ERROR_TYPES if error is not ChatError]

    assert len(codes) == len(set(codes))
    assert all(re.fullmatch(r"[a-z]+(_[a-z]+)*", code) for code in codes)
    assert set(codes) >= CODES_THE_API_RELIES_ON


def test_every_error_is_a_frozen_dataclass() -> None:
    for error in ERROR_TYPES:
        params = error.__dataclass_params__  # type: ignore[attr-defined]
        assert params.frozen, error
        assert issubclass(error, ChatError)


def test_fields_cannot_change() -> None:
    error = NotAMemberError(conversation_id="g1", user="eve")

    with pytest.raises(dataclasses.FrozenInstanceError):
        error.user = "ann"  # type: ignore[misc]


def test_an_error_raised_inside_a_context_manager_stays_itself() -> None:
    @contextlib.contextmanager
    def scope() -> Iterator[None]:
        yield

    with pytest.raises(NotAMemberError) as refused, scope():
        raise NotAMemberError(conversation_id="g1", user="eve")

    refused.value.add_note("handlers may annotate errors")
    assert refused.value.__notes__ == ["handlers may annotate errors"]


def test_an_error_pickles_and_copies_by_value() -> None:
    error = TextTooLongError(length=100_001, limit=100_000)

    assert pickle.loads(pickle.dumps(error)) == error
    assert copy.deepcopy(error) == error


def test_an_error_reads_as_its_message() -> None:
    error = NotAMemberError(conversation_id="g1", user="eve")

    assert str(error) == error.message == "eve is not a member of this conversation."
