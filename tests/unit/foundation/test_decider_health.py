"""The /readyz deciders check's rule: stuck means committed offsets that have not reached a
log end seen STUCK_AFTER_S ago (the broker-facing part runs in tests/e2e/test_recovery.py)."""

from __future__ import annotations

from producers.health import DeciderHealth
from tests import providers

P = ("t.ticketing.commands", 0)


def health() -> DeciderHealth:
    return DeciderHealth(providers.base_settings(), stuck_after_s=5.0, clock=lambda: 0.0)


def test_lag_younger_than_the_limit_is_not_stuck() -> None:
    h = health()
    assert h.judge(0.0, {P: 10}, {P: 4}) == "ok"
    assert h.judge(4.0, {P: 12}, {P: 9}) == "ok"


def test_offsets_behind_an_end_seen_long_ago_are_stuck() -> None:
    h = health()
    assert h.judge(0.0, {P: 10}, {P: 4}) == "ok"
    verdict = h.judge(6.0, {P: 12}, {P: 9})
    assert verdict.startswith("not deciding") and "t.ticketing.commands[0]" in verdict


def test_a_loop_that_keeps_up_under_load_is_fine() -> None:
    h = health()
    for second in range(20):
        # New commands all the time, each decided within a second or two.
        assert h.judge(float(second), {P: 100 * (second + 1)}, {P: 100 * second}) == "ok"


def test_a_partition_never_committed_counts_from_zero() -> None:
    h = health()
    assert h.judge(0.0, {P: 0}, {}) == "ok"
    assert h.judge(6.0, {P: 0}, {P: -1001}) == "ok"
    h.judge(7.0, {P: 3}, {P: -1001})
    assert h.judge(13.0, {P: 3}, {P: -1001}).startswith("not deciding")
