"""Rules for adding and removing group members."""

from __future__ import annotations

import pytest

from domain.chat.commands import AddMember, RemoveMember
from domain.chat.conversations import MAX_GROUP_MEMBERS, already_journaled, decide
from domain.chat.errors import (
    AlreadyMemberError,
    InvalidMembersError,
    NotAGroupError,
    NotAMemberError,
    TooManyMembersError,
)
from domain.chat.events import MemberAdded, MemberRemoved

from .histories import (
    ANN_BOB,
    T0,
    at,
    direct_started,
    given,
    group_started,
    joined,
    remove,
    removed,
    sent,
)
from .histories import add as add_member


def test_a_member_adds_someone_to_a_group() -> None:
    state = given(group_started())

    events = decide(state, add_member("dan", actor="bob"), now=at(3))

    assert events == [
        MemberAdded(
            conversation_id="g1",
            version=2,
            command_id="add-dan",
            actor="bob",
            user="dan",
            added_at=at(3),
        )
    ]


def test_a_newcomer_starts_caught_up() -> None:
    state = given(
        group_started(),
        sent(1, "bob", version=2),
        sent(2, "cat", version=3),
        joined("dan", version=4),
    )

    assert state.is_member("dan")
    assert state.last_read_seq("dan") == 2


def test_a_member_removes_someone_and_their_read_marker_goes_with_them() -> None:
    state = given(group_started(), sent(1, "bob", version=2))

    events = decide(state, remove("bob", actor="ann"), now=at(1))

    assert events == [
        MemberRemoved(
            conversation_id="g1",
            version=3,
            command_id="remove-bob",
            actor="ann",
            user="bob",
            removed_at=at(1),
        )
    ]
    after = given(group_started(), sent(1, "bob", version=2), *events)
    assert not after.is_member("bob")
    assert "bob" not in after.read


def test_a_member_may_leave() -> None:
    state = given(group_started())

    events = decide(state, remove("cat"), now=T0)

    assert events == [
        MemberRemoved(
            conversation_id="g1",
            version=2,
            command_id="remove-cat",
            actor="cat",
            user="cat",
            removed_at=T0,
        )
    ]


def test_a_redelivered_add_returns_its_original_events_not_already_member() -> None:
    state = given(group_started(), joined("dan", version=2))

    events = decide(state, add_member("dan", command_id="add-dan-2"), now=at(9))

    assert events == [joined("dan", version=2)]
    assert already_journaled(state, events)


@pytest.mark.parametrize(
    "command",
    [
        add_member("dan", actor="ann", conversation_id=ANN_BOB),
        remove("bob", actor="ann", conversation_id=ANN_BOB),
    ],
    ids=["add", "remove"],
)
def test_not_a_group(command: AddMember | RemoveMember) -> None:
    state = given(direct_started("ann", "bob"))

    with pytest.raises(NotAGroupError) as refused:
        decide(state, command, now=T0)

    assert refused.value.code == "not_a_group"


@pytest.mark.parametrize(
    "command", [add_member("dan", actor="eve"), remove("bob", actor="eve")], ids=["add", "remove"]
)
def test_only_members_change_the_members(command: AddMember | RemoveMember) -> None:
    state = given(group_started())

    with pytest.raises(NotAMemberError) as refused:
        decide(state, command, now=T0)

    assert refused.value == NotAMemberError(conversation_id="g1", user="eve")


def test_removing_a_non_member_is_not_a_member() -> None:
    state = given(group_started())

    with pytest.raises(NotAMemberError) as refused:
        decide(state, remove("eve", actor="ann"), now=T0)

    assert refused.value == NotAMemberError(conversation_id="g1", user="eve")


def test_already_member() -> None:
    state = given(group_started())

    with pytest.raises(AlreadyMemberError) as refused:
        decide(state, add_member("bob"), now=T0)

    assert refused.value == AlreadyMemberError(conversation_id="g1", user="bob")
    assert refused.value.code == "already_member"


def test_adding_a_nameless_member_is_invalid_members() -> None:
    state = given(group_started())

    with pytest.raises(InvalidMembersError):
        decide(state, add_member(""), now=T0)


def test_a_full_group_takes_no_one_more() -> None:
    crowd = [f"user{i}" for i in range(MAX_GROUP_MEMBERS - 1)]
    state = given(group_started("ann", *crowd))

    with pytest.raises(TooManyMembersError) as refused:
        decide(state, add_member("late"), now=T0)

    assert refused.value.limit == MAX_GROUP_MEMBERS


def test_someone_who_left_may_be_added_again() -> None:
    state = given(group_started(), removed("bob", version=2))

    [event] = decide(state, add_member("bob", command_id="re-add"), now=T0)

    assert isinstance(event, MemberAdded)
    assert event.version == 3
