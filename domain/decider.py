"""What every bounded context's decider is: `Decider[C, E, S]`, pure, no I/O.

A decider turns a command into events against the state of one stream (`decide`), folds
events into that state (`evolve`), starts every stream from `initial`, and names the stream a
command belongs to (`stream_of`). The transactional loop (processors/deciders.py), the replay
tool and the tests all run deciders through this one shape, whatever the context.

Duplicates, once for every context: a decider answers a command it has already decided with
the events it caused the first time, unchanged (each context keeps its own bounded memory of
them: `Show.outcome_of`, the conversation's send and command windows, the social graph's
command window). Such an answer is recognised by `already_journaled`: its first event's
version is not above the stream's. It must be answered again, never journaled again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Protocol, TypeVar


class Versioned(Protocol):
    """A stream's state or one of its events: both carry the stream's version."""

    @property
    def version(self) -> int: ...


class Addressed(Protocol):
    """A command: its id is the deduplication key."""

    @property
    def command_id(self) -> str: ...


C = TypeVar("C", bound=Addressed)
E = TypeVar("E", bound=Versioned)
# The state of one stream; `None` (the usual `initial`) is a stream nothing happened to yet.
S = TypeVar("S", bound=Versioned | None)


def version_of(state: Versioned | None) -> int:
    """The stream's version: how many events it has folded (0 for a fresh stream)."""
    return 0 if state is None else state.version


def already_journaled(state: Versioned | None, events: Sequence[Versioned]) -> bool:
    """Whether `decide` answered with events the journal already holds (a duplicate).

    The only duplicate check of the system: fresh events always start above the stream's
    version, an earlier answer never does.
    """
    return bool(events) and events[0].version <= version_of(state)


@dataclass(frozen=True)
class Decider(Generic[C, E, S]):
    """One bounded context's decider, declared once beside its domain."""

    name: str
    # The events `command` causes at `now` (an earlier answer for a duplicate), or a raised
    # error of `errors`. Never mutates the state.
    decide: Callable[[S, C, datetime], Sequence[E]]
    # The state after one more event; may update `state` in place and return it.
    evolve: Callable[[S, E], S]
    # The refusals `decide` raises on purpose: answered to the caller, never dead-lettered.
    errors: tuple[type[Exception], ...]
    # The stream a command is decided against (its Kafka key).
    stream_of: Callable[[C], str]
    initial: S
    # A command the decider gives itself as time passes (hold expiry), for one stream at
    # `now`; None for contexts that have none.
    timer: Callable[[str, S, datetime], C | None] | None = None

    def fold(self, events: Iterable[E]) -> S:
        """The state after `events`, from `initial`: what a replay of the journal yields."""
        state = self.initial
        for event in events:
            state = self.evolve(state, event)
        return state

    def is_duplicate(self, state: S, events: Sequence[E]) -> bool:
        """See `already_journaled`."""
        return already_journaled(state, events)
