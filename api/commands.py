"""The command gateway, one for every context (ticketing, lines, chat, social, system).

A command's id comes from its user and Idempotency-Key (`command_id_for`); the command is
journaled (acks=all) and its decision awaited, keyed by that id (`CommandBus.send`); a refusal
becomes its HTTP status through the one table below (`rejection`). Routes only build
commands and shape answers.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Callable
from typing import Any

from api import metrics
from api.errors import ApiError, unavailable
from boxoffice.settings import Settings
from producers.codec import Registry
from producers.envelope import CommandEnvelope, Reply
from producers.journal import JournalProducer, JournalUnavailableError
from producers.replies import ReplyTimeoutError, ReplyWaiter
from producers.topics import Topic

# The one place domain rejections become HTTP statuses, every context's codes (a unit test
# checks that every domain error has one). Anything unlisted is a 409.
STATUS_BY_CODE: dict[str, int] = {
    # Ticketing.
    "seats_unavailable": 409,
    "zone_sold_out": 409,
    "not_enough_seats": 409,
    "order_not_held": 409,
    "hold_expired": 409,
    "order_not_paid": 409,
    "show_exists": 409,
    "order_exists": 409,
    "payment_amount_mismatch": 409,
    "unknown_seat": 404,
    "unknown_zone": 404,
    "unknown_section": 404,
    "show_not_found": 404,
    "order_not_found": 404,
    "not_order_owner": 403,
    "invalid_show": 422,
    "too_many_seats": 422,
    "duplicate_seat": 422,
    "invalid_quantity": 422,
    "invalid_hold": 422,
    # Lines. already_in_line and already_in_queue are answered 200 by their routes.
    "seats_available": 409,
    "not_waiting": 409,
    "entry_exists": 409,
    "not_in_line": 404,
    "no_queue": 404,
    "not_in_queue": 404,
    "queue_pass_required": 403,
    "invalid_waitlist": 422,
    # Chat and the social graph.
    "conversation_not_found": 404,
    "user_not_found": 404,
    "not_a_member": 403,
    "blocked": 403,
    "conversation_exists": 409,
    "already_member": 409,
    "not_a_group": 409,
    "invalid_conversation_id": 422,
    "invalid_kind": 422,
    "invalid_members": 422,
    "too_many_members": 422,
    "title_too_long": 422,
    "empty_text": 422,
    "text_too_long": 422,
    "invalid_client_msg_id": 422,
    "invalid_seq": 422,
    "invalid_user": 422,
    "cannot_buddy_self": 422,
    "cannot_block_self": 422,
    # Any context: a command the decider could not read.
    "invalid_command": 422,
}


def rejection(error: dict[str, Any]) -> ApiError:
    """A decider's refusal as the contract's error."""
    code = str(error.get("code", "rejected"))
    return ApiError(
        STATUS_BY_CODE.get(code, 409),
        code,
        str(error.get("message", code)),
        dict(error.get("details") or {}),
    )


def command_id_for(user: str, kind: str, key: str | None) -> str:
    """The dedupe key: the same Idempotency-Key from the same user for the same thing is one
    command; without a key every request is a command of its own."""
    if key is None:
        return secrets.token_hex(16)
    return hashlib.sha256(f"{user}\x00{kind}\x00{key}".encode()).hexdigest()[:32]


def last_event(reply: Reply, kind: str) -> dict[str, Any]:
    """The decision's last event of type `kind` (409 if the decider answered without one)."""
    for event in reversed(reply.events):
        if event.get("type") == kind:
            found: dict[str, Any] = event
            return found
    raise ApiError(409, "conflict", f"the decider answered without a {kind} event")


class CommandBus:
    def __init__(self, settings: Settings, producer: JournalProducer, replies: ReplyWaiter) -> None:
        self._settings = settings
        self._producer = producer
        self._replies = replies
        # Set by the API: False while Kafka is known to be down, so commands fail fast.
        self.available: Callable[[], bool] = lambda: True

    async def decide(self, topic: Topic, command: CommandEnvelope) -> Reply:
        """Journal the command (acks=all) and wait for its decision; 503 if either stalls."""
        if not self.available():
            raise unavailable("the command journal")
        timeout = self._settings.command_timeout_s
        future = self._replies.expect(command.command_id)
        try:
            await asyncio.wait_for(
                self._producer.send(
                    topic.name(self._settings), command.stream_id, command.encode()
                ),
                timeout,
            )
        except (TimeoutError, JournalUnavailableError) as exc:
            future.cancel()
            raise unavailable("the command journal") from exc
        try:
            return await self._replies.wait(command.command_id, future, timeout)
        except ReplyTimeoutError as exc:
            # Journaled but not decided yet: the same command id makes a retry safe.
            raise unavailable("the decider") from exc

    async def send(self, topic: Topic, registry: Registry, stream_id: str, command: Any) -> Reply:
        """Encode `command` (a frozen dataclass of `registry`, with its `command_id`) for the
        decider of `stream_id`, journal it and await its decision, counted by outcome."""
        payload = registry.to_dict(command)
        kind = payload.pop("type")
        envelope = CommandEnvelope(
            command_id=command.command_id, stream_id=stream_id, type=kind, payload=payload
        )
        reply = await self.decide(topic, envelope)
        metrics.COMMANDS.labels(kind, "ok" if reply.ok else "rejected").inc()
        return reply
