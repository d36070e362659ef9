"""The per-show registry behind the live seat maps and lines (api.pershow)."""

from __future__ import annotations

import asyncio

from api.pershow import PerShow


class Live:
    def __init__(self, busy: bool = False) -> None:
        self.busy = busy
        self.closed = False

    async def close(self) -> None:
        self.closed = True


class Registry(PerShow[Live]):
    def idle(self, live: Live, now: float) -> bool:
        return not live.busy


def test_the_reaper_drops_idle_entries_and_keeps_busy_ones() -> None:
    async def run() -> tuple[Live, Live, Registry]:
        registry = Registry("test-reaper", idle_s=0.04)
        idle, busy = Live(), Live(busy=True)
        registry.shows.update({"idle": idle, "busy": busy})
        registry.start()
        await asyncio.sleep(0.1)
        await registry.stop()
        return idle, busy, registry

    idle, busy, registry = asyncio.run(run())
    assert idle.closed
    # Stopping closes what is left, and forgets it.
    assert busy.closed
    assert registry.shows == {}


def test_drop_removes_only_the_entry_it_was_given() -> None:
    async def run() -> tuple[Live, Live, Registry]:
        registry = Registry("test-reaper", idle_s=60)
        old, newer = Live(), Live()
        registry.shows["s1"] = newer
        # A caller holding the old entry (replaced since) closes it without evicting the newer.
        await registry.drop("s1", old)
        return old, newer, registry

    old, newer, registry = asyncio.run(run())
    assert old.closed and not newer.closed
    assert registry.shows == {"s1": newer}
