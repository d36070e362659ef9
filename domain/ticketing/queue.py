"""The on-sale waiting room: who gets in when, as pure functions of position and time.

Fans who join before `opens_at` are early: at `opens_at` they are put in the order of
`sha256(seed + ":" + username)` (hex, ascending), which nobody could predict because the
seed stays private until then, and which anybody can check afterwards because it is then
published. Everyone who joins later follows, in journal order. The fan at position P is
admitted at `opens_at + (P - 1) * 60 / admit_per_minute` seconds and holds a pass for
`pass_seconds` from then. Nothing sweeps the queue: like a hold's expiry, admission and
pass expiry are read off the clock.

One choice where the contract is silent: a fan who joins after the time their position
would have been admitted is admitted on joining (`admitted_at` is never before
`joined_at`), so a late joiner always gets a whole pass rather than an expired one.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left, insort
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from domain.ticketing.venue import MAX_HOLD_SECONDS

QueueStatus = Literal["early", "waiting", "admitted", "expired"]

MAX_ADMIT_PER_MINUTE = 1_000_000
MIN_SEED_LENGTH = 16


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """A show's waiting room: opens at `opens_at`, lets `admit_per_minute` fans in per
    minute, each with a pass valid `pass_seconds`."""

    opens_at: datetime
    admit_per_minute: int
    pass_seconds: int


@dataclass(frozen=True, slots=True)
class QueuePlace:
    """Where a fan stands at some moment. Early fans have no position until `opens_at`."""

    status: QueueStatus
    position: int | None
    admitted_at: datetime | None
    pass_expires_at: datetime | None

    @property
    def has_pass(self) -> bool:
        return self.status == "admitted"


@dataclass(frozen=True, slots=True)
class QueueMember:
    """One fan in the queue. `late_index` is 1, 2, ... for later joiners, 0 if early."""

    user: str
    joined_at: datetime
    early: bool
    late_index: int
    version: int


def early_key(seed: str, username: str) -> str:
    """The key early joiners are ordered by (ascending)."""
    return hashlib.sha256(f"{seed}:{username}".encode()).hexdigest()


def early_order(seed: str, usernames: list[str]) -> list[str]:
    """The early joiners as the published seed orders them: anyone can recompute this."""
    return sorted(usernames, key=lambda name: early_key(seed, name))


def admission_at(spec: QueueSpec, position: int) -> datetime:
    """When position `position` (1-based) is admitted, by the contract's formula.

    Integer microseconds, so every reader of the journal computes the very same instant.
    """
    return spec.opens_at + timedelta(
        microseconds=(position - 1) * 60_000_000 // spec.admit_per_minute
    )


def place_at(
    spec: QueueSpec, position: int, joined_at: datetime, early: bool, now: datetime
) -> QueuePlace:
    """The place of the fan at `position` at `now`: status, admission time and pass expiry."""
    if early and now < spec.opens_at:
        return QueuePlace("early", None, None, None)
    admitted_at = admission_at(spec, position)
    if not early:
        admitted_at = max(admitted_at, joined_at)
    expires_at = admitted_at + timedelta(seconds=spec.pass_seconds)
    status: QueueStatus
    if now < admitted_at:
        status = "waiting"
    elif now < expires_at:
        status = "admitted"
    else:
        status = "expired"
    return QueuePlace(status, position, admitted_at, expires_at)


def spec_problem(spec: QueueSpec, seed: str) -> str | None:
    """Why this waiting room cannot be opened, or None when it can."""
    if spec.opens_at.tzinfo is None:
        return "queue.opens_at must carry a time zone"
    if not 1 <= spec.admit_per_minute <= MAX_ADMIT_PER_MINUTE:
        return f"queue.admit_per_minute must be 1..{MAX_ADMIT_PER_MINUTE}"
    if not 1 <= spec.pass_seconds <= MAX_HOLD_SECONDS:
        return f"queue.pass_seconds must be 1..{MAX_HOLD_SECONDS}"
    if len(seed) < MIN_SEED_LENGTH:
        return f"a queued show needs a random seed of at least {MIN_SEED_LENGTH} characters"
    return None


class WaitingRoom:
    """The queue of one show, folded from its QueueJoined events (in place, like Show)."""

    __slots__ = ("_early", "_members", "_seed", "spec")

    def __init__(self, spec: QueueSpec, seed: str) -> None:
        self.spec = spec
        self._seed = seed
        self._members: dict[str, QueueMember] = {}
        # The early joiners' keys, sorted: an early fan's position is its index + 1.
        self._early: list[str] = []

    def copy(self) -> WaitingRoom:
        twin = WaitingRoom(self.spec, self._seed)
        twin._members = dict(self._members)
        twin._early = list(self._early)
        return twin

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WaitingRoom):
            return NotImplemented
        return (self.spec, self._seed, self._members, self._early) == (
            other.spec,
            other._seed,
            other._members,
            other._early,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"WaitingRoom(opens_at={self.spec.opens_at.isoformat()}, size={len(self)})"

    def __len__(self) -> int:
        return len(self._members)

    # -- reading ----------------------------------------------------------------------------

    def seed(self, now: datetime) -> str | None:
        """The seed, published from `opens_at` on; None before (it must stay private)."""
        return self._seed if now >= self.spec.opens_at else None

    @property
    def early_count(self) -> int:
        return len(self._early)

    @property
    def late_count(self) -> int:
        return len(self._members) - len(self._early)

    @property
    def early_closed(self) -> bool:
        """Once anyone joined late, nobody joins early any more, so late positions hold."""
        return self.late_count > 0

    def member(self, user: str) -> QueueMember | None:
        return self._members.get(user)

    def position(self, user: str) -> int | None:
        """The fan's position (fixed from the moment it is known), or None if not queued.

        For an early fan this is the decider's knowledge; tell it to nobody before
        `opens_at` (`place` does not).
        """
        member = self._members.get(user)
        if member is None:
            return None
        if member.early:
            return bisect_left(self._early, early_key(self._seed, user)) + 1
        return self.early_count + member.late_index

    def place(self, user: str, now: datetime) -> QueuePlace | None:
        member = self._members.get(user)
        position = self.position(user)
        if member is None or position is None:
            return None
        return place_at(self.spec, position, member.joined_at, member.early, now)

    # -- changing (only evolve calls this) --------------------------------------------------

    def join(self, user: str, joined_at: datetime, early: bool, version: int) -> None:
        late_index = 0 if early else self.late_count + 1
        self._members[user] = QueueMember(user, joined_at, early, late_index, version)
        if early:
            insort(self._early, early_key(self._seed, user))
