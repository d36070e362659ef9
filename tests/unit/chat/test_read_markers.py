"""Rules for read markers: they only move forward, within the messages that exist."""

from __future__ import annotations

import pytest

from domain.chat.conversations import already_journaled, decide
from domain.chat.errors import InvalidSeqError, NotAMemberError
from domain.chat.events import MessagesRead

from .histories import T0, at, given, group_started, mark_read, read, sent


def test_a_member_marks_messages_read() -> None:
    state = given(group_started(), sent(1, "ann", version=2), sent(2, "bob", version=3))

    events = decide(state, mark_read("cat", 2), now=at(7))

    assert events == [
        MessagesRead(
            conversation_id="g1",
            version=4,
            command_id="read-cat-2",
            user="cat",
            seq=2,
            read_at=at(7),
        )
    ]


@pytest.mark.parametrize("seq", [0, 1, 2])
def test_a_marker_never_moves_backwards(seq: int) -> None:
    state = given(
        group_started(),
        sent(1, "ann", version=2),
        sent(2, "bob", version=3),
        read("cat", 2, version=4),
    )

    assert decide(state, mark_read("cat", seq, command_id="late"), now=T0) == []
    assert state.last_read_seq("cat") == 2


def test_a_redelivered_mark_returns_its_original_event() -> None:
    state = given(group_started(), sent(1, "ann", version=2), read("cat", 1, version=3))

    events = decide(state, mark_read("cat", 1), now=at(30))

    assert events == [read("cat", 1, version=3)]
    assert already_journaled(state, events)


@pytest.mark.parametrize("seq", [-1, 3])
def test_invalid_seq_outside_the_messages_sent(seq: int) -> None:
    state = given(group_started(), sent(1, "ann", version=2), sent(2, "bob", version=3))

    with pytest.raises(InvalidSeqError) as refused:
        decide(state, mark_read("cat", seq), now=T0)

    assert refused.value == InvalidSeqError(seq=seq, last_seq=2)
    assert refused.value.code == "invalid_seq"


def test_only_members_mark_read() -> None:
    state = given(group_started(), sent(1, "ann", version=2))

    with pytest.raises(NotAMemberError):
        decide(state, mark_read("eve", 1), now=T0)


def test_sending_marks_everything_up_to_ones_own_message_read() -> None:
    state = given(
        group_started(),
        sent(1, "ann", version=2),
        sent(2, "bob", version=3),
        sent(3, "cat", version=4),
    )

    assert [state.last_read_seq(user) for user in ("ann", "bob", "cat")] == [1, 2, 3]
    assert decide(state, mark_read("bob", 2, command_id="again"), now=T0) == []
