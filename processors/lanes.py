"""Kafka transactions in flight at once, each on a lane of its own (a transactional producer).

A transaction costs five round trips in order (librdkafka speaks the first transaction
protocol: AddPartitionsToTxn, Produce, AddOffsetsToTxn, TxnOffsetCommit, EndTxn). The decider
loop decides in one thread, in journal order, into an `Outbox`; `Lanes.start` sends the batch
on a lane once every earlier batch writing the same event journal partitions is acknowledged
(two lanes' records must never overtake one another in a partition: its order is the streams'
version order), and the lane's thread adds the consumed offsets and commits while the loop
decides the next batch. A batch commits only after the batch before it committed, and aborts
if that one did not; the loop then drains the lanes and folds its partitions again.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition

log = logging.getLogger("boxoffice.deciders")

# How long one transactional call (sending the offsets, committing) may wait for the brokers.
CALL_TIMEOUT_S = 10.0


class Outbox:
    """What a batch will produce, kept while it is decided and sent when its lane may."""

    def __init__(self, replies_partition: int) -> None:
        # Every reply of the batch goes to this partition: the API reads them all alike, and a
        # transaction pays a commit marker for every partition it wrote.
        self.replies_partition = replies_partition
        self.records: list[tuple[str, dict[str, Any]]] = []
        # The event journal partitions written: a later batch writes to them only after this
        # batch's records are acknowledged.
        self.journals: set[tuple[str, int]] = set()

    def produce(self, topic: str, **record: Any) -> None:
        self.records.append((topic, record))

    def journal(self, topic: str, partition: int) -> None:
        self.journals.add((topic, partition))

    def send(self, producer: Producer) -> None:
        for topic, record in self.records:
            producer.produce(topic, **record)


@dataclass(eq=False)
class Lane:
    """A transactional producer and the last batch it carried (its next one waits for it)."""

    index: int
    producer: Producer
    replies_partition: int
    last: Batch | None = None


@dataclass(eq=False)
class Batch:
    """One transaction: decided and produced in the loop's thread, finished in a lane's."""

    lane: Lane
    # The batch before this one, on another lane: this one commits only after it did, and
    # aborts if it did not, so the journal never holds a batch without the ones it followed.
    previous: Batch | None
    outbox: Outbox
    offsets: list[TopicPartition]
    group: Any
    commands: int
    started: float = field(default_factory=time.monotonic)
    # Set once the batch's records are acknowledged by the brokers (or failed).
    produced: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    committed: bool = False


class _PreviousBatchFailedError(Exception):
    """The batch before did not commit: this one must not either."""


class Lanes:
    def __init__(
        self,
        producers: Sequence[Producer],
        replies_partitions: int,
        on_fatal: Callable[[str], None],
    ) -> None:
        self.lanes = [
            Lane(index, producer, index % replies_partitions)
            for index, producer in enumerate(producers)
        ]
        self.in_flight: list[Batch] = []
        # Set by a lane whose transaction did not commit: every later batch aborts with it,
        # and the loop folds its partitions again before deciding anything (then `reset`).
        self.failed = False
        # Commands decided in committed transactions, and those transactions.
        self.decided = 0
        self.transactions = 0
        self._turn = 0
        self._on_fatal = on_fatal
        self._finisher = concurrent.futures.ThreadPoolExecutor(len(self.lanes), "decider-commit")

    def poll(self) -> None:
        """Serve the producers' callbacks (errors, delivery reports)."""
        for lane in self.lanes:
            lane.producer.poll(0)

    @property
    def busy_since(self) -> float | None:
        """When the oldest transaction in flight began (None when there is none): for the
        watchdog, in its own thread, hence the copy."""
        return min((b.started for b in list(self.in_flight)), default=None)

    def settle(self) -> None:
        """Count the batches that finished and forget them."""
        while self.in_flight and self.in_flight[0].done.is_set():
            batch = self.in_flight.pop(0)
            if batch.committed:
                self.decided += batch.commands
                self.transactions += 1

    def drain(self) -> None:
        """Wait until every transaction in flight has committed or aborted."""
        for batch in list(self.in_flight):
            batch.done.wait()
        self.settle()

    def reset(self) -> None:
        """After the loop rebuilt its state: the lanes decide again."""
        self.drain()
        self.poll()  # the purged events' reports, served now: none may reach rebuilt state
        self.failed = False

    def next(self) -> Lane:
        """The lane whose last transaction is the oldest, once that one has finished."""
        lane = self.lanes[self._turn % len(self.lanes)]
        self._turn += 1
        if lane.last is not None:
            lane.last.done.wait()
        self.settle()
        return lane

    def start(
        self, lane: Lane, outbox: Outbox, offsets: list[TopicPartition], group: Any, commands: int
    ) -> None:
        """Send a decided batch on `lane` and finish it in the lane's thread. Nothing is sent
        once a batch before it failed: the loop rebuilds, and the commands come again."""
        for earlier in self.in_flight:
            if earlier.outbox.journals & outbox.journals:
                earlier.produced.wait()
        if self.failed:
            return
        previous = self.in_flight[-1] if self.in_flight else None
        batch = Batch(lane, previous, outbox, offsets, group, commands)
        lane.last = batch
        self.in_flight.append(batch)
        try:
            lane.producer.begin_transaction()
            outbox.send(lane.producer)
        except KafkaException as exc:
            batch.produced.set()
            self._fail(batch, exc)
            return
        self._finisher.submit(self.finish, batch)

    def finish(self, batch: Batch) -> None:
        """In the lane's thread: wait until the records are in the journal, add the consumed
        offsets, wait for the batch before, commit."""
        producer = batch.lane.producer
        try:
            if producer.flush(CALL_TIMEOUT_S) > 0:
                raise KafkaException(
                    KafkaError(
                        KafkaError._TIMED_OUT, "records unacknowledged", txn_requires_abort=True
                    )
                )
            batch.produced.set()
            if batch.offsets:
                producer.send_offsets_to_transaction(batch.offsets, batch.group, CALL_TIMEOUT_S)
            if batch.previous is not None:
                batch.previous.done.wait()
                if not batch.previous.committed:
                    raise _PreviousBatchFailedError
            _commit(producer)
            batch.committed = True
            batch.done.set()
        except (KafkaException, _PreviousBatchFailedError) as exc:
            self._fail(batch, exc)
        except BaseException:
            # Never leave a batch unfinished: the loop and the batches after it wait on it.
            self.failed = True
            batch.done.set()
            raise
        finally:
            batch.produced.set()

    def _fail(self, batch: Batch, exc: KafkaException | _PreviousBatchFailedError) -> None:
        """Abort the batch's transaction; the loop then rebuilds from the journal."""
        self.failed = True
        try:
            if isinstance(exc, KafkaException):
                err = exc.args[0]
                if not err.txn_requires_abort():
                    # Fenced or fatal: another instance owns these streams now, or the
                    # producer is unusable. Only a fresh worker may go on.
                    log.critical("fatal transaction error: %s", err)
                    self._on_fatal(str(err))
                    return
                log.error("transaction aborted, rebuilding state: %s", err)
            batch.lane.producer.abort_transaction(30)
        except KafkaException as abort_exc:
            log.critical("could not abort a transaction: %s", abort_exc)
            self._on_fatal(str(abort_exc))
        finally:
            batch.done.set()

    def close(self) -> None:
        """Finish what is in flight, then let the producers send what they hold."""
        self.drain()
        for lane in self.lanes:
            # A fenced or failed producer raises here: it has nothing it may still send.
            with contextlib.suppress(KafkaException):
                lane.producer.flush(10)
        self._finisher.shutdown(wait=True)


def _commit(producer: Producer) -> None:
    while True:
        try:
            producer.commit_transaction(CALL_TIMEOUT_S)
            return
        except KafkaException as exc:
            if exc.args[0].retriable():
                continue
            raise
