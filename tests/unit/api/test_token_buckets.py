"""The token bucket: bursts, refill, Retry-After, and bounded memory."""

from __future__ import annotations

import pytest

from api.ratelimit import TokenBuckets


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_full_bucket_allows_a_burst_then_refuses() -> None:
    buckets = TokenBuckets(rate_per_s=2, burst=5, clock=Clock())
    assert [buckets.take("a") for _ in range(5)] == [0.0] * 5
    assert buckets.take("a") == pytest.approx(0.5)


def test_it_refills_at_the_rate_and_never_beyond_the_burst() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate_per_s=2, burst=5, clock=clock)
    for _ in range(5):
        buckets.take("a")
    clock.now += 1.0  # two tokens back
    assert buckets.take("a") == 0.0
    assert buckets.take("a") == 0.0
    assert buckets.take("a") > 0
    clock.now += 3600  # idle for an hour: still only a burst's worth
    assert [buckets.take("a") for _ in range(6)].count(0.0) == 5


def test_a_refusal_spends_nothing_so_waiting_the_answer_is_enough() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate_per_s=4, burst=1, clock=clock)
    buckets.take("a")
    wait = buckets.take("a")
    assert buckets.take("a") == pytest.approx(wait)  # the refusals did not dig a hole
    clock.now += wait
    assert buckets.take("a") == 0.0


def test_keys_have_buckets_of_their_own() -> None:
    buckets = TokenBuckets(rate_per_s=1, burst=1, clock=Clock())
    assert buckets.take("user:alice") == 0.0
    assert buckets.take("user:alice") > 0
    assert buckets.take("user:bob") == 0.0
    assert buckets.take("addr:127.0.0.1") == 0.0


def test_retry_after_is_whole_seconds_at_least_one_rounded_up() -> None:
    clock = Clock()
    fast = TokenBuckets(rate_per_s=50, burst=1, clock=clock)
    fast.take("a")
    assert fast.retry_after("a") == 1  # 0.02 s still says 1: Retry-After has no fractions
    slow = TokenBuckets(rate_per_s=0.4, burst=1, clock=clock)
    assert slow.retry_after("a") is None
    assert slow.retry_after("a") == 3  # 2.5 s rounds up, so obeying it always gets through
    clock.now += 3
    assert slow.retry_after("a") is None


def test_idle_buckets_are_evicted_once_they_would_be_full_again() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate_per_s=10, burst=20, clock=clock)
    for n in range(100):
        for _ in range(20):
            buckets.take(f"addr:{n}")
    assert len(buckets) == 100
    clock.now += 1.0  # half refilled: forgetting them now would hand out free tokens
    buckets.take("someone")
    assert len(buckets) == 101
    clock.now += 1.0  # full again, the same as fresh buckets
    buckets.take("someone")
    assert len(buckets) == 1


def test_an_active_key_keeps_its_bucket_while_it_is_below_full() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate_per_s=1, burst=3, clock=clock)
    for _ in range(3):
        buckets.take("busy")
    clock.now += 1.0
    buckets.take("other")
    assert len(buckets) == 2
    assert buckets.take("busy") == 0.0  # the one token refilled, not a fresh burst
    assert buckets.take("busy") > 0


def test_the_number_of_buckets_is_capped() -> None:
    buckets = TokenBuckets(rate_per_s=1, burst=10, max_buckets=100, clock=Clock())
    for n in range(10_000):
        buckets.take(f"addr:{n}")
    assert len(buckets) == 100
    # The newest keys are the ones kept.
    assert buckets.take("addr:9999") == 0.0
    assert len(buckets) == 100


@pytest.mark.parametrize(("rate", "burst"), [(0, 10), (-1, 10), (1, 0)])
def test_nonsense_limits_are_refused(rate: float, burst: int) -> None:
    with pytest.raises(ValueError):
        TokenBuckets(rate_per_s=rate, burst=burst)
