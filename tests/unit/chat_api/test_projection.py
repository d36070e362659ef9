"""The chat projection's fold: rows from events, idempotent, with snapshots every N events."""

from __future__ import annotations

from domain.chat.events import (
    BuddyAdded,
    BuddyRemoved,
    ConversationEvent,
    UserBlocked,
    UserUnblocked,
)
from snapshots.chatprojection import ConversationChanges, ConversationFold, fold_social

from ..chat.histories import GROUP_ID, T0, group_started, joined, read, removed, sent


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def fold(every: int = 1000, every_s: float = 60.0) -> tuple[ConversationFold, Clock]:
    clock = Clock()
    return ConversationFold(every, every_s, clock=clock), clock


def test_events_become_messages_and_member_rows() -> None:
    f, _ = fold()
    changes = ConversationChanges()
    events: list[ConversationEvent] = [
        group_started(),
        sent(1, "ann", version=2),
        sent(2, "bob", version=3),
        read("cat", 2, version=4),
        joined("dan", version=5),
        removed("bob", version=6),
    ]
    for offset, event in enumerate(events):
        f.apply(changes, event, partition=0, offset=offset)
    assert [(m.seq, m.sender) for m in changes.messages] == [(1, "ann"), (2, "bob")]
    view = changes.views[GROUP_ID]
    assert (view.version, view.last_seq) == (6, 2)
    upserts, deletes = changes.member_rows()
    assert upserts == [(GROUP_ID, "ann", 1), (GROUP_ID, "cat", 2), (GROUP_ID, "dan", 2)]
    assert deletes == [(GROUP_ID, "bob")]
    assert changes.starts[GROUP_ID] == ("ann", T0)


def test_an_event_folded_before_changes_nothing() -> None:
    f, _ = fold()
    first = ConversationChanges()
    f.apply(first, group_started(), 0, 0)
    f.apply(first, sent(1, "ann", version=2), 0, 1)
    again = ConversationChanges()
    f.apply(again, sent(1, "ann", version=2), 0, 1)
    assert again.messages == []
    assert again.views == {}


def test_snapshots_come_every_n_events_exactly_and_after_t_seconds() -> None:
    f, clock = fold(every=3, every_s=5)
    changes = ConversationChanges()
    f.apply(changes, group_started(), 0, 0)
    for seq in range(1, 8):
        f.apply(changes, sent(seq, "ann", version=seq + 1), 0, seq)
    snapshots = f.due_snapshots()
    assert [(s.version, s.journal_offset) for s in snapshots] == [(3, 2), (6, 5)]
    assert snapshots[0].state["last_seq"] == 2
    assert snapshots[1].state["members"] == ["ann", "bob", "cat"]
    assert f.due_snapshots() == []  # version 8 is owed one, but not yet
    clock.now += 5
    (late,) = f.due_snapshots()
    assert (late.version, late.journal_offset) == (8, 7)
    assert f.due_snapshots() == []


def test_the_cache_forgets_old_views_but_never_one_owed_a_snapshot() -> None:
    f, _ = fold()
    f.cached = 1
    changes = ConversationChanges()
    f.apply(changes, group_started(conversation_id="g1"), 0, 0)
    f.apply(changes, group_started(conversation_id="g2"), 0, 1)
    f.trim()
    assert set(f.views) == {"g1", "g2"}
    f.due_snapshots()
    f.pending.clear()
    f.trim()
    assert list(f.views) == ["g2"]


def test_social_rows_end_as_the_journal_says_and_old_events_are_skipped() -> None:
    versions = {"bob": 1}
    changes = fold_social(
        versions,
        [
            BuddyAdded("ann", 1, "c1", "bob", T0),
            BuddyRemoved("ann", 2, "c2", "bob", T0),
            BuddyAdded("ann", 3, "c3", "bob", T0),
            UserBlocked("ann", 4, "c4", "eve", T0),
            UserBlocked("bob", 1, "c5", "eve", T0),  # bob is at version 1 already
            UserBlocked("cat", 1, "c6", "eve", T0),
            UserUnblocked("cat", 2, "c7", "eve", T0),
        ],
    )
    assert changes.buddies_added == [("ann", "bob", T0)]
    assert changes.buddies_removed == []
    assert changes.blocks_added == [("ann", "eve", T0)]
    assert changes.blocks_removed == [("cat", "eve")]
    assert changes.versions == {"ann": 4, "cat": 2}
    assert versions == {"ann": 4, "bob": 1, "cat": 2}
