"""Rules for buddies and blocks, one stream per user."""

from __future__ import annotations

import pytest

from domain.chat.commands import AddBuddy, BlockUser, RemoveBuddy, SocialCommand, UnblockUser
from domain.chat.errors import CannotBlockSelfError, CannotBuddySelfError, InvalidUserError
from domain.chat.events import BuddyAdded, BuddyRemoved, UserBlocked, UserUnblocked
from domain.chat.social import already_journaled, decide, evolve

from .histories import T0, at, given_graph


def buddy_added(buddy: str, *, version: int) -> BuddyAdded:
    return BuddyAdded(
        user="ann", version=version, command_id=f"add-{buddy}", buddy=buddy, added_at=T0
    )


def user_blocked(blocked: str, *, version: int) -> UserBlocked:
    return UserBlocked(
        user="ann", version=version, command_id=f"block-{blocked}", blocked=blocked, blocked_at=T0
    )


def test_adding_a_buddy() -> None:
    events = decide(None, AddBuddy(command_id="add-bob", user="ann", buddy="bob"), now=T0)

    assert events == [buddy_added("bob", version=1)]


def test_adding_a_buddy_one_already_has_changes_nothing() -> None:
    graph = given_graph(buddy_added("bob", version=1))

    assert decide(graph, AddBuddy(command_id="again", user="ann", buddy="bob"), now=T0) == []


def test_removing_a_buddy() -> None:
    graph = given_graph(buddy_added("bob", version=1))

    events = decide(graph, RemoveBuddy(command_id="rm", user="ann", buddy="bob"), now=at(1))

    assert events == [
        BuddyRemoved(user="ann", version=2, command_id="rm", buddy="bob", removed_at=at(1))
    ]
    assert not evolve(graph, events[0]).is_buddy("bob")


def test_removing_someone_who_is_not_a_buddy_changes_nothing() -> None:
    assert decide(None, RemoveBuddy(command_id="rm", user="ann", buddy="bob"), now=T0) == []


def test_blocking_and_unblocking() -> None:
    graph = given_graph(user_blocked("eve", version=1))
    assert graph.has_blocked("eve")

    events = decide(graph, UnblockUser(command_id="ub", user="ann", blocked="eve"), now=at(2))

    assert events == [
        UserUnblocked(user="ann", version=2, command_id="ub", blocked="eve", unblocked_at=at(2))
    ]
    assert not evolve(graph, events[0]).has_blocked("eve")


def test_blocking_is_idempotent() -> None:
    graph = given_graph(user_blocked("eve", version=1))

    assert decide(graph, BlockUser(command_id="again", user="ann", blocked="eve"), now=T0) == []
    assert decide(None, UnblockUser(command_id="u", user="ann", blocked="eve"), now=T0) == []


def test_a_block_leaves_the_buddy_list_alone() -> None:
    graph = given_graph(buddy_added("eve", version=1), user_blocked("eve", version=2))

    assert graph.is_buddy("eve")
    assert graph.has_blocked("eve")


def test_a_late_redelivery_returns_the_original_event_and_does_not_re_add() -> None:
    graph = given_graph(
        buddy_added("bob", version=1),
        BuddyRemoved(user="ann", version=2, command_id="rm", buddy="bob", removed_at=T0),
    )

    events = decide(graph, AddBuddy(command_id="add-bob", user="ann", buddy="bob"), now=T0)

    assert events == [buddy_added("bob", version=1)]
    assert already_journaled(graph, events)


def test_cannot_buddy_self() -> None:
    with pytest.raises(CannotBuddySelfError) as refused:
        decide(None, AddBuddy(command_id="c", user="ann", buddy="ann"), now=T0)

    assert refused.value.code == "cannot_buddy_self"


def test_cannot_block_self() -> None:
    with pytest.raises(CannotBlockSelfError) as refused:
        decide(None, BlockUser(command_id="c", user="ann", blocked="ann"), now=T0)

    assert refused.value.code == "cannot_block_self"


@pytest.mark.parametrize(
    "command",
    [
        AddBuddy(command_id="c", user="ann", buddy=""),
        RemoveBuddy(command_id="c", user="", buddy="bob"),
        BlockUser(command_id="c", user="ann", blocked=""),
        UnblockUser(command_id="c", user="ann", blocked=""),
    ],
)
def test_invalid_user(command: SocialCommand) -> None:
    with pytest.raises(InvalidUserError) as refused:
        decide(None, command, now=T0)

    assert refused.value.code == "invalid_user"
