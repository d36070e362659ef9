"""The deciders: single writers of their streams, exactly once with Kafka transactions.

One consume -> decide -> produce loop (confluent-kafka) serves every decider of the system,
each bound to a command topic. Per batch of commands it opens a transaction, appends the
events (and replies, and dead letters), adds the consumed offsets to the same transaction
(`send_offsets_to_transaction`) and commits: either all of it happened or none of it did.

State is never trusted across a failure: on partition assignment, and after any aborted
transaction, the state of every stream of a partition is folded again from that partition
of the event journal. Commands are deduplicated by id inside the domain: a command
redelivered after a crash is answered with its first outcome, which the one duplicate check
of every decider (`Decider.is_duplicate`, domain/decider.py) tells from a fresh decision, so
it is answered again and never journaled again.

The contexts served are declared beside their domain (`domain/*/declaration.py`) and bound to
their topics in producers/contexts.py; this module imports them, they never import it.

The first answer is final, a rejection included: every rejection is journaled (the reply as
sent, on the decider's rejection journal, same partition number, same transaction as the
reply), loaded again with the state, and checked before deciding. A later copy of the command
id (redelivered, re-read after an abort, retried with the same Idempotency-Key) is answered
with that rejection, never decided afresh. A rejection is kept for REJECTIONS_KEPT_S (a week)
and at most MAX_REJECTIONS per partition (the newest), which bounds memory and rebuild time.

Why not Faust here: its per-message cost (about 2,000 forwarded messages/s measured on this
machine) is far below the on-sale target, and its exactly-once mode has open bugs.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import signal
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, is_dataclass, replace
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from boxoffice.settings import Settings, get_settings
from domain.decider import version_of
from processors.lanes import Lanes, Outbox
from producers.codec import DecodeError
from producers.contexts import DECIDED, DecidedContext
from producers.deadletters import dead_letter_headers
from producers.envelope import CommandEnvelope, EventRecord, Reply
from producers.fetching import answering_librdkafka
from producers.journal import producer_config
from producers.topics import DEAD_LETTERS, REJECTIONS_KEPT_S, REPLIES
from snapshots import decider_snapshots
from snapshots.decider_snapshots import Snapshot, UnusableSnapshotError

log = logging.getLogger("boxoffice.deciders")

# Who gave up on a message, as the dead letters name it.
DEAD_LETTER_CONSUMER = "deciders"

# One context as the loop serves it: the loop holds several, of different types.
DeciderSpec = DecidedContext[Any, Any, Any]


def error_payload(err: Exception) -> dict[str, Any]:
    """A domain error as the reply carries it: code, message, details."""
    code = str(getattr(err, "code", "rejected"))
    details_of = getattr(err, "details", None)
    if callable(details_of):
        details = dict(details_of())
    elif is_dataclass(err):
        details = {
            f.name: list(v) if isinstance(v, tuple) else v
            for f in fields(err)
            for v in (getattr(err, f.name),)
        }
    else:
        details = {}
    message = getattr(err, "message", None)
    return {
        "code": code,
        "message": str(message) if message else str(err),
        "details": details,
    }


# librdkafka backs off reconnecting up to 10 s by default: a worker started during an outage
# would notice the broker's return up to 10 s late. Retrying every second costs nothing.
RECONNECT_BACKOFF_MAX_MS = 1000
# How often a busy loop logs what it decided.
REPORT_EVERY_S = 30.0
# The newest rejections remembered per partition: at most about 10 MB of memory each, and a
# rebuild reads at most twice this many records of the rejection journal.
MAX_REJECTIONS = 20_000


@dataclass
class _Partition:
    spec: DeciderSpec
    number: int
    streams: dict[str, Any] = field(default_factory=dict)
    # (stream id, command id) -> (the rejection reply as first sent, when, in epoch seconds);
    # oldest first, so eviction beyond MAX_REJECTIONS drops the oldest.
    rejections: OrderedDict[tuple[str, str], tuple[bytes, float]] = field(
        default_factory=OrderedDict
    )
    # The newest event of the partition folded into `streams`: its offset and record (a
    # snapshot names it, so a rebuild can prove the journal is the one folded), and how many
    # events were folded since the last snapshot.
    last_offset: int = -1
    last_record: bytes | None = None
    since_snapshot: int = 0
    # How the last rebuild went: the offset its fold started at (0 without a snapshot) and the
    # number of events it read.
    rebuilt_from: int = 0
    events_read: int = 0

    def remember(self, stream: str, command_id: str, reply: bytes, at_s: float) -> None:
        key = (stream, command_id)
        self.rejections[key] = (reply, at_s)
        self.rejections.move_to_end(key)
        while len(self.rejections) > MAX_REJECTIONS:
            self.rejections.popitem(last=False)

    def rejection(self, stream: str, command_id: str, now_s: float) -> Reply | None:
        """The rejection first answered to this command id, while it is still kept."""
        found = self.rejections.get((stream, command_id))
        if found is None:
            return None
        raw, at_s = found
        if now_s - at_s > REJECTIONS_KEPT_S:
            del self.rejections[(stream, command_id)]
            return None
        return Reply.decode(raw)


class FatalClientError(Exception):
    """A Kafka client of the loop is done for good (fenced, say): the worker must restart."""


class DeciderLoop:
    def __init__(
        self,
        settings: Settings,
        specs: Sequence[DeciderSpec],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        timer_interval_s: float = 0.25,
    ) -> None:
        self.settings = settings
        self.specs = {spec.commands.name(settings): spec for spec in specs}
        self.clock = clock
        self.timer_interval_s = timer_interval_s
        self.running = True
        # For the watchdog: whether librdkafka reported that every broker was gone.
        self.brokers_lost = False
        # A fatal client error (a fenced static member, a fenced producer): these clients are
        # done for good, and the watchdog restarts the worker at once rather than waiting.
        self.fatal: str | None = None
        self.partitions: dict[tuple[str, int], _Partition] = {}
        # Events topic -> command topic: delivery reports name the former, partitions the latter.
        self.command_topic_of = {
            spec.events.name(settings): name for name, spec in self.specs.items()
        }
        # Events produced and not yet acknowledged: a snapshot is taken only at zero, when the
        # states hold exactly what the journal holds.
        self.unacked = 0
        self.snapshot_every = settings.decider_snapshot_every_events
        # Snapshots are written to PostgreSQL off the loop's thread, one at a time.
        self.snapshot_writer = concurrent.futures.ThreadPoolExecutor(1, "decider-snapshots")
        prefix = settings.topic_prefix
        self.replies_topic = REPLIES.name(settings)
        self.dead_letters_topic = DEAD_LETTERS.name(settings)
        self.consumer = Consumer(
            {
                "bootstrap.servers": settings.kafka_bootstrap,
                "group.id": f"{prefix}.deciders",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                # Only committed commands: a producer's aborted retry must not be decided.
                "isolation.level": "read_committed",
                "partition.assignment.strategy": "range",
                # Static membership: a restarted instance (after a crash, say) takes its
                # partitions straight back instead of waiting out the dead member's session.
                "group.instance.id": f"deciders-{settings.processor_instance}",
                "session.timeout.ms": 10000,
                **answering_librdkafka(),
                "reconnect.backoff.max.ms": RECONNECT_BACKOFF_MAX_MS,
                "log_level": 3,
                "error_cb": self._on_error,
            }
        )
        producers = [
            self._transactional_producer(index)
            for index in range(max(1, settings.decider_transactions_in_flight))
        ]
        for producer in producers:
            self._init_transactions(producer)
        # Transactions in flight at once, each on a lane of its own (processors/lanes.py).
        replies = self.consumer.list_topics(self.replies_topic, timeout=30)
        self.lanes = Lanes(
            producers, len(replies.topics[self.replies_topic].partitions), self._set_fatal
        )
        # What the batch being decided will produce.
        self.outbox = Outbox(-1)
        # Delivery reports are served in the lanes' threads.
        self._acks = threading.Lock()
        # The brokers answered init_transactions: a loss seen while it waited for them (the
        # worker started during an outage) is over, and must not restart this fresh worker.
        # Such errors wait in the clients' queues until served, so serve them first.
        self.lanes.poll()
        self.consumer.poll(0)
        self.brokers_lost = False
        self._last_timer = 0.0
        # When the loop last made progress (a turn, or a batch read while rebuilding): the
        # watchdog restarts a worker stalled anywhere, not only inside a transaction.
        self.turned_at = time.monotonic()
        # When the last activity report was, and the counts then.
        self._reported = (time.monotonic(), 0, 0)

    def _transactional_producer(self, lane: int) -> Producer:
        """A lane's producer. Its transactional id is stable per instance and lane, so a
        restarted instance fences its own zombie and aborts whatever transaction it left open
        (lane 0 keeps the id the single-lane loop had). A zombie of another instance, one
        that lost its partitions in a rebalance, is fenced by its consumer group generation,
        which every transaction's offsets carry (KIP-447)."""
        prefix = self.settings.topic_prefix
        suffix = "" if lane == 0 else f".{lane}"
        return Producer(
            producer_config(
                self.settings,
                **{
                    "transactional.id": (
                        f"{prefix}.deciders.{self.settings.processor_instance}{suffix}"
                    ),
                    "transaction.timeout.ms": 30000,
                    "linger.ms": 0,
                    # A transaction begun right after the lane's last one committed meets
                    # CONCURRENT_TRANSACTIONS while the broker writes the markers of the last,
                    # and librdkafka retries after retry.backoff.ms (100 ms, up to 1 s by
                    # default): confluent-kafka-python issue 967. The markers take a few ms.
                    "retry.backoff.ms": 5,
                    "retry.backoff.max.ms": 50,
                    "reconnect.backoff.max.ms": RECONNECT_BACKOFF_MAX_MS,
                    "error_cb": self._on_error,
                },
            )
        )

    def _init_transactions(self, producer: Producer) -> None:
        """Wait for the brokers as long as it takes: a worker started during an outage is
        then ready the moment Kafka returns, instead of exiting after a minute and leaving
        a fresh interpreter to start (seconds on a loaded machine) after the return."""
        while True:
            try:
                producer.init_transactions(60)
                return
            except KafkaException as exc:
                err = exc.args[0]
                # librdkafka: a timed-out call is resumed by calling it again.
                if err.code() != KafkaError._TIMED_OUT and not err.retriable():
                    raise
                log.warning("the brokers do not answer yet; still waiting: %s", err)

    # -- partitions and state ---------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, tps: list[TopicPartition]) -> None:
        for tp in tps:
            spec = self.specs[tp.topic]
            part = _Partition(spec, tp.partition)
            self._rebuild(part)
            self.partitions[(tp.topic, tp.partition)] = part
        log.info("assigned %s", [(tp.topic, tp.partition) for tp in tps])

    def _on_revoke(self, consumer: Consumer, tps: list[TopicPartition]) -> None:
        # Every transaction in flight commits (or aborts) with the generation it was decided
        # in, before the partitions go to another owner.
        self.lanes.drain()
        for tp in tps:
            self.partitions.pop((tp.topic, tp.partition), None)
        log.info("revoked %s", [(tp.topic, tp.partition) for tp in tps])

    def _rebuild(self, part: _Partition) -> None:
        """Fold every stream of the partition from the event journal (from its snapshot on,
        when it has a usable one), and load the newest rejections of the partition from the
        rejection journal, each up to its end."""
        started = time.monotonic()
        events_topic = part.spec.events.name(self.settings)
        rejections_topic = part.spec.rejections.name(self.settings)
        reader = Consumer(
            {
                "bootstrap.servers": self.settings.kafka_bootstrap,
                "group.id": f"{self.settings.topic_prefix}.rebuild.{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
                # A partition at its end must not hold the other's fetch for the default 500 ms.
                "fetch.wait.max.ms": 10,
                "log_level": 3,
            }
        )
        counts = {events_topic: 0, rejections_topic: 0}
        try:
            self._restore(reader, part, events_topic)
            starts: list[TopicPartition] = []
            # Events from the first (the whole state); rejections from far enough back to find
            # the newest MAX_REJECTIONS (transaction markers take offsets too, hence twice).
            for topic, keep in ((events_topic, None), (rejections_topic, 2 * MAX_REJECTIONS)):
                low, high = reader.get_watermark_offsets(
                    TopicPartition(topic, part.number), timeout=30
                )
                first = max(low, part.rebuilt_from) if keep is None else max(low, high - keep)
                if high > first:
                    starts.append(TopicPartition(topic, part.number, first))
            pending = {tp.topic for tp in starts}
            if starts:
                reader.assign(starts)
            while pending:
                self.turned_at = time.monotonic()
                for msg in reader.consume(num_messages=5000, timeout=0.1):
                    err = msg.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            pending.discard(str(msg.topic()))
                            continue
                        raise KafkaException(err)
                    if msg.topic() == events_topic:
                        self._fold(part, msg)
                        part.last_offset, part.last_record = msg.offset() or 0, msg.value()
                    else:
                        self._remember(part, msg)
                    counts[str(msg.topic())] += 1
        finally:
            reader.close()
        part.events_read = part.since_snapshot = counts[events_topic]
        log.info(
            "rebuilt %s[%d]: %d events read from offset %d%s, %d streams, %d rejections in %.2fs",
            events_topic,
            part.number,
            counts[events_topic],
            part.rebuilt_from,
            " (after the snapshot)" if part.rebuilt_from else "",
            len(part.streams),
            len(part.rejections),
            time.monotonic() - started,
        )

    def _restore(self, reader: Consumer, part: _Partition, events_topic: str) -> None:
        """Start the partition from its snapshot if it has one this journal proves usable."""
        if self.snapshot_every <= 0:
            return
        try:
            found = decider_snapshots.load(self.settings, events_topic, part.number)
        except UnusableSnapshotError as exc:
            log.warning("ignoring the snapshot of %s[%d]: %s", events_topic, part.number, exc)
            return
        except Exception as exc:  # PostgreSQL away, say: the journal alone still serves
            log.warning(
                "cannot read the snapshot of %s[%d] (%r); folding the whole partition",
                events_topic,
                part.number,
                exc,
            )
            return
        if found is None:
            return
        snapshot, size = found
        record = _record_at(reader, events_topic, part.number, snapshot.last_offset)
        if record is None or decider_snapshots.digest_of(record) != snapshot.last_digest:
            log.warning(
                "ignoring the snapshot of %s[%d]: the journal holds another event at offset %d",
                events_topic,
                part.number,
                snapshot.last_offset,
            )
            return
        part.streams = snapshot.streams
        part.last_offset, part.last_record = snapshot.last_offset, record
        part.rebuilt_from = snapshot.next_offset
        log.info(
            "restored %s[%d] from its snapshot at offset %d: %d streams, %d bytes",
            events_topic,
            part.number,
            snapshot.last_offset,
            len(snapshot.streams),
            size,
        )

    # -- snapshots --------------------------------------------------------------------------

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        """An event's delivery report: the partition's states now include that offset.
        Served in a lane's finishing thread, hence the lock."""
        with self._acks:
            self.unacked -= 1
            if err is not None:
                return  # its transaction fails, and the partition is rebuilt from the journal
            topic, number, offset = msg.topic(), msg.partition(), msg.offset()
            part = self.partitions.get((self.command_topic_of.get(str(topic), ""), number or 0))
            if part is None or offset is None or offset <= part.last_offset:
                return
            part.last_offset, part.last_record = offset, msg.value()
            part.since_snapshot += 1

    def _maybe_snapshot(self, idle: bool) -> None:
        """Snapshot the partition furthest past its last snapshot, if one is due: when no
        command waits (so a decision never waits on it), or at 10x the interval regardless.
        Only between transactions with every event acknowledged: the states then hold exactly
        the journal up to each partition's last offset."""
        if self.snapshot_every <= 0 or self.unacked or self.lanes.in_flight:
            return
        if self.snapshot_pending is not None and not self.snapshot_pending.done():
            return
        threshold = self.snapshot_every if idle else 10 * self.snapshot_every
        due = [
            p
            for p in self.partitions.values()
            if p.since_snapshot >= threshold and p.last_record is not None
        ]
        if due:
            self._snapshot(max(due, key=lambda p: p.since_snapshot))

    snapshot_pending: concurrent.futures.Future[None] | None = None

    def _snapshot(self, part: _Partition) -> None:
        assert part.last_record is not None
        started = time.monotonic()
        snapshot = Snapshot(
            part.spec.events.name(self.settings),
            part.number,
            part.last_offset,
            decider_snapshots.digest_of(part.last_record),
            dict(part.streams),
        )
        # Encoded here, in the loop's thread: the states are folded in place, so they must be
        # read between transactions. Only the write waits on PostgreSQL, in the writer thread.
        state = snapshot.encode()
        part.since_snapshot = 0
        self.snapshot_pending = self.snapshot_writer.submit(
            self._store_snapshot, snapshot, state, time.monotonic() - started
        )

    def _store_snapshot(self, snapshot: Snapshot, state: bytes, encoding_s: float) -> None:
        try:
            decider_snapshots.save(self.settings, snapshot, state)
        except Exception as exc:  # the next one is due after as many events again
            log.warning(
                "cannot store the snapshot of %s[%d]: %r",
                snapshot.events_topic,
                snapshot.partition,
                exc,
            )
            return
        log.info(
            "snapshot of %s[%d] at offset %d: %d streams, %d bytes, encoded in %.3fs",
            snapshot.events_topic,
            snapshot.partition,
            snapshot.last_offset,
            len(snapshot.streams),
            len(state),
            encoding_s,
        )

    def _remember(self, part: _Partition, msg: Message) -> None:
        raw = msg.value()
        try:
            reply = Reply.decode(raw)
        except DecodeError:
            log.error(
                "undecodable rejection at %s[%s]@%s", msg.topic(), msg.partition(), msg.offset()
            )
            return
        assert raw is not None
        _, at_ms = msg.timestamp()
        part.remember(reply.stream_id, reply.command_id, raw, at_ms / 1000)

    def _fold(self, part: _Partition, msg: Message) -> None:
        try:
            record = EventRecord.decode(msg.value())
            event = part.spec.registry.from_dict(record.event)
        except DecodeError:
            # The decider wrote this journal; an undecodable entry is a bug to look at, but
            # it must not stop the partition: it cannot have changed any state.
            log.error("undecodable event at %s[%s]@%s", msg.topic(), msg.partition(), msg.offset())
            return
        stream = record.stream_id
        try:
            decider = part.spec.decider
            part.streams[stream] = decider.evolve(part.streams.get(stream, decider.initial), event)
        except Exception as exc:
            # Decodes but cannot follow its stream (written by hand, or by a buggy version):
            # the stream keeps its state before it, and the partition goes on.
            log.exception(
                "cannot fold the event at %s[%s]@%s", msg.topic(), msg.partition(), msg.offset()
            )
            self._park_event(msg, f"unfoldable: {type(exc).__name__}: {exc}")

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> None:
        self.consumer.subscribe(
            list(self.specs), on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        try:
            while self.running:
                self.turned_at = time.monotonic()
                # The producers' error callbacks (every broker gone, fenced) run only when
                # they are polled; an idle loop would otherwise never hear of an outage.
                self.lanes.poll()
                self.lanes.settle()
                if self.fatal is not None:
                    # Fenced or fatal: another instance owns these streams now, or a client
                    # is unusable. Only a fresh worker may go on (`main` starts one).
                    raise FatalClientError(self.fatal)
                if self.lanes.failed:
                    self._recover()
                    continue
                messages = self._next_batch()
                now = self.clock()
                timed = self._timer_commands(now)
                commands = [m for m in messages if self._usable(m)]
                if commands or timed:
                    self._transact(commands, timed, now)
                self._maybe_snapshot(idle=not messages)
                self._report()
        finally:
            self.lanes.drain()
            self.consumer.close()
            self.lanes.close()
            self.snapshot_writer.shutdown(wait=True)

    def stop(self) -> None:
        self.running = False

    @property
    def decided(self) -> int:
        return self.lanes.decided

    @property
    def transactions(self) -> int:
        return self.lanes.transactions

    @property
    def busy_since(self) -> float | None:
        return self.lanes.busy_since

    def _set_fatal(self, why: str) -> None:
        self.fatal = why

    def _report(self) -> None:
        """Every REPORT_EVERY_S while busy: commands decided, transactions, per transaction
        (what the brokers pay for is transactions; batching is what makes them cheap)."""
        at, decided, transactions = self._reported
        now = time.monotonic()
        if now - at < REPORT_EVERY_S or self.transactions == transactions:
            return
        n, t = self.decided - decided, self.transactions - transactions
        log.info(
            "decided %d commands in %d transactions in %.0fs (%.1f per transaction)",
            n,
            t,
            now - at,
            n / t,
        )
        self._reported = (now, self.decided, self.transactions)

    def _next_batch(self) -> list[Message]:
        """Whatever is waiting, at once; else the first command to arrive within 50 ms.

        consume(n, timeout) waits out its whole timeout unless n messages come, which put a
        floor of 50 ms under every decision at low load. Taking what is queued without
        waiting, and otherwise waiting for just one, batches under load and answers a lone
        command as soon as it lands.
        """
        messages = self.consumer.consume(num_messages=1000, timeout=0)
        if messages:
            return messages
        first = self.consumer.poll(0.05)
        if first is None:
            return []
        return [first, *self.consumer.consume(num_messages=999, timeout=0)]

    def _on_error(self, err: KafkaError) -> None:
        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            self.brokers_lost = True
        self._note_fatal(err)
        log.warning("kafka: %s", err)

    def _note_fatal(self, err: KafkaError) -> None:
        # After a broker restart the coordinator can fence our own static member (a JoinGroup
        # it saw twice): "Static consumer fenced by other consumer with same
        # group.instance.id". The consumer is then dead for good and a transaction using its
        # group metadata can hang; only a fresh worker recovers, so ask for one now.
        if err.fatal() or err.code() in (KafkaError._FENCED, KafkaError.FENCED_INSTANCE_ID):
            self.fatal = str(err)

    def _usable(self, msg: Message) -> bool:
        err = msg.error()
        if err is None:
            return True
        if err.code() != KafkaError._PARTITION_EOF:
            self._note_fatal(err)
            log.warning("consumer error: %s", err)
        return False

    def _timer_commands(self, now: datetime) -> list[tuple[_Partition, str, Any]]:
        mono = time.monotonic()
        if mono - self._last_timer < self.timer_interval_s:
            return []
        self._last_timer = mono
        due: list[tuple[_Partition, str, Any]] = []
        for part in self.partitions.values():
            timer = part.spec.decider.timer
            if timer is None:
                continue
            for stream, state in part.streams.items():
                command = timer(stream, state, now)
                if command is not None:
                    due.append((part, stream, command))
        return due

    def _transact(
        self, commands: list[Message], timed: list[tuple[_Partition, str, Any]], now: datetime
    ) -> None:
        """Decide the batch here, in journal order, for the next free lane, which sends it
        and finishes it while the next batch is decided (processors/lanes.py)."""
        lane = self.lanes.next()
        if self.lanes.failed:
            # A batch before this one aborted: its partitions are rebuilt and the consumer
            # rewound first, so these commands come again.
            return
        self.outbox = outbox = Outbox(lane.replies_partition)
        for msg in commands:
            self._handle(msg, now)
        for part, stream, command in timed:
            self._decide(part, stream, command, command.command_id, now, reply=False)
        offsets = self.consumer.position(self.consumer.assignment()) if commands else []
        group = self.consumer.consumer_group_metadata() if commands else None
        self.lanes.start(lane, outbox, offsets, group, len(commands))

    def _recover(self) -> None:
        """Once every transaction in flight is over: forget all state, and start again from
        the last committed offsets."""
        self.lanes.drain()
        # The purged events' reports, served now: none may reach the rebuilt partitions.
        self.lanes.poll()
        assignment = self.consumer.assignment()
        committed = self.consumer.committed(assignment, timeout=30)
        for tp in committed:
            self.consumer.seek(
                TopicPartition(
                    tp.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
                )
            )
        for key, part in list(self.partitions.items()):
            fresh = _Partition(part.spec, part.number)
            self._rebuild(fresh)
            self.partitions[key] = fresh
        self.lanes.failed = False

    def _handle(self, msg: Message, now: datetime) -> None:
        topic, partition = msg.topic(), msg.partition()
        assert topic is not None and partition is not None
        part = self.partitions.get((topic, partition))
        if part is None:  # revoked while the batch was in flight; its owner will decide it
            return
        try:
            envelope = CommandEnvelope.decode(msg.value())
            command = part.spec.registry.from_dict({**envelope.payload, "type": envelope.type})
            if part.spec.decider.stream_of(command) != envelope.stream_id:
                raise DecodeError("the command's stream does not match its envelope")
        except DecodeError as exc:
            self._dead_letter(msg, str(exc))
            return
        self._decide(part, envelope.stream_id, command, envelope.command_id, now, reply=True)

    def _decide(
        self,
        part: _Partition,
        stream: str,
        command: Any,
        command_id: str,
        now: datetime,
        *,
        reply: bool,
    ) -> None:
        spec = part.spec
        decider = spec.decider
        state = part.streams.get(stream, decider.initial)
        if reply:
            first = part.rejection(stream, command_id, now.timestamp())
            if first is not None:
                # Rejected before: the first answer stands, even where the state has changed
                # since (a conflicting hold cancelled, say) and a fresh decision would differ.
                self._reply(replace(first, duplicate=True))
                return
        try:
            events = list(decider.decide(state, command, now))
        except decider.errors as err:
            if reply:
                self._reject(
                    part, stream, command_id, error_payload(err), version=version_of(state), now=now
                )
            return
        except (ValueError, TypeError) as exc:
            # A command the domain cannot even read (the API validates, so this is a bug or a
            # hostile producer): park it and answer, never wedge the partition.
            log.exception("decider %s could not decide %s", spec.name, command_id)
            self._dead_letter_command(spec, stream, command, command_id, repr(exc))
            if reply:
                self._reject(
                    part,
                    stream,
                    command_id,
                    {"code": "invalid_command", "message": str(exc), "details": {}},
                    version=version_of(state),
                    now=now,
                )
            return
        duplicate = decider.is_duplicate(state, events)
        if not duplicate:
            events_topic = spec.events.name(self.settings)
            key = stream.encode()
            for event in events:
                state = decider.evolve(state, event)
                record = EventRecord(
                    stream_id=stream,
                    version=event.version,
                    command_id=command_id,
                    recorded_at=now,
                    event=spec.registry.to_dict(event),
                )
                # Same partition number as the command: the rebuild of a command partition
                # reads exactly the event partition of the same number.
                self.outbox.produce(
                    events_topic,
                    value=record.encode(),
                    key=key,
                    partition=part.number,
                    on_delivery=self._delivered,
                )
                with self._acks:
                    self.unacked += 1
            self.outbox.journal(events_topic, part.number)
            if state is not None:
                part.streams[stream] = state
        if reply:
            self._reply(
                Reply(
                    command_id,
                    stream,
                    ok=True,
                    events=tuple(spec.registry.to_dict(e) for e in events),
                    duplicate=duplicate,
                    version=version_of(state),
                )
            )

    def _reject(
        self,
        part: _Partition,
        stream: str,
        command_id: str,
        error: dict[str, Any],
        *,
        version: int,
        now: datetime,
    ) -> None:
        """Answer a rejection and journal it in the same transaction, so it is the answer
        to every later copy of the command id; an aborted transaction takes both back."""
        answer = Reply(command_id, stream, ok=False, error=error, version=version)
        raw = answer.encode()
        self.outbox.produce(
            part.spec.rejections.name(self.settings),
            value=raw,
            key=stream.encode(),
            # The command's partition number: the rebuild of a command partition reads the
            # rejection partition of the same number.
            partition=part.number,
            timestamp=int(now.timestamp() * 1000),
        )
        part.remember(stream, command_id, raw, now.timestamp())
        self._reply(answer)

    def _reply(self, reply: Reply) -> None:
        self.outbox.produce(
            self.replies_topic,
            value=reply.encode(),
            key=reply.stream_id.encode(),
            partition=self.outbox.replies_partition,
        )

    def _dead_letter(self, msg: Message, reason: str) -> None:
        log.warning(
            "dead-lettering %s[%s]@%s: %s", msg.topic(), msg.partition(), msg.offset(), reason
        )
        self.outbox.produce(
            self.dead_letters_topic,
            value=msg.value(),
            key=msg.key(),
            headers=[
                *dead_letter_headers(
                    consumer=DEAD_LETTER_CONSUMER,
                    reason=reason,
                    topic=str(msg.topic()),
                    partition=msg.partition(),
                    offset=msg.offset(),
                ),
            ],
        )

    def _dead_letter_command(
        self, spec: DeciderSpec, stream: str, command: Any, command_id: str, reason: str
    ) -> None:
        self.outbox.produce(
            self.dead_letters_topic,
            value=spec.registry.encode(command),
            key=stream.encode(),
            headers=[
                *dead_letter_headers(
                    consumer=DEAD_LETTER_CONSUMER,
                    reason=reason,
                    extra={"decider": spec.name, "command-id": command_id},
                ),
            ],
        )

    # Made on first use. An event that cannot be folded is met while rebuilding, outside any
    # transaction, where the transactional producer cannot write.
    _event_parker: Producer | None = None

    def _park_event(self, msg: Message, reason: str) -> None:
        """Dead-letter a journaled event this decider cannot fold (at every rebuild that
        meets it: rebuilds are rare, and a duplicate dead letter is harmless)."""
        if self._event_parker is None:
            self._event_parker = Producer(producer_config(self.settings))
        self._event_parker.produce(
            self.dead_letters_topic,
            value=msg.value(),
            key=msg.key(),
            headers=[
                *dead_letter_headers(
                    consumer=DEAD_LETTER_CONSUMER,
                    reason=reason,
                    topic=str(msg.topic()),
                    partition=msg.partition(),
                    offset=msg.offset(),
                ),
            ],
        )
        self._event_parker.flush(10)


def _record_at(reader: Consumer, topic: str, partition: int, offset: int) -> bytes | None:
    """The committed record at `offset` of the partition, or None if there is none there."""
    reader.assign([TopicPartition(topic, partition, offset)])
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            msg = reader.poll(0.5)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    return None
                raise KafkaException(err)
            return msg.value() if msg.offset() == offset else None
        return None
    finally:
        reader.unassign()


def all_specs() -> list[DeciderSpec]:
    """Every context the deciders serve, as declared in producers/contexts.py."""
    return list(DECIDED)


# A transactional call that takes longer than this is stuck (librdkafka can hang in
# send_offsets_to_transaction after its group coordinator went away, ignoring the timeout:
# librdkafka issues 5456 and 5511). The worker then exits and is started afresh. A healthy
# transaction takes milliseconds, and each call gives up after lanes.CALL_TIMEOUT_S, so 20 s is
# far past any honest wait while keeping recovery within 30 s of Kafka's return.
STUCK_AFTER_S = 20.0
# Exit codes of the worker that ask the supervisor for a fresh start.
EXIT_RESTART = 75


def _work() -> None:
    """The worker process: one DeciderLoop, exiting for a clean restart when Kafka vanished."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    loop = DeciderLoop(get_settings(), all_specs())

    def stop(signum: int, _: object) -> None:
        log.info("signal %d: finishing the current batch", signum)
        loop.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def watchdog() -> None:
        while True:
            time.sleep(0.5)
            if loop.fatal is not None:
                log.critical("fatal Kafka client error, restarting: %s", loop.fatal)
                os._exit(EXIT_RESTART)
            stalled = time.monotonic() - loop.turned_at
            if stalled > STUCK_AFTER_S:
                log.critical("the loop has not turned for %.0fs; restarting", stalled)
                os._exit(EXIT_RESTART)
            began = loop.busy_since
            if began is not None and time.monotonic() - began > STUCK_AFTER_S:
                log.critical("a transaction has been stuck for %.0fs; restarting", STUCK_AFTER_S)
                os._exit(EXIT_RESTART)
            if loop.brokers_lost:
                # Crash-only recovery: a fresh producer and consumer, state folded again from
                # the journal, rather than trusting clients that saw the broker vanish.
                log.warning("lost every broker; restarting the decider for a clean start")
                os._exit(EXIT_RESTART)

    threading.Thread(target=watchdog, name="decider-watchdog", daemon=True).start()
    try:
        loop.run()
    except FatalClientError as exc:
        log.critical("fatal Kafka client error, restarting: %s", exc)
        os._exit(EXIT_RESTART)


def main() -> None:
    """Supervise the worker: start it again whenever it dies, with a short backoff.

    `boxoffice down` signals the whole process group, so both stop together; kill -9 of
    the supervisor's group takes both down at once, as a machine crash would.
    """
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    import multiprocessing

    stopping = False
    worker: multiprocessing.process.BaseProcess | None = None

    def stop(signum: int, _: object) -> None:
        nonlocal stopping
        stopping = True
        if worker is not None and worker.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    backoff = 1.0
    while not stopping:
        started = time.monotonic()
        current = multiprocessing.get_context("spawn").Process(target=_work, name="decider")
        worker = current
        current.start()
        current.join()
        if stopping:
            break
        if time.monotonic() - started > 60:
            backoff = 1.0
        log.warning(
            "decider worker exited (%s); starting again in %.0fs", current.exitcode, backoff
        )
        time.sleep(backoff)
        backoff = min(backoff * 2, 10.0)


if __name__ == "__main__":
    main()
