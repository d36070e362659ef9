"""The deciders: single writers of their streams, exactly once with Kafka transactions.

One consume -> decide -> produce loop (confluent-kafka) serves every decider of the system,
each bound to a command topic. Per batch of commands it opens a transaction, appends the
events (and replies, and dead letters), adds the consumed offsets to the same transaction
(`send_offsets_to_transaction`) and commits: either all of it happened or none of it did.

State is never trusted across a failure: on partition assignment, and after any aborted
transaction, the state of every stream of a partition is folded again from that partition
of the event journal. Commands are deduplicated by id inside the domain (`outcome_of`), so
a command redelivered after a crash is answered with its first outcome, not decided again.

Why not Faust here: its per-message cost (about 2,000 forwarded messages/s measured on this
machine) is far below the on-sale target, and its exactly-once mode has open bugs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
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
from producers.codec import DecodeError, Registry
from producers.envelope import CommandEnvelope, EventRecord, Reply
from producers.journal import producer_config
from producers.topics import DEAD_LETTERS, REPLIES, Topic

log = logging.getLogger("boxoffice.deciders")

Timer = Callable[[str, Any, datetime], Any | None]


@dataclass(frozen=True)
class DeciderSpec:
    """How one bounded context decides: its topics, codec and pure functions."""

    name: str
    commands: Topic
    events: Topic
    registry: Registry
    decide: Callable[[Any, Any, datetime], Sequence[Any]]
    evolve: Callable[[Any, Any], Any]
    errors: tuple[type[Exception], ...]
    stream_of: Callable[[Any], str]
    # Commands the decider gives itself when time passes (hold expiry); None for most.
    timer: Timer | None = None


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


def _version(state: Any) -> int:
    return int(getattr(state, "version", 0)) if state is not None else 0


@dataclass
class _Partition:
    spec: DeciderSpec
    number: int
    streams: dict[str, Any] = field(default_factory=dict)


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
        # For the watchdog: when the current transaction began (None between batches), and
        # whether librdkafka reported that every broker was gone.
        self.busy_since: float | None = None
        self.brokers_lost = False
        self.partitions: dict[tuple[str, int], _Partition] = {}
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
                "fetch.wait.max.ms": 10,
                "log_level": 3,
                "error_cb": self._on_error,
            }
        )
        # A stable transactional id per instance: a restarted instance fences its own
        # zombie and aborts whatever transaction that left open.
        self.producer = Producer(
            producer_config(
                settings,
                **{
                    "transactional.id": f"{prefix}.deciders.{settings.processor_instance}",
                    "transaction.timeout.ms": 30000,
                    "linger.ms": 5,
                    "error_cb": self._on_error,
                },
            )
        )
        self.producer.init_transactions(60)
        self._last_timer = 0.0
        self.decided = 0

    # -- partitions and state ---------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, tps: list[TopicPartition]) -> None:
        for tp in tps:
            spec = self.specs[tp.topic]
            part = _Partition(spec, tp.partition)
            self._rebuild(part)
            self.partitions[(tp.topic, tp.partition)] = part
        log.info("assigned %s", [(tp.topic, tp.partition) for tp in tps])

    def _on_revoke(self, consumer: Consumer, tps: list[TopicPartition]) -> None:
        for tp in tps:
            self.partitions.pop((tp.topic, tp.partition), None)
        log.info("revoked %s", [(tp.topic, tp.partition) for tp in tps])

    def _rebuild(self, part: _Partition) -> None:
        """Fold every stream of the partition from the event journal, up to its end."""
        started = time.monotonic()
        topic = part.spec.events.name(self.settings)
        reader = Consumer(
            {
                "bootstrap.servers": self.settings.kafka_bootstrap,
                "group.id": f"{self.settings.topic_prefix}.rebuild.{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
                "log_level": 3,
            }
        )
        count = 0
        try:
            _, high = reader.get_watermark_offsets(TopicPartition(topic, part.number), timeout=30)
            if high > 0:
                reader.assign([TopicPartition(topic, part.number, OFFSET_BEGINNING)])
                while True:
                    messages = reader.consume(num_messages=5000, timeout=0.1)
                    done = False
                    for msg in messages:
                        err = msg.error()
                        if err is not None:
                            if err.code() == KafkaError._PARTITION_EOF:
                                done = True
                                continue
                            raise KafkaException(err)
                        self._fold(part, msg)
                        count += 1
                    if done:
                        break
        finally:
            reader.close()
        log.info(
            "rebuilt %s[%d]: %d events, %d streams in %.2fs",
            topic,
            part.number,
            count,
            len(part.streams),
            time.monotonic() - started,
        )

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
        part.streams[stream] = part.spec.evolve(part.streams.get(stream), event)

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> None:
        self.consumer.subscribe(
            list(self.specs), on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        try:
            while self.running:
                messages = self._next_batch()
                now = self.clock()
                timed = self._timer_commands(now)
                commands = [m for m in messages if self._usable(m)]
                if commands or timed:
                    self._transact(commands, timed, now)
        finally:
            self.consumer.close()
            self.producer.flush(10)

    def stop(self) -> None:
        self.running = False

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
        log.warning("kafka: %s", err)

    def _usable(self, msg: Message) -> bool:
        err = msg.error()
        if err is None:
            return True
        if err.code() != KafkaError._PARTITION_EOF:
            log.warning("consumer error: %s", err)
        return False

    def _timer_commands(self, now: datetime) -> list[tuple[_Partition, str, Any]]:
        mono = time.monotonic()
        if mono - self._last_timer < self.timer_interval_s:
            return []
        self._last_timer = mono
        due: list[tuple[_Partition, str, Any]] = []
        for part in self.partitions.values():
            timer = part.spec.timer
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
        self.busy_since = time.monotonic()
        try:
            self._transact_batch(commands, timed, now)
        finally:
            self.busy_since = None

    def _transact_batch(
        self, commands: list[Message], timed: list[tuple[_Partition, str, Any]], now: datetime
    ) -> None:
        self.producer.begin_transaction()
        try:
            for msg in commands:
                self._handle(msg, now)
            for part, stream, command in timed:
                self._decide(part, stream, command, command.command_id, now, reply=False)
            if commands:
                offsets = self.consumer.position(self.consumer.assignment())
                self.producer.send_offsets_to_transaction(
                    offsets, self.consumer.consumer_group_metadata(), 30
                )
            self._commit()
        except KafkaException as exc:
            self._recover(exc)
        self.decided += len(commands)

    def _commit(self) -> None:
        while True:
            try:
                self.producer.commit_transaction(30)
                return
            except KafkaException as exc:
                if exc.args[0].retriable():
                    continue
                raise

    def _recover(self, exc: KafkaException) -> None:
        """Abort, forget all state, and start again from the last committed offsets."""
        err = exc.args[0]
        if not err.txn_requires_abort():
            # Fenced or fatal: another instance owns these streams now, or the producer is
            # unusable. Exiting is the only safe move; `boxoffice up` starts a fresh one.
            log.critical("fatal transaction error, exiting: %s", err)
            raise exc
        log.error("transaction aborted, rebuilding state: %s", err)
        self.producer.abort_transaction(30)
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

    def _handle(self, msg: Message, now: datetime) -> None:
        topic, partition = msg.topic(), msg.partition()
        assert topic is not None and partition is not None
        part = self.partitions.get((topic, partition))
        if part is None:  # revoked while the batch was in flight; its owner will decide it
            return
        try:
            envelope = CommandEnvelope.decode(msg.value())
            command = part.spec.registry.from_dict({**envelope.payload, "type": envelope.type})
            if part.spec.stream_of(command) != envelope.stream_id:
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
        state = part.streams.get(stream)
        try:
            events = list(spec.decide(state, command, now))
        except spec.errors as err:
            if reply:
                self._reply(
                    Reply(
                        command_id,
                        stream,
                        ok=False,
                        error=error_payload(err),
                        version=_version(state),
                    )
                )
            return
        except (ValueError, TypeError) as exc:
            # A command the domain cannot even read (the API validates, so this is a bug or a
            # hostile producer): park it and answer, never wedge the partition.
            log.exception("decider %s could not decide %s", spec.name, command_id)
            self._dead_letter_command(spec, stream, command, command_id, repr(exc))
            if reply:
                self._reply(
                    Reply(
                        command_id,
                        stream,
                        ok=False,
                        error={"code": "invalid_command", "message": str(exc), "details": {}},
                        version=_version(state),
                    )
                )
            return
        duplicate = bool(events) and events[0].version <= _version(state)
        if not duplicate:
            events_topic = spec.events.name(self.settings)
            key = stream.encode()
            for event in events:
                state = spec.evolve(state, event)
                record = EventRecord(
                    stream_id=stream,
                    version=event.version,
                    command_id=command_id,
                    recorded_at=now,
                    event=spec.registry.to_dict(event),
                )
                # Same partition number as the command: the rebuild of a command partition
                # reads exactly the event partition of the same number.
                self.producer.produce(
                    events_topic, value=record.encode(), key=key, partition=part.number
                )
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
                    version=_version(state),
                )
            )

    def _reply(self, reply: Reply) -> None:
        self.producer.produce(
            self.replies_topic, value=reply.encode(), key=reply.stream_id.encode()
        )

    def _dead_letter(self, msg: Message, reason: str) -> None:
        log.warning(
            "dead-lettering %s[%s]@%s: %s", msg.topic(), msg.partition(), msg.offset(), reason
        )
        self.producer.produce(
            self.dead_letters_topic,
            value=msg.value(),
            key=msg.key(),
            headers={
                "origin-topic": str(msg.topic()),
                "origin-partition": str(msg.partition()),
                "origin-offset": str(msg.offset()),
                "reason": reason[:1000],
            },
        )

    def _dead_letter_command(
        self, spec: DeciderSpec, stream: str, command: Any, command_id: str, reason: str
    ) -> None:
        self.producer.produce(
            self.dead_letters_topic,
            value=spec.registry.encode(command),
            key=stream.encode(),
            headers={
                "origin-decider": spec.name,
                "command-id": command_id,
                "reason": reason[:1000],
            },
        )


def all_specs() -> list[DeciderSpec]:
    from processors.chat import CONVERSATION_DECIDER, SOCIAL_DECIDER
    from processors.ticketing import TICKETING_DECIDER

    return [TICKETING_DECIDER, CONVERSATION_DECIDER, SOCIAL_DECIDER]


# A transactional call that takes longer than this is stuck (librdkafka can hang in
# send_offsets_to_transaction after its group coordinator went away, ignoring the timeout:
# librdkafka issues 5456 and 5511). The worker then exits and is started afresh.
STUCK_AFTER_S = 60.0
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
            time.sleep(5)
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
    loop.run()


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
