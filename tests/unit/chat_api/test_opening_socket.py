"""A chat socket that opened while its conversations were still being read: the messages sent
meanwhile reached none of its conversations, so they start the socket's conversation and are
filled from the history, instead of the socket starting after them with a gap nobody sees."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from api.chatframes import Fill
from api.chatlive import ChatLive
from api.chatoutbox import MessageItem, Outbox
from boxoffice.settings import Settings
from domain.chat.events import MessageSent
from producers.envelope import EventRecord
from producers.registries import CONVERSATIONS
from snapshots import chat as store

CHAT = "dm:ann:bob"


def sent(seq: int) -> EventRecord:
    event = MessageSent(
        conversation_id=CHAT,
        version=seq + 1,
        command_id=f"c{seq}",
        seq=seq,
        sender="ann",
        client_msg_id=f"m{seq}",
        text=f"hello {seq}",
        sent_at=datetime(2030, 1, 1, tzinfo=UTC),
    )
    return EventRecord(CHAT, seq + 1, f"c{seq}", event.sent_at, CONVERSATIONS.to_dict(event))


def chat_live(tmp_path: Path) -> ChatLive:
    # Kafka "down": presence signals are not sent, nothing here needs a broker.
    svc = SimpleNamespace(settings=Settings(var_dir=tmp_path), pool=None, kafka_up=False)
    return ChatLive(svc)  # type: ignore[arg-type]


async def test_messages_sent_while_the_memberships_load_are_filled_not_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loading = asyncio.Event()
    answer = asyncio.Event()

    async def conversations_of(pool: Any, user: str) -> dict[str, int]:
        loading.set()
        await answer.wait()
        return {CHAT: 1}

    monkeypatch.setattr(store, "conversations_of", conversations_of)
    live = chat_live(tmp_path)
    box = Outbox("bob")
    live.attach(box)
    load = asyncio.create_task(live.load_memberships(box))
    await loading.wait()
    # Messages 6 and 7 come while bob's conversations are read: no socket follows CHAT yet.
    live._on_chat(sent(6))
    live._on_chat(sent(7))
    assert list(box.items) == []
    answer.set()
    await load
    assert box.is_member(CHAT)
    # 6 and 7 are owed from the history, and the socket starts right before them.
    assert box.sequencer.position(CHAT) == 5
    assert box.behind == {CHAT: 7}
    assert box.wake.is_set()
    # What follows live chains on: 8 comes after a fill of 6..7, not instead of it.
    live._on_chat(sent(8))
    assert [(i.conversation_id, i.seq) for i in box.items if isinstance(i, MessageItem)] == [
        (CHAT, 8)
    ]
    assert box.sequencer.plan(CHAT, 8) == Fill(after=5, upto=7)
    assert live._loading == {} and live._dispatched == []


async def test_overlapping_loads_each_get_what_came_during_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = {"bob": asyncio.Event(), "cat": asyncio.Event()}
    reading: dict[str, asyncio.Event] = {"bob": asyncio.Event(), "cat": asyncio.Event()}

    async def conversations_of(pool: Any, user: str) -> dict[str, int]:
        reading[user].set()
        await answers[user].wait()
        return {CHAT: 1}

    monkeypatch.setattr(store, "conversations_of", conversations_of)
    live = chat_live(tmp_path)
    bob, cat = Outbox("bob"), Outbox("cat")
    for box in (bob, cat):
        live.attach(box)
    bob_load = asyncio.create_task(live.load_memberships(bob))
    await reading["bob"].wait()
    live._on_chat(sent(3))
    cat_load = asyncio.create_task(live.load_memberships(cat))
    await reading["cat"].wait()
    live._on_chat(sent(4))
    answers["bob"].set()
    await bob_load
    assert bob.sequencer.position(CHAT) == 2 and bob.behind == {CHAT: 4}
    live._on_chat(sent(5))  # bob follows CHAT now; cat is still loading
    answers["cat"].set()
    await cat_load
    assert cat.sequencer.position(CHAT) == 3 and cat.behind == {CHAT: 5}
    assert live._loading == {} and live._dispatched == []


async def test_a_load_that_fails_stops_collecting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def conversations_of(pool: Any, user: str) -> dict[str, int]:
        raise OSError("the database is down")

    monkeypatch.setattr(store, "conversations_of", conversations_of)
    live = chat_live(tmp_path)
    box = Outbox("bob")
    live.attach(box)
    with pytest.raises(OSError):
        await live.load_memberships(box)
    assert live._loading == {}
    live._on_chat(sent(1))
    assert list(box.items) == [] and box.behind == {}
