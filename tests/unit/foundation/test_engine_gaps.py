"""Faust's offset gaps, noted cheaply (`processors.engine.cheap_gaps`): the same gaps as
Faust's own path, and the same offsets committed, without rebuilding the tree per gap."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from faust.transport import consumer as faust_consumer
from faust.transport.consumer import Consumer

from processors.engine import cheap_gaps

TP = ("journal", 0)


class Offsets:
    """The part of a Faust consumer that gaps and commits use."""

    def __init__(self) -> None:
        self._committed_offset: dict[Any, int | None] = defaultdict(lambda: None)
        # Faust's own gap tree type (intervaltree's IntervalTree).
        self._gap: dict[Any, Any] = defaultdict(faust_consumer.IntervalTree)  # type: ignore[attr-defined]
        self._acked: dict[Any, list[int]] = defaultdict(list)
        self._acked_index: dict[Any, set[int]] = defaultdict(set)


def test_gaps_in_offset_order_are_kept_and_commits_pass_over_them() -> None:
    cheap_gaps()
    offsets = Offsets()

    async def run() -> None:
        # One event per transaction: events at even offsets, commit markers at odd ones. As
        # Faust's fetch loop calls it: from after the last message read to the new message.
        for offset in range(2, 2_001, 2):
            await Consumer._add_gap(offsets, TP, offset - 1, offset)  # type: ignore[arg-type]

    asyncio.run(run())
    gaps = sorted((i.begin, i.end) for i in offsets._gap[TP])
    assert gaps == [(o, o + 1) for o in range(1, 2_000, 2)]
    # Every event acked: one commit goes past every marker to the end (with the message
    # counted twice, as a gap's end and as acked, each commit passed one transaction).
    offsets._acked[TP] = list(range(0, 2_001, 2))
    offsets._acked_index[TP] = set(offsets._acked[TP])
    assert Consumer._new_offset(offsets, TP) == 2_001  # type: ignore[arg-type]
    assert not offsets._gap[TP]


def test_a_gap_behind_the_last_one_takes_fausts_own_path() -> None:
    cheap_gaps()
    offsets = Offsets()

    async def run() -> None:
        await Consumer._add_gap(offsets, TP, 10, 15)  # type: ignore[arg-type]
        await Consumer._add_gap(offsets, TP, 12, 21)  # type: ignore[arg-type]
        # Below the committed offset a gap no longer matters.
        offsets._committed_offset[TP] = 30
        await Consumer._add_gap(offsets, TP, 25, 30)  # type: ignore[arg-type]

    asyncio.run(run())
    assert sorted((i.begin, i.end) for i in offsets._gap[TP]) == [(10, 21)]
