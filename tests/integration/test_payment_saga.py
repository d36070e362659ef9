"""The stand-in payment provider on the real PostgreSQL: one ledger for every worker.

Two provider instances with their own connection pools play two API workers (or a worker and
the reconciler, or a worker before and after a restart).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from psycopg_pool import AsyncConnectionPool

from boxoffice.settings import Settings
from snapshots.charges import (
    ChargeVoidedError,
    LedgerPaymentProvider,
    PaymentDeclinedError,
    UnknownChargeError,
)
from snapshots.database import async_pool

pytestmark = pytest.mark.integration


@pytest.fixture
async def pools(settings: Settings) -> AsyncIterator[tuple[AsyncConnectionPool, ...]]:
    opened = [async_pool(settings, f"worker-{n}") for n in range(2)]
    for pool in opened:
        await pool.open(wait=True, timeout=30)
    try:
        yield tuple(opened)
    finally:
        for pool in opened:
            await pool.close()


def key() -> str:
    return f"order-{uuid.uuid4().hex}:1"


async def test_two_workers_charging_one_key_at_once_make_one_charge(
    pools: tuple[AsyncConnectionPool, ...],
) -> None:
    first, second = (LedgerPaymentProvider(pool, slow_s=0.0) for pool in pools)
    k = key()
    charges = await asyncio.gather(
        *(provider.charge("tok_visa", 5000, k) for provider in (first, second) * 5)
    )
    assert len({c.charge_id for c in charges}) == 1
    assert {c.amount_cents for c in charges} == {5000}
    async with pools[0].connection() as conn:
        cursor = await conn.execute(
            "SELECT count(*), min(status) FROM payment_charges WHERE idempotency_key = %s", (k,)
        )
        assert await cursor.fetchone() == (1, "charged")


async def test_a_charge_outlives_the_worker_that_made_it(
    settings: Settings, pools: tuple[AsyncConnectionPool, ...]
) -> None:
    k = key()
    charged = await LedgerPaymentProvider(pools[0], slow_s=0.0).charge("tok_visa", 700, k)
    restarted = async_pool(settings, "restarted")
    await restarted.open(wait=True, timeout=30)
    try:
        again = LedgerPaymentProvider(restarted, slow_s=0.0)
        assert await again.lookup(k) == charged
        assert await again.charge("tok_other", 999, k) == charged
    finally:
        await restarted.close()


async def test_refunds_are_idempotent_and_only_for_real_charges(
    pools: tuple[AsyncConnectionPool, ...],
) -> None:
    first, second = (LedgerPaymentProvider(pool, slow_s=0.0) for pool in pools)
    charge = await first.charge("tok_visa", 1200, key())
    refunds = await asyncio.gather(first.refund(charge.charge_id), second.refund(charge.charge_id))
    assert {(r.charge_id, r.amount_cents, r.refunded) for r in refunds} == {
        (charge.charge_id, 1200, True)
    }
    with pytest.raises(UnknownChargeError):
        await first.refund("ch_never_made")


async def test_a_voided_key_is_never_charged_and_a_charged_key_is_never_voided(
    pools: tuple[AsyncConnectionPool, ...],
) -> None:
    worker, reconciler = (LedgerPaymentProvider(pool, slow_s=0.0) for pool in pools)
    abandoned = key()
    assert await reconciler.void(abandoned) is None
    with pytest.raises(ChargeVoidedError):
        await worker.charge("tok_visa", 100, abandoned)
    assert await reconciler.lookup(abandoned) is None

    taken = key()
    charge = await worker.charge("tok_visa", 100, taken)
    assert await reconciler.void(taken) == charge
    assert await worker.charge("tok_visa", 100, taken) == charge


async def test_a_declined_card_records_nothing_so_the_key_takes_another_card(
    pools: tuple[AsyncConnectionPool, ...],
) -> None:
    provider = LedgerPaymentProvider(pools[0], slow_s=0.0)
    k = key()
    with pytest.raises(PaymentDeclinedError):
        await provider.charge("decline_me", 100, k)
    assert await provider.lookup(k) is None
    assert (await provider.charge("tok_visa", 100, k)).amount_cents == 100
