"""The transactional decider loop on the real broker: decisions, rejections, redeliveries,
hold expiry by timer, poison commands."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka import Producer

from boxoffice.settings import Settings
from domain.ticketing import CreateShow, PlaceHold, Section, Zone
from producers.envelope import EventRecord
from producers.topics import DEAD_LETTERS, SHOW_COMMANDS, SHOW_EVENTS
from stack.services import Stack
from tests.integration.deciding import Client, started
from tests.integration.journal import read_all

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(settings: Settings, stack: Stack) -> AsyncIterator[Client]:
    async with started(Client(settings)) as c:
        yield c


def create_show(show_id: str, hold_seconds: int = 600) -> CreateShow:
    return CreateShow(
        command_id=uuid.uuid4().hex,
        show_id=show_id,
        organizer="org",
        name="Test night",
        starts_at=datetime(2027, 1, 1, 20, tzinfo=UTC),
        hold_seconds=hold_seconds,
        sections=(Section("A", 2, 5, 5000),),
        zones=(Zone("FLOOR", 10, 3000),),
    )


def hold(show_id: str, user: str, *seats: str) -> PlaceHold:
    return PlaceHold.of_seats(
        command_id=uuid.uuid4().hex,
        show_id=show_id,
        user=user,
        order_id=f"{show_id}.{uuid.uuid4().hex}",
        seats=seats,
    )


async def test_holds_are_decided_once_and_conflicts_rejected(client: Client) -> None:
    show = f"show-{uuid.uuid4().hex[:8]}"
    created = await client.send(create_show(show))
    assert created.ok and created.version == 1

    first = hold(show, "alice", "A-1-1", "A-1-2")
    won = await client.send(first)
    assert won.ok and not won.duplicate
    assert won.events[0]["type"] == "SeatsHeld" and won.version == 2

    lost = await client.send(hold(show, "bob", "A-1-2", "A-1-3"))
    assert not lost.ok
    assert lost.error is not None and lost.error["code"] == "seats_unavailable"
    assert lost.error["details"]["unavailable"] == ["A-1-2"]

    again = await client.send(first)  # a retry with the same command id
    assert again.ok and again.duplicate and again.events == won.events

    journal = [
        EventRecord.decode(v)
        for k, v in read_all(client.settings, SHOW_EVENTS.name(client.settings))
        if k == show
    ]
    assert [r.version for r in journal] == [1, 2]
    assert [r.event["type"] for r in journal] == ["ShowCreated", "SeatsHeld"]


async def test_the_timer_journals_expiry_of_a_lapsed_hold(client: Client) -> None:
    show = f"show-{uuid.uuid4().hex[:8]}"
    assert (await client.send(create_show(show, hold_seconds=1))).ok
    held = await client.send(hold(show, "alice", "A-2-5"))
    assert held.ok
    expires_at = datetime.fromisoformat(held.events[0]["expires_at"])
    deadline = datetime.now(UTC) + timedelta(seconds=15)
    expired: list[EventRecord] = []
    while not expired and datetime.now(UTC) < deadline:
        await asyncio.sleep(0.3)
        expired = [
            r
            for k, v in read_all(client.settings, SHOW_EVENTS.name(client.settings))
            if k == show
            for r in (EventRecord.decode(v),)
            if r.event["type"] == "HoldExpired"
        ]
    assert len(expired) == 1
    assert expired[0].recorded_at - expires_at < timedelta(seconds=2)


async def test_a_poison_command_is_parked_and_the_partition_goes_on(client: Client) -> None:
    show = f"show-{uuid.uuid4().hex[:8]}"
    raw = Producer({"bootstrap.servers": client.settings.kafka_bootstrap})
    raw.produce(SHOW_COMMANDS.name(client.settings), key=show, value=b"\xff not a command")
    raw.flush(10)
    assert (await client.send(create_show(show))).ok
    parked = [
        v for k, v in read_all(client.settings, DEAD_LETTERS.name(client.settings)) if k == show
    ]
    assert parked == [b"\xff not a command"]
