"""Read-your-writes waiters are woken by the projectors' commits (LISTEN/NOTIFY on the real
PostgreSQL), not by a clock: with the guard interval set far beyond the test, a waiter still
returns as soon as a checkpoint is saved."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest

from api import settle
from api.settle import ProjectionWatch
from boxoffice.settings import Settings
from snapshots.checkpoints import load_checkpoints, save_checkpoints
from snapshots.database import conninfo

pytestmark = pytest.mark.integration


async def test_a_saved_checkpoint_wakes_a_waiter_at_once(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settle, "LISTENING_CHECK_S", 60.0)
    topic = f"settle-{uuid.uuid4().hex}"
    watch = ProjectionWatch(settings)
    watch.start()
    reads = 0
    try:
        async with asyncio.timeout(30):
            while not watch.listening:
                await asyncio.sleep(0.05)

        async with await psycopg.AsyncConnection.connect(
            conninfo(settings), autocommit=True
        ) as conn:

            async def read() -> dict[int, int]:
                nonlocal reads
                reads += 1
                return await load_checkpoints(conn, "settle-test", topic)

            async def commit_later() -> None:
                await asyncio.sleep(0.5)
                async with (
                    await psycopg.AsyncConnection.connect(
                        conninfo(settings), autocommit=True
                    ) as writer,
                    writer.transaction(),
                ):
                    await save_checkpoints(writer, "settle-test", topic, {0: 7})

            writer = asyncio.create_task(commit_later())
            loop = asyncio.get_running_loop()
            started = loop.time()
            try:
                found = await watch.until(read, lambda offsets: offsets.get(0) == 7, 50.0)
                took = loop.time() - started
                await writer
            finally:
                # The row names no journal: `boxoffice status` must not be asked about it.
                await conn.execute(
                    "DELETE FROM projection_offsets WHERE projection = 'settle-test'"
                )
    finally:
        await watch.stop()
    assert found == {0: 7}
    # Woken by the commit: far sooner than the 60 s guard, after a handful of reads (other
    # tests' batches on the same database may wake it too), not a poll every few ms.
    assert took < 20, took
    assert 2 <= reads < 200, reads


async def test_without_a_listener_waiters_poll(settings: Settings) -> None:
    watch = ProjectionWatch(settings)  # never started: nothing listens
    reads = 0

    async def read() -> int:
        nonlocal reads
        reads += 1
        return reads

    assert await watch.until(read, lambda n: n >= 3, 5.0) == 3
    assert reads == 3
