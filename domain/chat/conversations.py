"""The conversation decider: one stream per ``conversation_id``, one writer assigning ``seq``.

``decide(state, command, now)`` returns the events a command causes, or raises a
``ChatError``; it never mutates ``state``. ``evolve(state, event)`` folds one event in;
it is total (any event on any state, never raises) and deterministic, so the journal
alone rebuilds the state.

Duplicates. ``decide`` answers a command it has already seen with the events it caused
the first time, unchanged:

- a ``SendMessage`` whose ``(sender, client_msg_id)`` was already sent returns the
  original ``MessageSent`` (even if the text differs or the sender has left since);
- any other command whose ``command_id`` was already decided returns its original events;
- a ``StartConversation`` of a direct pair that already talks returns the original
  ``ConversationStarted``.

The adapter recognises such an answer with ``already_journaled(state, events)``: the
events' versions are not above ``state.version``. It must not append them again and
answers 200 with them instead of 201. An empty list (``MarkRead`` at or below the
current marker) means nothing to append; answer with ``state.last_read_seq(user)``.

Memory. A conversation can hold millions of messages, so the state keeps no history:
members, counters, read markers, the last message for the list view, and two bounded
dedupe windows:

- the last ``SEND_WINDOW`` (10,000) sends with their ``MessageSent``, trimmed further
  so their texts total at most ``SEND_WINDOW_CHARS`` (2,000,000) characters: 10,000
  chat-sized lines, or 20 messages of the 100,000-character maximum. A client retry
  older than that window is sent as a new message;
- the command ids of the last ``COMMAND_WINDOW`` (10,000) other commands. A command
  that changed nothing (a read marker already past ``seq``) leaves no event and so no
  trace; a redelivery of it is decided afresh, which is harmless because markers only
  move forward.

The windows are part of the state and evolve trims them as it goes, so a replay of the
journal reproduces them exactly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import assert_never

from domain.chat.commands import (
    AddMember,
    ConversationCommand,
    MarkRead,
    RemoveMember,
    SendMessage,
    StartConversation,
)
from domain.chat.errors import (
    AlreadyMemberError,
    BlockedError,
    ConversationExistsError,
    ConversationNotFoundError,
    EmptyTextError,
    InvalidClientMsgIdError,
    InvalidConversationIdError,
    InvalidKindError,
    InvalidMembersError,
    InvalidSeqError,
    NotAGroupError,
    NotAMemberError,
    TextTooLongError,
    TitleTooLongError,
    TooManyMembersError,
)
from domain.chat.events import (
    DIRECT,
    GROUP,
    KINDS,
    ConversationEvent,
    ConversationStarted,
    MemberAdded,
    MemberRemoved,
    MessageSent,
    MessagesRead,
    occurred_at,
    require_utc,
)

# The duplicate check is written once for every context; re-exported (mypy's explicit
# `as` form) for the callers that look for it here.
from domain.decider import already_journaled as already_journaled  # noqa: PLC0414

MAX_GROUP_MEMBERS = 500
MAX_TEXT_CHARS = 100_000
MAX_TITLE_CHARS = 200
MAX_CLIENT_MSG_ID_CHARS = 200
SEND_WINDOW = 10_000
SEND_WINDOW_CHARS = 2_000_000
COMMAND_WINDOW = 10_000


DIRECT_PREFIX = "dm:"


def direct_conversation_id(a: str, b: str) -> str:
    """The one id of the direct conversation between ``a`` and ``b``, in either order."""
    low, high = sorted((a, b))
    # Length-prefixed so that no two pairs of names encode to the same bytes.
    digest = hashlib.sha256(f"{len(low)}:{low}{high}".encode()).hexdigest()
    return DIRECT_PREFIX + digest[:32]


def is_direct(conversation_id: str) -> bool:
    return conversation_id.startswith(DIRECT_PREFIX)


@dataclass(slots=True)
class Conversation:
    """The writer's state of one conversation: only what decisions need.

    Mutable on purpose: the single writer of the stream owns it and ``evolve`` updates
    it in place (returning the same object), because copying 10,000-entry dedupe windows
    per message would dominate the cost of a send. Keep a copy before evolving if an
    older state is needed.
    """

    started: ConversationStarted
    members: set[str]
    version: int
    last_seq: int = 0
    read: dict[str, int] = field(default_factory=dict)
    """Each member's last read seq; a member's own messages count as read."""
    last_message: MessageSent | None = None
    recent_sends: dict[tuple[str, str], MessageSent] = field(default_factory=dict)
    """(sender, client_msg_id) -> the message, oldest first."""
    recent_sends_chars: int = 0
    recent_commands: dict[str, tuple[ConversationEvent, ...]] = field(default_factory=dict)
    """command_id -> its events, oldest first; sends are deduped by ``recent_sends``."""

    @property
    def conversation_id(self) -> str:
        return self.started.conversation_id

    @property
    def kind(self) -> str:
        return self.started.kind

    @property
    def title(self) -> str | None:
        return self.started.title

    def is_member(self, user: str) -> bool:
        return user in self.members

    def last_read_seq(self, user: str) -> int:
        return self.read.get(user, 0)

    def message_for(self, sender: str, client_msg_id: str) -> MessageSent | None:
        """The message ``sender`` already sent under ``client_msg_id``, if still in the window."""
        return self.recent_sends.get((sender, client_msg_id))


def decide(
    state: Conversation | None, command: ConversationCommand, now: datetime
) -> list[ConversationEvent]:
    require_utc(now)
    if state is not None and (earlier := _earlier_answer(state, command)) is not None:
        return earlier
    match command:
        case StartConversation():
            return _start(state, command, now)
        case SendMessage():
            return _send(_existing(state, command.conversation_id), command, now)
        case AddMember():
            return _add_member(_existing(state, command.conversation_id), command, now)
        case RemoveMember():
            return _remove_member(_existing(state, command.conversation_id), command, now)
        case MarkRead():
            return _mark_read(_existing(state, command.conversation_id), command, now)
        case _:
            assert_never(command)


def evolve(state: Conversation | None, event: ConversationEvent) -> Conversation:
    """Fold ``event`` into ``state``, in place; see ``Conversation`` for why.

    Total: an event for a stream whose start is missing (a journal cut by retention,
    say) starts a bare group state rather than raising, so one bad stream cannot stall
    the partition that carries it.
    """
    if state is None:
        state = _bare(event)
    state.version = event.version
    match event:
        case ConversationStarted():
            pass
        case MessageSent():
            state.last_seq = max(state.last_seq, event.seq)
            state.last_message = event
            if event.sender in state.members:
                state.read[event.sender] = max(state.last_read_seq(event.sender), event.seq)
            _remember_send(state, event)
        case MemberAdded():
            state.members.add(event.user)
            # A newcomer starts caught up: a big group's backlog is history, not unread.
            state.read[event.user] = max(state.last_read_seq(event.user), state.last_seq)
        case MemberRemoved():
            state.members.discard(event.user)
            state.read.pop(event.user, None)
        case MessagesRead():
            if event.user in state.members:
                state.read[event.user] = max(state.last_read_seq(event.user), event.seq)
        case _:
            assert_never(event)
    if not isinstance(event, MessageSent):
        _remember_command(state, event)
    return state


def fold(events: Sequence[ConversationEvent]) -> Conversation | None:
    """The state after ``events``, from nothing: what a replay of the journal yields."""
    state: Conversation | None = None
    for event in events:
        state = evolve(state, event)
    return state


def _earlier_answer(
    state: Conversation, command: ConversationCommand
) -> list[ConversationEvent] | None:
    if isinstance(command, SendMessage):
        sent = state.message_for(command.sender, command.client_msg_id)
        return None if sent is None else [sent]
    earlier = state.recent_commands.get(command.command_id)
    return None if earlier is None else list(earlier)


def _existing(state: Conversation | None, conversation_id: str) -> Conversation:
    if state is None:
        raise ConversationNotFoundError(conversation_id=conversation_id)
    return state


def _start(
    state: Conversation | None, command: StartConversation, now: datetime
) -> list[ConversationEvent]:
    members = tuple(sorted({*command.members, command.creator}))
    if state is not None:
        if state.kind == DIRECT and command.kind == DIRECT and set(members) == state.members:
            return [state.started]
        raise ConversationExistsError(conversation_id=command.conversation_id)
    if command.kind not in KINDS:
        raise InvalidKindError(kind=command.kind)
    if not all(members):
        raise InvalidMembersError(reason="a member name cannot be empty")
    if command.kind == DIRECT:
        if len(members) != 2:
            raise InvalidMembersError(reason="a direct conversation has exactly two members")
        expected = direct_conversation_id(*members)
        if command.conversation_id != expected:
            raise InvalidConversationIdError(
                conversation_id=command.conversation_id, expected=expected
            )
    elif len(members) < 2:
        raise InvalidMembersError(reason="a group needs a member besides its creator")
    elif len(members) > MAX_GROUP_MEMBERS:
        raise TooManyMembersError(limit=MAX_GROUP_MEMBERS)
    if command.title is not None and len(command.title) > MAX_TITLE_CHARS:
        raise TitleTooLongError(limit=MAX_TITLE_CHARS)
    return [
        ConversationStarted(
            conversation_id=command.conversation_id,
            version=1,
            command_id=command.command_id,
            creator=command.creator,
            kind=command.kind,
            title=command.title,
            members=members,
            started_at=now,
        )
    ]


def _send(state: Conversation, command: SendMessage, now: datetime) -> list[ConversationEvent]:
    if not state.is_member(command.sender):
        raise NotAMemberError(conversation_id=state.conversation_id, user=command.sender)
    if not 0 < len(command.client_msg_id) <= MAX_CLIENT_MSG_ID_CHARS:
        raise InvalidClientMsgIdError(limit=MAX_CLIENT_MSG_ID_CHARS)
    if not command.text:
        raise EmptyTextError()
    if len(command.text) > MAX_TEXT_CHARS:
        raise TextTooLongError(length=len(command.text), limit=MAX_TEXT_CHARS)
    if state.kind == DIRECT and any(
        user != command.sender and user in state.members for user in command.sender_blocked_by
    ):
        raise BlockedError(conversation_id=state.conversation_id)
    return [
        MessageSent(
            conversation_id=state.conversation_id,
            version=state.version + 1,
            command_id=command.command_id,
            seq=state.last_seq + 1,
            sender=command.sender,
            client_msg_id=command.client_msg_id,
            text=command.text,
            sent_at=now,
        )
    ]


def _add_member(state: Conversation, command: AddMember, now: datetime) -> list[ConversationEvent]:
    _require_group_member(state, command.actor)
    if not command.user:
        raise InvalidMembersError(reason="a member name cannot be empty")
    if state.is_member(command.user):
        raise AlreadyMemberError(conversation_id=state.conversation_id, user=command.user)
    if len(state.members) >= MAX_GROUP_MEMBERS:
        raise TooManyMembersError(limit=MAX_GROUP_MEMBERS)
    return [
        MemberAdded(
            conversation_id=state.conversation_id,
            version=state.version + 1,
            command_id=command.command_id,
            actor=command.actor,
            user=command.user,
            added_at=now,
        )
    ]


def _remove_member(
    state: Conversation, command: RemoveMember, now: datetime
) -> list[ConversationEvent]:
    _require_group_member(state, command.actor)
    if not state.is_member(command.user):
        raise NotAMemberError(conversation_id=state.conversation_id, user=command.user)
    return [
        MemberRemoved(
            conversation_id=state.conversation_id,
            version=state.version + 1,
            command_id=command.command_id,
            actor=command.actor,
            user=command.user,
            removed_at=now,
        )
    ]


def _mark_read(state: Conversation, command: MarkRead, now: datetime) -> list[ConversationEvent]:
    if not state.is_member(command.user):
        raise NotAMemberError(conversation_id=state.conversation_id, user=command.user)
    if not 0 <= command.seq <= state.last_seq:
        raise InvalidSeqError(seq=command.seq, last_seq=state.last_seq)
    if command.seq <= state.last_read_seq(command.user):
        return []
    return [
        MessagesRead(
            conversation_id=state.conversation_id,
            version=state.version + 1,
            command_id=command.command_id,
            user=command.user,
            seq=command.seq,
            read_at=now,
        )
    ]


def _require_group_member(state: Conversation, actor: str) -> None:
    if state.kind != GROUP:
        raise NotAGroupError(conversation_id=state.conversation_id)
    if not state.is_member(actor):
        raise NotAMemberError(conversation_id=state.conversation_id, user=actor)


def _bare(event: ConversationEvent) -> Conversation:
    if isinstance(event, ConversationStarted):
        return Conversation(
            started=event,
            members=set(event.members),
            version=event.version,
            read=dict.fromkeys(event.members, 0),
        )
    stand_in = ConversationStarted(
        conversation_id=event.conversation_id,
        version=0,
        command_id="",
        creator="",
        kind=GROUP,
        title=None,
        members=(),
        started_at=occurred_at(event),
    )
    return Conversation(started=stand_in, members=set(), version=0)


def _remember_send(state: Conversation, event: MessageSent) -> None:
    key = (event.sender, event.client_msg_id)
    replaced = state.recent_sends.pop(key, None)
    if replaced is not None:
        state.recent_sends_chars -= len(replaced.text)
    state.recent_sends[key] = event
    state.recent_sends_chars += len(event.text)
    while len(state.recent_sends) > 1 and (
        len(state.recent_sends) > SEND_WINDOW or state.recent_sends_chars > SEND_WINDOW_CHARS
    ):
        oldest = next(iter(state.recent_sends))
        state.recent_sends_chars -= len(state.recent_sends.pop(oldest).text)


def _remember_command(state: Conversation, event: ConversationEvent) -> None:
    commands = state.recent_commands
    commands[event.command_id] = (*commands.get(event.command_id, ()), event)
    while len(commands) > COMMAND_WINDOW:
        del commands[next(iter(commands))]
