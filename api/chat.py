"""Chat routes: buddies, blocks, conversations, members, messages, read markers.

Commands go to the chat deciders through the journal and wait for their decision; reads come
from the PostgreSQL projection (`snapshots.chatprojection`), never from a decider. A read waits
briefly for the projection to reach the versions this instance has already seen, so a
client reads its own writes. The live socket (`api.chatsocket`) shares the command helpers
defined here, so it has exactly the REST rules, idempotency included.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypeVar

import orjson
import psycopg
from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import Response
from psycopg_pool import PoolTimeout
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from api.auth import User, current_user
from api.chatframes import SendFrame, conversation_json, message_json, sent_json, started_json
from api.chatlive import ChatLive, chat_live
from api.commands import command_id_for, rejection
from api.errors import ApiError, unavailable
from api.services import Services, services
from api.text import BIGINT_MAX, Text
from domain.chat.commands import (
    AddBuddy,
    AddMember,
    BlockUser,
    MarkRead,
    RemoveBuddy,
    RemoveMember,
    SendMessage,
    StartConversation,
    UnblockUser,
)
from domain.chat.conversations import (
    MAX_CLIENT_MSG_ID_CHARS,
    MAX_GROUP_MEMBERS,
    MAX_TEXT_CHARS,
    MAX_TITLE_CHARS,
    direct_conversation_id,
    is_direct,
)
from domain.chat.events import DIRECT, GROUP, ConversationStarted, MessageSent, MessagesRead
from domain.chat.views import OFFLINE, ONLINE
from producers.envelope import Reply
from producers.registries import CHAT
from producers.topics import CHAT_COMMANDS, SOCIAL_COMMANDS, Topic
from snapshots import chat as store

router = APIRouter(prefix="/v1", tags=["chat"])

USERNAME = re.compile(r"^[a-z0-9_]{3,32}$")
CONVERSATION_ID = re.compile(r"^(dm|grp):[0-9a-f]{32}$")
STALE = {"X-Boxoffice-Stale": "true"}
# How long a read waits for the projection to catch up with what this instance has seen.
SETTLE_S = 2.0

Svc = Annotated[Services, Depends(services)]
Live = Annotated[ChatLive, Depends(chat_live)]
Me = Annotated[User, Depends(current_user)]
IdempotencyKey = Annotated[str | None, Header(max_length=200)]

T = TypeVar("T")


# -- request bodies -----------------------------------------------------------------------------


class NewConversation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    members: list[Text] = Field(min_length=1, max_length=MAX_GROUP_MEMBERS)
    title: Text | None = Field(default=None, max_length=MAX_TITLE_CHARS)


class NewMember(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: Text = Field(min_length=1, max_length=64)


class NewMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: Text = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    client_msg_id: Text | None = Field(
        default=None, min_length=1, max_length=MAX_CLIENT_MSG_ID_CHARS
    )


class ReadMarker(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seq: StrictInt = Field(ge=0, le=BIGINT_MAX)


# -- shared helpers (REST and the live socket) --------------------------------------------------


@asynccontextmanager
async def database() -> AsyncIterator[None]:
    try:
        yield
    except (psycopg.OperationalError, PoolTimeout) as exc:
        raise unavailable("the chat database") from exc


def checked_conversation_id(conversation_id: str) -> str:
    if CONVERSATION_ID.match(conversation_id) is None:
        raise conversation_not_found(conversation_id)
    return conversation_id


def conversation_not_found(conversation_id: str) -> ApiError:
    """Also what an outsider is told about a direct conversation that exists: its id derives
    from the pair of names, so anyone can compute it, and "you are not a member" would tell
    them that those two users talk. Group ids are random, so a group's 403 reveals nothing."""
    return ApiError(
        404,
        "conversation_not_found",
        "There is no such conversation.",
        {"conversation_id": conversation_id[:100]},
    )


def checked_username(username: str) -> str:
    if USERNAME.match(username) is None:
        raise ApiError(404, "user_not_found", "no such user", {"username": username[:100]})
    return username


