"""The payment provider the API charges through: the seam a real provider plugs into.

The bundled stand-in (`LocalPaymentProvider`) keeps its charges in PostgreSQL, shared by every
API worker and the reconciler (see `snapshots.charges`); it declines tokens starting with
"decline" and is slow for tokens starting with "slow".
"""

from __future__ import annotations

from snapshots.charges import (
    Charge,
    ChargeVoidedError,
    LedgerPaymentProvider,
    PaymentDeclinedError,
    PaymentProvider,
    UnknownChargeError,
)

LocalPaymentProvider = LedgerPaymentProvider

__all__ = [
    "Charge",
    "ChargeVoidedError",
    "LocalPaymentProvider",
    "PaymentDeclinedError",
    "PaymentProvider",
    "UnknownChargeError",
]
