"""The social-graph decider: one stream per user, holding their buddies and blocks.

Commands are idempotent by meaning: adding a buddy one already has, removing one they
don't, blocking the blocked or unblocking the unblocked changes nothing and returns no
events. A redelivered command (same ``command_id``, within the last ``COMMAND_WINDOW``)
returns the events it caused the first time, which ``already_journaled`` recognises,
so a buddy removed in between is not re-added by a late redelivery. A command that
changed nothing leaves no event, hence no trace, and a redelivery of it is decided
afresh.

Blocks are read by other streams' adapters: a conversation's writer cannot see them,
so the adapter asks each direct partner's graph ``has_blocked(sender)`` and passes the
answer in ``SendMessage.sender_blocked_by``; presence views ask the same question.

``evolve`` updates the state in place and returns it, like the conversation decider:
the stream's single writer owns it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import assert_never

from domain.chat.commands import AddBuddy, BlockUser, RemoveBuddy, SocialCommand, UnblockUser
from domain.chat.errors import CannotBlockSelfError, CannotBuddySelfError, InvalidUserError
from domain.chat.events import (
    BuddyAdded,
    BuddyRemoved,
    SocialEvent,
    UserBlocked,
    UserUnblocked,
    require_utc,
)

# The duplicate check is written once for every context; re-exported (mypy's explicit
# `as` form) for the callers that look for it here.
from domain.decider import already_journaled as already_journaled  # noqa: PLC0414

COMMAND_WINDOW = 1_000


@dataclass(slots=True)
class SocialGraph:
    user: str
    version: int = 0
    buddies: set[str] = field(default_factory=set)
    blocks: set[str] = field(default_factory=set)
    recent_commands: dict[str, tuple[SocialEvent, ...]] = field(default_factory=dict)
    """command_id -> its events, oldest first, at most ``COMMAND_WINDOW`` of them."""

    def is_buddy(self, other: str) -> bool:
        return other in self.buddies

    def has_blocked(self, other: str) -> bool:
        return other in self.blocks


def decide(state: SocialGraph | None, command: SocialCommand, now: datetime) -> list[SocialEvent]:
    require_utc(now)
    if state is not None and (earlier := state.recent_commands.get(command.command_id)):
        return list(earlier)
    graph = state if state is not None else SocialGraph(user=command.user)
    version = graph.version + 1
    match command:
        case AddBuddy(buddy=buddy):
            _require_names(command.user, buddy)
            if buddy == command.user:
                raise CannotBuddySelfError()
            if graph.is_buddy(buddy):
                return []
            return [
                BuddyAdded(
                    user=command.user,
                    version=version,
                    command_id=command.command_id,
                    buddy=buddy,
                    added_at=now,
                )
            ]
        case RemoveBuddy(buddy=buddy):
            _require_names(command.user, buddy)
            if not graph.is_buddy(buddy):
                return []
            return [
                BuddyRemoved(
                    user=command.user,
                    version=version,
                    command_id=command.command_id,
                    buddy=buddy,
                    removed_at=now,
                )
            ]
        case BlockUser(blocked=blocked):
            _require_names(command.user, blocked)
            if blocked == command.user:
                raise CannotBlockSelfError()
            if graph.has_blocked(blocked):
                return []
            return [
                UserBlocked(
                    user=command.user,
                    version=version,
                    command_id=command.command_id,
                    blocked=blocked,
                    blocked_at=now,
                )
            ]
        case UnblockUser(blocked=blocked):
            _require_names(command.user, blocked)
            if not graph.has_blocked(blocked):
                return []
            return [
                UserUnblocked(
                    user=command.user,
                    version=version,
                    command_id=command.command_id,
                    blocked=blocked,
                    unblocked_at=now,
                )
            ]
        case _:
            assert_never(command)


def evolve(state: SocialGraph | None, event: SocialEvent) -> SocialGraph:
    """Fold ``event`` into ``state`` in place. Total: set operations never fail."""
    if state is None:
        state = SocialGraph(user=event.user)
    state.version = event.version
    match event:
        case BuddyAdded():
            state.buddies.add(event.buddy)
        case BuddyRemoved():
            state.buddies.discard(event.buddy)
        case UserBlocked():
            state.blocks.add(event.blocked)
        case UserUnblocked():
            state.blocks.discard(event.blocked)
        case _:
            assert_never(event)
    commands = state.recent_commands
    commands[event.command_id] = (*commands.get(event.command_id, ()), event)
    while len(commands) > COMMAND_WINDOW:
        del commands[next(iter(commands))]
    return state


def fold(events: Sequence[SocialEvent]) -> SocialGraph | None:
    """The graph after ``events``, from nothing: what a replay of the journal yields."""
    state: SocialGraph | None = None
    for event in events:
        state = evolve(state, event)
    return state


def _require_names(*names: str) -> None:
    if not all(names):
        raise InvalidUserError()
