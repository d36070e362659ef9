"""The projectors' poison rule (`processors.poison`) and the dead-letter headers, driven by a
small in-memory journal and a projector that commits rows and checkpoints together."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
import pytest

from processors.poison import Chunk, Origin, PoisonGuard
from producers.deadletters import REASON_LIMIT, dead_letter_headers, truncate

TOPIC = "journal"


@dataclass(frozen=True, order=True)
class Rec:
    partition: int
    offset: int


def origin(record: Rec) -> Origin:
    return Origin(TOPIC, record.partition, record.offset)


@dataclass
class Projector:
    """Applies chunks atomically: rows and checkpoints move together or not at all."""

    journal: dict[int, int]  # partition -> number of records
    fails: Callable[[Rec, int], Exception | None]  # (record, times tried) -> what it raises
    undecodable: set[Rec] = field(default_factory=set)
    batch: int = 7
    rows: list[Rec] = field(default_factory=list)
    checkpoints: dict[int, int] = field(default_factory=dict)
    tried: dict[Rec, int] = field(default_factory=dict)
    parked: list[tuple[Rec, str, int]] = field(default_factory=list)
    rewinds: int = 0
    slept: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.guard: PoisonGuard[Rec] = PoisonGuard(origin, self.park, sleep=self.sleep)

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)

    async def park(self, record: Rec, reason: str, attempts: int) -> None:
        self.parked.append((record, reason, attempts))

    def fetch(self) -> list[Rec]:
        """Up to `batch` records from the checkpoints, partitions interleaved."""
        out: list[Rec] = []
        for p, size in sorted(self.journal.items()):
            start = self.checkpoints.get(p, 0)
            out += [Rec(p, o) for o in range(start, min(size, start + self.batch))]
        return out

    async def apply(self, chunk: Chunk[Rec]) -> None:
        staged: list[Rec] = []
        for record in chunk.apply:
            if record in self.undecodable:
                await self.guard.park_now(record, "undecodable: garbage")
                continue
            times = self.tried[record] = self.tried.get(record, 0) + 1
            failure = self.fails(record, times)
            if failure is not None:
                raise failure
            staged.append(record)
        self.rows += staged
        for record in (*chunk.apply, *chunk.skip):
            self.checkpoints[record.partition] = record.offset + 1

    async def rewind(self) -> None:
        self.rewinds += 1

    async def run(self, rounds: int = 500) -> None:
        for _ in range(rounds):
            records = self.fetch()
            if not records:
                return
            await self.guard.run(records, self.apply, self.rewind)
        pytest.fail("the projector never caught up")

    def good(self, bad: set[Rec]) -> list[Rec]:
        return [Rec(p, o) for p, size in sorted(self.journal.items()) for o in range(size)] and [
            r for r in self.all() if r not in bad
        ]

    def all(self) -> list[Rec]:
        return [Rec(p, o) for p, size in sorted(self.journal.items()) for o in range(size)]


def by_partition(rows: list[Rec]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for row in rows:
        out.setdefault(row.partition, []).append(row.offset)
    return out


async def test_one_poison_record_is_retried_then_parked_alone_and_the_rest_applied_once() -> None:
    poison = Rec(0, 11)
    projector = Projector(
        {0: 30, 1: 25},
        lambda record, _: psycopg.DataError("NUL in a text") if record == poison else None,
    )
    await projector.run()

    assert projector.parked == [(poison, "DataError: NUL in a text", 3)]
    expected = [r for r in projector.all() if r != poison]
    assert sorted(projector.rows, key=lambda r: (r.partition, r.offset)) == expected
    # In journal order within each partition, each exactly once; the other partition and
    # everything after the poison went on.
    assert by_partition(projector.rows) == by_partition(expected)
    assert projector.checkpoints == {0: 30, 1: 25}
    # Tried as part of a batch, then alone: a bounded number of times in all.
    assert projector.tried[poison] == 6
    assert projector.rewinds == 6


async def test_connection_loss_is_retried_without_bound_and_never_parks() -> None:
    flaky = Rec(1, 3)
    projector = Projector(
        {0: 10, 1: 10},
        lambda record, times: (
            psycopg.OperationalError("server closed the connection")
            if record == flaky and times <= 20
            else None
        ),
    )
    await projector.run()

    assert projector.parked == []
    assert sorted(projector.rows, key=lambda r: (r.partition, r.offset)) == projector.all()
    assert projector.tried[flaky] == 21
    # Backing off, up to its ceiling.
    assert max(projector.slept) == 5.0


async def test_a_record_that_does_not_decode_is_parked_once_even_when_its_batch_fails() -> None:
    garbage, poison = Rec(0, 2), Rec(0, 5)
    projector = Projector(
        {0: 12},
        lambda record, _: KeyError("seat") if record == poison else None,
        undecodable={garbage},
    )
    await projector.run()

    assert [(r, attempts) for r, _, attempts in projector.parked] == [(garbage, 1), (poison, 3)]
    assert projector.parked[1][1] == "KeyError: 'seat'"
    assert projector.rows == [Rec(0, o) for o in range(12) if o not in (2, 5)]
    assert projector.checkpoints == {0: 12}


async def test_several_poison_records_in_several_partitions_are_each_parked() -> None:
    bad = {Rec(0, 0), Rec(0, 6), Rec(1, 4), Rec(2, 19)}
    projector = Projector(
        {0: 20, 1: 20, 2: 20},
        lambda record, _: ValueError("no") if record in bad else None,
        batch=5,
    )
    await projector.run()

    assert sorted(r for r, _, _ in projector.parked) == sorted(bad)
    assert all(attempts == 3 for _, _, attempts in projector.parked)
    assert by_partition(projector.rows) == by_partition(
        [r for r in projector.all() if r not in bad]
    )
    assert projector.checkpoints == {0: 20, 1: 20, 2: 20}


def test_plan_keeps_journal_order_and_cuts_around_suspects() -> None:
    guard: PoisonGuard[Rec] = PoisonGuard(origin, lambda *_: _never())
    guard._suspect[(TOPIC, 0)] = (2, 3)
    guard._parked.add(Origin(TOPIC, 0, 1))
    records = [Rec(0, o) for o in range(6)] + [Rec(1, 0)]
    chunks = guard.plan(records)
    assert [(c.apply, c.skip) for c in chunks] == [
        ([Rec(0, 0)], []),
        ([], [Rec(0, 1)]),
        ([Rec(0, 2)], []),
        ([Rec(0, 3)], []),
        ([Rec(0, 4), Rec(0, 5), Rec(1, 0)], []),
    ]
    assert [(c.apply, c.skip) for c in guard.plan([])] == [([], [])]


async def _never() -> None:
    raise AssertionError("nothing should be parked")


def test_dead_letter_headers_say_where_who_why_how_often_and_when() -> None:
    at = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    headers = dict(
        dead_letter_headers(
            consumer="chat",
            reason="DataError: " + "é" * 2000,
            attempts=3,
            topic="p.chat.events",
            partition=4,
            offset=17,
            failed_at=at,
            extra={"command-id": "c-1"},
        )
    )
    assert headers["origin-topic"] == b"p.chat.events"
    assert headers["origin-partition"] == b"4"
    assert headers["origin-offset"] == b"17"
    assert headers["origin-consumer"] == b"chat"
    assert headers["attempts"] == b"3"
    assert headers["failed-at"] == b"2030-01-02T03:04:05+00:00"
    assert headers["command-id"] == b"c-1"
    reason = headers["reason"]
    assert len(reason) <= REASON_LIMIT and reason.decode().endswith("...")
    # Where there is no message to point at (a command the decider gave itself), no origin.
    bare = dict(dead_letter_headers(consumer="deciders", reason="x"))
    assert set(bare) == {"origin-consumer", "reason", "attempts", "failed-at"}


def test_truncate_never_cuts_a_character_nor_fails_on_lone_surrogates() -> None:
    assert truncate("short") == "short"
    assert truncate("€" * 10, limit=10) == "€" * 2 + "..."
    assert truncate("bad \ud800 text") == "bad \\ud800 text"


async def test_a_faust_agent_retries_then_parks_and_never_raises(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from processors import deadletters

    parked: list[tuple[object, str, int]] = []

    async def park(event: object, reason: str, *, consumer: str, attempts: int) -> None:
        parked.append((event, reason, attempts))

    monkeypatch.setattr(deadletters, "park", park)
    event = object()
    calls = 0

    async def refused() -> None:
        nonlocal calls
        calls += 1
        raise ValueError("Invalid isoformat string: 'x'")

    await deadletters.apply_or_park(event, refused)  # type: ignore[arg-type]
    assert calls == 3
    assert parked == [(event, "ValueError: Invalid isoformat string: 'x'", 3)]

    flaky = 0

    async def reconnecting() -> None:
        nonlocal flaky
        flaky += 1
        if flaky <= 2:
            raise psycopg.OperationalError("server closed the connection")

    await deadletters.apply_or_park(event, reconnecting)  # type: ignore[arg-type]
    assert flaky == 3 and len(parked) == 1
