"""The projector engine keeps up: after a burst, both views trail their journals by under 1 s
within 5 s of the burst's end.

Both Faust workers run as the stack runs them (`python -m processors views|chatviews
worker`). The burst is journals made by the real deciders' domain (a few thousand ticketing and
chat events, in transactions as the deciders write them). Lag is bench/lag.py's: the age of the
oldest journaled event a view's PostgreSQL checkpoint does not cover yet.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Iterator

import pytest

from bench.lag import LagSampler
from boxoffice.settings import Settings
from stack.processes import Daemon
from tests.integration.chat_journals import conversation_journal, produce_chat, social_journal
from tests.integration.engine_workers import ENGINE_COMPONENTS, engine_daemon, start_engine
from tests.integration.test_views import env, new_show, produce  # noqa: F401  (env: fixture)

pytestmark = pytest.mark.integration

LAG_S = 1.0
WITHIN_S = 5.0


@pytest.fixture(scope="module")
def workers(env: Settings) -> Iterator[list[Daemon]]:  # noqa: F811
    daemons = [engine_daemon(env, f"engine-{c}-lag", c) for c in ENGINE_COMPONENTS]
    for daemon, component in zip(daemons, ENGINE_COMPONENTS, strict=True):
        daemon.stop(timeout_s=10)  # a leftover of an interrupted run has other settings
        start_engine(daemon, env, component)
    try:
        yield daemons
    finally:
        for daemon in daemons:
            daemon.stop(timeout_s=30)


def chat_burst(env: Settings, conversations: int, events: int, seed: int) -> int:  # noqa: F811
    rng = random.Random(seed)
    users = [f"u-{uuid.uuid4().hex[:6]}" for _ in range(12)]
    chats = [
        conversation_journal(f"conv-{uuid.uuid4().hex[:8]}", users, events, rng)
        for _ in range(conversations)
    ]
    socials = [social_journal(user, users, 10, rng) for user in users[:4]]
    return produce_chat(env, chats, socials)


async def test_both_views_are_back_under_a_second_of_lag_within_five_seconds_of_a_burst(
    env: Settings,  # noqa: F811
    workers: list[Daemon],
) -> None:
    async with LagSampler(env, ENGINE_COMPONENTS) as sampler:
        # Warm up: the workers have joined their groups and projected something.
        await asyncio.to_thread(produce, env, [new_show(20, seed=1)])
        await asyncio.to_thread(chat_burst, env, 1, 10, 1)
        for component in ENGINE_COMPONENTS:
            await sampler.until_under(component, 1e-6, timeout_s=90)

        shows = [new_show(600, seed=n) for n in range(4)]
        started = time.monotonic()
        await asyncio.to_thread(produce, env, shows, 250)
        chat_events = await asyncio.to_thread(chat_burst, env, 10, 100, 2)
        burst_s = time.monotonic() - started
        ended = time.time()

        # Polled for: a loaded machine gets its figures, and a failure says how far off it was.
        back: dict[str, float] = {}
        for component in ENGINE_COMPONENTS:
            at = await sampler.until_under(component, LAG_S, timeout_s=120)
            back[component] = max(0.0, at - ended)
        worst = {
            c: max((lag for at, lag in sampler.samples[c] if at >= ended), default=0.0)
            for c in ENGINE_COMPONENTS
        }
    events = sum(map(len, shows)) + chat_events
    print(f"burst of {events} events in {burst_s:.1f} s; under {LAG_S} s after {back}; {worst=}")
    assert events > 2000
    for component in ENGINE_COMPONENTS:
        assert back[component] <= WITHIN_S, (
            f"{component}: lag under {LAG_S} s only {back[component]:.1f} s after a burst of "
            f"{events} events in {burst_s:.1f} s (worst lag after it {worst[component]:.1f} s)"
        )
