"""Direct sends' members and blocks kept in memory: used only when current, kept current from
the social journal in order, dropped at a gap."""

from __future__ import annotations

from datetime import UTC, datetime

from api.directs import DirectPeers
from domain.chat.events import BuddyAdded, UserBlocked, UserUnblocked

AT = datetime(2026, 12, 1, tzinfo=UTC)


def blocked(user: str, version: int, other: str) -> UserBlocked:
    return UserBlocked(
        user=user, version=version, command_id=f"c{version}", blocked=other, blocked_at=AT
    )


def test_the_other_member_is_known_only_to_a_member() -> None:
    peers = DirectPeers()
    peers.learn_members("dm:1", ("ann", "bob"))
    assert peers.other_member("dm:1", "ann") == "bob"
    assert peers.other_member("dm:1", "bob") == "ann"
    assert peers.other_member("dm:1", "eve") is None
    assert peers.other_member("dm:2", "ann") is None


def test_a_block_list_is_used_only_at_or_past_the_newest_version_seen() -> None:
    peers = DirectPeers()
    peers.learn_blocks("bob", 3, frozenset({"eve"}))
    assert peers.blocks("bob", at_least=3) == frozenset({"eve"})
    # This process has seen bob's stream at 4: the list read at 3 may miss that event.
    assert peers.blocks("bob", at_least=4) is None


def test_social_events_in_order_keep_the_list_current() -> None:
    peers = DirectPeers()
    peers.learn_blocks("bob", 3, frozenset())
    peers.social_event("bob", 4, blocked("bob", 4, "ann"))
    assert peers.blocks("bob", at_least=4) == frozenset({"ann"})
    # Any event of the stream moves the version on, not only blocks.
    buddy = BuddyAdded(user="bob", version=5, command_id="c5", buddy="cat", added_at=AT)
    peers.social_event("bob", 5, buddy)
    assert peers.blocks("bob", at_least=5) == frozenset({"ann"})
    peers.social_event(
        "bob",
        6,
        UserUnblocked(user="bob", version=6, command_id="c6", blocked="ann", unblocked_at=AT),
    )
    assert peers.blocks("bob", at_least=6) == frozenset()
    # An event already folded changes nothing.
    peers.social_event("bob", 4, blocked("bob", 4, "ann"))
    assert peers.blocks("bob", at_least=6) == frozenset()


def test_a_gap_in_the_stream_drops_the_list() -> None:
    peers = DirectPeers()
    peers.learn_blocks("bob", 3, frozenset())
    peers.social_event("bob", 5, blocked("bob", 5, "ann"))
    assert peers.blocks("bob", at_least=0) is None
    # An older read never replaces a newer list.
    peers.learn_blocks("bob", 7, frozenset({"ann"}))
    peers.learn_blocks("bob", 6, frozenset())
    assert peers.blocks("bob", at_least=7) == frozenset({"ann"})


def test_the_least_recently_used_entries_go_first() -> None:
    peers = DirectPeers(most=2)
    peers.learn_members("dm:1", ("a", "b"))
    peers.learn_members("dm:2", ("c", "d"))
    assert peers.other_member("dm:1", "a") == "b"  # dm:1 is now the most recent
    peers.learn_members("dm:3", ("e", "f"))
    assert peers.other_member("dm:2", "c") is None
    assert peers.other_member("dm:1", "a") == "b"
