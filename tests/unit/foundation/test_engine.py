"""The projector engine's batch rule (`processors.engine.GuardedProjection`), without servers:
what the rows already hold is skipped, a redelivered batch changes nothing, and after a failed
chunk the same batch is retried from the checkpoint without applying anything twice."""

from __future__ import annotations

from collections.abc import Sequence

from boxoffice.settings import Settings
from processors.engine import Entry, GuardedProjection
from processors.poison import Chunk

TOPIC = "journal"


class Rows(GuardedProjection):
    """Rows keyed by offset and a checkpoint per partition, as PostgreSQL would hold them."""

    name = "test"
    topics = (TOPIC,)

    def __init__(self, checkpoints: dict[int, int], fail_at: int | None = None) -> None:
        async def park(entry: Entry, reason: str, attempts: int) -> None:
            self.parked.append(entry.offset)

        super().__init__(Settings(token_secret="s" * 32), park)
        self.checkpoints = checkpoints
        self.rows: list[tuple[int, int]] = []
        self.parked: list[int] = []
        self.fail_at = fail_at
        self.guard._sleep = self._no_sleep

    async def _no_sleep(self, _: float) -> None:
        return None

    async def _take_over(self, tp: tuple[str, int], first: int) -> tuple[list[Entry], int]:
        return [], self.checkpoints.get(tp[1], 0)

    async def _apply(self, chunk: Chunk[Entry]) -> None:
        # One transaction: the rows and the checkpoint, or nothing.
        applied = []
        for entry in chunk.apply:
            if entry.offset == self.fail_at:
                raise ValueError("a value PostgreSQL refuses")
            applied.append((entry.partition, entry.offset))
        for entry in (*chunk.apply, *chunk.skip):
            self.checkpoints[entry.partition] = entry.offset + 1
        self.rows.extend(applied)

    def _forget(self, partitions: Sequence[tuple[str, int]]) -> None:
        pass


def batch(partition: int, offsets: range) -> list[Entry]:
    return [Entry(TOPIC, partition, o, None, b"x") for o in offsets]


async def test_what_the_rows_hold_is_skipped_and_a_redelivery_changes_nothing() -> None:
    rows = Rows({0: 5})
    await rows.project(batch(0, range(0, 10)) + batch(1, range(0, 3)))
    assert rows.rows == [(0, o) for o in range(5, 10)] + [(1, o) for o in range(3)]
    await rows.project(batch(0, range(0, 10)))
    # A fresh engine (a crash) handed it all again: still nothing twice.
    again = Rows(rows.checkpoints)
    await again.project(batch(0, range(0, 10)) + batch(1, range(0, 3)))
    assert len(rows.rows) == 8 and again.rows == []


async def test_a_poison_entry_is_parked_and_the_rest_applied_once() -> None:
    rows = Rows({}, fail_at=4)
    await rows.project(batch(0, range(0, 10)))
    assert rows.parked == [4]
    assert rows.rows == [(0, o) for o in range(10) if o != 4]
    assert rows.checkpoints == {0: 10}