async def decide(
    svc: Services, live: ChatLive, topic: Topic, stream_id: str, command: Any
) -> Reply:
    """Journal ``command`` and await its decision; a refusal raises its contract error."""
    reply = await svc.bus.send(topic, CHAT, stream_id, command)
    if not reply.ok:
        refused = rejection(reply.error or {})
        caller = next(
            (
                v
                for a in ("actor", "sender", "user")
                if isinstance(v := getattr(command, a, None), str)
            ),
            None,
        )
        if (
            topic is CHAT_COMMANDS
            and refused.code == "not_a_member"
            and refused.details.get("user") == caller
            and is_direct(stream_id)
        ):
            raise conversation_not_found(stream_id)
        raise refused
    if topic is CHAT_COMMANDS:
        live.versions.saw(stream_id, reply.version)
    else:
        live.versions.saw_social(stream_id, reply.version)
    return reply


async def prepare_send(svc: Services, live: ChatLive, user: str, request: SendFrame) -> SendMessage:
    """The command for a send. The blocks it must honour come from the social projection:
    a direct send first waits (briefly) for the projection to hold the conversation's members
    and every block this instance has seen journaled, so only a block younger than the hub's
    lag can be missed."""
    conversation_id = request.conversation_id
    checked_conversation_id(conversation_id)
    blocked: tuple[str, ...] = ()
    if is_direct(conversation_id):
        blocked_by = direct_blocks(live, conversation_id, user)
        if blocked_by is not None:
            blocked = blocked_by
        else:
            blocked = await _projected_direct_blocks(svc, live, conversation_id, user)
    return SendMessage(
        command_id=command_id_for(user, f"send:{conversation_id}", request.client_msg_id),
        conversation_id=conversation_id,
        sender=user,
        client_msg_id=request.client_msg_id,
        text=request.text,
        sender_blocked_by=blocked,
    )


def direct_blocks(live: ChatLive, conversation_id: str, sender: str) -> tuple[str, ...] | None:
    """Who of a direct conversation blocks `sender`, from memory (api.directs); None when
    this process does not know it at the newest social version it has seen."""
    other = live.directs.other_member(conversation_id, sender)
    if other is None:
        return None
    blocks = live.directs.blocks(other, live.versions.known_social_version(other))
    if blocks is None:
        return None
    return (other,) if sender in blocks else ()


async def _projected_direct_blocks(
    svc: Services, live: ChatLive, conversation_id: str, user: str
) -> tuple[str, ...]:
    """The same from the projection, once it has what this process has seen; what it reads
    is then kept in memory for the next sends."""
    wanted = live.versions.known_version(conversation_id)

    def caught_up(found: tuple[int, tuple[store.Peer, ...]]) -> bool:
        version, others = found
        return version >= wanted and all(
            p.social_version >= live.versions.known_social_version(p.username) for p in others
        )

    version, others = await _until(
        svc, lambda: store.peers(svc.pool, conversation_id, user), caught_up
    )
    if version > 0 and len(others) == 1:
        # One other member: the sender is the second (a direct conversation has two).
        other = others[0].username
        live.directs.learn_members(conversation_id, (user, other))
        social_version, blocks = await store.block_list(svc.pool, other)
        live.directs.learn_blocks(other, social_version, blocks)
    return tuple(p.username for p in others if p.blocked_sender)


async def submit_send(
    svc: Services, live: ChatLive, command: SendMessage
) -> tuple[dict[str, Any], bool]:
    """(the message, whether this call created it); a repeat gets the first message."""
    reply = await decide(svc, live, CHAT_COMMANDS, command.conversation_id, command)
    sent = CHAT.from_dict(reply.events[0])
    assert isinstance(sent, MessageSent)
    return sent_json(sent), not reply.duplicate


