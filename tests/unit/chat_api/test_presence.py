"""Who is online across instances: sockets here, signals from elsewhere, grace and expiry."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from api.chatpresence import BuddyPresence
from api.presence import PresenceBoard


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def board(clock: Clock) -> PresenceBoard:
    return PresenceBoard("here", grace_s=10, ttl_s=15, clock=clock)


def test_online_while_a_socket_is_open_and_for_the_grace_after_the_last_closes() -> None:
    clock = Clock()
    b = board(clock)
    assert b.opened("ann") is True
    assert b.opened("ann") is False  # a second tab: already held
    assert b.changes() == [("ann", True)]
    b.closed("ann")
    b.closed("ann")
    clock.now += 9
    assert b.release_due() == []
    assert b.is_online("ann")
    clock.now += 1
    assert b.release_due() == ["ann"]
    assert not b.is_online("ann")
    assert b.changes() == [("ann", False)]


def test_a_reconnect_within_the_grace_is_no_change() -> None:
    clock = Clock()
    b = board(clock)
    b.opened("ann")
    b.changes()
    b.closed("ann")
    clock.now += 5
    assert b.opened("ann") is False  # still held: nothing to announce
    clock.now += 20
    assert b.release_due() == []
    assert b.changes() == []
    assert b.held() == ["ann"]


def test_other_instances_count_until_their_heartbeats_stop() -> None:
    clock = Clock()
    b = board(clock)
    b.remote_online("there", ["bob", "cat"])
    assert b.changes() == [("bob", True), ("cat", True)]
    clock.now += 10
    b.remote_online("there", ["bob"])  # a heartbeat without cat would not drop her: TTL does
    clock.now += 6
    b.expire()
    assert b.changes() == [("cat", False)]
    assert b.is_online("bob")
    b.remote_offline("there", "bob")
    assert b.changes() == [("bob", False)]


def test_a_replayed_signal_counts_for_what_is_left_of_its_ttl() -> None:
    clock = Clock()
    b = board(clock)
    b.remote_online("there", ["old"], age_s=20)
    b.remote_online("there", ["recent"], age_s=10)
    assert not b.is_online("old")
    clock.now += 6
    b.expire()
    assert not b.is_online("recent")


def test_an_instance_that_leaves_takes_its_users_with_it_unless_held_elsewhere() -> None:
    clock = Clock()
    b = board(clock)
    b.opened("ann")
    b.remote_online("there", ["ann", "bob"])
    b.changes()
    b.remote_gone("there")
    assert b.changes() == [("bob", False)]
    assert b.is_online("ann")


def test_every_presence_signal_of_an_instance_is_keyed_by_the_instance() -> None:
    # One partition per instance: the others read its online, heartbeat and offline in the
    # order it sent them (a heartbeat read after an offline would hold the user online).
    sent: list[tuple[str, str, dict[str, Any]]] = []
    signals = SimpleNamespace(
        instance="api-1", send=lambda kind, key, body: sent.append((kind, key, body))
    )
    presence = BuddyPresence(cast(Any, None), {}, cast(Any, signals), cast(Any, None))
    presence.board = PresenceBoard("api-1", grace_s=0.0, ttl_s=15.0)
    presence.opened(cast(Any, SimpleNamespace(user="ann")))
    presence.tick(heartbeat=True)
    presence.closed("ann")
    presence.tick(heartbeat=False)
    assert [(kind, key) for kind, key, _ in sent] == [
        ("online", "api-1"),
        ("heartbeat", "api-1"),
        ("offline", "api-1"),
    ]
    assert [body.get("user") for kind, _, body in sent if kind != "heartbeat"] == ["ann", "ann"]
