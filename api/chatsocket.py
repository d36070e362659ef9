"""`WS /v1/chat/live?token=T`: one user's live chat socket.

Four tasks per socket:
- the reader takes client frames: each spends a rate-limit token, a malformed one is answered
  with an `error` frame and the socket goes on;
- the submitter turns `send` and `read` frames into commands, one after the other, so the
  journal gets a socket's sends in the order the client sent them; it does not wait for the
  decisions (up to `IN_FLIGHT` of them are pending at once);
- the answerer awaits those decisions in order and queues an `ack` or an `error`;
- the writer drains the socket's `Outbox`, the only task that writes to the socket. It sends
  each conversation's messages in seq order with no gap and no repeat, filling a gap from the
  history (waiting for the projection if it trails) before the message that revealed it.

Until the client's first frame, or `HOLD_S`, the writer holds back: a reconnecting client's
`resume` must set the cursors before any live message goes out, or that message would
arrive ahead of the ones it missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import psycopg
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from psycopg_pool import PoolTimeout

from api.auth import User, user_from_token
from api.chat import mark_read, prepare_send, settled_membership, submit_send
from api.chatframes import (
    Fill,
    FrameError,
    ReadFrame,
    ResumeFrame,
    SendFrame,
    Skip,
    TypingFrame,
    client_msg_id_of,
    conversation_json,
    error_frame,
    frame,
    message_json,
    parse_client_frame,
)
from api.chatlive import ChatLive, chat_live
from api.chatoutbox import (
    CatchUpItem,
    FrameItem,
    Item,
    JoinedItem,
    MessageItem,
    Outbox,
    ResumeItem,
)
from api.errors import ApiError
from api.ratelimit import check_frame
from api.services import Services, ws_services
from domain.chat.conversations import is_direct
from snapshots import chat as store

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1")

HOLD_S = 0.5
# A gap the history cannot fill within this long means the projection is down: the socket
# is closed (1013, try again later) rather than let a message through out of order.
FILL_WAIT_S = 10.0
FILL_PAGE = 500
CURSOR_WAIT_S = 1.0
IN_FLIGHT = 64
# Typing frames beyond one per conversation per second are dropped without a word.
TYPING_EVERY_S = 1.0
TRY_AGAIN_LATER = 1013


class HistoryUnavailableError(Exception):
    pass


@router.websocket("/chat/live")
async def live_chat(websocket: WebSocket) -> None:
    svc = ws_services(websocket)
    live = chat_live(websocket)
    user = user_from_token(websocket, websocket.query_params.get("token"))
    await websocket.accept()
    if user is None:
        await _refuse(websocket, "unauthorized", "connect with ?token=<a valid token>", 4401)
        return
    socket = LiveSocket(websocket, svc, live, user)
    # Attached before the memberships are read, so no membership event can slip between.
    live.attach(socket.box)
    try:
        try:
            await live.load_memberships(socket.box)
        except (psycopg.Error, PoolTimeout):
            await _refuse(websocket, "unavailable", "the chat database is unavailable", 1013)
            return
        await socket.serve()
    finally:
        live.detach(socket.box)


async def _refuse(websocket: WebSocket, code: str, message: str, close_code: int) -> None:
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
        await websocket.send_text(error_frame(code, message))
        await websocket.close(code=close_code)


class LiveSocket:
    def __init__(self, websocket: WebSocket, svc: Services, live: ChatLive, user: User) -> None:
        self.ws = websocket
        self.svc = svc
        self.live = live
        self.user = user
        self.box = Outbox(user.username)
        self.ready = asyncio.Event()
        self.lane: asyncio.Queue[SendFrame | ReadFrame] = asyncio.Queue(IN_FLIGHT)
        self.pending: asyncio.Queue[tuple[SendFrame | ReadFrame, asyncio.Task[object]]] = (
            asyncio.Queue(IN_FLIGHT)
        )
        self.typed: dict[str, float] = {}

    async def serve(self) -> None:
        hold = asyncio.get_running_loop().call_later(HOLD_S, self.ready.set)
        tasks = [
            asyncio.create_task(self._read(), name="chat-read"),
            asyncio.create_task(self._write(), name="chat-write"),
            asyncio.create_task(self._submit(), name="chat-submit"),
            asyncio.create_task(self._answer(), name="chat-answer"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                exc = None if task.cancelled() else task.exception()
                if exc is not None and not isinstance(
                    exc, WebSocketDisconnect | RuntimeError | OSError
                ):
                    log.error("live chat socket of %s failed", self.user.username, exc_info=exc)
        finally:
            hold.cancel()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            while not self.pending.empty():
                _, decision = self.pending.get_nowait()
                decision.cancel()

    # -- from the client --------------------------------------------------------------------------

    async def _read(self) -> None:
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text")
            if raw is None:
                raw = message.get("bytes")
            if raw is None:
                continue
            await self._on_frame(raw)
            self.ready.set()

    async def _on_frame(self, raw: str | bytes) -> None:
        wait = check_frame(self.ws, self.user)
        if wait is not None:
            self._error(
                "rate_limited",
                f"too many frames; retry in {wait} s",
                client_msg_id_of(raw),
                retry_after_s=wait,
            )
            return
        try:
            parsed = parse_client_frame(raw)
        except FrameError as exc:
            self._error(exc.code, exc.message, exc.client_msg_id)
            return
        match parsed:
            case SendFrame() | ReadFrame():
                await self.lane.put(parsed)
            case TypingFrame(conversation_id=conversation_id):
                self._typing(conversation_id)
            case ResumeFrame(cursors=cursors):
                self.box.push_first(ResumeItem(dict(cursors)))

    def _typing(self, conversation_id: str) -> None:
        if not self.box.is_member(conversation_id):
            self._error(
                "not_a_member",
                "you are not a member of this conversation",
                conversation_id=conversation_id,
            )
            return
        now = time.monotonic()
        if now - self.typed.get(conversation_id, -TYPING_EVERY_S) < TYPING_EVERY_S:
            return
        self.typed[conversation_id] = now
        self.live.typing(conversation_id, self.user.username)

    def _error(
        self, code: str, message: str, client_msg_id: str | None = None, **extra: object
    ) -> None:
        self.box.push(FrameItem(error_frame(code, message, client_msg_id, **extra)))

    async def _submit(self) -> None:
        username = self.user.username
        while True:
            request = await self.lane.get()
            decision: asyncio.Task[object]
            if isinstance(request, SendFrame):
                try:
                    command = await prepare_send(self.svc, self.live, username, request)
                except ApiError as exc:
                    self._error(exc.code, exc.message, request.client_msg_id)
                    continue
                # Tasks start in creation order and produce before their first real wait,
                # so the journal receives this socket's sends in the client's order.
                decision = asyncio.create_task(submit_send(self.svc, self.live, command))
            else:
                decision = asyncio.create_task(
                    mark_read(self.svc, self.live, username, request.conversation_id, request.seq)
                )
            await self.pending.put((request, decision))

    async def _answer(self) -> None:
        while True:
            request, decision = await self.pending.get()
            client_msg_id = request.client_msg_id if isinstance(request, SendFrame) else None
            try:
                outcome = await decision
            except ApiError as exc:
                self._error(
                    exc.code, exc.message, client_msg_id, conversation_id=request.conversation_id
                )
                continue
            except Exception:  # answered like an outage; the socket must stay usable
                log.exception("live chat command of %s failed", self.user.username)
                self._error("unavailable", "try again later", client_msg_id)
                continue
            if isinstance(request, SendFrame) and isinstance(outcome, tuple):
                message = outcome[0]
                self.box.push(
                    FrameItem(
                        frame(
                            "ack",
                            {
                                "client_msg_id": request.client_msg_id,
                                "conversation_id": request.conversation_id,
                                "seq": message["seq"],
                            },
                        )
                    )
                )

    # -- to the client ----------------------------------------------------------------------------

    async def _write(self) -> None:
        await self.ready.wait()
        box = self.box
        try:
            while True:
                await box.wake.wait()
                box.wake.clear()
                while box.items:
                    await self._deliver(box.items.popleft())
                if box.behind:
                    behind, box.behind = box.behind, {}
                    for conversation_id, upto in behind.items():
                        at = box.sequencer.position(conversation_id)
                        if at is not None and upto > at:
                            await self._fill(conversation_id, at, upto)
        except (HistoryUnavailableError, psycopg.Error, PoolTimeout, ApiError) as exc:
            log.warning("live chat of %s closed 1013: %r", self.user.username, exc)
            await _refuse(
                self.ws, "unavailable", "the chat history is unavailable; resume later", 1013
            )

    async def _deliver(self, item: Item) -> None:
        sequencer = self.box.sequencer
        match item:
            case MessageItem(conversation_id=cid, seq=seq, text=text):
                plan = sequencer.plan(cid, seq)
                if isinstance(plan, Skip):
                    return
                if isinstance(plan, Fill):
                    await self._fill(cid, plan.after, plan.upto)
                await self.ws.send_text(text)
                sequencer.sent(cid, seq)
            case FrameItem(text=text):
                await self.ws.send_text(text)
            case JoinedItem(conversation_id=cid, version=version):
                await self._joined(cid, version)
            case ResumeItem(cursors=cursors):
                for cid, last_seen in cursors.items():
                    start = await self._readable_up_to(cid, last_seen)
                    if start is not None:
                        sequencer.resume(cid, start)
                        await self._replay(cid)
            case CatchUpItem(conversation_id=cid):
                if sequencer.position(cid) is not None:
                    await self._replay(cid)

    async def _readable_up_to(self, conversation_id: str, cursor: int) -> int | None:
        """Where the client may resume the conversation from: its cursor, or the end of the
        history if the cursor is past it (a cursor past the end would silence the
        conversation). None, after an error frame, if the user may not read it."""
        found = await settled_membership(self.svc, self.live, conversation_id, self.user.username)
        # A cursor ahead of the projection may be a client that saw messages live elsewhere
        # a moment ago: give the projection a moment before calling the cursor bogus.
        if found.member and found.last_seq < cursor:
            found = await self.svc.projected.until(
                lambda: store.membership(self.svc.pool, conversation_id, self.user.username),
                lambda now: not now.member or now.last_seq >= cursor,
                CURSOR_WAIT_S,
            )
        if found.member:
            if not self.box.is_member(conversation_id):
                self.live.set_membership(self.box, conversation_id, found.version, True)
            return min(cursor, found.last_seq)
        if found.exists and not is_direct(conversation_id):
            code, message = "not_a_member", "You are not a member of this conversation."
        else:
            # Also for a direct conversation of others: its existence is not for them to learn.
            code, message = "conversation_not_found", "There is no such conversation."
        await self.ws.send_text(error_frame(code, message, conversation_id=conversation_id))
        return None

    async def _joined(self, conversation_id: str, version: int) -> None:
        found = await self.svc.projected.until(
            lambda: store.conversation(self.svc.pool, conversation_id),
            lambda c: c is not None and c.version >= version,
            FILL_WAIT_S,
        )
        if found is None or found.version < version:
            return  # the messages will come anyway; only the announcement is lost
        if self.user.username in found.members:
            body = conversation_json(found.conversation_id, found.kind, found.members, found.title)
            await self.ws.send_text(frame("conversation", body))

    async def _replay(self, conversation_id: str) -> None:
        """Everything the history has after the socket's position in the conversation."""
        sequencer = self.box.sequencer
        at = sequencer.position(conversation_id)
        assert at is not None
        while True:
            rows = await store.messages_after(self.svc.pool, conversation_id, at, None, FILL_PAGE)
            for row in rows:
                if row.seq != at + 1:
                    return  # the projection is mid-batch; the live stream fills the rest
                await self._send_row(row)
                at = row.seq
            if len(rows) < FILL_PAGE:
                return

    async def _fill(self, conversation_id: str, after: int, upto: int) -> None:
        """Send ``after + 1 .. upto`` from the history, waiting for the projection if needed."""
        deadline = time.monotonic() + FILL_WAIT_S
        while after < upto:
            change = self.svc.projected.next_change()
            rows = await store.messages_after(
                self.svc.pool, conversation_id, after, upto, FILL_PAGE
            )
            progressed = False
            for row in rows:
                if row.seq != after + 1:
                    break
                await self._send_row(row)
                after = row.seq
                progressed = True
            if after < upto and not progressed:
                if time.monotonic() > deadline:
                    raise HistoryUnavailableError(conversation_id)
                await self.svc.projected.changed(change, deadline - time.monotonic())

    async def _send_row(self, row: store.MessageRow) -> None:
        await self.ws.send_text(frame("message", message_json(row)))
        self.box.sequencer.sent(row.conversation_id, row.seq)
