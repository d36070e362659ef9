"""Chat end to end: REST and the live socket against the real API, deciders, chat views, Kafka
and PostgreSQL, as users chat."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import psycopg
import pytest
import websockets
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from websockets.asyncio.client import ClientConnection

from boxoffice.settings import PROJECT_ROOT, Settings
from producers.journal import JournalProducer
from producers.topics import CHAT_EVENTS, DEAD_LETTERS, partitions_of
from snapshots.database import conninfo
from stack.processes import Daemon, wait_until
from stack.services import Stack, settings_env
from tests.e2e.ticketing import auth, sign_up, unique

pytestmark = pytest.mark.e2e


@pytest.fixture
async def http(settings: Settings, stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(base_url=settings.api_url, timeout=60, limits=limits) as client:
        yield client


@dataclass
class Person:
    name: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return auth(self.token)


async def person(http: httpx.AsyncClient) -> Person:
    name = unique("u")
    return Person(name, await sign_up(http, name))


async def people(http: httpx.AsyncClient, n: int) -> list[Person]:
    gate = asyncio.Semaphore(4)  # password hashing is deliberately slow

    async def one() -> Person:
        async with gate:
            return await person(http)

    return list(await asyncio.gather(*(one() for _ in range(n))))


async def converse(
    http: httpx.AsyncClient, who: Person, *others: Person, title: str | None = None
) -> str:
    response = await http.post(
        "/v1/conversations",
        headers=who.headers,
        json={"members": [o.name for o in others], "title": title},
    )
    assert response.status_code in (200, 201), response.text
    conversation_id: str = response.json()["conversation_id"]
    return conversation_id


async def send(
    http: httpx.AsyncClient,
    who: Person,
    conversation_id: str,
    text: str,
    client_msg_id: str | None = None,
) -> httpx.Response:
    return await http.post(
        f"/v1/conversations/{conversation_id}/messages",
        headers=who.headers,
        json={"text": text, "client_msg_id": client_msg_id or uuid.uuid4().hex},
    )


def ws_url(settings: Settings, token: str) -> str:
    return settings.api_url.replace("http://", "ws://") + f"/v1/chat/live?token={token}"


@dataclass
class Listener:
    """A live socket that files every frame it gets by type, and checks message order."""

    ws: ClientConnection
    frames: list[dict[str, Any]] = field(default_factory=list)
    messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    acks: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    async def _listen(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in self.ws:
                data = orjson.loads(raw)
                self.frames.append(data)
                kind = data["type"]
                if kind == "message":
                    self.messages.setdefault(data["conversation_id"], []).append(data)
                elif kind == "ack":
                    self.acks[data["client_msg_id"]] = data
                elif kind == "error":
                    self.errors.append(data)
                self.arrived.set()

    async def send(self, body: dict[str, Any]) -> None:
        await self.ws.send(orjson.dumps(body).decode())

    def seqs(self, conversation_id: str) -> list[int]:
        return [m["seq"] for m in self.messages.get(conversation_id, [])]

    async def until(self, check: Any, timeout_s: float = 30, what: str = "a frame") -> None:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not check():
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                seqs = {cid: [m["seq"] for m in ms] for cid, ms in self.messages.items()}
                raise TimeoutError(f"waited {timeout_s} s for {what}; seqs so far {seqs}")
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), min(left, 0.5))

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["type"] == kind]

    async def close(self) -> None:
        await self.ws.close()
        if self.task is not None:
            await self.task


@contextlib.asynccontextmanager
async def live(
    settings: Settings, who: Person, first: dict[str, Any] | None = None
) -> AsyncIterator[Listener]:
    ws = await websockets.connect(ws_url(settings, who.token), max_size=None)
    listener = Listener(ws)
    if first is not None:
        await listener.send(first)
    listener.task = asyncio.create_task(listener._listen())
    try:
        yield listener
    finally:
        await listener.close()


def assert_chained(seqs: list[int], start: int = 1) -> None:
    assert seqs == list(range(start, start + len(seqs))), f"not 1-by-1 from {start}: {seqs[:20]}..."


# -- conversations and messages over REST -------------------------------------------------------


async def test_a_direct_conversation_asked_again_is_the_same_one(http: httpx.AsyncClient) -> None:
    ann, bob = await people(http, 2)
    first = await http.post("/v1/conversations", headers=ann.headers, json={"members": [bob.name]})
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["kind"] == "direct"
    assert body["members"] == sorted([ann.name, bob.name])
    assert body["title"] is None
    again = await http.post("/v1/conversations", headers=bob.headers, json={"members": [ann.name]})
    assert again.status_code == 200, again.text
    assert again.json() == body


async def test_a_conversation_with_nobody_else_or_with_strangers_is_refused(
    http: httpx.AsyncClient,
) -> None:
    # The decider refuses a conversation of one; the edge only knows who is a user.
    [ann] = await people(http, 1)
    alone = await http.post("/v1/conversations", headers=ann.headers, json={"members": [ann.name]})
    assert alone.status_code == 422, alone.text
    assert alone.json()["error"]["code"] == "invalid_members"
    stranger = await http.post(
        "/v1/conversations", headers=ann.headers, json={"members": ["nobody_at_all_here"]}
    )
    assert stranger.status_code == 404, stranger.text
    assert stranger.json()["error"]["code"] == "user_not_found"


async def test_sends_count_up_and_a_repeated_client_msg_id_returns_the_first_message(
    http: httpx.AsyncClient,
) -> None:
    ann, bob = await people(http, 2)
    chat = await converse(http, ann, bob)
    first = await send(http, ann, chat, "hello", "m-1")
    assert first.status_code == 201, first.text
    assert first.json()["seq"] == 1
    assert first.json()["sender"] == ann.name
    second = await send(http, bob, chat, "hi", "m-1")  # another sender: another message
    assert second.status_code == 201
    assert second.json()["seq"] == 2
    repeat = await send(http, ann, chat, "hello again?", "m-1")
    assert repeat.status_code == 200
    assert repeat.json() == first.json()

    page = await http.get(f"/v1/conversations/{chat}/messages", headers=bob.headers)
    assert page.status_code == 200, page.text
    assert [m["seq"] for m in page.json()["messages"]] == [2, 1]
    assert page.json()["messages"][1] == first.json()
    assert page.json()["next_before"] is None


async def test_non_members_get_403_on_read_and_send(http: httpx.AsyncClient) -> None:
    ann, bob, eve = await people(http, 3)
    chat = await converse(http, ann, bob)
    group = await converse(http, ann, bob, eve, title="crew")
    removed = await http.delete(
        f"/v1/conversations/{group}/members/{eve.name}", headers=ann.headers
    )
    assert removed.status_code == 200, removed.text
    # A direct conversation's id derives from its pair: to an outsider it does not exist
    # (tests/e2e/test_edges.py shows the answer is the same as for one that does not).
    for conversation_id, status, code in (
        (chat, 404, "conversation_not_found"),
        (group, 403, "not_a_member"),
    ):
        read = await http.get(f"/v1/conversations/{conversation_id}/messages", headers=eve.headers)
        assert read.status_code == status, read.text
        assert read.json()["error"]["code"] == code
        sent = await send(http, eve, conversation_id, "let me in")
        assert sent.status_code == status, sent.text
        assert sent.json()["error"]["code"] == code
    unknown = await http.get("/v1/conversations/grp:" + "0" * 32 + "/messages", headers=eve.headers)
    assert unknown.status_code == 404


async def test_a_blocked_user_cannot_send_a_direct_message(http: httpx.AsyncClient) -> None:
    ann, bob = await people(http, 2)
    chat = await converse(http, ann, bob)
    assert (await send(http, ann, chat, "hey")).status_code == 201
    blocked = await http.put(f"/v1/blocks/{ann.name}", headers=bob.headers)
    assert blocked.status_code == 200, blocked.text
    refused = await send(http, ann, chat, "hey?")
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "blocked"
    # The one who blocked may still write, and an unblock lifts it.
    assert (await send(http, bob, chat, "bye")).status_code == 201
    assert (await http.delete(f"/v1/blocks/{ann.name}", headers=bob.headers)).status_code == 200
    assert (await send(http, ann, chat, "sorry")).status_code == 201


async def test_groups_members_and_the_conversation_list(http: httpx.AsyncClient) -> None:
    ann, bob, cat, dan = await people(http, 4)
    created = await http.post(
        "/v1/conversations",
        headers=ann.headers,
        json={"members": [bob.name, cat.name], "title": "t"},
    )
    assert created.status_code == 201, created.text
    group = created.json()["conversation_id"]
    assert created.json()["kind"] == "group"
    outsider = await http.post(
        f"/v1/conversations/{group}/members", headers=dan.headers, json={"username": dan.name}
    )
    assert outsider.status_code == 403
    added = await http.post(
        f"/v1/conversations/{group}/members", headers=bob.headers, json={"username": dan.name}
    )
    assert added.status_code == 201, added.text
    assert dan.name in added.json()["members"]
    for i in range(3):
        assert (await send(http, ann, group, f"m{i}")).status_code == 201
    read = await http.post(f"/v1/conversations/{group}/read", headers=dan.headers, json={"seq": 2})
    assert read.json() == {"last_read_seq": 2}
    back = await http.post(f"/v1/conversations/{group}/read", headers=dan.headers, json={"seq": 1})
    assert back.json() == {"last_read_seq": 2}

    listing = await http.get("/v1/conversations", headers=dan.headers)
    assert listing.status_code == 200
    (row,) = listing.json()["conversations"]
    assert row["conversation_id"] == group
    assert row["members"] == sorted([ann.name, bob.name, cat.name, dan.name])
    assert (row["last_seq"], row["last_read_seq"], row["unread"]) == (3, 2, 1)
    assert row["last_message"]["text"] == "m2"
    assert row["title"] == "t"

    bad = await http.post(
        f"/v1/conversations/{group}/messages", headers=ann.headers, json={"text": ""}
    )
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "invalid_request"
    too_many = await http.get(f"/v1/conversations/{group}/messages?limit=201", headers=ann.headers)
    assert too_many.status_code == 422


# -- the live socket ----------------------------------------------------------------------------


async def test_two_users_sending_1000_messages_each_at_once_see_one_order(
    settings: Settings, http: httpx.AsyncClient
) -> None:
    ann, bob = await people(http, 2)
    chat = await converse(http, ann, bob)
    per_side = 1000
    async with live(settings, ann) as a, live(settings, bob) as b:
        await asyncio.sleep(0.6)  # past the hold: these sockets are live from here on

        async def side(listener: Listener, who: Person) -> list[str]:
            ids = [f"{who.name}-{i}" for i in range(per_side)]
            for i, client_msg_id in enumerate(ids):
                await listener.send(
                    {
                        "type": "send",
                        "conversation_id": chat,
                        "text": f"{who.name} says {i}",
                        "client_msg_id": client_msg_id,
                    }
                )
            await listener.until(
                lambda: all(c in listener.acks for c in ids), 120, f"{who.name}'s acks"
            )
            return ids

        await asyncio.gather(side(a, ann), side(b, bob))
        total = 2 * per_side
        for listener in (a, b):
            await listener.until(lambda s=listener: len(s.seqs(chat)) >= total, 60, "messages")
        assert not a.errors and not b.errors, (a.errors, b.errors)
        assert_chained(a.seqs(chat))
        assert a.messages[chat] == b.messages[chat]
        acked = {ack["client_msg_id"]: ack["seq"] for ack in [*a.acks.values(), *b.acks.values()]}
        assert sorted(acked.values()) == list(range(1, total + 1))
        by_id = {m["client_msg_id"]: m for m in a.messages[chat]}
        assert all(by_id[c]["seq"] == seq for c, seq in acked.items())
        # Each socket's sends were journaled in the order the client sent them.
        for who in (ann, bob):
            mine = [m for m in a.messages[chat] if m["sender"] == who.name]
            assert [m["text"] for m in mine] == [f"{who.name} says {i}" for i in range(per_side)]


async def test_a_client_that_drops_and_resumes_gets_exactly_what_it_missed(
    settings: Settings, http: httpx.AsyncClient
) -> None:
    ann, bob, cat = await people(http, 3)
    chat = await converse(http, ann, bob)
    group = await converse(http, ann, bob, cat)
    for i in range(5):
        assert (await send(http, ann, chat, f"before {i}")).status_code == 201
    async with live(settings, bob) as b:
        await asyncio.sleep(0.6)
        for i in range(5):
            assert (await send(http, ann, chat, f"seen {i}")).status_code == 201
            assert (await send(http, cat, group, f"seen {i}")).status_code == 201
        await b.until(lambda: 10 in b.seqs(chat) and 5 in b.seqs(group))
        # Everything sent while connected, one by one, no gap. What was sent just before
        # the socket opened may come too, when this instance had not dispatched it yet.
        assert b.seqs(chat)[-5:] == [6, 7, 8, 9, 10]
        assert_chained(b.seqs(chat), start=b.seqs(chat)[0])
        assert b.seqs(group) == [1, 2, 3, 4, 5]
    cursors = {chat: 10, group: 5}

    # While bob is away and while he resumes, the others keep writing.
    stop = asyncio.Event()

    async def keep_writing() -> int:
        n = 0
        while not stop.is_set():
            assert (await send(http, ann, chat, f"later {n}")).status_code == 201
            assert (await send(http, cat, group, f"later {n}")).status_code == 201
            n += 1
        return n

    writer = asyncio.create_task(keep_writing())
    await asyncio.sleep(1.0)
    async with live(settings, bob, first={"type": "resume", "cursors": cursors}) as b:
        await asyncio.sleep(1.0)
        stop.set()
        written = await writer
        await b.until(
            lambda: len(b.seqs(chat)) >= written and len(b.seqs(group)) >= written,
            30,
            "the missed messages",
        )
        await asyncio.sleep(0.5)
        assert_chained(b.seqs(chat), start=11)
        assert_chained(b.seqs(group), start=6)
        assert len(b.seqs(chat)) == written
        assert [m["text"] for m in b.messages[chat]] == [f"later {n}" for n in range(written)]
        assert not b.errors

        # A resume of a conversation the client is not in is refused, the rest goes on.
        await b.send({"type": "resume", "cursors": {"grp:" + "0" * 32: 0}})
        await b.until(lambda: bool(b.errors))
        assert b.errors[0]["code"] == "conversation_not_found"
        assert (await send(http, ann, chat, "still live")).status_code == 201
        await b.until(lambda: b.messages[chat][-1]["text"] == "still live")
        assert_chained(b.seqs(chat), start=11)


async def test_the_same_client_msg_id_over_the_socket_is_acked_with_the_same_seq(
    settings: Settings, http: httpx.AsyncClient
) -> None:
    ann, bob = await people(http, 2)
    chat = await converse(http, ann, bob)
    async with live(settings, ann) as a:
        frame = {"type": "send", "conversation_id": chat, "text": "once", "client_msg_id": "c1"}
        await a.send(frame)
        await a.until(lambda: "c1" in a.acks)
        first = a.acks.pop("c1")
        await a.send(frame)
        await a.until(lambda: "c1" in a.acks)
        assert (
            a.acks["c1"]
            == first
            == {
                "type": "ack",
                "client_msg_id": "c1",
                "conversation_id": chat,
                "seq": 1,
            }
        )
        rest = await send(http, ann, chat, "once", "c1")
        assert rest.status_code == 200
        assert rest.json()["seq"] == 1
        await a.until(lambda: len(a.seqs(chat)) == 1)
        await asyncio.sleep(0.3)
        assert a.seqs(chat) == [1]


async def test_a_malformed_frame_gets_an_error_and_the_socket_stays_usable(
    settings: Settings, http: httpx.AsyncClient
) -> None:
    ann, bob, eve = await people(http, 3)
    chat = await converse(http, ann, bob)
    async with live(settings, ann) as a:
        for bad in (
            "not json",
            "[1, 2]",
            '{"type": "shout"}',
            '{"type": "send", "conversation_id": "x", "client_msg_id": "m1"}',
            '{"type": "read", "conversation_id": "x", "seq": -1}',
            '{"type": "resume", "cursors": []}',
        ):
            await a.ws.send(bad)
        await a.until(lambda: len(a.errors) == 6)
        assert {e["code"] for e in a.errors} == {"invalid_frame"}
        assert a.errors[3]["client_msg_id"] == "m1"
        await a.send({"type": "send", "conversation_id": chat, "text": "ok", "client_msg_id": "m2"})
        await a.until(lambda: "m2" in a.acks)
        # Refusals by the rules come back as errors too, naming the message.
        await a.send(
            {
                "type": "send",
                "conversation_id": "grp:" + "1" * 32,
                "text": "?",
                "client_msg_id": "m3",
            }
        )
        await a.until(lambda: len(a.errors) == 7)
        assert a.errors[6]["code"] == "conversation_not_found"
        assert a.errors[6]["client_msg_id"] == "m3"
    async with live(settings, eve) as e:
        await e.send({"type": "send", "conversation_id": chat, "text": "hi", "client_msg_id": "m4"})
        await e.until(lambda: bool(e.errors))
        # Someone else's direct conversation: not told that it exists.
        assert e.errors[0]["code"] == "conversation_not_found"
    async with websockets.connect(ws_url(settings, "forged"), max_size=None) as ws:
        refused = orjson.loads(await ws.recv())
        assert refused["type"] == "error"
        assert refused["code"] == "unauthorized"


async def test_presence_typing_read_and_join_frames(
    settings: Settings, http: httpx.AsyncClient
) -> None:
    ann, bob, cat, dan = await people(http, 4)
    for who, other in ((ann, bob), (bob, ann), (cat, ann)):
        added = await http.put(f"/v1/buddies/{other.name}", headers=who.headers)
        assert added.status_code == 200, added.text
        assert added.json() == {"username": other.name, "presence": "offline"}
    chat = await converse(http, ann, bob)
    # ann hides from cat: cat lists ann as a buddy but must see her offline.
    assert (await http.put(f"/v1/blocks/{cat.name}", headers=ann.headers)).status_code == 200

    async with live(settings, bob) as b, live(settings, cat) as c:
        async with live(settings, ann) as a:
            await b.until(
                lambda: {"type": "presence", "user": ann.name, "presence": "online"} in b.frames
            )
            buddies = await http.get("/v1/buddies", headers=bob.headers)
            assert buddies.json() == {"buddies": [{"username": ann.name, "presence": "online"}]}
            hidden = await http.get("/v1/buddies", headers=cat.headers)
            assert hidden.json() == {"buddies": [{"username": ann.name, "presence": "offline"}]}
            # bob was online before ann connected: she is told on connect.
            await a.until(
                lambda: {"type": "presence", "user": bob.name, "presence": "online"} in a.frames
            )

            await a.send({"type": "typing", "conversation_id": chat})
            await b.until(lambda: bool(b.of_type("typing")))
            assert b.of_type("typing") == [
                {"type": "typing", "conversation_id": chat, "user": ann.name}
            ]
            for _ in range(5):  # rate-limited: a burst is one frame
                await a.send({"type": "typing", "conversation_id": chat})
            await a.send(
                {"type": "send", "conversation_id": chat, "text": "hi", "client_msg_id": "t1"}
            )
            await b.until(lambda: len(b.seqs(chat)) == 1)
            await b.send({"type": "read", "conversation_id": chat, "seq": 1})
            read = {"type": "read", "conversation_id": chat, "user": bob.name, "seq": 1}
            await a.until(lambda: read in a.frames)
            await b.until(lambda: read in b.frames)
            assert len(b.of_type("typing")) == 1
            assert not a.of_type("typing")

            group = await converse(http, bob, ann, dan, title="new")
            joined = {
                "type": "conversation",
                "conversation_id": group,
                "kind": "group",
                "members": sorted([ann.name, bob.name, dan.name]),
                "title": "new",
            }
            await a.until(lambda: joined in a.frames)
            added = await http.post(
                f"/v1/conversations/{group}/members",
                headers=ann.headers,
                json={"username": cat.name},
            )
            assert added.status_code == 201
            await c.until(lambda: bool(c.of_type("conversation")))
            assert c.of_type("conversation")[0]["members"] == sorted(
                [ann.name, bob.name, cat.name, dan.name]
            )
            await a.send(
                {"type": "send", "conversation_id": group, "text": "welcome", "client_msg_id": "w"}
            )
            await c.until(lambda: c.seqs(group) == [1])
            assert not c.of_type("presence"), "a blocked user saw presence"

            # Unblocked, cat sees ann online at once; blocked again, offline.
            ann_online = {"type": "presence", "user": ann.name, "presence": "online"}
            ann_offline = {"type": "presence", "user": ann.name, "presence": "offline"}
            assert (
                await http.delete(f"/v1/blocks/{cat.name}", headers=ann.headers)
            ).status_code == 200
            await c.until(lambda: ann_online in c.frames)
            assert (
                await http.put(f"/v1/blocks/{cat.name}", headers=ann.headers)
            ).status_code == 200
            await c.until(lambda: c.of_type("presence")[-1] == ann_offline)
            # A buddy added while online is announced to the one who added them.
            added = await http.put(f"/v1/buddies/{cat.name}", headers=bob.headers)
            assert added.json() == {"username": cat.name, "presence": "online"}
            await b.until(
                lambda: {"type": "presence", "user": cat.name, "presence": "online"} in b.frames
            )
        await b.until(
            lambda: {"type": "presence", "user": ann.name, "presence": "offline"} in b.frames,
            35,
            "ann offline",
        )
        buddies = (await http.get("/v1/buddies", headers=bob.headers)).json()["buddies"]
        assert {"username": ann.name, "presence": "offline"} in buddies
        assert {"username": cat.name, "presence": "online"} in buddies


async def test_sockets_on_two_api_instances_share_messages_presence_and_typing(
    settings: Settings, stack: Stack, http: httpx.AsyncClient
) -> None:
    other = settings.model_copy(update={"http_port": settings.http_port + 50})
    second = Daemon("api-second", settings.run_dir, settings.log_dir, marker="boxoffice.cli api")
    second.start(
        [sys.executable, "-m", "boxoffice.cli", "api"], env=settings_env(other), cwd=PROJECT_ROOT
    )
    try:
        await asyncio.to_thread(
            wait_until, Stack(other).api_ready, 60, "the second API instance", daemon=second
        )
        ann, bob = await people(http, 2)
        for who, buddy in ((ann, bob), (bob, ann)):
            assert (
                await http.put(f"/v1/buddies/{buddy.name}", headers=who.headers)
            ).status_code == 200
        chat = await converse(http, ann, bob)
        async with live(settings, ann) as a, live(other, bob) as b:
            await b.until(
                lambda: {"type": "presence", "user": ann.name, "presence": "online"} in b.frames,
                20,
                "ann online, seen from the other instance",
            )
            await asyncio.sleep(0.6)
            for i in range(50):
                await a.send(
                    {
                        "type": "send",
                        "conversation_id": chat,
                        "text": f"a{i}",
                        "client_msg_id": f"a{i}",
                    }
                )
                await b.send(
                    {
                        "type": "send",
                        "conversation_id": chat,
                        "text": f"b{i}",
                        "client_msg_id": f"b{i}",
                    }
                )
            await a.until(lambda: len(a.seqs(chat)) == 100)
            await b.until(lambda: len(b.seqs(chat)) == 100)
            assert a.messages[chat] == b.messages[chat]
            assert_chained(a.seqs(chat))
            await b.send({"type": "typing", "conversation_id": chat})
            await a.until(lambda: bool(a.of_type("typing")))
            # Each instance answers presence for users connected to the other.
            online = {"buddies": [{"username": bob.name, "presence": "online"}]}
            assert (await http.get("/v1/buddies", headers=ann.headers)).json() == online
            async with httpx.AsyncClient(base_url=other.api_url, timeout=30) as there:
                listing = await there.get("/v1/buddies", headers=bob.headers)
                assert listing.json() == {"buddies": [{"username": ann.name, "presence": "online"}]}
    finally:
        second.stop()


# -- history ------------------------------------------------------------------------------------


async def seed(
    settings: Settings, who: Person, conversation_id: str, n: int, sockets: int = 4
) -> None:
    """``n`` messages, fast: a few sockets each pipelining its share."""

    async def share(k: int) -> None:
        async with live(settings, who) as s:
            ids = [f"seed-{k}-{i}" for i in range(k, n, sockets)]
            for client_msg_id in ids:
                await s.send(
                    {
                        "type": "send",
                        "conversation_id": conversation_id,
                        "text": client_msg_id,
                        "client_msg_id": client_msg_id,
                    }
                )
            await s.until(lambda: len(s.acks) == len(ids), 120, "the seed's acks")
            assert not s.errors, s.errors[:3]

    await asyncio.gather(*(share(k) for k in range(sockets)))


async def test_history_pages_walk_back_through_10000_messages_while_new_ones_arrive(
    settings: Settings, http: httpx.AsyncClient
) -> None:
    ann, bob = await people(http, 2)
    chat = await converse(http, ann, bob)
    await seed(settings, ann, chat, 10_000)

    stop = asyncio.Event()
    first_written = asyncio.Event()

    async def keep_writing() -> int:
        n = 0
        while not stop.is_set():
            assert (await send(http, bob, chat, f"new {n}")).status_code == 201
            n += 1
            first_written.set()
            await asyncio.sleep(0.01)
        return n

    writer = asyncio.create_task(keep_writing())
    # The walk starts once new messages are arriving (the first may wait for the projection
    # to catch up with the seed, which went faster than the projection).
    await asyncio.wait_for(first_written.wait(), 30)
    url = f"/v1/conversations/{chat}/messages"
    walked: list[int] = []
    cursors: list[int] = []
    before: int | None = None
    while True:
        params: dict[str, Any] = (
            {"limit": 200} if before is None else {"limit": 200, "before": before}
        )
        page = await http.get(url, headers=bob.headers, params=params)
        assert page.status_code == 200, page.text
        seqs = [m["seq"] for m in page.json()["messages"]]
        assert seqs == sorted(seqs, reverse=True)
        if before is not None:
            assert seqs[0] == before - 1, "a page must start right below its cursor"
        walked.extend(seqs)
        before = page.json()["next_before"]
        if before is None:
            break
        assert before == seqs[-1]
        cursors.append(before)
    newest_when_started = walked[0]
    assert newest_when_started > 10_000
    assert walked == list(range(newest_when_started, 0, -1))

    # Cursors are stable: the same cursor gives the same page while the conversation grows.
    for cursor in (cursors[0], cursors[len(cursors) // 2], cursors[-1]):
        params = {"limit": 200, "before": cursor}
        first = (await http.get(url, headers=bob.headers, params=params)).json()
        await asyncio.sleep(0.1)
        again = (await http.get(url, headers=ann.headers, params=params)).json()
        assert first == again
    stop.set()
    written = await writer
    assert written > 0
    newest = (await http.get(url, headers=bob.headers, params={"limit": 1})).json()
    assert newest["messages"][0]["seq"] == 10_000 + written
    assert newest["messages"][0]["text"] == f"new {written - 1}"

    # The projector snapshotted the conversation every N events, and snapshots are immutable.
    async with await psycopg.AsyncConnection.connect(conninfo(settings), autocommit=True) as db:
        rows = await (
            await db.execute(
                "SELECT version, state FROM conversation_snapshots WHERE conversation_id = %s"
                " ORDER BY version",
                (chat,),
            )
        ).fetchall()
        assert len(rows) >= 10_000 // settings.snapshot_every_events
        assert all(state["version"] == version for version, state in rows)
        assert all(state["members"] == sorted([ann.name, bob.name]) for _, state in rows)
        with pytest.raises(psycopg.errors.RaiseException):
            await db.execute(
                "UPDATE conversation_snapshots SET version = version + 1000000"
                " WHERE conversation_id = %s",
                (chat,),
            )


def dead_letters(settings: Settings) -> list[tuple[bytes, dict[str, bytes]]]:
    """Every parked message so far, with its headers."""
    topic = DEAD_LETTERS.name(settings)
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex}",
            "enable.partition.eof": True,
            "log_level": 3,
        }
    )
    try:
        partitions = partitions_of(settings, [topic])[topic]
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        found: list[tuple[bytes, dict[str, bytes]]] = []
        remaining = set(partitions)
        while remaining:
            msg = consumer.poll(5)
            assert msg is not None, "the dead-letter topic did not answer"
            err = msg.error()
            if err is not None:
                assert err.code() == KafkaError._PARTITION_EOF, err
                remaining.discard(msg.partition())
                continue
            raw = msg.headers() or []
            pairs = raw.items() if isinstance(raw, dict) else raw
            headers = {k: v.encode() if isinstance(v, str) else v or b"" for k, v in pairs}
            found.append((msg.value() or b"", headers))
        return found
    finally:
        consumer.close()


async def test_a_poison_event_is_parked_and_the_projection_goes_on(
    settings: Settings, http: httpx.AsyncClient
) -> None:
    ann, bob = await people(http, 2)
    chat = await converse(http, ann, bob)
    poison = f"poison {uuid.uuid4().hex}".encode()
    producer = JournalProducer(settings)
    try:
        # Keyed by the conversation: the same partition as its events, right before the next.
        await producer.send(CHAT_EVENTS.name(settings), chat, poison)
    finally:
        await asyncio.to_thread(producer.close)
    assert (await send(http, ann, chat, "after the poison")).status_code == 201
    page = await http.get(f"/v1/conversations/{chat}/messages", headers=bob.headers)
    assert [m["text"] for m in page.json()["messages"]] == ["after the poison"]
    parked = [
        headers
        for value, headers in await asyncio.to_thread(dead_letters, settings)
        if value == poison
    ]
    assert len(parked) == 1
    assert parked[0]["origin-topic"] == CHAT_EVENTS.name(settings).encode()
    assert parked[0]["origin-consumer"] == b"chat"
    assert parked[0]["reason"]


# -- crashes ------------------------------------------------------------------------------------


@pytest.mark.disruptive
async def test_kill_9_of_the_deciders_mid_stream_loses_and_doubles_nothing(
    settings: Settings, stack: Stack, http: httpx.AsyncClient
) -> None:
    ann, bob, cat = await people(http, 3)
    chat = await converse(http, ann, bob)
    group = await converse(http, ann, bob, cat)
    per_sender = 120

    async def sender(who: Person, conversation_id: str) -> dict[str, int]:
        """Sends one after the other; each retried with its client_msg_id until decided."""
        acked: dict[str, int] = {}
        for i in range(per_sender):
            client_msg_id = f"{who.name}-{i}"
            while True:
                response = await send(http, who, conversation_id, f"{who.name} {i}", client_msg_id)
                if response.status_code == 503:
                    assert response.headers["Retry-After"]
                    await asyncio.sleep(0.2)
                    continue
                break
            assert response.status_code in (200, 201), response.text
            acked[client_msg_id] = response.json()["seq"]
        return acked

    async with live(settings, bob) as b:
        await asyncio.sleep(0.6)
        senders = asyncio.gather(
            sender(ann, chat), sender(bob, chat), sender(ann, group), sender(cat, group)
        )
        await asyncio.sleep(1.0)
        assert stack.deciders.kill()
        await asyncio.sleep(1.0)
        stack.up(("deciders",), say=lambda _: None)
        ann_chat, bob_chat, ann_group, cat_group = await asyncio.wait_for(senders, 240)

        for conversation_id, acked in (
            (chat, {**ann_chat, **bob_chat}),
            (group, {**ann_group, **cat_group}),
        ):
            assert len(acked) == 2 * per_sender
            assert sorted(acked.values()) == list(range(1, 2 * per_sender + 1)), "a seq twice"
            history: list[dict[str, Any]] = []
            before: int | None = None
            while True:
                params: dict[str, Any] = (
                    {"limit": 200} if before is None else {"limit": 200, "before": before}
                )
                page = (
                    await http.get(
                        f"/v1/conversations/{conversation_id}/messages",
                        headers=bob.headers,
                        params=params,
                    )
                ).json()
                history.extend(page["messages"])
                before = page["next_before"]
                if before is None:
                    break
            assert [m["seq"] for m in history] == list(range(2 * per_sender, 0, -1))
            counted = Counter(m["client_msg_id"] for m in history)
            assert set(counted) == set(acked)
            assert max(counted.values()) == 1
            assert {m["client_msg_id"]: m["seq"] for m in history} == acked
            # The live socket saw all of it too, in order, through the crash.
            await b.until(lambda c=conversation_id: len(b.seqs(c)) >= 2 * per_sender, 30)
            assert b.seqs(conversation_id) == list(range(1, 2 * per_sender + 1))
