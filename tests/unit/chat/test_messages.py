"""Rules for sending messages: seq, dedupe, membership, blocks and limits."""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest

from domain.chat.conversations import (
    MAX_CLIENT_MSG_ID_CHARS,
    MAX_TEXT_CHARS,
    SEND_WINDOW,
    SEND_WINDOW_CHARS,
    already_journaled,
    decide,
    evolve,
)
from domain.chat.errors import (
    BlockedError,
    ConversationNotFoundError,
    EmptyTextError,
    InvalidClientMsgIdError,
    NotAMemberError,
    TextTooLongError,
)
from domain.chat.events import MessageSent

from .histories import (
    ANN_BOB,
    T0,
    at,
    direct_started,
    given,
    group_started,
    joined,
    read,
    removed,
    run,
    send,
    sent,
)


def test_the_first_message_gets_seq_1_and_the_next_stream_version() -> None:
    state = given(group_started())

    events = decide(state, send("bob", "m1", "hi all"), now=at(5))

    assert events == [
        MessageSent(
            conversation_id="g1",
            version=2,
            command_id="send-bob-m1",
            seq=1,
            sender="bob",
            client_msg_id="m1",
            text="hi all",
            sent_at=at(5),
        )
    ]
    assert not already_journaled(state, events)


def test_seq_counts_messages_only_while_version_counts_every_event() -> None:
    state = given(
        group_started(),
        sent(1, "ann", version=2),
        joined("dan", version=3),
        read("bob", 1, version=4),
    )

    [event] = decide(state, send("dan"), now=T0)

    assert isinstance(event, MessageSent)
    assert (event.seq, event.version) == (2, 5)


def test_a_duplicate_send_returns_the_original_message_and_changes_nothing() -> None:
    original = sent(1, "bob", version=2, client_msg_id="m1", text="first try")
    state = given(group_started(), original)
    before = copy.deepcopy(state)

    retry = send("bob", "m1", "edited on retry", command_id="a-new-request")
    events = decide(state, retry, now=at(60))

    assert events == [original]
    assert already_journaled(state, events)
    assert state == before


def test_a_redelivered_send_returns_the_original_message() -> None:
    original = sent(1, "bob", version=2, client_msg_id="m1")
    state = given(group_started(), original)

    events = decide(state, send("bob", "m1", command_id=original.command_id), now=at(1))

    assert events == [original]


def test_a_duplicate_is_answered_even_after_the_sender_left() -> None:
    original = sent(1, "bob", version=2, client_msg_id="m1")
    state = given(group_started(), original, removed("bob", version=3))

    assert decide(state, send("bob", "m1"), now=at(1)) == [original]


def test_client_msg_ids_are_per_sender() -> None:
    state = given(group_started(), sent(1, "bob", version=2, client_msg_id="m1"))

    [event] = decide(state, send("cat", "m1"), now=T0)

    assert isinstance(event, MessageSent)
    assert (event.seq, event.sender) == (2, "cat")


def test_conversation_not_found() -> None:
    with pytest.raises(ConversationNotFoundError) as refused:
        decide(None, send("bob"), now=T0)

    assert refused.value == ConversationNotFoundError(conversation_id="g1")
    assert refused.value.code == "conversation_not_found"


def test_not_a_member_cannot_send() -> None:
    state = given(group_started())

    with pytest.raises(NotAMemberError) as refused:
        decide(state, send("eve"), now=T0)

    assert refused.value == NotAMemberError(conversation_id="g1", user="eve")
    assert refused.value.code == "not_a_member"


def test_a_removed_member_cannot_send() -> None:
    state = given(group_started(), removed("bob", version=2))

    with pytest.raises(NotAMemberError):
        decide(state, send("bob"), now=T0)


def test_blocked_in_a_direct_conversation() -> None:
    state = given(direct_started("ann", "bob"))

    with pytest.raises(BlockedError) as refused:
        decide(state, send("ann", conversation_id=ANN_BOB, blocked_by=("bob",)), now=T0)

    assert refused.value.code == "blocked"


