"""Read-your-writes: wait until the projections show what this instance has seen decided.

A command's answer comes from the decider; the reads after it come from PostgreSQL, which the
projectors fill a moment later. Every projector batch NOTIFYs `PROJECTED_CHANNEL` in its
transaction (`snapshots.checkpoints`), which PostgreSQL delivers at commit; each API process
LISTENs on one connection of its own, and a waiter reads again when a batch has landed rather
than every few milliseconds. Should the listening connection be down, waiters poll instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import psycopg

from boxoffice.settings import Settings
from snapshots.checkpoints import PROJECTED_CHANNEL
from snapshots.database import conninfo

log = logging.getLogger(__name__)

T = TypeVar("T")

# While listening, a waiter still reads again this often: a guard, never the usual path.
LISTENING_CHECK_S = 0.5
# Without the listener (PostgreSQL restarting), how often a waiter reads again.
POLL_S = 0.02
RECONNECT_S = 1.0


class ProjectionWatch:
    """Wakes whoever waits for the projections whenever a projector batch commits."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._changed = asyncio.Event()
        self.listening = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="projection-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def next_change(self) -> asyncio.Event:
        """Set by the next batch that commits (take it before reading, not after)."""
        return self._changed

    async def changed(self, since: asyncio.Event, at_most_s: float) -> None:
        """Return once `since` is set (a batch committed after it was taken), or after
        `at_most_s` (at most LISTENING_CHECK_S, or POLL_S while nothing listens)."""
        wait = min(at_most_s, LISTENING_CHECK_S if self.listening else POLL_S)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(wait, 0.0)):
                await since.wait()

    async def until(
        self, read: Callable[[], Awaitable[T]], ready: Callable[[T], bool], wait_s: float
    ) -> T:
        """`read()` again after each batch until `ready` holds of it, or `wait_s` has passed;
        the last thing read."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while True:
            change = self._changed
            found = await read()
            left = deadline - loop.time()
            if ready(found) or left <= 0:
                return found
            await self.changed(change, left)

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _listen(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    conninfo(self._settings), autocommit=True, connect_timeout=10
                ) as conn:
                    await conn.execute(f"LISTEN {PROJECTED_CHANNEL}")
                    self.listening = True
                    self._wake()  # whatever committed while nobody listened
                    async for _ in conn.notifies():
                        self._wake()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # PostgreSQL away: waiters poll until it is back
                log.warning("not listening for projector batches (%r); polling meanwhile", exc)
            finally:
                self.listening = False
            await asyncio.sleep(RECONNECT_S)
