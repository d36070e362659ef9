"""The payment provider seam, and the bundled stand-in that keeps its charges in PostgreSQL.

`PaymentProvider` is what a real provider plugs into: charges idempotent by key, refunds
idempotent by charge, and `void(key)` (a real provider's "cancel the payment intent"), which
makes sure no charge can appear under a key the saga gave up on.

`LedgerPaymentProvider` is the stand-in: its ledger is the `payment_charges` table, shared by
every API worker and the reconciler and surviving restarts, so a key is charged at most once
whoever retries it. It declines tokens starting with "decline" (recording nothing, so the key
stays usable for another card) and is slow for tokens starting with "slow": the charge is
taken at once, the answer comes `slow_s` later, as with a provider whose reply is delayed.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from typing import Protocol

from snapshots.connections import Db, connection


class PaymentDeclinedError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ChargeVoidedError(Exception):
    """The key was voided (its intent abandoned): nothing is charged under it, ever."""


class UnknownChargeError(Exception):
    """A refund of a charge the provider never made."""


@dataclass(frozen=True, slots=True)
class Charge:
    charge_id: str
    amount_cents: int
    refunded: bool = False


class PaymentProvider(Protocol):
    async def charge(self, token: str, amount_cents: int, idempotency_key: str) -> Charge:
        """Charge once per key: a retry returns the first charge. ChargeVoidedError for a
        voided key, PaymentDeclinedError for a declined card."""
        ...

    async def refund(self, charge_id: str) -> Charge:
        """Refund the charge; refunding it again returns the same refunded charge."""
        ...

    async def void(self, idempotency_key: str) -> Charge | None:
        """Refuse every later charge under the key, unless one exists: then return it."""
        ...


class LedgerPaymentProvider:
    def __init__(self, db: Db, slow_s: float) -> None:
        self.db = db
        self.slow_s = slow_s

    async def charge(self, token: str, amount_cents: int, idempotency_key: str) -> Charge:
        if token.startswith("decline"):
            raise PaymentDeclinedError("The card was declined.")
        async with connection(self.db) as conn:
            # One statement: insert the charge, or (the no-op update) return the key's row.
            cursor = await conn.execute(
                "INSERT INTO payment_charges (idempotency_key, charge_id, amount_cents, status)"
                " VALUES (%s, %s, %s, 'charged')"
                " ON CONFLICT (idempotency_key) DO UPDATE"
                " SET idempotency_key = EXCLUDED.idempotency_key"
                " RETURNING charge_id, amount_cents, status",
                (idempotency_key, f"ch_{secrets.token_hex(12)}", amount_cents),
            )
            row = await cursor.fetchone()
        assert row is not None
        charge_id, amount, status = row
        if status == "voided":
            raise ChargeVoidedError(idempotency_key)
        if token.startswith("slow"):
            await asyncio.sleep(self.slow_s)
        return Charge(charge_id, int(amount), refunded=status == "refunded")

    async def refund(self, charge_id: str) -> Charge:
        async with connection(self.db) as conn:
            cursor = await conn.execute(
                "UPDATE payment_charges SET status = 'refunded', updated_at = now()"
                " WHERE charge_id = %s AND status IN ('charged', 'refunded')"
                " RETURNING amount_cents",
                (charge_id,),
            )
            row = await cursor.fetchone()
        if row is None:
            raise UnknownChargeError(charge_id)
        return Charge(charge_id, int(row[0]), refunded=True)

    async def void(self, idempotency_key: str) -> Charge | None:
        async with connection(self.db) as conn:
            cursor = await conn.execute(
                "INSERT INTO payment_charges (idempotency_key, charge_id, amount_cents, status)"
                " VALUES (%s, NULL, 0, 'voided')"
                " ON CONFLICT (idempotency_key) DO UPDATE"
                " SET idempotency_key = EXCLUDED.idempotency_key"
                " RETURNING charge_id, amount_cents, status",
                (idempotency_key,),
            )
            row = await cursor.fetchone()
        assert row is not None
        charge_id, amount, status = row
        if status == "voided":
            return None
        return Charge(charge_id, int(amount), refunded=status == "refunded")

    async def lookup(self, idempotency_key: str) -> Charge | None:
        """The charge under the key, if any (None when absent or voided)."""
        async with connection(self.db) as conn:
            cursor = await conn.execute(
                "SELECT charge_id, amount_cents, status FROM payment_charges"
                " WHERE idempotency_key = %s AND status <> 'voided'",
                (idempotency_key,),
            )
            row = await cursor.fetchone()
        if row is None:
            return None
        return Charge(row[0], int(row[1]), refunded=row[2] == "refunded")
