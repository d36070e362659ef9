"""The payment provider: the one outside party we stand in for.

`PaymentProvider` is the interface a real provider plugs into. The bundled local stand-in
declines tokens starting with "decline" and is slow for tokens starting with "slow".
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from typing import Protocol


class PaymentDeclinedError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Charge:
    charge_id: str
    amount_cents: int
    refunded: bool = False


class PaymentProvider(Protocol):
    async def charge(self, token: str, amount_cents: int, idempotency_key: str) -> Charge: ...

    async def refund(self, charge_id: str) -> Charge: ...


class LocalPaymentProvider:
    """In-process stand-in. Idempotent by key, like real providers: a retried charge with
    the same key returns the first charge instead of charging twice."""

    def __init__(self, slow_s: float) -> None:
        self.slow_s = slow_s
        self._charges: dict[str, Charge] = {}
        self._by_key: dict[str, str] = {}

    async def charge(self, token: str, amount_cents: int, idempotency_key: str) -> Charge:
        if token.startswith("decline"):
            raise PaymentDeclinedError("the card was declined")
        if token.startswith("slow"):
            await asyncio.sleep(self.slow_s)
        known = self._by_key.get(idempotency_key)
        if known is not None:
            return self._charges[known]
        charge = Charge(f"ch_{secrets.token_hex(12)}", amount_cents)
        self._charges[charge.charge_id] = charge
        self._by_key[idempotency_key] = charge.charge_id
        return charge

    async def refund(self, charge_id: str) -> Charge:
        charge = self._charges.get(charge_id)
        if charge is None:
            # A charge made by another API instance: a real provider knows it; ours records it.
            charge = Charge(charge_id, 0)
        refunded = Charge(charge.charge_id, charge.amount_cents, refunded=True)
        self._charges[charge_id] = refunded
        return refunded

    def charges(self) -> list[Charge]:
        return list(self._charges.values())
