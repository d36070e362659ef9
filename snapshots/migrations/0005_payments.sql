-- The payment saga's two stores.
--
-- payment_charges is the bundled stand-in provider's ledger: what a real provider keeps on
-- its side. One row per idempotency key, shared by every API worker and the reconciler and
-- surviving their restarts, so a key is charged at most once whoever retries. A key is
-- 'charged' (then maybe 'refunded'), or 'voided' when the reconciler gave up on an intent
-- that never charged: a charge that arrives after that is refused.
CREATE TABLE payment_charges (
    idempotency_key text PRIMARY KEY,
    charge_id       text UNIQUE,
    amount_cents    bigint NOT NULL,
    status          text NOT NULL CHECK (status IN ('charged', 'refunded', 'voided')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'voided') = (charge_id IS NULL))
);

-- The reconciler's open work, folded from the show journal (its checkpoints are in
-- projection_offsets, written in the same transaction): an 'intent' per order with a
-- PaymentStarted not yet ended, a 'refund' per charge owed back and not yet ChargeRefunded.
-- Rows are deleted when their saga ends; the journal keeps the history.
CREATE TABLE payment_sagas (
    saga_id      text PRIMARY KEY,
    kind         text NOT NULL CHECK (kind IN ('intent', 'refund')),
    show_id      text NOT NULL,
    order_id     text NOT NULL,
    username     text NOT NULL,
    charge_key   text,
    charge_id    text,
    amount_cents bigint NOT NULL,
    since        timestamptz NOT NULL,
    -- When the reconciler acts next: the grace period first, then a backoff per attempt.
    due_at       timestamptz NOT NULL,
    attempts     integer NOT NULL DEFAULT 0
);
CREATE INDEX payment_sagas_due ON payment_sagas (due_at);
