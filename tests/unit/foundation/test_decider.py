"""Every context decides through one `Decider` shape, declared once, with one duplicate check."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.chat.commands import AddBuddy, RemoveBuddy, StartConversation
from domain.chat.declaration import CONVERSATION_DECIDER, SOCIAL_DECIDER
from domain.decider import already_journaled, version_of
from domain.ticketing.commands import CreateShow, PlaceHold
from domain.ticketing.declaration import DECIDER as TICKETING
from domain.ticketing.errors import ShowNotFoundError
from domain.ticketing.venue import Section
from processors.deciders import all_specs
from producers.contexts import DECIDED

T0 = datetime(2030, 1, 1, 12, tzinfo=UTC)


def test_the_loop_serves_every_declared_context_on_topics_of_its_own() -> None:
    assert [spec.name for spec in all_specs()] == ["ticketing", "conversations", "social"]
    topics = [t.suffix for c in DECIDED for t in (c.commands, c.events, c.rejections)]
    assert len(set(topics)) == len(topics)


def test_each_context_decodes_only_its_own_messages() -> None:
    conversations, social = DECIDED[1].registry, DECIDED[2].registry
    start = StartConversation("c1", "conv-1", "ann", ("ann", "bob", "eve"), "group", "Team")
    buddy = AddBuddy("c2", "ann", "bob")
    assert conversations.from_dict(conversations.to_dict(start)) == start
    assert social.from_dict(social.to_dict(buddy)) == buddy
    assert "AddBuddy" not in conversations
    assert "StartConversation" not in social


def test_a_redelivery_is_the_first_answer_and_the_one_check_calls_it_a_duplicate() -> None:
    decider = SOCIAL_DECIDER
    add = AddBuddy(command_id="add", user="ann", buddy="bob")
    state = decider.initial
    first = decider.decide(state, add, T0)
    assert decider.stream_of(add) == "ann"
    assert not decider.is_duplicate(state, first)
    state = decider.fold(first)
    removed = decider.decide(state, RemoveBuddy("rm", "ann", "bob"), T0)
    for event in removed:
        state = decider.evolve(state, event)

    again = decider.decide(state, add, T0 + timedelta(minutes=5))

    assert again == first
    assert decider.is_duplicate(state, again)
    assert version_of(state) == 2


def test_ticketing_decides_through_the_same_shape() -> None:
    create = CreateShow(
        command_id="create",
        show_id="s1",
        organizer="olga",
        name="Opera",
        starts_at=T0 + timedelta(days=30),
        hold_seconds=600,
        sections=(Section("A", 2, 2, 5000),),
        zones=(),
    )
    created = TICKETING.decide(TICKETING.initial, create, T0)
    show = TICKETING.fold(created)
    assert TICKETING.stream_of(create) == "s1"
    assert TICKETING.is_duplicate(show, TICKETING.decide(show, create, T0))
    hold = PlaceHold.of_seats(
        command_id="h", show_id="s1", user="ann", order_id="o1", seats=("A-1-1",)
    )
    show = TICKETING.evolve(show, TICKETING.decide(show, hold, T0)[0])
    assert TICKETING.timer is not None
    assert TICKETING.timer("s1", show, T0) is None
    expire = TICKETING.timer("s1", show, T0 + timedelta(seconds=601))
    assert expire is not None and expire.command_id == "expire:s1:2"
    with pytest.raises(TICKETING.errors):
        TICKETING.decide(TICKETING.initial, hold, T0)
    with pytest.raises(ShowNotFoundError):
        TICKETING.decide(TICKETING.initial, hold, T0)


def test_nothing_decided_is_never_a_duplicate() -> None:
    assert not already_journaled(None, [])
    assert not CONVERSATION_DECIDER.is_duplicate(None, [])
    assert version_of(None) == 0