async def mark_read(
    svc: Services, live: ChatLive, user: str, conversation_id: str, seq: int
) -> int:
    """Move ``user``'s marker to ``seq`` (never backwards); the marker as it then stands."""
    checked_conversation_id(conversation_id)
    command = MarkRead(
        command_id=uuid.uuid4().hex, conversation_id=conversation_id, user=user, seq=seq
    )
    reply = await decide(svc, live, CHAT_COMMANDS, conversation_id, command)
    for raw in reply.events:
        event = CHAT.from_dict(raw)
        if isinstance(event, MessagesRead):
            return event.seq
    # Already at or past seq: the decider changed nothing, the projection knows where it is.
    await settled_membership(svc, live, conversation_id, user, minimum=reply.version)
    async with database():
        stored = await store.last_read_seq(svc.pool, conversation_id, user)
    return max(seq, stored or 0)


async def settled_membership(
    svc: Services, live: ChatLive, conversation_id: str, user: str, minimum: int = 0
) -> store.Membership:
    """``user``'s standing in the conversation once the projection has it at the version this
    instance has seen (or ``minimum``); after `SETTLE_S`, as the projection has it then."""
    wanted = max(minimum, live.versions.known_version(conversation_id))
    return await _until(
        svc,
        lambda: store.membership(svc.pool, conversation_id, user),
        lambda found: found.version >= wanted,
    )


async def _until(
    svc: Services,
    read: Callable[[], Awaitable[T]],
    ready: Callable[[T], bool],
    wait_s: float = SETTLE_S,
) -> T:
    await svc.caught_up()
    async with database():
        return await svc.projected.until(read, ready, wait_s)


def _json(body: dict[str, Any], status: int = 200, stale: bool = False) -> Response:
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type="application/json",
        headers=STALE if stale else None,
    )


async def _member_of(
    svc: Services, live: ChatLive, conversation_id: str, user: str
) -> store.Membership:
    """The conversation, if ``user`` may read it: 404 unknown, 403 not a member."""
    checked_conversation_id(conversation_id)
    found = await settled_membership(svc, live, conversation_id, user)
    if not found.exists or (not found.member and is_direct(conversation_id)):
        raise conversation_not_found(conversation_id)
    if not found.member:
        raise ApiError(
            403,
            "not_a_member",
            "you are not a member of this conversation",
            {"conversation_id": conversation_id, "user": user},
        )
    return found


async def _outsiders_not_told(
    svc: Services, live: ChatLive, conversation_id: str, user: str
) -> None:
    """Members of a direct conversation can never change (409 `not_a_group`, which the decider
    says before it looks at who asks); an outsider gets 404 whether it exists or not."""
    if is_direct(conversation_id):
        found = await settled_membership(svc, live, conversation_id, user)
        if not found.member:
            raise conversation_not_found(conversation_id)


async def _require_users(svc: Services, names: set[str]) -> None:
    unknown = {name for name in names if USERNAME.match(name) is None}
    async with database():
        found = await store.existing_users(svc.pool, names - unknown)
    unknown |= names - unknown - found
    if unknown:
        raise ApiError(404, "user_not_found", "no such user", {"unknown": sorted(unknown)[:50]})


# -- buddies and blocks -------------------------------------------------------------------------


@router.get("/buddies")
async def list_buddies(user: Me, svc: Svc, live: Live) -> Response:
    wanted = live.versions.known_social_version(user.username)
    await _until(
        svc, lambda: store.social_version(svc.pool, user.username), lambda found: found >= wanted
    )
    async with database():
        rows = await store.buddies_of(svc.pool, user.username)
    buddies = [
        {
            "username": buddy,
            "presence": ONLINE if live.presence.is_online(buddy) and not blocked_me else OFFLINE,
        }
        for buddy, blocked_me in rows
    ]
    return _json({"buddies": buddies}, stale=not svc.kafka_up)


@router.put("/buddies/{username}")
async def add_buddy(
    username: str, user: Me, svc: Svc, live: Live, idempotency_key: IdempotencyKey = None
) -> Response:
    if username != user.username:
        await _require_users(svc, {username})
    command = AddBuddy(
        command_id=command_id_for(user.username, f"buddy:{username}", idempotency_key),
        user=user.username,
        buddy=username,
    )
    await decide(svc, live, SOCIAL_COMMANDS, user.username, command)
    presence = OFFLINE
    if live.presence.is_online(username):
        async with database():
            blocked_me = await store.has_blocked(svc.pool, username, user.username)
        presence = OFFLINE if blocked_me else ONLINE
    return _json({"username": username, "presence": presence})


