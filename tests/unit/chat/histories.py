"""Histories to start chat tests from: given(events...), and short builders for both.

Defaults describe one group, "g1", started by ann with bob and cat, so a test names
only what its rule is about.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from domain.chat import conversations, social
from domain.chat.commands import (
    AddMember,
    ConversationCommand,
    MarkRead,
    RemoveMember,
    SendMessage,
    StartConversation,
)
from domain.chat.conversations import Conversation, direct_conversation_id
from domain.chat.events import (
    DIRECT,
    GROUP,
    ConversationEvent,
    ConversationStarted,
    MemberAdded,
    MemberRemoved,
    MessageSent,
    MessagesRead,
    SocialEvent,
)
from domain.chat.social import SocialGraph

T0 = datetime(2025, 3, 1, 20, 0, tzinfo=UTC)
GROUP_ID = "g1"
CREW = ("ann", "bob", "cat")
ANN_BOB = direct_conversation_id("ann", "bob")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def given(*events: ConversationEvent) -> Conversation:
    state = conversations.fold(events)
    assert state is not None
    return state


def given_graph(*events: SocialEvent) -> SocialGraph:
    state = social.fold(events)
    assert state is not None
    return state


def run(
    state: Conversation | None, commands: Sequence[ConversationCommand], now: datetime = T0
) -> tuple[Conversation | None, list[ConversationEvent]]:
    """Decide and evolve each command in turn, as the writer does; returns the new journal."""
    journal: list[ConversationEvent] = []
    for command in commands:
        events = conversations.decide(state, command, now)
        if conversations.already_journaled(state, events):
            continue
        for event in events:
            state = conversations.evolve(state, event)
            journal.append(event)
    return state, journal


def group_started(
    *members: str, creator: str = "ann", title: str | None = "crew", conversation_id: str = GROUP_ID
) -> ConversationStarted:
    return ConversationStarted(
        conversation_id=conversation_id,
        version=1,
        command_id=f"start-{conversation_id}",
        creator=creator,
        kind=GROUP,
        title=title,
        members=tuple(sorted(members or CREW)),
        started_at=T0,
    )


def direct_started(a: str = "ann", b: str = "bob") -> ConversationStarted:
    conversation_id = direct_conversation_id(a, b)
    return ConversationStarted(
        conversation_id=conversation_id,
        version=1,
        command_id=f"start-{conversation_id}",
        creator=a,
        kind=DIRECT,
        title=None,
        members=tuple(sorted((a, b))),
        started_at=T0,
    )


def sent(
    seq: int,
    sender: str,
    *,
    version: int,
    client_msg_id: str | None = None,
    text: str | None = None,
    sent_at: datetime = T0,
    conversation_id: str = GROUP_ID,
) -> MessageSent:
    client_msg_id = client_msg_id or f"{sender}-{seq}"
    return MessageSent(
        conversation_id=conversation_id,
        version=version,
        command_id=f"send-{sender}-{client_msg_id}",
        seq=seq,
        sender=sender,
        client_msg_id=client_msg_id,
        text=text if text is not None else f"message {seq}",
        sent_at=sent_at,
    )


def joined(user: str, *, version: int, actor: str = "ann") -> MemberAdded:
    return MemberAdded(
        conversation_id=GROUP_ID,
        version=version,
        command_id=f"add-{user}-{version}",
        actor=actor,
        user=user,
        added_at=T0,
    )


def removed(user: str, *, version: int, actor: str | None = None) -> MemberRemoved:
    return MemberRemoved(
        conversation_id=GROUP_ID,
        version=version,
        command_id=f"remove-{user}-{version}",
        actor=actor or user,
        user=user,
        removed_at=T0,
    )


def read(user: str, seq: int, *, version: int) -> MessagesRead:
    return MessagesRead(
        conversation_id=GROUP_ID,
        version=version,
        command_id=f"read-{user}-{seq}",
        user=user,
        seq=seq,
        read_at=T0,
    )


def start_group(
    *members: str,
    creator: str = "ann",
    title: str | None = "crew",
    command_id: str = "start-g1",
    conversation_id: str = GROUP_ID,
) -> StartConversation:
    return StartConversation(
        command_id=command_id,
        conversation_id=conversation_id,
        creator=creator,
        members=members or CREW,
        kind=GROUP,
        title=title,
    )


def start_direct(
    creator: str = "ann", other: str = "bob", *, command_id: str | None = None
) -> StartConversation:
    return StartConversation(
        command_id=command_id or f"start-dm-{creator}-{other}",
        conversation_id=direct_conversation_id(creator, other),
        creator=creator,
        members=(other,),
        kind=DIRECT,
        title=None,
    )


def send(
    sender: str,
    client_msg_id: str = "m1",
    text: str = "hello",
    *,
    command_id: str | None = None,
    conversation_id: str = GROUP_ID,
    blocked_by: tuple[str, ...] = (),
) -> SendMessage:
    return SendMessage(
        command_id=command_id or f"send-{sender}-{client_msg_id}",
        conversation_id=conversation_id,
        sender=sender,
        client_msg_id=client_msg_id,
        text=text,
        sender_blocked_by=blocked_by,
    )


def add(
    user: str,
    *,
    actor: str = "ann",
    command_id: str | None = None,
    conversation_id: str = GROUP_ID,
) -> AddMember:
    return AddMember(
        command_id=command_id or f"add-{user}",
        conversation_id=conversation_id,
        actor=actor,
        user=user,
    )


def remove(
    user: str,
    *,
    actor: str | None = None,
    command_id: str | None = None,
    conversation_id: str = GROUP_ID,
) -> RemoveMember:
    return RemoveMember(
        command_id=command_id or f"remove-{user}",
        conversation_id=conversation_id,
        actor=actor or user,
        user=user,
    )


def mark_read(user: str, seq: int, *, command_id: str | None = None) -> MarkRead:
    return MarkRead(
        command_id=command_id or f"read-{user}-{seq}",
        conversation_id=GROUP_ID,
        user=user,
        seq=seq,
    )
