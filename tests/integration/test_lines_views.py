"""The lines projection on the real broker and database: journals of waitlists and waiting
rooms made by the real decider, folded by the projector engine's views worker into the line
rows, read back as the API loads them, and checked by `boxoffice replay --verify`."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from boxoffice.settings import Settings
from domain.ticketing import (
    CancelHold,
    Command,
    CreateShow,
    JoinQueue,
    JoinWaitlist,
    LeaveWaitlist,
    PlaceHold,
    QueueSpec,
    Section,
    decide,
    evolve,
)
from domain.ticketing.events import Event
from domain.ticketing.show import Show
from snapshots.lines import load_line
from stack.processes import Daemon
from tests.integration.test_views import (  # the fixtures of that module, shared
    boxoffice,
    db,
    env,
    produce,
    projector,
    replay_schema_of,
    wait_for_versions,
)
from tests.unit.snapshots.journals import T0

pytestmark = pytest.mark.integration

__all__ = ["db", "env", "projector"]


class Journal:
    """A show's journal, decided command by command by the real decider."""

    def __init__(self) -> None:
        self.state: Show | None = None
        self.events: list[Event] = []

    def run(self, command: Command, at_s: float) -> list[Event]:
        new = decide(self.state, command, T0 + timedelta(seconds=at_s))
        for event in new:
            self.state = evolve(self.state, event)
        self.events += new
        return new


def _id() -> str:
    return uuid.uuid4().hex


def waitlist_journal() -> Journal:
    show_id = f"show-{_id()[:10]}"
    journal = Journal()
    journal.run(
        CreateShow(
            _id(),
            show_id,
            "org",
            "Night",
            T0 + timedelta(days=9),
            600,
            (Section("A", 1, 6, 1000),),
            (),
        ),
        0,
    )
    orders = []
    for n in range(3):
        order_id = f"{show_id}.o{n}"
        journal.run(
            PlaceHold.best(
                command_id=_id(), show_id=show_id, user="buyer", order_id=order_id, quantity=2
            ),
            1,
        )
        orders.append(order_id)
    for n, quantity in enumerate((3, 1, 2, 1, 4, 2)):
        journal.run(
            JoinWaitlist(_id(), show_id, f"fan{n}", f"e{n}", f"{show_id}.w{n}", quantity), 2
        )
    journal.run(LeaveWaitlist(_id(), show_id, "fan3"), 3)
    journal.run(CancelHold(_id(), show_id, "buyer", orders[0]), 4)
    journal.run(CancelHold(_id(), show_id, "buyer", orders[1]), 5)
    return journal


def queue_journal() -> Journal:
    show_id = f"show-{_id()[:10]}"
    journal = Journal()
    spec = QueueSpec(T0 + timedelta(seconds=60), 30, 300)
    journal.run(
        CreateShow(
            _id(),
            show_id,
            "org",
            "Hot",
            T0 + timedelta(days=9),
            600,
            (Section("A", 2, 5, 1000),),
            (),
            spec,
            "s" * 64,
        ),
        0,
    )
    for n in range(5):
        journal.run(JoinQueue(_id(), show_id, f"early{n}"), 10 + n)
    for n in range(3):
        journal.run(JoinQueue(_id(), show_id, f"late{n}"), 70 + n)
    return journal


async def test_line_rows_load_back_as_the_deciders_line_and_replay_verifies_them(
    env: Settings, projector: Daemon, db: psycopg.AsyncConnection[Any]
) -> None:
    journals = [waitlist_journal(), queue_journal()]
    produce(env, [j.events for j in journals])
    wait_for_versions(env, projector, {j.events[0].show_id: len(j.events) for j in journals})

    line, room = journals
    assert line.state is not None and room.state is not None
    stored = await load_line(db, line.state.show_id)
    assert stored is not None and stored.version == len(line.events)
    expected = list(line.state.line.entries())
    assert [(e.entry_id, e.seq, e.status, e.order_id) for e in stored.entries] == [
        (e.entry_id, e.seq, e.status, e.order_id) for e in expected
    ]
    assert stored.counts.waiting == line.state.line.waiting
    assert stored.counts.joins == len(expected)
    assert any(e.status == "offered" for e in stored.entries)
    assert any(e.status == "left" for e in stored.entries)

    queued = await load_line(db, room.state.show_id)
    assert queued is not None and queued.counts.queue == room.state.room.spec  # type: ignore[union-attr]
    assert queued.counts.queue_seed == "s" * 64
    assert [(m.user, m.early, m.position) for m in queued.members] == [
        *((f"early{n}", True, None) for n in range(5)),
        *((f"late{n}", False, 6 + n) for n in range(3)),
    ]

    schemas: list[str] = []
    victim = stored.entries[0].entry_id
    try:
        done = boxoffice(env, "replay", "--verify")
        schemas.append(replay_schema_of(done.stdout))
        assert done.returncode == 0, done.stdout + done.stderr
        await db.execute(
            "UPDATE waitlist_entries SET status = 'waiting' WHERE entry_id = %s", (victim,)
        )
        tampered = boxoffice(env, "replay", "--verify")
        schemas.append(replay_schema_of(tampered.stdout))
        assert tampered.returncode == 1, tampered.stdout + tampered.stderr
        assert f"waitlist_entries {victim}" in tampered.stdout
    finally:
        await db.execute(
            "UPDATE waitlist_entries SET status = %s WHERE entry_id = %s",
            (stored.entries[0].status, victim),
        )
        for schema in schemas:
            await db.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