@router.delete("/buddies/{username}")
async def remove_buddy(
    username: str, user: Me, svc: Svc, live: Live, idempotency_key: IdempotencyKey = None
) -> Response:
    checked_username(username)
    command = RemoveBuddy(
        command_id=command_id_for(user.username, f"unbuddy:{username}", idempotency_key),
        user=user.username,
        buddy=username,
    )
    await decide(svc, live, SOCIAL_COMMANDS, user.username, command)
    return _json({"username": username})


@router.get("/blocks")
async def list_blocks(user: Me, svc: Svc, live: Live) -> Response:
    wanted = live.versions.known_social_version(user.username)
    await _until(
        svc, lambda: store.social_version(svc.pool, user.username), lambda found: found >= wanted
    )
    async with database():
        blocked = await store.blocks_of(svc.pool, user.username)
    return _json({"blocks": [{"username": name} for name in blocked]}, stale=not svc.kafka_up)


@router.put("/blocks/{username}")
async def block_user(
    username: str, user: Me, svc: Svc, live: Live, idempotency_key: IdempotencyKey = None
) -> Response:
    if username != user.username:
        await _require_users(svc, {username})
    command = BlockUser(
        command_id=command_id_for(user.username, f"block:{username}", idempotency_key),
        user=user.username,
        blocked=username,
    )
    await decide(svc, live, SOCIAL_COMMANDS, user.username, command)
    return _json({"username": username, "blocked": True})


@router.delete("/blocks/{username}")
async def unblock_user(
    username: str, user: Me, svc: Svc, live: Live, idempotency_key: IdempotencyKey = None
) -> Response:
    checked_username(username)
    command = UnblockUser(
        command_id=command_id_for(user.username, f"unblock:{username}", idempotency_key),
        user=user.username,
        blocked=username,
    )
    await decide(svc, live, SOCIAL_COMMANDS, user.username, command)
    return _json({"username": username, "blocked": False})


# -- conversations ------------------------------------------------------------------------------


