"""Replay's progress, merged from partitions replayed side by side: one line per journal."""

from __future__ import annotations

import io

from snapshots.replay import Progress


def test_partitions_reporting_in_any_order_add_up_to_one_finished_line() -> None:
    out = io.StringIO()
    # Partition 1 was checkpointed at 10 by an earlier run; each ends with a commit marker.
    progress = Progress("shows", {0: 0, 1: 10}, {0: 101, 1: 61}, out, every_s=0.0)
    assert progress.total == 152

    progress.begin(1, 10, 61)
    progress.begin(0, 0, 101)
    progress.advance(0, 50, 50)
    progress.advance(1, 40, 30)
    assert progress.done == 80 and progress.entries == 80
    assert "shows: 80/152 (53%)" in out.getvalue() and "ETA" in out.getvalue()

    progress.finish(1, 61, 50)
    assert not out.getvalue().endswith("\n"), "a journal's line ends when all its partitions do"
    progress.advance(1, 45, 35)  # a late report of a finished partition changes nothing
    assert progress.entries == 100
    progress.finish(0, 101, 100)

    last = out.getvalue().split("\r")[-1]
    assert last.startswith("shows: 152/152 (100%)") and last.endswith("s\n")
    assert progress.entries == 150
    assert progress.seconds > 0


def test_a_resumed_show_partition_that_re_reads_moves_its_start_back() -> None:
    progress = Progress("shows", {0: 80}, {0: 101}, None)
    assert progress.total == 21
    # Its seat maps' snapshots lag the checkpoint: it re-reads from 60.
    progress.begin(0, 60, 101)
    assert progress.total == 41 and progress.done == 0
