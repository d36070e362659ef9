"""A line's first load that does not answer: the read says 503 in bounded time."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from api import lines
from api.errors import ApiError
from api.hub import EventHub, Subscription
from producers.topics import Topic


class QuietHub:
    """Subscriptions that never deliver (the unit under test is the load, not the journal)."""

    def subscribe(self, topic: Topic, stream_id: str, maxsize: int = 1000) -> Subscription:
        return Subscription(cast(EventHub, self), "show-events", stream_id, maxsize)

    def unsubscribe(self, sub: Subscription) -> None:
        pass


async def test_a_line_whose_rows_do_not_load_is_503_not_a_hang(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stuck = asyncio.Event()

    async def load_line(pool: Any, show_id: str) -> None:
        await stuck.wait()  # a pool with no connection to give, say

    monkeypatch.setattr(lines, "load_line", load_line)
    monkeypatch.setattr(lines, "LOAD_WAIT_S", 0.2)
    live = lines.LiveLines(cast(EventHub, QuietHub()), cast(Any, None))
    try:
        async with asyncio.timeout(5):
            with pytest.raises(ApiError) as refused:
                await live.line("s" + "1" * 16, known=0)
        assert (refused.value.status, refused.value.code) == (503, "unavailable")
    finally:
        await live.stop()