@router.post("/conversations", status_code=201)
async def start_conversation(
    body: NewConversation,
    user: Me,
    svc: Svc,
    live: Live,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    # Who may be in a conversation, and how many, is the decider's to say
    # (domain.chat.conversations); here only that the names are users.
    others = set(body.members) - {user.username}
    await _require_users(svc, others)
    command_id = command_id_for(user.username, "conversation", idempotency_key)
    if len(others) == 1:
        kind = DIRECT
        conversation_id = direct_conversation_id(user.username, next(iter(others)))
    else:
        kind = GROUP
        # With an Idempotency-Key the id derives from it, so a retry names the same group.
        conversation_id = "grp:" + (command_id if idempotency_key else secrets.token_hex(16))
    command = StartConversation(
        command_id=command_id,
        conversation_id=conversation_id,
        creator=user.username,
        members=tuple(sorted(others | {user.username})),
        kind=kind,
        title=body.title,
    )
    reply = await decide(svc, live, CHAT_COMMANDS, conversation_id, command)
    started = CHAT.from_dict(reply.events[0])
    assert isinstance(started, ConversationStarted)
    live.joined(conversation_id, reply.version, started.members)
    # Asking again for a pair's conversation finds the one that exists: 200, not 201.
    status = 200 if reply.duplicate and started.kind == DIRECT else 201
    return _json(started_json(started), status=status)


@router.get("/conversations")
async def list_conversations(user: Me, svc: Svc, live: Live) -> Response:
    def caught_up(rows: list[store.InboxRow]) -> bool:
        have = {row.conversation_id: row.version for row in rows}
        joined = live.recently_joined(user.username)
        return all(c in have for c in joined) and all(
            v >= live.versions.known_version(c) for c, v in have.items()
        )

    rows = await _until(svc, lambda: store.inbox(svc.pool, user.username), caught_up)
    conversations = [
        {
            **conversation_json(row.conversation_id, row.kind, row.members, row.title),
            "last_seq": row.last_seq,
            "last_read_seq": row.last_read_seq,
            "unread": row.unread,
            "last_message": None if row.last_message is None else message_json(row.last_message),
        }
        for row in rows
    ]
    return _json({"conversations": conversations}, stale=not svc.kafka_up)


async def _conversation_after(
    svc: Services, live: ChatLive, conversation_id: str, version: int
) -> dict[str, Any]:
    found = await _until(
        svc,
        lambda: store.conversation(svc.pool, conversation_id),
        lambda c: c is not None and c.version >= version,
    )
    if found is None:
        raise unavailable("the chat projection")
    return conversation_json(found.conversation_id, found.kind, found.members, found.title)


@router.post("/conversations/{conversation_id}/members", status_code=201)
async def add_member(
    conversation_id: str,
    body: NewMember,
    *,
    user: Me,
    svc: Svc,
    live: Live,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    checked_conversation_id(conversation_id)
    await _outsiders_not_told(svc, live, conversation_id, user.username)
    await _require_users(svc, {body.username})
    command = AddMember(
        command_id=command_id_for(
            user.username, f"add:{conversation_id}:{body.username}", idempotency_key
        ),
        conversation_id=conversation_id,
        actor=user.username,
        user=body.username,
    )
    reply = await decide(svc, live, CHAT_COMMANDS, conversation_id, command)
    live.joined(conversation_id, reply.version, (body.username,))
    return _json(await _conversation_after(svc, live, conversation_id, reply.version), 201)


@router.delete("/conversations/{conversation_id}/members/{username}")
async def remove_member(
    conversation_id: str,
    username: str,
    *,
    user: Me,
    svc: Svc,
    live: Live,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    checked_conversation_id(conversation_id)
    checked_username(username)
    await _outsiders_not_told(svc, live, conversation_id, user.username)
    command = RemoveMember(
        command_id=command_id_for(
            user.username, f"remove:{conversation_id}:{username}", idempotency_key
        ),
        conversation_id=conversation_id,
        actor=user.username,
        user=username,
    )
    try:
        reply = await decide(svc, live, CHAT_COMMANDS, conversation_id, command)
    except ApiError as exc:
        if exc.code == "not_a_member" and exc.details.get("user") != user.username:
            # The caller may act here; it is the one to remove who is not a member.
            exc.status = 404
        raise
    return _json(await _conversation_after(svc, live, conversation_id, reply.version))


# -- messages -----------------------------------------------------------------------------------


@router.post("/conversations/{conversation_id}/messages", status_code=201)
async def send_message(
    conversation_id: str, body: NewMessage, user: Me, svc: Svc, live: Live
) -> Response:
    # Without a client_msg_id the request cannot be retried safely; it still gets one.
    client_msg_id = body.client_msg_id or uuid.uuid4().hex
    request = SendFrame(conversation_id, body.text, client_msg_id)
    command = await prepare_send(svc, live, user.username, request)
    message, created = await submit_send(svc, live, command)
    return _json(message, status=201 if created else 200)


@router.get("/conversations/{conversation_id}/messages")
async def list_messages(
    conversation_id: str,
    *,
    user: Me,
    svc: Svc,
    live: Live,
    before: Annotated[int | None, Query(ge=1, le=BIGINT_MAX)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Response:
    await _member_of(svc, live, conversation_id, user.username)
    async with database():
        rows = await store.history_page(svc.pool, conversation_id, before, limit)
    messages = [message_json(row) for row in rows]
    # Seqs have no gaps, so the oldest one returned says whether anything is older.
    next_before = rows[-1].seq if rows and rows[-1].seq > 1 else None
    return _json({"messages": messages, "next_before": next_before}, stale=not svc.kafka_up)


@router.post("/conversations/{conversation_id}/read")
async def read_up_to(
    conversation_id: str, body: ReadMarker, user: Me, svc: Svc, live: Live
) -> Response:
    last_read = await mark_read(svc, live, user.username, conversation_id, body.seq)
    return _json({"last_read_seq": last_read})