def test_blocks_by_people_outside_the_conversation_do_not_count() -> None:
    state = given(direct_started("ann", "bob"))

    command = send("ann", conversation_id=ANN_BOB, blocked_by=("ann", "zed"))

    assert decide(state, command, now=T0)


def test_a_block_does_not_silence_a_group_member() -> None:
    state = given(group_started())

    assert decide(state, send("ann", blocked_by=("bob", "cat")), now=T0)


def test_empty_text() -> None:
    state = given(group_started())

    with pytest.raises(EmptyTextError) as refused:
        decide(state, send("bob", text=""), now=T0)

    assert refused.value.code == "empty_text"


def test_text_may_have_100000_characters_but_not_more() -> None:
    state = given(group_started())

    assert decide(state, send("bob", text="x" * MAX_TEXT_CHARS), now=T0)
    with pytest.raises(TextTooLongError) as refused:
        decide(state, send("bob", text="x" * (MAX_TEXT_CHARS + 1)), now=T0)

    assert refused.value == TextTooLongError(length=100_001, limit=100_000)
    assert refused.value.code == "text_too_long"


@pytest.mark.parametrize("client_msg_id", ["", "x" * (MAX_CLIENT_MSG_ID_CHARS + 1)])
def test_invalid_client_msg_id(client_msg_id: str) -> None:
    state = given(group_started())

    with pytest.raises(InvalidClientMsgIdError) as refused:
        decide(state, send("bob", client_msg_id), now=T0)

    assert refused.value.code == "invalid_client_msg_id"


def test_the_sender_has_read_their_own_message() -> None:
    state = given(group_started(), sent(1, "cat", version=2), sent(2, "bob", version=3))

    assert state.last_read_seq("bob") == 2
    assert state.last_read_seq("ann") == 0


def test_the_state_keeps_the_last_message_for_the_list_view() -> None:
    last = sent(2, "bob", version=3)

    assert given(group_started(), sent(1, "cat", version=2), last).last_message == last


def test_the_dedupe_window_forgets_the_oldest_send_after_10000_more() -> None:
    state, _ = run(
        given(group_started()),
        [send("bob", f"m{i}", f"line {i}") for i in range(SEND_WINDOW + 1)],
    )
    assert state is not None

    assert len(state.recent_sends) == SEND_WINDOW
    assert state.message_for("bob", "m0") is None
    assert state.message_for("bob", "m1") is not None
    [late_retry] = decide(state, send("bob", "m0", command_id="retry"), now=T0)
    assert isinstance(late_retry, MessageSent)
    assert late_retry.seq == SEND_WINDOW + 2


def test_the_dedupe_window_holds_at_most_2000000_characters_of_text() -> None:
    biggest = MAX_TEXT_CHARS
    fits = SEND_WINDOW_CHARS // biggest
    state, _ = run(
        given(group_started()),
        [send("bob", f"m{i}", "x" * biggest) for i in range(fits + 1)],
    )
    assert state is not None

    assert state.recent_sends_chars == SEND_WINDOW_CHARS
    assert len(state.recent_sends) == fits
    assert state.message_for("bob", "m0") is None
    assert state.message_for("bob", f"m{fits}") is not None


def test_decide_never_mutates_the_state() -> None:
    state = given(group_started(), sent(1, "bob", version=2))
    before = copy.deepcopy(state)

    decide(state, send("cat", "m9"), now=T0)
    decide(state, send("bob", "bob-1"), now=T0)

    assert state == before


def test_evolve_updates_the_state_in_place_and_returns_it() -> None:
    state = given(group_started())

    after = evolve(state, sent(1, "bob", version=2, sent_at=T0 + timedelta(seconds=1)))

    assert after is state
    assert (state.version, state.last_seq) == (2, 1)
