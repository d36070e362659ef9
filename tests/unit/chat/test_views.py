"""The conversation list and presence, folded from events."""

from __future__ import annotations

from domain.chat.events import BuddyAdded, UserBlocked
from domain.chat.views import (
    OFFLINE,
    ONLINE,
    BuddyPresence,
    ConversationSummary,
    buddy_list,
    fold_inboxes,
    presence_seen_by,
)

from .histories import (
    ANN_BOB,
    T0,
    at,
    direct_started,
    given_graph,
    group_started,
    joined,
    read,
    removed,
    sent,
)


def test_a_summary_counts_unread_messages_by_others_since_the_last_read() -> None:
    last = sent(3, "ann", version=5)
    inboxes = fold_inboxes(
        [
            group_started(),
            sent(1, "ann", version=2),
            sent(2, "bob", version=3),
            read("cat", 1, version=4),
            last,
        ]
    )

    assert inboxes.summary("g1", "cat") == ConversationSummary(
        conversation_id="g1",
        kind="group",
        title="crew",
        members=("ann", "bob", "cat"),
        last_seq=3,
        last_read_seq=1,
        unread=2,
        last_message=last,
        version=5,
        last_activity_at=T0,
    )


def test_ones_own_messages_are_never_unread() -> None:
    inboxes = fold_inboxes([group_started(), sent(1, "bob", version=2), sent(2, "ann", version=3)])

    summary = inboxes.summary("g1", "ann")

    assert summary is not None
    assert (summary.last_read_seq, summary.unread) == (2, 0)


def test_the_list_shows_the_most_recently_active_conversation_first() -> None:
    inboxes = fold_inboxes(
        [
            group_started(),
            direct_started("ann", "bob"),
            sent(1, "bob", version=2, sent_at=at(10), conversation_id=ANN_BOB),
            sent(1, "cat", version=2, sent_at=at(20)),
        ]
    )

    assert [s.conversation_id for s in inboxes.inbox("ann")] == ["g1", ANN_BOB]
    assert [s.conversation_id for s in inboxes.inbox("cat")] == ["g1"]
    assert inboxes.inbox("eve") == []


def test_leaving_drops_the_conversation_and_joining_adds_it_caught_up() -> None:
    inboxes = fold_inboxes(
        [
            group_started(),
            sent(1, "bob", version=2),
            removed("cat", version=3),
            joined("dan", version=4),
        ]
    )

    assert inboxes.inbox("cat") == []
    assert inboxes.summary("g1", "cat") is None
    [summary] = inboxes.inbox("dan")
    assert (summary.last_read_seq, summary.unread) == (1, 0)


def test_someone_who_blocked_you_looks_offline_to_you() -> None:
    eve = given_graph(
        UserBlocked(user="eve", version=1, command_id="b", blocked="ann", blocked_at=T0)
    )

    assert presence_seen_by("ann", eve, online=True) == OFFLINE
    assert presence_seen_by("bob", eve, online=True) == ONLINE
    assert presence_seen_by("bob", eve, online=False) == OFFLINE
    assert presence_seen_by("bob", None, online=True) == ONLINE


def test_the_buddy_list_shows_presence_as_each_buddy_lets_you_see_it() -> None:
    ann = given_graph(
        BuddyAdded(user="ann", version=1, command_id="1", buddy="eve", added_at=T0),
        BuddyAdded(user="ann", version=2, command_id="2", buddy="bob", added_at=T0),
    )
    eve = given_graph(
        UserBlocked(user="eve", version=1, command_id="b", blocked="ann", blocked_at=T0)
    )

    listed = buddy_list(ann, online={"bob", "eve"}, graphs={"eve": eve})

    assert listed == [BuddyPresence("bob", ONLINE), BuddyPresence("eve", OFFLINE)]
    assert buddy_list(None, online={"bob"}, graphs={}) == []
