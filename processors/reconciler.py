"""`python -m processors.reconciler`: drives every payment to exactly one end.

The payment saga (see `domain.ticketing.payments`): the API journals the intent to charge
(PaymentStarted, naming the provider idempotency key) before it charges, then the outcome
(OrderPaid, PaymentRefused, or PaymentAbandoned for a declined card), and refunds what the
journal owes back (PaymentRefused, OrderRefunded), journaling ChargeRefunded. Any of that can
be cut short by a crash or an outage; this process finishes it:

- an intent still open `payment_grace_s` after it started (longer than a slow charge plus a
  command timeout, so the API that started it has finished or died): the key is voided at the
  provider, which returns the charge if there is one. A charge is confirmed (ConfirmPayment:
  the decider sells the order, or refuses and owes the money back); no charge means the key
  can never be charged now, and the intent is abandoned (AbandonPayment);
- a charge owed back and not ChargeRefunded after `REFUND_GRACE_S`: refunded at the provider
  (idempotent) and journaled (RecordRefund).

Every command's id derives from what it settles, so the API's copy and ours are one command
to the decider, and a step repeated after a crash is answered, not decided again. Commands go
to the command journal like the API's; their outcome comes back on the event journal, which
closes the saga, so no reply is awaited. Until it is closed, a saga is retried with backoff.

State: the open sagas are rows of `payment_sagas`, folded from the show journal (consumer group
`<prefix>.reconciler`, read_committed) with the partitions' checkpoints in the same PostgreSQL
transaction, like the views: a kill -9 at any instant loses and doubles nothing.

Time bound: an interrupted payment ends (order paid, or charge refunded) within
payment_grace_s + REFUND_GRACE_S + 2 * TICK_S (15 + 2 + 2 s by default) of its intent, counted
from when Kafka, PostgreSQL and the decider are all up again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import psycopg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from psycopg_pool import AsyncConnectionPool

from boxoffice.settings import Settings, get_settings
from domain.ticketing.commands import AbandonPayment, ConfirmPayment, RecordRefund
from domain.ticketing.events import (
    ChargeRefunded,
    Event,
    OrderPaid,
    OrderRefunded,
    PaymentAbandoned,
    PaymentRefused,
    PaymentStarted,
)
from domain.ticketing.payments import (
    abandon_command_id,
    confirm_command_id,
    refund_command_id,
)
from producers.codec import DecodeError
from producers.envelope import CommandEnvelope, EventRecord
from producers.fetching import BACKGROUND_FETCH_WAIT_MS, folding_aiokafka
from producers.journal import JournalProducer, JournalUnavailableError
from producers.registries import TICKETING
from producers.topics import SHOW_COMMANDS, SHOW_EVENTS, partitions_of
from snapshots.charges import LedgerPaymentProvider, UnknownChargeError
from snapshots.checkpoints import load_checkpoints, save_checkpoints
from snapshots.database import async_pool, migrate

# The events a saga moves on; the rest of the journal is passed over undecoded.
SAGA_EVENTS = frozenset(
    kind.__name__
    for kind in (
        PaymentStarted,
        OrderPaid,
        PaymentAbandoned,
        PaymentRefused,
        OrderRefunded,
        ChargeRefunded,
    )
)
log = logging.getLogger("boxoffice.reconciler")

T = TypeVar("T")

CONSUMER = "reconciler"
# The API refunds a refused charge at once; this is only for when it could not.
REFUND_GRACE_S = 2.0
TICK_S = 1.0
# How long to wait for a command to be journaled before trying that saga again later.
SEND_TIMEOUT_S = 5.0
# A saga whose step did not end it is tried again after 2, 4, 8, ... at most 30 s.
MAX_BACKOFF_S = 30.0
UNSENT_RETRY_S = 3.0
RETRY_S = (0.5, 1.0, 2.0, 5.0)
MAX_AT_ONCE = 50
MAX_BATCH = 2000


class Reconciler:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.grace = timedelta(seconds=settings.payment_grace_s)
        self.refund_grace = timedelta(seconds=REFUND_GRACE_S)
        self.events_topic = SHOW_EVENTS.name(settings)
        self.commands_topic = SHOW_COMMANDS.name(settings)
        self.stopping = asyncio.Event()
        self.pool: AsyncConnectionPool[Any] | None = None
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: JournalProducer | None = None
        # The next offset expected per partition: anything older is a stale prefetch.
        self.positions: dict[int, int] = {}
        self.driven = 0

    # -- lifecycle ----------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            await self._retrying(
                "migrate PostgreSQL", lambda: asyncio.to_thread(migrate, self.settings)
            )
            self.pool = async_pool(self.settings, CONSUMER)
            await self.pool.open(wait=False)
            self.producer = JournalProducer(self.settings)
            await self._retrying("start the journal consumer", self._start_consumer)
            await self._retrying("seek to the checkpoints", self._seek_to_checkpoints)
            log.info(
                "reconciling payments of %s (grace %.0f s)",
                self.events_topic,
                self.settings.payment_grace_s,
            )
            await self._loop()
        finally:
            await self._shutdown()

    async def _start_consumer(self) -> None:
        topics = await asyncio.to_thread(partitions_of, self.settings, [self.events_topic])
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            # The group names our offsets for lag reports; the offsets that count are the
            # checkpoints kept in PostgreSQL with the sagas.
            group_id=f"{self.settings.topic_prefix}.{CONSUMER}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            **folding_aiokafka(self.settings, BACKGROUND_FETCH_WAIT_MS),
        )
        try:
            await consumer.start()
            # One reconciler at a time is the plan; a second one would only repeat idempotent
            # steps. Assigning every partition keeps rebalances out of the picture.
            consumer.assign(
                [TopicPartition(self.events_topic, p) for p in topics[self.events_topic]]
            )
        except BaseException:
            with contextlib.suppress(Exception):
                await consumer.stop()
            raise
        self.consumer = consumer

    async def _seek_to_checkpoints(self) -> None:
        assert self.consumer is not None and self.pool is not None
        checkpoints = await load_checkpoints(self.pool, CONSUMER, self.events_topic)
        for tp in self.consumer.assignment():
            start = checkpoints.get(tp.partition, 0)
            self.consumer.seek(tp, start)
            self.positions[tp.partition] = start

    async def _shutdown(self) -> None:
        if self.consumer is not None:
            # With the broker away, aiokafka's fetcher can end its stop() cancelled; we are
            # leaving anyway, and the checkpoints are in PostgreSQL.
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await self.consumer.stop()
        if self.producer is not None:
            await asyncio.to_thread(self.producer.close, 5.0)
        if self.pool is not None:
            await self.pool.close()
        log.info("stopped")

    async def _retrying(self, what: str, action: Callable[[], Awaitable[T]]) -> T:
        attempt = 0
        while True:
            try:
                return await action()
            except (psycopg.OperationalError, KafkaError, OSError, RuntimeError) as exc:
                if self.stopping.is_set():
                    raise
                delay = RETRY_S[min(attempt, len(RETRY_S) - 1)]
                log.warning("cannot %s (%s); retrying in %.1f s", what, exc, delay)
                attempt += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), delay)

    # -- the loop -----------------------------------------------------------------------------

    async def _loop(self) -> None:
        assert self.consumer is not None
        ticked = 0.0
        while not self.stopping.is_set():
            batches = await self.consumer.getmany(
                timeout_ms=int(TICK_S * 500), max_records=MAX_BATCH
            )
            caught_up = sum(len(messages) for messages in batches.values()) < MAX_BATCH
            try:
                if batches:
                    await self._fold(batches)
                # While catching up on a backlog, a saga's end may be just ahead: act only on
                # what is open at the journal's end.
                if caught_up and time.monotonic() - ticked >= TICK_S:
                    ticked = time.monotonic()
                    await self._tick()
            except psycopg.OperationalError as exc:
                # PostgreSQL went away mid-batch: nothing of it was committed. Start again
                # from the checkpoints once it answers.
                log.warning("PostgreSQL unavailable (%s); resuming from the checkpoints", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), 1.0)
                await self._retrying("seek to the checkpoints", self._seek_to_checkpoints)

    async def _fold(self, batches: dict[TopicPartition, list[Any]]) -> None:
        assert self.pool is not None
        next_offsets: dict[int, int] = {}
        async with self.pool.connection() as conn, conn.transaction():
            for tp, messages in batches.items():
                position = self.positions.get(tp.partition, 0)
                for message in messages:
                    if message.offset < position:
                        continue
                    position = message.offset + 1
                    try:
                        record = EventRecord.decode(message.value)
                        if record.event.get("type") not in SAGA_EVENTS:
                            continue  # most of the journal: holds, lines, shows
                        event = TICKETING.from_dict(record.event)
                    except DecodeError as exc:
                        # Not ours to park (the views dead-letter the journal's poison); it
                        # cannot be a payment step we could act on.
                        log.warning(
                            "skipping %s[%d]@%d: %s", tp.topic, tp.partition, message.offset, exc
                        )
                        continue
                    await self._apply(conn, event, record.recorded_at)
                next_offsets[tp.partition] = position
            await save_checkpoints(conn, CONSUMER, self.events_topic, next_offsets, notify=False)
        self.positions.update(next_offsets)

    async def _apply(self, conn: psycopg.AsyncConnection[Any], event: Event, at: datetime) -> None:
        match event:
            case PaymentStarted():
                # A renewed intent (the same key asked again) pushes the grace period out:
                # an API is still working on it.
                await conn.execute(
                    "INSERT INTO payment_sagas (saga_id, kind, show_id, order_id, username,"
                    " charge_key, amount_cents, since, due_at)"
                    " VALUES (%s, 'intent', %s, %s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (saga_id) DO UPDATE SET charge_key = EXCLUDED.charge_key,"
                    " amount_cents = EXCLUDED.amount_cents, since = EXCLUDED.since,"
                    " due_at = EXCLUDED.due_at, attempts = 0",
                    (
                        _intent(event.order_id),
                        event.show_id,
                        event.order_id,
                        event.user,
                        event.charge_key,
                        event.amount_cents,
                        event.started_at,
                        event.started_at + self.grace,
                    ),
                )
            case OrderPaid():
                await _delete(conn, _intent(event.order_id))
            case PaymentAbandoned():
                await conn.execute(
                    "DELETE FROM payment_sagas WHERE saga_id = %s AND charge_key = %s",
                    (_intent(event.order_id), event.charge_key),
                )
            case PaymentRefused() | OrderRefunded():
                if isinstance(event, PaymentRefused):
                    await _delete(conn, _intent(event.order_id))
                await conn.execute(
                    "INSERT INTO payment_sagas (saga_id, kind, show_id, order_id, username,"
                    " charge_id, amount_cents, since, due_at)"
                    " VALUES (%s, 'refund', %s, %s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (saga_id) DO NOTHING",
                    (
                        _refund(event.charge_id),
                        event.show_id,
                        event.order_id,
                        event.user,
                        event.charge_id,
                        event.amount_cents,
                        at,
                        at + self.refund_grace,
                    ),
                )
            case ChargeRefunded():
                await _delete(conn, _refund(event.charge_id))
            case _:
                pass

    # -- driving the due sagas ----------------------------------------------------------------

    async def _tick(self) -> None:
        assert self.pool is not None
        async with self.pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT saga_id, kind, show_id, order_id, username, charge_key, charge_id,"
                " amount_cents, attempts FROM payment_sagas WHERE due_at <= now()"
                " ORDER BY due_at LIMIT %s",
                (MAX_AT_ONCE,),
            )
            due = await cursor.fetchall()
        if due:
            await asyncio.gather(*(self._drive(Saga(*row)) for row in due))

    async def _drive(self, saga: Saga) -> None:
        assert self.pool is not None
        provider = LedgerPaymentProvider(self.pool, slow_s=0.0)
        command: AbandonPayment | ConfirmPayment | RecordRefund
        if saga.kind == "intent":
            assert saga.charge_key is not None
            # Void settles the race with a charge still in flight: either the charge is
            # there (and returned), or no charge can ever be taken under this key.
            charge = await provider.void(saga.charge_key)
            if charge is None:
                command = AbandonPayment(
                    command_id=abandon_command_id(saga.charge_key),
                    show_id=saga.show_id,
                    order_id=saga.order_id,
                    charge_key=saga.charge_key,
                    reason="no_charge",
                )
            else:
                command = ConfirmPayment(
                    command_id=confirm_command_id(charge.charge_id),
                    show_id=saga.show_id,
                    user=saga.user,
                    order_id=saga.order_id,
                    charge_id=charge.charge_id,
                    amount_cents=charge.amount_cents,
                )
        else:
            assert saga.charge_id is not None
            try:
                await provider.refund(saga.charge_id)
            except UnknownChargeError:
                # Nothing the provider could give back (a charge of the old in-memory
                # stand-in): say so loudly, and stop trying.
                log.error(
                    "charge %s of order %s is unknown to the provider",
                    saga.charge_id,
                    saga.order_id,
                )
                async with self.pool.connection() as conn:
                    await _delete(conn, saga.saga_id)
                return
            command = RecordRefund(
                command_id=refund_command_id(saga.charge_id),
                show_id=saga.show_id,
                order_id=saga.order_id,
                charge_id=saga.charge_id,
            )
        sent = await self._send(command, saga.show_id)
        log.info(
            "%s %s of order %s: %s%s",
            saga.kind,
            saga.charge_key or saga.charge_id,
            saga.order_id,
            type(command).__name__,
            "" if sent else " (not journaled yet; will retry)",
        )
        self.driven += 1
        # Journaled: its outcome arrives on the event journal and deletes the row; should it
        # not (a rejection), try again later and later. Not journaled (Kafka away): try again
        # soon, so the saga ends within seconds of Kafka's return.
        backoff = min(2.0 * 2**saga.attempts, MAX_BACKOFF_S) if sent else UNSENT_RETRY_S
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE payment_sagas SET attempts = attempts + %s,"
                " due_at = now() + make_interval(secs => %s) WHERE saga_id = %s",
                (1 if sent else 0, backoff, saga.saga_id),
            )

    async def _send(
        self, command: AbandonPayment | ConfirmPayment | RecordRefund, show_id: str
    ) -> bool:
        assert self.producer is not None
        payload = TICKETING.to_dict(command)
        envelope = CommandEnvelope(
            command_id=command.command_id,
            stream_id=show_id,
            type=payload.pop("type"),
            payload=payload,
        )
        try:
            await asyncio.wait_for(
                self.producer.send(self.commands_topic, show_id, envelope.encode()), SEND_TIMEOUT_S
            )
        except (TimeoutError, JournalUnavailableError) as exc:
            log.warning("cannot journal %s yet: %r", command.command_id, exc)
            return False
        return True


@dataclass(frozen=True, slots=True)
class Saga:
    """One row of payment_sagas: an open intent, or a charge owed back."""

    saga_id: str
    kind: str
    show_id: str
    order_id: str
    user: str
    charge_key: str | None
    charge_id: str | None
    amount_cents: int
    attempts: int


def _intent(order_id: str) -> str:
    return f"intent:{order_id}"


def _refund(charge_id: str) -> str:
    return f"refund:{charge_id}"


async def _delete(conn: psycopg.AsyncConnection[Any], saga_id: str) -> None:
    await conn.execute("DELETE FROM payment_sagas WHERE saga_id = %s", (saga_id,))


async def run(settings: Settings) -> None:
    reconciler = Reconciler(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, reconciler.stopping.set)
    await reconciler.run()


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(run(get_settings()))


if __name__ == "__main__":
    main()
