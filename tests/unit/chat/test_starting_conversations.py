"""Rules for starting direct and group conversations."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from domain.chat.commands import StartConversation
from domain.chat.conversations import (
    MAX_GROUP_MEMBERS,
    MAX_TITLE_CHARS,
    already_journaled,
    decide,
    direct_conversation_id,
)
from domain.chat.errors import (
    ConversationExistsError,
    InvalidConversationIdError,
    InvalidKindError,
    InvalidMembersError,
    TitleTooLongError,
    TooManyMembersError,
)
from domain.chat.events import DIRECT, ConversationStarted

from .histories import (
    ANN_BOB,
    T0,
    direct_started,
    given,
    group_started,
    start_direct,
    start_group,
)


def test_a_group_starts_at_version_1_with_its_members_sorted() -> None:
    events = decide(None, start_group("cat", "bob", creator="ann"), now=T0)

    assert events == [
        ConversationStarted(
            conversation_id="g1",
            version=1,
            command_id="start-g1",
            creator="ann",
            kind="group",
            title="crew",
            members=("ann", "bob", "cat"),
            started_at=T0,
        )
    ]


def test_the_creator_is_a_member_even_unlisted_and_repeated_names_count_once() -> None:
    events = decide(None, start_group("bob", "bob", "cat", "ann", creator="ann"), now=T0)

    assert isinstance(events[0], ConversationStarted)
    assert events[0].members == ("ann", "bob", "cat")


def test_a_direct_conversation_lives_at_its_pairs_id() -> None:
    events = decide(None, start_direct("ann", "bob"), now=T0)

    assert events == [
        ConversationStarted(
            conversation_id=ANN_BOB,
            version=1,
            command_id="start-dm-ann-bob",
            creator="ann",
            kind=DIRECT,
            title=None,
            members=("ann", "bob"),
            started_at=T0,
        )
    ]


def test_the_direct_id_is_the_same_in_either_order_and_differs_between_pairs() -> None:
    assert direct_conversation_id("ann", "bob") == direct_conversation_id("bob", "ann")
    assert direct_conversation_id("ann", "bob") != direct_conversation_id("ann", "cat")
    assert direct_conversation_id("a", "bc") != direct_conversation_id("ab", "c")
    assert direct_conversation_id("ann", "bob").startswith("dm:")


@pytest.mark.parametrize("asker", ["ann", "bob"])
def test_asking_again_for_the_same_pair_returns_the_original_start(asker: str) -> None:
    other = "bob" if asker == "ann" else "ann"
    state = given(direct_started("ann", "bob"))

    events = decide(
        state, start_direct(asker, other, command_id="again"), now=T0 + timedelta(days=1)
    )

    assert events == [direct_started("ann", "bob")]
    assert already_journaled(state, events)


def test_a_redelivered_start_returns_its_original_events() -> None:
    state = given(group_started())

    events = decide(state, start_group(), now=T0 + timedelta(hours=1))

    assert events == [group_started()]
    assert already_journaled(state, events)


def test_conversation_exists_when_a_group_id_is_taken() -> None:
    state = given(group_started())

    with pytest.raises(ConversationExistsError) as refused:
        decide(state, start_group(command_id="another"), now=T0)

    assert refused.value.code == "conversation_exists"


def test_invalid_kind() -> None:
    bad = replace(start_group(), kind="channel")

    with pytest.raises(InvalidKindError) as refused:
        decide(None, bad, now=T0)

    assert refused.value == InvalidKindError(kind="channel")
    assert refused.value.code == "invalid_kind"


@pytest.mark.parametrize(
    ("creator", "members", "kind"),
    [
        ("ann", ("ann",), "direct"),
        ("ann", ("bob", "cat"), "direct"),
        ("ann", (), "group"),
        ("ann", ("ann",), "group"),
        ("ann", ("bob", ""), "group"),
        ("", ("bob",), "direct"),
    ],
)
def test_invalid_members(creator: str, members: tuple[str, ...], kind: str) -> None:
    command = StartConversation(
        command_id="c1",
        conversation_id=direct_conversation_id(creator, members[0]) if members else "g1",
        creator=creator,
        members=members,
        kind=kind,
        title=None,
    )

    with pytest.raises(InvalidMembersError) as refused:
        decide(None, command, now=T0)

    assert refused.value.code == "invalid_members"


def test_invalid_conversation_id_when_a_direct_pair_is_not_at_its_id() -> None:
    misplaced = replace(start_direct("ann", "bob"), conversation_id="elsewhere")

    with pytest.raises(InvalidConversationIdError) as refused:
        decide(None, misplaced, now=T0)

    assert refused.value.expected == ANN_BOB
    assert refused.value.code == "invalid_conversation_id"


def test_a_group_may_have_500_members_but_not_501() -> None:
    members = tuple(f"user{i}" for i in range(MAX_GROUP_MEMBERS - 1))

    assert decide(None, start_group(*members, creator="ann"), now=T0)
    with pytest.raises(TooManyMembersError) as refused:
        decide(None, start_group(*members, "one_more", creator="ann"), now=T0)

    assert refused.value == TooManyMembersError(limit=500)
    assert refused.value.code == "too_many_members"


def test_title_too_long() -> None:
    assert decide(None, start_group(title="x" * MAX_TITLE_CHARS), now=T0)
    with pytest.raises(TitleTooLongError) as refused:
        decide(None, start_group(title="x" * (MAX_TITLE_CHARS + 1)), now=T0)

    assert refused.value.code == "title_too_long"


@pytest.mark.parametrize(
    "now", [datetime(2025, 3, 1), datetime(2025, 3, 1, tzinfo=timezone(timedelta(hours=2)))]
)
def test_now_must_be_utc(now: datetime) -> None:
    with pytest.raises(ValueError, match="UTC"):
        decide(None, start_group(), now=now)
