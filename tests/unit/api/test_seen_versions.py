"""What an API process remembers of the decisions it has seen, for read-your-writes reads."""

from __future__ import annotations

from api.services import SeenVersions, UserShows


def test_a_stream_keeps_its_newest_version_and_the_stalest_streams_go_first() -> None:
    seen = SeenVersions(most=2)
    seen.saw("s1", 3)
    seen.saw("s1", 2)  # an older reply read late changes nothing
    seen.saw("s2", 1)
    seen.saw("s1", 4)
    seen.saw("s3", 1)
    assert (seen.get("s1"), seen.get("s2"), seen.get("s3")) == (4, 0, 1)


def test_a_user_keeps_the_newest_version_of_each_show_their_orders_changed_at() -> None:
    users = UserShows(most_users=2, shows_per_user=2)
    users.saw("ann", "s1", 5)
    users.saw("ann", "s1", 3)
    users.saw("ann", "s2", 1)
    assert users.get("ann") == {"s1": 5, "s2": 1}
    users.saw("ann", "s3", 7)  # the show changed longest ago is forgotten first
    assert users.get("ann") == {"s2": 1, "s3": 7}
    users.saw("bob", "s1", 2)
    users.saw("ann", "s1", 9)  # ann is the most recent user again
    users.saw("cat", "s1", 4)
    assert users.get("bob") == {}
    assert users.get("ann") == {"s3": 7, "s1": 9}
    assert users.get("nobody") == {}
