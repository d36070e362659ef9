"""One socket, one conversation: messages go out 1, 2, 3 with no gap and no repeat."""

from __future__ import annotations

from api.chatframes import Fill, Send, Sequencer, Skip


def test_a_socket_starts_where_it_joins_the_stream() -> None:
    seq = Sequencer()
    assert seq.position("c") is None
    seq.offered("c", 41)
    assert seq.position("c") == 40
    assert seq.plan("c", 41) == Send()
    seq.sent("c", 41)
    assert seq.plan("c", 41) == Skip()
    assert seq.plan("c", 42) == Send()


def test_only_the_first_offer_fixes_the_start() -> None:
    seq = Sequencer()
    seq.offered("c", 5)
    seq.offered("c", 9)  # queued behind 5..8, or dropped: either way the start is 4
    assert seq.plan("c", 9) == Fill(after=4, upto=8)


def test_a_jump_is_filled_first_and_a_repeat_is_skipped() -> None:
    seq = Sequencer()
    seq.offered("c", 1)
    seq.sent("c", 1)
    assert seq.plan("c", 4) == Fill(after=1, upto=3)
    for n in (2, 3, 4):
        seq.sent("c", n)
    assert seq.plan("c", 3) == Skip()
    assert seq.plan("c", 5) == Send()


def test_resume_sets_where_the_client_stands_even_behind_what_was_sent() -> None:
    seq = Sequencer()
    seq.offered("c", 10)
    seq.sent("c", 10)
    seq.resume("c", 3)
    assert seq.plan("c", 4) == Send()
    seq.resume("d", 7)
    seq.offered("d", 12)  # a resumed conversation's start is the cursor, not the offer
    assert seq.plan("d", 12) == Fill(after=7, upto=11)


def test_conversations_are_independent_and_forgotten_on_leaving() -> None:
    seq = Sequencer()
    seq.offered("a", 3)
    seq.offered("b", 8)
    seq.sent("a", 3)
    assert seq.plan("b", 8) == Send()
    seq.forget("a")
    assert seq.position("a") is None
    seq.offered("a", 20)
    assert seq.plan("a", 20) == Send()
