"""Chat under load: 1,000 users on live sockets in 300 conversations, beside raw Kafka.

Users get accounts straight in PostgreSQL (one precomputed argon2 hash: the chat API checks
that members exist, but nobody signs in) and tokens minted with the stack's secret; the 300
conversations (groups of 20 and direct pairs, every user in at least one) are started through
the API, so they are journaled like any other. Then, with every user connected to
`WS /v1/chat/live`, in one run:

- messages accepted per second, closed loop: every user sends its next message (to its
  conversations in turn) as soon as the previous one is acked;
- send -> deliver latency p50/p99 at half that rate, open loop (a fixed schedule, whatever
  the acks take): from the sender's send to a receiving member's socket getting the `message`
  frame, on a sample of receivers (the sender's own echo is not counted);
- a 50-message history page p99 over HTTP, the newest page and pages `before` a seq;
- raw Kafka produce -> consume latency (confluent-kafka, the journal's producer settings:
  acks=all, idempotent, linger 2 ms) to a scratch topic at the same rate, for comparison;
- the CPU each process of the stack and of the load generator used in each phase.

Each message's text starts with its send time (CLOCK_MONOTONIC, shared by every process on
the machine), so receivers in either load process measure latency with one float parse.
The load generator is aiohttp on uvloop in (at most) two processes that hold the sockets,
send and receive; they parse only acks, errors and the sampled receivers' messages. It still
shares the machine's cores with the system under test: the figures are for the whole
machine, load generator included.

Run: `python -m bench.chat` with the stack up (`boxoffice up`); `--help` for the knobs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import multiprocessing
import os
import platform
import random
import secrets
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from api.auth import TokenSigner, User, hash_password
from boxoffice.settings import PROJECT_ROOT, Settings, get_settings

MESSAGE_PREFIX = '{"type":"message",'
ACK_PREFIX = '{"type":"ack",'
ERROR_PREFIX = '{"type":"error",'
# Phases, the first character of each client_msg_id and the word after a text's timestamp.
WARMUP, CLOSED, OPEN, PROFILE = "w", "c", "o", "p"
STACK_PARTS = ("api", "deciders", "chatviews", "views", "processors", "kafka", "postgres")


def kind_of(conversation_id: str) -> str:
    return "direct" if conversation_id.startswith("dm:") else "group"


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def ms(value: float) -> float:
    return round(value * 1000, 1) if not math.isnan(value) else value


def latency_summary(values: list[float]) -> dict[str, Any]:
    return {
        "samples": len(values),
        "p50_ms": ms(pct(values, 50)),
        "p90_ms": ms(pct(values, 90)),
        "p99_ms": ms(pct(values, 99)),
        "max_ms": ms(max(values)) if values else float("nan"),
    }


# -- who talks to whom --------------------------------------------------------------------------


@dataclass
class Layout:
    names: list[str]
    # Member indices per conversation; the first member starts it.
    plans: list[list[int]]
    sampled: set[int]
    ids: list[str] = field(default_factory=list)

    def conversations_of(self) -> list[list[int]]:
        mine: list[list[int]] = [[] for _ in self.names]
        for c, members in enumerate(self.plans):
            for m in members:
                mine[m].append(c)
        return mine


def plan_layout(
    users: int, conversations: int, *, groups: int, group_size: int, sampled: int, seed: int
) -> Layout:
    """Groups take the first users (disjoint), direct pairs the rest; the conversations left
    over are direct pairs of users picked at random. Every user is in at least one."""
    if groups * group_size > users:
        raise SystemExit(f"{groups} groups of {group_size} need more than {users} users")
    rng = random.Random(seed)
    plans = [list(range(g * group_size, (g + 1) * group_size)) for g in range(groups)]
    rest = list(range(groups * group_size, users))
    if len(rest) % 2:
        rest.append(0)
    pairs = {(rest[i], rest[i + 1]) for i in range(0, len(rest), 2)}
    plans += [list(pair) for pair in sorted(pairs)]
    if len(plans) > conversations:
        raise SystemExit(
            f"{conversations} conversations cannot cover {users} users with {groups} groups"
            f" of {group_size}: that needs {len(plans)}"
        )
    while len(plans) < conversations:
        a, b = sorted(rng.sample(range(users), 2))
        if (a, b) not in pairs:
            pairs.add((a, b))
            plans.append([a, b])
    stride = max(1, users // max(1, sampled))
    chosen = set(range(0, users, stride)) if sampled > 0 else set()
    return Layout([], plans, chosen)


# -- setup --------------------------------------------------------------------------------------


def create_users(settings: Settings, names: list[str]) -> None:
    """Accounts straight in the users table: one argon2 hash for all (nobody signs in)."""
    import psycopg

    password_hash = hash_password("bench-chat-password")
    with psycopg.connect(settings.pg_dsn, autocommit=True) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO users (username, password_hash) VALUES (%s, %s)"
            " ON CONFLICT (username) DO NOTHING",
            [(name, password_hash) for name in names],
        )


def tokens_for(settings: Settings, names: list[str]) -> list[str]:
    signer = TokenSigner(settings.token_secret, 6 * 3600)
    return [signer.issue(User(name, False)).token for name in names]


async def start_conversations(
    base: str, layout: Layout, tokens: list[str], run_id: str, concurrency: int
) -> list[str]:
    """Through the API, so they are journaled; the first member starts each one."""
    ids: list[str | None] = [None] * len(layout.plans)
    gate = asyncio.Semaphore(concurrency)
    timeout = aiohttp.ClientTimeout(total=60)

    async def one(session: aiohttp.ClientSession, c: int) -> None:
        creator, *others = layout.plans[c]
        async with gate:
            for attempt in range(5):
                async with session.post(
                    f"{base}/v1/conversations",
                    json={"members": [layout.names[o] for o in others]},
                    headers={
                        "Authorization": f"Bearer {tokens[creator]}",
                        "Idempotency-Key": f"bench-{run_id}-{c}",
                    },
                ) as response:
                    body = await response.json()
                    if response.status in (200, 201):
                        ids[c] = body["conversation_id"]
                        return
                    if response.status not in (429, 503) or attempt == 4:
                        raise RuntimeError(f"conversation {c}: {response.status} {body}")
                await asyncio.sleep(1)

    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(one(session, c) for c in range(len(layout.plans))))
    return [i for i in ids if i is not None]


def wait_for_projection(settings: Settings, ids: list[str], timeout_s: float = 60) -> None:
    import psycopg

    deadline = time.monotonic() + timeout_s
    with psycopg.connect(settings.pg_dsn, autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT count(*) FROM conversations WHERE conversation_id = ANY(%s)", (ids,)
            ).fetchone()
            if row is not None and row[0] == len(ids):
                return
            if time.monotonic() > deadline:
                raise RuntimeError("the chat projection never showed every conversation")
            time.sleep(0.2)


# -- CPU accounting (from /proc) ----------------------------------------------------------------

TICKS = os.sysconf("SC_CLK_TCK")


def _process_table() -> tuple[dict[int, float], dict[int, list[int]]]:
    cpu: dict[int, float] = {}
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        pid = int(entry.name)
        cpu[pid] = (int(fields[11]) + int(fields[12])) / TICKS
        children.setdefault(int(fields[1]), []).append(pid)
    return cpu, children


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(values[:8])
    idle = values[3] + values[4]
    return (total - idle) / TICKS, total / TICKS


class CpuMeter:
    """CPU seconds per named process tree, between two readings."""

    def __init__(self, roots: dict[str, int], own: dict[str, int]) -> None:
        self.roots = roots  # name -> pid, the process and its descendants
        self.own = own  # name -> pid, that process alone

    def read(self) -> dict[str, float]:
        cpu, children = _process_table()
        out: dict[str, float] = {}
        for name, root in self.roots.items():
            total, todo = 0.0, [root]
            while todo:
                pid = todo.pop()
                total += cpu.get(pid, 0.0)
                todo.extend(children.get(pid, ()))
            out[name] = total
        for name, pid in self.own.items():
            out[name] = cpu.get(pid, 0.0)
        busy, wall = _machine_busy()
        out["_machine_busy"] = busy
        out["_machine_total"] = wall
        out["_at"] = time.monotonic()
        return out

    @staticmethod
    def share(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        """Cores used per process over the interval (1.0 = one core busy all along)."""
        seconds = max(1e-9, after["_at"] - before["_at"])
        out = {
            name: round((after[name] - before[name]) / seconds, 2)
            for name in after
            if not name.startswith("_")
        }
        busy = (after["_machine_busy"] - before["_machine_busy"]) / seconds
        out["machine_busy"] = round(busy, 2)
        out["machine_cores"] = round(
            (after["_machine_total"] - before["_machine_total"]) / seconds, 2
        )
        out["other_processes"] = round(busy - sum(v for k, v in out.items() if k in after), 2)
        return out


def stack_pids(settings: Settings) -> dict[str, int]:
    found: dict[str, int] = {}
    for part in STACK_PARTS:
        path = settings.run_dir / f"{part}.pid"
        with contextlib.suppress(OSError, ValueError):
            found[part] = int(path.read_text().split()[0])
    return found


async def until_quiet(meter: CpuMeter, cores: float, max_s: float) -> float:
    """Wait until the stack uses less than ``cores`` over a second (or ``max_s`` passed)."""
    started = time.monotonic()
    while time.monotonic() - started < max_s:
        before = meter.read()
        await asyncio.sleep(1)
        share = CpuMeter.share(before, meter.read())
        if sum(share.get(part, 0.0) for part in STACK_PARTS) < cores:
            break
    return round(time.monotonic() - started, 1)


# -- the load processes -------------------------------------------------------------------------


@dataclass(slots=True)
class SocketSpec:
    index: int
    name: str
    token: str
    conversations: list[str]
    sampled: bool
    # conversation -> sampled members other than this user: the deliveries a send should make
    expect: dict[str, int]


@dataclass(slots=True)
class Sock:
    spec: SocketSpec
    ws: aiohttp.ClientWebSocketResponse | None = None
    turn: int = 0
    sent: int = 0
    waiting: str | None = None
    waiter: asyncio.Future[None] | None = None
    seqs: dict[str, int] = field(default_factory=dict)

    def next_conversation(self) -> str:
        conversations = self.spec.conversations
        self.turn += 1
        return conversations[self.turn % len(conversations)]


@dataclass
class PhaseStats:
    sent: int = 0
    acked: int = 0
    ack_latencies: list[float] = field(default_factory=list)
    ack_times: list[float] = field(default_factory=list)
    deliveries: list[float] = field(default_factory=list)
    # "direct" / "group" -> latencies of that kind of conversation
    acks_by_kind: dict[str, list[float]] = field(default_factory=dict)
    deliveries_by_kind: dict[str, list[float]] = field(default_factory=dict)
    expected_deliveries: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    started: float = 0.0
    ended: float = 0.0
    max_late_s: float = 0.0


class LoadWorker:
    def __init__(self, proc: int, url: str, specs: list[SocketSpec], filler: str) -> None:
        self.proc = proc
        self.url = url
        self.socks = [Sock(spec) for spec in specs]
        self.filler = filler
        self.pending: dict[str, float] = {}
        self.phases: dict[str, PhaseStats] = {}
        self.frames = 0
        self.other_frames = 0
        self.gaps = 0
        self.repeats = 0
        self.errors: Counter[str] = Counter()
        self.readers: list[asyncio.Task[None]] = []

    def stats(self, phase: str) -> PhaseStats:
        found = self.phases.get(phase)
        if found is None:
            found = self.phases[phase] = PhaseStats()
        return found

    async def connect(self, session: aiohttp.ClientSession, concurrency: int) -> int:
        gate = asyncio.Semaphore(concurrency)

        async def one(sock: Sock) -> None:
            async with gate:
                try:
                    sock.ws = await session.ws_connect(
                        f"{self.url}?token={sock.spec.token}", heartbeat=None, max_msg_size=0
                    )
                except (aiohttp.ClientError, TimeoutError) as exc:
                    self.errors[f"connect {type(exc).__name__}"] += 1
                    return
            self.readers.append(asyncio.create_task(self.read(sock)))

        await asyncio.gather(*(one(sock) for sock in self.socks))
        self.socks = [sock for sock in self.socks if sock.ws is not None]
        return len(self.socks)

    async def read(self, sock: Sock) -> None:
        ws = sock.ws
        assert ws is not None
        async for msg in ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            data: str = msg.data
            if data.startswith(MESSAGE_PREFIX):
                self.frames += 1
                if sock.spec.sampled:
                    self.on_sampled(sock, data, time.monotonic())
            elif data.startswith(ACK_PREFIX):
                self.on_ack(sock, orjson.loads(data), time.monotonic())
            elif data.startswith(ERROR_PREFIX):
                self.on_error(sock, orjson.loads(data))
            else:
                self.other_frames += 1
        self.errors["socket closed"] += 1

    def on_sampled(self, sock: Sock, data: str, now: float) -> None:
        message = orjson.loads(data)
        conversation_id, seq = message["conversation_id"], message["seq"]
        last = sock.seqs.get(conversation_id)
        if last is not None and seq != last + 1:
            if seq <= last:
                self.repeats += 1
            else:
                self.gaps += 1
        sock.seqs[conversation_id] = max(seq, last or 0)
        if message["sender"] == sock.spec.name:
            return
        text: str = message["text"]
        space = text.find(" ")
        if space > 0:
            phase = text[space + 1 : space + 2]
            latency = now - float(text[:space])
            stats = self.stats(phase)
            stats.deliveries.append(latency)
            stats.deliveries_by_kind.setdefault(kind_of(conversation_id), []).append(latency)

    def on_ack(self, sock: Sock, ack: dict[str, Any], now: float) -> None:
        client_msg_id: str = ack["client_msg_id"]
        sent = self.pending.pop(client_msg_id, None)
        stats = self.stats(client_msg_id[0])
        if sent is not None:
            stats.acked += 1
            stats.ack_latencies.append(now - sent)
            stats.ack_times.append(now)
            kind = kind_of(ack["conversation_id"])
            stats.acks_by_kind.setdefault(kind, []).append(now - sent)
            stats.expected_deliveries += sock.spec.expect.get(ack["conversation_id"], 0)
        self.release(sock, client_msg_id)

    def on_error(self, sock: Sock, error: dict[str, Any]) -> None:
        client_msg_id = error.get("client_msg_id")
        code = str(error.get("code"))
        if isinstance(client_msg_id, str) and client_msg_id:
            self.pending.pop(client_msg_id, None)
            self.stats(client_msg_id[0]).errors[code] += 1
            self.release(sock, client_msg_id)
        else:
            self.errors[code] += 1

    @staticmethod
    def release(sock: Sock, client_msg_id: str) -> None:
        if sock.waiting == client_msg_id and sock.waiter is not None and not sock.waiter.done():
            sock.waiter.set_result(None)

    async def send(self, sock: Sock, phase: str) -> str:
        ws = sock.ws
        assert ws is not None
        conversation_id = sock.next_conversation()
        client_msg_id = f"{phase}{self.proc}.{sock.spec.index}.{sock.sent}"
        sock.sent += 1
        now = time.monotonic()
        self.pending[client_msg_id] = now
        # Built by hand: ids and filler need no escaping, and this runs for every send.
        await ws.send_str(
            f'{{"type":"send","conversation_id":"{conversation_id}",'
            f'"client_msg_id":"{client_msg_id}","text":"{now:.6f} {phase} {self.filler}"}}'
        )
        self.stats(phase).sent += 1
        return client_msg_id

    async def closed_loop(self, phase: str, start_at: float, duration_s: float) -> None:
        stats = self.stats(phase)
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        stats.started = start_at
        deadline = start_at + duration_s
        loop = asyncio.get_running_loop()

        async def sender(sock: Sock) -> None:
            while time.monotonic() < deadline:
                sock.waiter = loop.create_future()
                try:
                    sock.waiting = await self.send(sock, phase)
                    async with asyncio.timeout(30):
                        await sock.waiter
                except TimeoutError:
                    stats.errors["ack timeout"] += 1
                except (aiohttp.ClientError, ConnectionError) as exc:
                    stats.errors[type(exc).__name__] += 1
                    return

        await asyncio.gather(*(sender(sock) for sock in self.socks))
        stats.ended = deadline

    async def open_loop(self, phase: str, start_at: float, rate: float, duration_s: float) -> None:
        """Sends on a fixed schedule, round the sockets (in a shuffled order), acks or not."""
        stats = self.stats(phase)
        order = list(self.socks)
        random.Random(self.proc).shuffle(order)
        stats.started = start_at
        for i in range(int(rate * duration_s)):
            at = start_at + i / rate
            delay = at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                stats.max_late_s = max(stats.max_late_s, -delay)
            try:
                await self.send(order[i % len(order)], phase)
            except (aiohttp.ClientError, ConnectionError) as exc:
                stats.errors[type(exc).__name__] += 1
        stats.ended = start_at + duration_s

    async def drain(self, phase: str, wait_s: float) -> None:
        """Until every send of the phase is answered (at most ``wait_s``), then a moment for
        the last deliveries."""
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and any(k[0] == phase for k in self.pending):
            await asyncio.sleep(0.1)
        await asyncio.sleep(min(2.0, max(0.0, deadline - time.monotonic())))

    def report(self, phase: str) -> dict[str, Any]:
        stats = self.stats(phase)
        unanswered = sum(1 for k in self.pending if k[0] == phase)
        frames, self.frames = self.frames, 0
        return {
            "sent": stats.sent,
            "acked": stats.acked,
            "ack_latencies": stats.ack_latencies,
            "ack_times": stats.ack_times,
            "deliveries": stats.deliveries,
            "acks_by_kind": stats.acks_by_kind,
            "deliveries_by_kind": stats.deliveries_by_kind,
            "expected_deliveries": stats.expected_deliveries,
            "errors": dict(stats.errors),
            "unanswered": unanswered,
            "started": stats.started,
            "ended": stats.ended,
            "max_late_s": stats.max_late_s,
            "frames": frames,
            "other_frames": self.other_frames,
            "gaps": self.gaps,
            "repeats": self.repeats,
            "socket_errors": dict(self.errors),
        }


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    proc: int
    url: str
    specs: list[SocketSpec]
    filler: str
    connect_concurrency: int


def worker_main(config: WorkerConfig, conn: Connection) -> None:
    import uvloop

    uvloop.install()
    asyncio.run(_worker(config, conn))


async def _worker(config: WorkerConfig, conn: Connection) -> None:
    loop = asyncio.get_running_loop()
    worker = LoadWorker(config.proc, config.url, config.specs, config.filler)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        connected = await worker.connect(session, config.connect_concurrency)
        conn.send({"connected": connected, "errors": dict(worker.errors)})
        while True:
            command = await loop.run_in_executor(None, conn.recv)
            match command:
                case ("closed", phase, start_at, duration_s, drain_s):
                    await worker.closed_loop(phase, start_at, duration_s)
                    await worker.drain(phase, drain_s)
                    conn.send(worker.report(phase))
                case ("open", phase, start_at, rate, duration_s, drain_s):
                    await worker.open_loop(phase, start_at, rate, duration_s)
                    await worker.drain(phase, drain_s)
                    conn.send(worker.report(phase))
                case _:
                    break
        for sock in worker.socks:
            if sock.ws is not None:
                await sock.ws.close()
        for task in worker.readers:
            task.cancel()
        conn.send({"closed": True})


class LoadProcesses:
    """The (at most two) processes holding the sockets, driven phase by phase."""

    def __init__(
        self, url: str, specs: list[SocketSpec], processes: int, filler: str, connect: int
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self.conns: list[Connection] = []
        self.procs: list[multiprocessing.process.BaseProcess] = []
        for p in range(processes):
            mine, theirs = context.Pipe()
            share = [spec for spec in specs if spec.index % processes == p]
            proc = context.Process(
                target=worker_main,
                args=(WorkerConfig(p, url, share, filler, connect), theirs),
                name=f"bench-chat-{p}",
                daemon=True,
            )
            proc.start()
            self.conns.append(mine)
            self.procs.append(proc)

    @property
    def pids(self) -> dict[str, int]:
        return {f"load_{i}": p.pid for i, p in enumerate(self.procs) if p.pid is not None}

    async def gather(self) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        replies = await asyncio.gather(*(loop.run_in_executor(None, c.recv) for c in self.conns))
        return list(replies)

    async def run(self, *command: Any) -> list[dict[str, Any]]:
        for conn in self.conns:
            conn.send(command)
        return await self.gather()

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.run("stop"), 30)
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()


def merge(replies: list[dict[str, Any]], window: tuple[float, float]) -> dict[str, Any]:
    acked_in = sum(1 for r in replies for t in r["ack_times"] if window[0] <= t <= window[1])
    seconds = window[1] - window[0]
    acks = [v for r in replies for v in r["ack_latencies"]]
    # Per second of the phase: acks, and their p99 (is the tail steady or one stall?).
    per_second: dict[int, list[float]] = {}
    for r in replies:
        for t, v in zip(r["ack_times"], r["ack_latencies"], strict=True):
            per_second.setdefault(int(t - window[0]), []).append(v)
    timeline = [
        [second, len(values), ms(pct(values, 99))] for second, values in sorted(per_second.items())
    ]
    by_kind: dict[str, Any] = {}
    for key, name in (("acks_by_kind", "ack"), ("deliveries_by_kind", "delivery")):
        for kind in ("direct", "group"):
            values = [v for r in replies for v in r[key].get(kind, [])]
            by_kind[f"{name}_{kind}"] = latency_summary(values)
    deliveries = [v for r in replies for v in r["deliveries"]]
    expected = sum(r["expected_deliveries"] for r in replies)
    errors: Counter[str] = Counter()
    for r in replies:
        errors.update(r["errors"])
    return {
        "seconds": round(seconds, 1),
        "sent": sum(r["sent"] for r in replies),
        "acked": sum(r["acked"] for r in replies),
        "accepted_per_s": round(acked_in / seconds, 1),
        "unanswered": sum(r["unanswered"] for r in replies),
        "errors": dict(errors),
        "ack": latency_summary(acks),
        "delivery": latency_summary(deliveries)
        | {
            "sampled_deliveries_expected": expected,
            "sampled_deliveries_seen": len(deliveries),
        },
        **by_kind,
        "ack_timeline_s_count_p99ms": timeline,
        "schedule_max_late_ms": ms(max(r["max_late_s"] for r in replies)),
        "order_gaps": sum(r["gaps"] for r in replies),
        "order_repeats": sum(r["repeats"] for r in replies),
    }


# -- history over HTTP --------------------------------------------------------------------------


async def history_pages(
    base: str,
    layout: Layout,
    *,
    tokens: list[str],
    requests: int,
    concurrencies: list[int],
    limit: int,
) -> dict[str, Any]:
    """Each request by a member; without `before` (the newest page) and with a random
    `before` that leaves a full page, on conversations with enough history for that; at each
    concurrency in turn (1 is the latency of a page; more adds the API's queueing)."""
    rng = random.Random(11)
    timeout = aiohttp.ClientTimeout(total=30)
    latest: dict[int, int] = {}
    out: dict[str, Any] = {"limit": limit}
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def page(c: int, before: int | None) -> tuple[int, dict[str, Any]]:
            params = {"limit": str(limit)} | ({} if before is None else {"before": str(before)})
            headers = {"Authorization": f"Bearer {tokens[layout.plans[c][0]]}"}
            async with session.get(
                f"{base}/v1/conversations/{layout.ids[c]}/messages",
                params=params,
                headers=headers,
            ) as response:
                return response.status, await response.json(loads=orjson.loads)

        # A first pass finds each conversation's last seq (and warms the connections).
        for c in range(len(layout.ids)):
            status, body = await page(c, None)
            if status == 200 and body["messages"]:
                latest[c] = body["messages"][0]["seq"]
        enough = [c for c, last in latest.items() if last >= 2 * limit]
        if not enough:
            return {"error": f"no conversation has {2 * limit} messages"}
        out["conversations"] = len(enough)

        async def client(
            jobs: Iterator[tuple[int, bool]],
            newest: list[float],
            older: list[float],
            errors: Counter[str],
        ) -> None:
            for c, with_before in jobs:
                before = rng.randint(limit + 1, latest[c]) if with_before else None
                started = time.perf_counter()
                status, body = await page(c, before)
                took = time.perf_counter() - started
                if status != 200 or len(body["messages"]) != limit:
                    errors[f"{status} {len(body.get('messages', []))} messages"] += 1
                (older if with_before else newest).append(took)

        for concurrency in concurrencies:
            # One iterator shared by the clients: each job is taken once.
            jobs = iter([(rng.choice(enough), i % 2 == 1) for i in range(2 * requests)])
            newest: list[float] = []
            older: list[float] = []
            errors: Counter[str] = Counter()
            started = time.perf_counter()
            await asyncio.gather(*(client(jobs, newest, older, errors) for _ in range(concurrency)))
            out[f"concurrency_{concurrency}"] = {
                "pages_per_s": round(2 * requests / (time.perf_counter() - started), 1),
                "newest_page": latency_summary(newest),
                "before_page": latency_summary(older),
                "all_pages": latency_summary(newest + older),
                "errors": dict(errors),
            }
    return out


# -- raw Kafka ----------------------------------------------------------------------------------


def kafka_raw(
    settings: Settings, run_id: str, rate: float, seconds: float, value_bytes: int
) -> dict[str, Any]:
    """Produce -> consume on a scratch topic: the journal's producer settings (acks=all,
    idempotent, linger 2 ms, lz4) and a plain assigned consumer, at a fixed rate."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    from producers.journal import producer_config

    topic = f"{settings.topic_prefix}.bench.scratch.{run_id}"
    partitions = settings.topic_partitions
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap, "log_level": 3})
    for future in admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1)]
    ).values():
        future.result(30)
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"bench-scratch-{run_id}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,
            "log_level": 3,
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    producer = Producer(producer_config(settings))
    consumed: list[float] = []
    seen = [0]
    stop = threading.Event()

    def consume() -> None:
        # poll() returns as soon as a message is there; consume(n, timeout) would wait for n
        # messages or the whole timeout, which is latency the broker never caused.
        while not stop.is_set():
            first = consumer.poll(0.05)
            if first is None:
                continue
            for message in [first, *consumer.consume(500, 0)]:
                now = time.monotonic()
                if message.error() is not None:
                    continue
                seen[0] += 1
                value = message.value() or b""
                if value[18:19] == b"m":
                    consumed.append(now - float(value[:17]))

    acked: list[float] = []
    failed = [0]

    def produce(i: int, mark: bytes) -> None:
        sent = time.monotonic()

        def report(err: Any, _msg: Any) -> None:
            if err is None:
                acked.append(time.monotonic() - sent)
            else:
                failed[0] += 1

        value = b"%017.6f %s " % (sent, mark)
        producer.produce(
            topic,
            key=f"k{i % 300}".encode(),
            value=value + b"x" * max(0, value_bytes - len(value)),
            on_delivery=report if mark == b"m" else None,
        )

    def deliveries() -> None:
        # As the journal producer does: delivery reports flow from a thread of their own.
        while not stop.is_set():
            producer.poll(0.05)

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    poller = threading.Thread(target=deliveries, daemon=True)
    poller.start()
    try:
        # Warm up: metadata, leaders and the consumer's first fetches.
        for i in range(200):
            produce(i, b"w")
            time.sleep(0.005)
        producer.flush(30)
        deadline = time.monotonic() + 30
        while seen[0] < 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        started = time.monotonic()
        n = int(rate * seconds)
        for i in range(n):
            delay = started + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            produce(i, b"m")
        producer.flush(30)
        deadline = time.monotonic() + 10
        while len(consumed) < n and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        reader.join(5)
        poller.join(5)
        consumer.close()
        with contextlib.suppress(Exception):
            for future in admin.delete_topics([topic]).values():
                future.result(30)
    return {
        "topic_partitions": partitions,
        "rate_per_s": round(rate, 1),
        "produced": n,
        "failed": failed[0],
        "produce_to_ack": latency_summary(acked),
        "produce_to_consume": latency_summary(consumed),
    }


# -- where the time goes (py-spy) ---------------------------------------------------------------


def start_profiles(
    targets: dict[str, int], seconds: float, out_dir: Path, stamp: str
) -> list[tuple[str, Path, subprocess.Popen[bytes]]]:
    spy = Path(sys.executable).with_name("py-spy")
    running = []
    for name, pid in targets.items():
        out = out_dir / f"bench-chat-{stamp}-{name}.txt"
        proc = subprocess.Popen(
            [
                str(spy),
                "record",
                "--pid",
                str(pid),
                "--subprocesses",
                "--nonblocking",
                "--format",
                "raw",
                "--rate",
                "100",
                "--duration",
                str(max(1, int(seconds))),
                "--output",
                str(out),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        running.append((name, out, proc))
    return running


PROJECT_PACKAGES = ("api/", "processors/", "producers/", "snapshots/", "domain/")


def top_frames(path: Path, top: int = 12) -> dict[str, Any]:
    """From py-spy's collapsed stacks: the frames with the most samples on top of the stack
    (self), and the project's frames with the most samples anywhere in it (total).

    With uvloop, time in the event loop's C code (epoll waits included) shows as the frame
    that called `run`: py-spy cannot tell idle from busy there, so these are shares of the
    samples, not of CPU; `CpuMeter` has the CPU."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {"error": f"no profile at {path}"}
    for line in lines:
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        samples += count
        own[_short(frames[-1])] += count
        for frame in set(frames):
            if frame.partition(" (")[2].startswith(PROJECT_PACKAGES):
                total[_short(frame)] += count

    def listed(counter: Counter[str]) -> list[str]:
        return [f"{100 * n / samples:.0f}% {frame}" for frame, n in counter.most_common(top)]

    return {
        "file": str(path),
        "samples": samples,
        "self": listed(own) if samples else [],
        "total": listed(total) if samples else [],
    }


def _short(frame: str) -> str:
    """`func (path/to/module.py:123)` -> `func (module.py)`."""
    name, _, where = frame.partition(" (")
    file = where.split(":", 1)[0].rsplit("/", 1)[-1]
    return f"{name} ({file})" if file else name


# -- the run ------------------------------------------------------------------------------------


def specs_for(layout: Layout, tokens: list[str]) -> list[SocketSpec]:
    mine = layout.conversations_of()
    specs = []
    for i, name in enumerate(layout.names):
        expect = {}
        for c in mine[i]:
            others = [m for m in layout.plans[c] if m != i]
            expect[layout.ids[c]] = sum(1 for m in others if m in layout.sampled)
        specs.append(
            SocketSpec(
                index=i,
                name=name,
                token=tokens[i],
                conversations=[layout.ids[c] for c in mine[i]],
                sampled=i in layout.sampled,
                expect=expect,
            )
        )
    return specs


async def run(args: argparse.Namespace, stamp: str) -> dict[str, Any]:
    settings = get_settings()
    base = settings.api_url
    run_id = secrets.token_hex(3)
    results: dict[str, Any] = {"run_id": run_id}
    layout = plan_layout(
        args.users,
        args.conversations,
        groups=args.groups,
        group_size=args.group_size,
        sampled=args.sampled,
        seed=args.seed,
    )
    layout.names = [f"bc{run_id}_{i}" for i in range(args.users)]

    t0 = time.monotonic()
    create_users(settings, layout.names)
    tokens = tokens_for(settings, layout.names)
    t1 = time.monotonic()
    layout.ids = await start_conversations(base, layout, tokens, run_id, args.setup_concurrency)
    wait_for_projection(settings, layout.ids)
    t2 = time.monotonic()
    kinds = Counter("group" if len(p) > 2 else "direct" for p in layout.plans)
    results["setup"] = {
        "users": args.users,
        "conversations": len(layout.ids),
        "groups": kinds["group"],
        "group_size": args.group_size,
        "directs": kinds["direct"],
        "users_without_conversation": sum(1 for c in layout.conversations_of() if not c),
        "sampled_receivers": len(layout.sampled),
        "accounts_s": round(t1 - t0, 1),
        "conversations_s": round(t2 - t1, 1),
    }

    filler = ("lorem ipsum " * (args.text_bytes // 12 + 1))[: max(1, args.text_bytes - 20)].strip()
    url = base.replace("http://", "ws://") + "/v1/chat/live"
    load = LoadProcesses(
        url, specs_for(layout, tokens), args.processes, filler, args.connect_concurrency
    )
    meter = CpuMeter(stack_pids(settings) | load.pids, {"bench_parent": os.getpid()})
    cpu: dict[str, dict[str, float]] = {}
    try:
        t3 = time.monotonic()
        ready = await load.gather()
        results["setup"]["connected"] = sum(r["connected"] for r in ready)
        results["setup"]["connect_errors"] = [r["errors"] for r in ready if r["errors"]]
        results["setup"]["connect_s"] = round(time.monotonic() - t3, 1)
        results["setup"]["settle_s"] = await until_quiet(meter, 0.3, 60)

        async def phase_run(
            start_at: float, seconds: float, *command: Any
        ) -> tuple[list[dict[str, Any]], dict[str, float]]:
            """The load processes' replies, and the CPU used during the phase's window."""
            replies = asyncio.create_task(load.run(*command))
            await asyncio.sleep(max(0.0, start_at - time.monotonic()))
            before = meter.read()
            await asyncio.sleep(max(0.0, start_at + seconds - time.monotonic()))
            share = CpuMeter.share(before, meter.read())
            return await replies, share

        async def closed(phase: str, seconds: float) -> tuple[dict[str, Any], dict[str, float]]:
            start_at = time.monotonic() + 1.0
            replies, share = await phase_run(
                start_at, seconds, "closed", phase, start_at, seconds, args.drain
            )
            return merge(replies, (start_at, start_at + seconds)) | {
                "frames_received": sum(r["frames"] for r in replies),
                "socket_errors": [r["socket_errors"] for r in replies if r["socket_errors"]],
            }, share

        if args.warmup > 0:
            results["warmup"], _ = await closed(WARMUP, args.warmup)
            await until_quiet(meter, 0.3, 30)

        results["closed_loop"], cpu["closed_loop"] = await closed(CLOSED, args.duration)
        await until_quiet(meter, 0.3, 60)

        rate = args.open_rate or results["closed_loop"]["accepted_per_s"] / 2
        start_at = time.monotonic() + 1.0
        replies, cpu["open_loop"] = await phase_run(
            start_at,
            args.steady,
            "open",
            OPEN,
            start_at,
            rate / args.processes,
            args.steady,
            args.drain,
        )
        results["open_loop"] = merge(replies, (start_at, start_at + args.steady)) | {
            "target_rate_per_s": round(rate, 1),
            "frames_received": sum(r["frames"] for r in replies),
        }
        await until_quiet(meter, 0.3, 60)

        if args.profile > 0:
            roots = stack_pids(settings)
            targets = {n: roots[n] for n in args.profile_targets.split(",") if n in roots}
            spies = start_profiles(targets, args.profile, PROJECT_ROOT / "var", stamp)
            await asyncio.sleep(1.0)  # py-spy attaches
            results["profile_phase"], cpu["profile_phase"] = await closed(PROFILE, args.profile)
            profiles = {}
            for name, out, proc in spies:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(30)
                profiles[name] = top_frames(out)
            results["profiles"] = profiles
            await until_quiet(meter, 0.3, 60)

        before = meter.read()
        results["history"] = await history_pages(
            base,
            layout,
            tokens=tokens,
            requests=args.history_requests,
            concurrencies=[int(c) for c in args.history_concurrency.split(",")],
            limit=50,
        )
        cpu["history"] = CpuMeter.share(before, meter.read())
    finally:
        await load.stop()

    before = meter.read()
    results["kafka_raw"] = await asyncio.to_thread(
        kafka_raw,
        settings,
        run_id,
        args.kafka_rate or rate,
        args.kafka_seconds,
        args.text_bytes + 200,
    )
    cpu["kafka_raw"] = CpuMeter.share(before, meter.read())
    results["cpu_cores"] = cpu
    return results


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        model = next(
            (
                line.split(":", 1)[1].strip()
                for line in lscpu.splitlines()
                if line.startswith("Model name")
            ),
            "",
        )
    memory_kb = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        memory_kb = int(Path("/proc/meminfo").read_text().split("\n", 1)[0].split()[1])
    return {
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "model": model,
        "memory_gib": round(memory_kb / 2**20, 1),
        "python": platform.python_version(),
    }


def targets(results: dict[str, Any]) -> dict[str, Any]:
    accepted = results["closed_loop"]["accepted_per_s"]
    delivery = results["open_loop"]["delivery"]["p99_ms"]
    levels = [v for k, v in results["history"].items() if k.startswith("concurrency_")]
    history = levels[0]["all_pages"]["p99_ms"] if levels else float("nan")
    return {
        "accepted_per_s >= 1500": [accepted, accepted >= 1500],
        "delivery_p99_ms_at_half_rate <= 100": [delivery, delivery <= 100],
        "history_page_p99_ms <= 20": [history, history <= 20],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--users", type=int, default=1000, help="connected users")
    parser.add_argument("--conversations", type=int, default=300)
    parser.add_argument("--groups", type=int, default=25, help="groups among the conversations")
    parser.add_argument("--group-size", type=int, default=20)
    parser.add_argument("--sampled", type=int, default=100, help="receivers measuring latency")
    parser.add_argument("--text-bytes", type=int, default=100, help="message text length")
    parser.add_argument("--warmup", type=float, default=5.0, help="closed-loop warm-up seconds")
    parser.add_argument("--duration", type=float, default=30.0, help="closed-loop seconds")
    parser.add_argument("--steady", type=float, default=30.0, help="open-loop seconds")
    parser.add_argument(
        "--open-rate", type=float, default=0.0, help="open-loop msg/s (0: half the closed loop's)"
    )
    parser.add_argument("--drain", type=float, default=15.0, help="max wait for acks per phase")
    parser.add_argument("--history-requests", type=int, default=1000, help="pages of each kind")
    parser.add_argument(
        "--history-concurrency", default="1,8", help="comma-separated; the first is the target's"
    )
    parser.add_argument("--kafka-seconds", type=float, default=15.0)
    parser.add_argument(
        "--kafka-rate", type=float, default=0.0, help="raw Kafka msg/s (0: the open loop's)"
    )
    parser.add_argument(
        "--profile",
        type=float,
        default=0.0,
        help="seconds of an extra closed-loop phase under py-spy (0: none)",
    )
    parser.add_argument("--profile-targets", default="api,deciders,chatviews")
    parser.add_argument("--processes", type=int, default=2, choices=(1, 2))
    parser.add_argument("--connect-concurrency", type=int, default=50)
    parser.add_argument("--setup-concurrency", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    import uvloop

    uvloop.install()
    started = datetime.now(UTC)
    stamp = f"{started:%Y%m%dT%H%M%S}"
    results = asyncio.run(run(args, stamp))
    results["targets"] = targets(results)
    results["date"] = started.isoformat(timespec="seconds")
    results["machine"] = machine()
    results["command"] = "python -m bench.chat " + " ".join(sys.argv[1:])
    text = orjson.dumps(results, option=orjson.OPT_INDENT_2).decode()
    print(text)
    out = PROJECT_ROOT / "var" / f"bench-chat-{stamp}.json"
    out.write_text(text)
    print(f"saved {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
