"""Properties over random interleavings of many users' sends, retries, joins, leaves, reads."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.chat import conversations, social
from domain.chat.commands import (
    AddBuddy,
    AddMember,
    BlockUser,
    ConversationCommand,
    MarkRead,
    RemoveBuddy,
    RemoveMember,
    SendMessage,
    SocialCommand,
    StartConversation,
    UnblockUser,
)
from domain.chat.conversations import Conversation, direct_conversation_id
from domain.chat.errors import ChatError
from domain.chat.events import (
    DIRECT,
    GROUP,
    ConversationEvent,
    MessageSent,
    MessagesRead,
    SocialEvent,
)
from domain.chat.social import SocialGraph
from domain.chat.views import fold_inboxes

from .histories import T0

USERS = ("ann", "bob", "cat", "dan", "eve")

users = st.sampled_from(USERS)
by_kind: dict[str, st.SearchStrategy[tuple[object, ...]]] = {
    # A few client ids per user make retries of the same message common.
    "send": st.tuples(st.just("send"), users, st.integers(0, 9), st.lists(users, max_size=2)),
    "read": st.tuples(st.just("read"), users, st.integers(-1, 12)),
    "add": st.tuples(st.just("add"), users, users),
    "remove": st.tuples(st.just("remove"), users, users),
    "redeliver": st.tuples(st.just("redeliver"), st.integers(0, 1_000)),
}
# Mostly sends, as in a real conversation, with enough churn to exercise membership.
MIX = ("send",) * 6 + ("read",) * 2 + ("add",) * 2 + ("remove", "redeliver")
operations = st.lists(st.sampled_from(MIX).flatmap(by_kind.__getitem__), min_size=10, max_size=80)


@dataclass
class Writer:
    """The single writer of one conversation, recording everything it answered."""

    conversation_id: str
    state: Conversation | None = None
    journal: list[ConversationEvent] = field(default_factory=list)
    issued: list[ConversationCommand] = field(default_factory=list)
    accepted: list[tuple[ConversationCommand, list[ConversationEvent]]] = field(
        default_factory=list
    )
    markers: list[dict[str, int]] = field(default_factory=list)

    def handle(self, command: ConversationCommand, step: int) -> None:
        self.issued.append(command)
        before = copy.deepcopy(self.state)
        try:
            events = conversations.decide(self.state, command, T0 + timedelta(seconds=step))
        except ChatError:
            assert self.state == before
            return
        assert self.state == before, "decide mutated the state"
        if conversations.already_journaled(self.state, events):
            for event in events:
                assert self.journal[event.version - 1] == event
        else:
            for event in events:
                assert event.version == len(self.journal) + 1
                self.state = conversations.evolve(self.state, event)
                self.journal.append(event)
        self.accepted.append((command, events))
        assert self.state is not None
        self.markers.append(dict(self.state.read))


def build(op: tuple[object, ...], step: int, writer: Writer) -> ConversationCommand:
    cid = writer.conversation_id
    match op:
        case ("send", str(sender), int(n), list(blockers)):
            return SendMessage(
                command_id=f"c{step}",
                conversation_id=cid,
                sender=sender,
                client_msg_id=f"m{n}",
                text=f"{sender} says {step}",
                sender_blocked_by=tuple(str(b) for b in blockers),
            )
        case ("add", str(actor), str(user)):
            return AddMember(command_id=f"c{step}", conversation_id=cid, actor=actor, user=user)
        case ("remove", str(actor), str(user)):
            return RemoveMember(command_id=f"c{step}", conversation_id=cid, actor=actor, user=user)
        case ("read", str(user), int(seq)):
            return MarkRead(command_id=f"c{step}", conversation_id=cid, user=user, seq=seq)
        case ("redeliver", int(k)) if writer.issued:
            return writer.issued[k % len(writer.issued)]
        case _:
            return MarkRead(command_id=f"c{step}", conversation_id=cid, user="ann", seq=0)


def play(kind: str, ops: list[tuple[object, ...]]) -> Writer:
    if kind == DIRECT:
        cid = direct_conversation_id("ann", "bob")
        start = StartConversation("start", cid, "ann", ("bob",), DIRECT, None)
    else:
        cid = "g1"
        start = StartConversation("start", cid, "ann", ("bob", "cat", "dan"), GROUP, "crew")
    writer = Writer(conversation_id=cid)
    writer.handle(start, 0)
    for step, op in enumerate(ops, start=1):
        writer.handle(build(op, step, writer), step)
    return writer


kinds = st.sampled_from([GROUP, GROUP, DIRECT])


@settings(max_examples=150, deadline=None)
@given(kinds, operations)
def test_seq_and_version_count_up_by_one_with_no_gap_and_no_repeat(
    kind: str, ops: list[tuple[object, ...]]
) -> None:
    writer = play(kind, ops)

    seqs = [e.seq for e in writer.journal if isinstance(e, MessageSent)]
    assert seqs == list(range(1, len(seqs) + 1))
    assert [e.version for e in writer.journal] == list(range(1, len(writer.journal) + 1))
    assert writer.state is not None
    assert writer.state.version == len(writer.journal)
    assert writer.state.last_seq == len(seqs)


@settings(max_examples=150, deadline=None)
@given(kinds, operations)
def test_a_duplicate_send_always_returns_the_original_message(
    kind: str, ops: list[tuple[object, ...]]
) -> None:
    writer = play(kind, ops)

    first: dict[tuple[str, str], MessageSent] = {}
    for command, answer in writer.accepted:
        if isinstance(command, SendMessage):
            [message] = answer
            assert isinstance(message, MessageSent)
            key = (command.sender, command.client_msg_id)
            assert (message.sender, message.client_msg_id) == key
            assert first.setdefault(key, message) == message
    journaled = [(e.sender, e.client_msg_id) for e in writer.journal if isinstance(e, MessageSent)]
    assert len(journaled) == len(set(journaled))


@settings(max_examples=150, deadline=None)
@given(kinds, operations)
def test_a_redelivered_command_gets_its_first_answer_again(
    kind: str, ops: list[tuple[object, ...]]
) -> None:
    writer = play(kind, ops)

    first: dict[str, list[ConversationEvent]] = {}
    for command, answer in writer.accepted:
        if answer:
            assert first.setdefault(command.command_id, answer) == answer


@settings(max_examples=150, deadline=None)
@given(kinds, operations)
def test_read_markers_never_move_backwards(kind: str, ops: list[tuple[object, ...]]) -> None:
    writer = play(kind, ops)

    highest: dict[str, int] = {}
    for markers in writer.markers:
        for user, seq in markers.items():
            assert seq >= highest.get(user, 0), user
            highest[user] = seq
        assert writer.state is not None
        assert all(0 <= seq <= writer.state.last_seq for seq in markers.values())
    replayed: Conversation | None = None
    for event in writer.journal:
        if isinstance(event, MessagesRead):
            assert replayed is not None
            assert event.seq > replayed.last_read_seq(event.user), "a read that moves nothing"
        replayed = conversations.evolve(replayed, event)


@settings(max_examples=150, deadline=None)
@given(kinds, operations)
def test_replaying_the_journal_rebuilds_the_live_state_every_time(
    kind: str, ops: list[tuple[object, ...]]
) -> None:
    writer = play(kind, ops)

    once = conversations.fold(writer.journal)
    twice = conversations.fold(writer.journal)

    assert once == writer.state
    assert twice == once
    assert twice is not once


@settings(max_examples=150, deadline=None)
@given(kinds, operations)
def test_the_list_view_agrees_with_the_writer(kind: str, ops: list[tuple[object, ...]]) -> None:
    writer = play(kind, ops)
    state = writer.state
    assert state is not None

    inboxes = fold_inboxes(writer.journal)

    for user in USERS:
        summary = inboxes.summary(state.conversation_id, user)
        if not state.is_member(user):
            assert summary is None
            continue
        assert summary is not None
        assert summary.members == tuple(sorted(state.members))
        assert (summary.last_seq, summary.version) == (state.last_seq, state.version)
        assert summary.last_read_seq == state.last_read_seq(user)
        assert summary.unread == state.last_seq - state.last_read_seq(user)
        assert summary.last_message == state.last_message


social_commands = st.lists(
    st.tuples(st.sampled_from(["add", "remove", "block", "unblock", "redeliver"]), users),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(social_commands)
def test_the_social_graph_matches_a_model_and_replays_to_itself(
    ops: list[tuple[str, str]],
) -> None:
    graph: SocialGraph | None = None
    journal: list[SocialEvent] = []
    issued: list[SocialCommand] = []
    buddies: set[str] = set()
    blocks: set[str] = set()
    for step, (verb, other) in enumerate(ops):
        command = social_command(verb, other, step, issued)
        issued.append(command)
        try:
            events = social.decide(graph, command, T0)
        except ChatError:
            match command:
                case AddBuddy(buddy="ann") | BlockUser(blocked="ann"):
                    continue
                case _:
                    raise
        if social.already_journaled(graph, events):
            continue
        for event in events:
            assert event.version == len(journal) + 1
            graph = social.evolve(graph, event)
            journal.append(event)
        match command:
            case AddBuddy():
                buddies.add(command.buddy)
            case RemoveBuddy():
                buddies.discard(command.buddy)
            case BlockUser():
                blocks.add(command.blocked)
            case UnblockUser():
                blocks.discard(command.blocked)

    assert social.fold(journal) == graph
    if graph is not None:
        assert (graph.buddies, graph.blocks) == (buddies, blocks)


def social_command(verb: str, other: str, step: int, issued: list[SocialCommand]) -> SocialCommand:
    if verb == "redeliver" and issued:
        return issued[step % len(issued)]
    if verb == "add":
        return AddBuddy(command_id=f"c{step}", user="ann", buddy=other)
    if verb == "remove":
        return RemoveBuddy(command_id=f"c{step}", user="ann", buddy=other)
    if verb == "block":
        return BlockUser(command_id=f"c{step}", user="ann", blocked=other)
    return UnblockUser(command_id=f"c{step}", user="ann", blocked=other)


@given(st.text(), st.text())
def test_the_direct_id_of_a_pair_ignores_order(a: str, b: str) -> None:
    assert direct_conversation_id(a, b) == direct_conversation_id(b, a)
