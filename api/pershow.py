"""Live per-show objects of one API process (a seat map, a line): made on first use, kept
current by their own tasks, and dropped when nobody has used them for a while."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Generic, Protocol, TypeVar


class Closable(Protocol):
    async def close(self) -> None: ...


L = TypeVar("L", bound=Closable)


class PerShow(Generic[L]):
    def __init__(self, name: str, idle_s: float) -> None:
        self.shows: dict[str, L] = {}
        self.idle_s = idle_s
        self._name = name
        self._reaper: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._reaper = asyncio.create_task(self._reap(), name=self._name)

    async def stop(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for live in list(self.shows.values()):
            await live.close()
        self.shows.clear()

    async def drop(self, show_id: str, live: L) -> None:
        # Only this entry: it may since have been dropped or replaced by a newer load of the
        # show (the caller took it before an await).
        if self.shows.get(show_id) is live:
            del self.shows[show_id]
        await live.close()

    def idle(self, live: L, now: float) -> bool:
        """Whether `live` may go (`now` is the loop's time); subclasses say when."""
        raise NotImplementedError

    async def _reap(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.idle_s / 4)
            for show_id, live in list(self.shows.items()):
                if self.idle(live, loop.time()):
                    await self.drop(show_id, live)
