"""Several transactions in flight (the deciders' lanes) on the real broker: one show's burst
of holds still reaches its journal partition in version order, each version once.

The lanes' producers here wait 20 ms before sending what they are given (`linger.ms`), so a
later lane's records would overtake an earlier lane's if the loop sent them before the
earlier ones were acknowledged; the loop must wait, and its flush sends at once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import pytest

from boxoffice.settings import Settings
from domain.ticketing import Section
from processors import deciders
from producers.envelope import EventRecord
from producers.journal import producer_config
from producers.topics import SHOW_EVENTS
from tests.integration.deciding import Client, Running, own_topics, started
from tests.integration.journal import read_all
from tests.integration.test_deciders import create_show, hold

pytestmark = pytest.mark.integration


@pytest.fixture
def own(settings: Settings) -> Settings:
    return own_topics(settings, "lanes", decider_transactions_in_flight=3)


@pytest.fixture
async def client(own: Settings) -> AsyncIterator[Client]:
    async with started(Client(own)) as c:
        yield c


@pytest.fixture
def lingering_lanes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    plain = producer_config

    def lingering(settings: Settings, **extra: Any) -> dict[str, Any]:
        config = plain(settings, **extra)
        if "transactional.id" in config:
            config["linger.ms"] = 20
        return config

    monkeypatch.setattr(deciders, "producer_config", lingering)
    yield


async def test_a_burst_on_one_show_is_journaled_in_version_order(
    own: Settings, client: Client, lingering_lanes: None
) -> None:
    running = Running(own)
    try:
        show = f"show-{uuid.uuid4().hex[:8]}"
        big = replace(create_show(show), sections=(Section("A", 20, 20, 5000),))
        assert (await client.send(big)).ok
        seats = [f"A-{row}-{n}" for row in range(1, 21) for n in range(1, 21)]
        answers = await asyncio.gather(
            *(client.send(hold(show, f"fan{i}", seat)) for i, seat in enumerate(seats[:300]))
        )
    finally:
        await asyncio.to_thread(running.stop)
    assert all(a.ok for a in answers)
    assert running.loop.transactions > 1, "the burst went in one transaction: nothing to order"
    journal = [EventRecord.decode(v) for k, v in read_all(own, SHOW_EVENTS.name(own)) if k == show]
    assert [r.version for r in journal] == list(range(1, 302))
    by_command = {r.command_id: r.version for r in journal}
    assert all(by_command[a.command_id] == a.version for a in answers)
