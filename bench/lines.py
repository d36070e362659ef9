"""Lines: 100,000 fans in one show's line, end to end over HTTP and WebSocket.

One sold-out show (one row of a few seats, all held by one fan for a week) and `--fans` fans
who each join its waitlist (`POST /v1/shows/{id}/waitlist {"quantity": 1}`). Reported:

1. joins: 201s per second, closed loop at `--concurrency` fans without think time, and the
   join latency p50/p99; the answered positions must be exactly 1..fans;
2. the line's first read by the API: the first `GET .../waitlist/me` after the joins (nothing
   had read the line, so the instance loads every row from PostgreSQL), and `load_line` of the
   same rows timed here, apart from the HTTP;
3. position lookups (`GET .../waitlist/me` of random fans): latency one at a time (p50/p99)
   and the rate closed loop at `--lookup-concurrency`; each answer must be the joined position;
4. fan-out: `--sockets` fans behind the leaver on `WS .../waitlist/live?token=T` (in
   `--socket-procs` processes of their own), then the fan at `--leave-position` leaves
   (`DELETE .../waitlist/me`): the time from the DELETE's answer to each socket's position
   frame one lower, p50/p99/max, and how long connecting took;
5. optional (`--early N`, 0 skips): N early joins into a queued show's waiting room before it
   opens, their rate over the first and last tenth (the room sorts each early joiner in).

Each phase also reports the CPU seconds per process of the stack (from /proc, by the var
directory in each process's command line or environment), the load generator's and the
machine's, as a share of one core. The load generator is aiohttp on uvloop, tokens are minted
with the stack's own secret (no sign-ups), and everything shares this machine's cores.

Run with a stack up (`make run`, or a test slot: `--test-slot N` takes the settings of
`tests.providers.base_settings()` for BOXOFFICE_TEST_SLOT=N): `python -m bench.lines`, a quick
run `python -m bench.lines --fans 5000 --sockets 500 --early 2000`; `--reuse-show ID` measures
the line an earlier run filled, without joining again; `--help` for the knobs.
Prints one JSON object, also written to var/bench-lines-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import random
import resource
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any

import aiohttp

from api.auth import TokenSigner, User
from bench.cpu import CpuSplit
from boxoffice.settings import PROJECT_ROOT, Settings, get_settings

HOLD_SECONDS = 86_400  # the most the API takes: the seats stay held for the whole run
SEATS = 2


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


# -- HTTP helpers ------------------------------------------------------------------------------


def headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def mint(settings: Settings, names: list[str], organizer: bool = False) -> list[str]:
    signer = TokenSigner(settings.token_secret, 6 * 3600)
    return [signer.issue(User(name, organizer)).token for name in names]


async def organizer_token(settings: Settings) -> str:
    # Creating a show needs an organizer the users table knows.
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "boxoffice.cli",
        "user",
        "add",
        "bench_org",
        "--password",
        "bench-organizer",
        "--organizer",
        cwd=PROJECT_ROOT,
        stdout=asyncio.subprocess.DEVNULL,
    )
    await process.wait()
    return mint(settings, ["bench_org"], organizer=True)[0]


async def create_show(
    session: aiohttp.ClientSession, base: str, org: str, name: str, queue: dict[str, Any] | None
) -> str:
    body: dict[str, Any] = {
        "name": name,
        "starts_at": "2027-06-01T20:00:00Z",
        "hold_seconds": HOLD_SECONDS,
        "sections": [{"name": "A", "rows": 1, "seats_per_row": SEATS, "price_cents": 5000}],
    }
    if queue is not None:
        body["queue"] = queue
    async with session.post(f"{base}/v1/shows", headers=headers(org), json=body) as response:
        created = await response.json()
        assert response.status == 201, created
        show_id: str = created["show_id"]
    for _ in range(300):
        async with session.get(f"{base}/v1/shows/{show_id}") as shown:
            if shown.status == 200:
                return show_id
        await asyncio.sleep(0.1)
    raise RuntimeError("the show never reached the read side")


@dataclass
class Loop:
    """A closed loop's outcome."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)

    def ok(self, status: str) -> int:
        """Answers with that status, whatever the label adds ("201 after a 503")."""
        return sum(n for label, n in self.statuses.items() if label.split(" ")[0] == status)

    def figures(self, ok: str) -> dict[str, Any]:
        return {
            "requests": len(self.latencies),
            "seconds": round(self.seconds, 2),
            "ok_per_s": round(self.ok(ok) / max(1e-9, self.seconds), 1),
            "p50_ms": ms(pct(self.latencies, 50)),
            "p99_ms": ms(pct(self.latencies, 99)),
            "max_ms": ms(max(self.latencies, default=float("nan"))),
            "statuses": dict(self.statuses),
            "cpu_cores": self.cpu,
        }


async def closed_loop(
    n: int,
    concurrency: int,
    one: Callable[[aiohttp.ClientSession, int], Awaitable[str]],
    cpu: CpuSplit,
    deadline_s: float = float("inf"),
) -> Loop:
    """`one(session, i)` for i in 0..n-1, `concurrency` at a time without think time; stops
    early at `deadline_s`. `one` answers a status label."""
    loop = Loop()
    next_i = iter(range(n))
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        before = cpu.sample()
        started = time.monotonic()
        ends = started + deadline_s

        async def worker() -> None:
            for i in next_i:
                if time.monotonic() > ends:
                    return
                sent = time.perf_counter()
                try:
                    status = await one(session, i)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    status = type(exc).__name__
                loop.latencies.append(time.perf_counter() - sent)
                loop.statuses[status] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        loop.seconds = time.monotonic() - started
        loop.cpu = CpuSplit.shares(before, cpu.sample())
    return loop


# -- the sockets (processes of their own) ------------------------------------------------------


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def sockets_main(
    url: str,
    fans: list[tuple[str, int]],
    connect_concurrency: int,
    reports: Any,
    stop: MpEvent,
) -> None:
    """Connect one socket per (token, joined position), report, then record when each socket
    gets a position frame below the one it started with."""
    import uvloop

    raise_fd_limit()
    uvloop.install()
    asyncio.run(_sockets(url, fans, connect_concurrency, reports, stop))


async def _sockets(
    url: str, fans: list[tuple[str, int]], connect_concurrency: int, reports: Any, stop: MpEvent
) -> None:
    n = len(fans)
    first: list[int | None] = [None] * n
    moved: list[float | None] = [None] * n
    moved_to: list[int | None] = [None] * n
    frames = [0] * n
    problems: Counter[str] = Counter()
    gate = asyncio.Semaphore(connect_concurrency)
    connected = asyncio.Event()
    done = asyncio.Event()
    left = [n]
    moved_count = [0]
    opened = [0]

    def settled() -> None:
        left[0] -= 1
        if left[0] == 0:
            connected.set()

    async def fan(i: int, session: aiohttp.ClientSession) -> None:
        token, _ = fans[i]
        try:
            async with gate:
                ws = await session.ws_connect(f"{url}?token={token}", heartbeat=None)
                msg = await ws.receive(timeout=120)
            if msg.type != aiohttp.WSMsgType.TEXT:
                problems[f"first message {msg.type.name}"] += 1
                settled()
                return
            frame = json.loads(msg.data)
            frames[i] += 1
            first[i] = frame.get("position")
            opened[0] += 1
            settled()
            # No receive timeout: 10,000 sockets waking twice a second would cost the load
            # generator more CPU than the frames; the tasks are cancelled at the end.
            while True:
                msg = await ws.receive()
                now = time.time()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    problems[f"closed {msg.type.name}"] += 1
                    break
                frame = json.loads(msg.data)
                frames[i] += 1
                position = frame.get("position")
                start = first[i]
                if (
                    moved[i] is None
                    and isinstance(position, int)
                    and start is not None
                    and position < start
                ):
                    moved[i], moved_to[i] = now, position
                    moved_count[0] += 1
                    if moved_count[0] == opened[0]:
                        done.set()
            await ws.close()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            problems[type(exc).__name__] += 1
            if first[i] is None:
                settled()

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.monotonic()
        tasks = [asyncio.create_task(fan(i, session)) for i in range(n)]
        await connected.wait()
        reports.put(("connected", opened[0], time.monotonic() - started, dict(problems)))
        while not stop.is_set() and not done.is_set():
            await asyncio.sleep(0.1)
        if done.is_set():
            reports.put(("moved", opened[0]))
        while not stop.is_set():
            await asyncio.sleep(0.1)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    expected = [position for _, position in fans]
    reports.put(
        (
            "done",
            [t for t in moved if t is not None],
            sum(1 for i in range(n) if first[i] is not None and first[i] != expected[i]),
            sum(1 for i in range(n) if moved_to[i] is not None and moved_to[i] != expected[i] - 1),
            sum(frames),
            dict(problems),
        )
    )


# -- the phases --------------------------------------------------------------------------------


async def joins(
    base: str, show: str, tokens: list[str], concurrency: int, cpu: CpuSplit
) -> tuple[Loop, list[int | None]]:
    positions: list[int | None] = [None] * len(tokens)

    async def one(session: aiohttp.ClientSession, i: int) -> str:
        # A 503 is the API giving up waiting for the decision (command_timeout_s), not a
        # refusal: the join may be decided a moment later. A fan asks again, as here; the
        # same command id answers the first decision.
        retried = ""
        for _ in range(3):
            async with session.post(
                f"{base}/v1/shows/{show}/waitlist",
                json={"quantity": 1},
                headers=headers(tokens[i]),
            ) as response:
                body = await response.json()
                if response.status in (200, 201):
                    positions[i] = body["position"]
                    return f"{response.status}{retried}"
                if response.status != 503:
                    break
                retried = " after a 503"
        return f"{response.status} {body.get('error', {}).get('code')}"

    return await closed_loop(len(tokens), concurrency, one, cpu), positions


@dataclass
class Line:
    """The show under test and its fans (tokens; the positions their joins answered)."""

    base: str
    show: str
    tokens: list[str]
    positions: list[int | None]
    cpu: CpuSplit


async def lookups(line: Line, n: int, concurrency: int, seconds: float) -> Loop:
    rng = random.Random(concurrency)

    async def one(session: aiohttp.ClientSession, _: int) -> str:
        fan = rng.randrange(len(line.tokens))
        async with session.get(
            f"{line.base}/v1/shows/{line.show}/waitlist/me", headers=headers(line.tokens[fan])
        ) as response:
            body = await response.json()
            if response.status != 200:
                return f"{response.status} {body.get('error', {}).get('code')}"
            if line.positions[fan] is None:
                return "200 (join unanswered)"
            return "200" if body["position"] == line.positions[fan] else "200 wrong position"

    return await closed_loop(n, concurrency, one, line.cpu, seconds)


async def first_read(
    session: aiohttp.ClientSession, base: str, show: str, tokens: list[str], settings: Settings
) -> dict[str, Any]:
    """The first read of the line by an API instance, then the rows loaded here directly."""
    from psycopg import AsyncConnection

    from api.lines import waitlist_of
    from snapshots.database import conninfo
    from snapshots.lines import load_line

    out: dict[str, Any] = {}
    sent = time.perf_counter()
    async with session.get(
        f"{base}/v1/shows/{show}/waitlist/me", headers=headers(tokens[-1])
    ) as response:
        await response.read()
        out["first_http_read_ms"] = ms(time.perf_counter() - sent)
        out["first_http_read_status"] = response.status
    # With several API workers each loads its own copy on its first read: the next reads on
    # fresh connections land on either, so the slowest of them shows the second load.
    later = []
    for i in range(20):
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as fresh:
            sent = time.perf_counter()
            async with fresh.get(
                f"{base}/v1/shows/{show}/waitlist/me", headers=headers(tokens[i])
            ) as response:
                await response.read()
            later.append(time.perf_counter() - sent)
    out["next_20_reads_max_ms"] = ms(max(later))
    out["next_20_reads_p50_ms"] = ms(pct(later, 50))
    async with await AsyncConnection.connect(conninfo(settings)) as conn:
        sent = time.perf_counter()
        stored = await load_line(conn, show)
        out["load_line_ms"] = ms(time.perf_counter() - sent)
    assert stored is not None
    out["rows"] = len(stored.entries)
    # What LiveLine._adopt does with the rows.
    sent = time.perf_counter()
    await waitlist_of(stored)
    out["fold_rows_ms"] = ms(time.perf_counter() - sent)
    return out


def decided_at(settings: Settings, entry_id: str) -> float | None:
    """When the decider journaled the departure of `entry_id` (its `recorded_at`), from the
    last records of the show journal."""
    from confluent_kafka import Consumer, TopicPartition

    from producers.envelope import EventRecord
    from producers.topics import SHOW_EVENTS, partitions_of

    topic = SHOW_EVENTS.name(settings)
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": "bench-lines",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    try:
        for partition in partitions_of(settings, [topic])[topic]:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), 10)
            consumer.assign([TopicPartition(topic, partition, max(low, high - 5000))])
            while True:
                messages = consumer.consume(1000, 2.0)
                for message in messages:
                    value = message.value()
                    if value and b"WaitlistLeft" in value and entry_id.encode() in value:
                        return EventRecord.decode(value).recorded_at.timestamp()
                if not messages or (messages[-1].offset() or 0) >= high - 1:
                    break
    finally:
        consumer.close()
    return None


async def fan_out(args: argparse.Namespace, line: Line, settings: Settings) -> dict[str, Any]:
    base, show, tokens, positions, cpu = (
        line.base,
        line.show,
        line.tokens,
        line.positions,
        line.cpu,
    )
    by_position = {p: i for i, p in enumerate(positions) if p is not None}
    leaver = by_position[args.leave_position]
    behind = [i for i, p in enumerate(positions) if p is not None and p > args.leave_position]
    chosen = random.Random(5).sample(behind, min(args.sockets, len(behind)))
    procs = max(1, min(args.socket_procs, len(chosen)))
    url = base.replace("http://", "ws://") + f"/v1/shows/{show}/waitlist/live"
    ctx = multiprocessing.get_context("spawn")
    reports = ctx.Queue()
    stop = ctx.Event()
    workers = []
    before = cpu.sample()
    started = time.monotonic()
    for k in range(procs):
        mine = [(tokens[i], positions[i] or 0) for i in chosen[k::procs]]
        worker = ctx.Process(
            target=sockets_main,
            args=(url, mine, max(1, args.connect_concurrency // procs), reports, stop),
        )
        worker.start()
        workers.append(worker)
    out: dict[str, Any] = {"sockets": len(chosen), "client_processes": procs}
    connected = 0
    in_clients: list[float] = []
    problems: Counter[str] = Counter()
    get = asyncio.to_thread
    try:
        for _ in range(procs):
            kind, opened, seconds, trouble = await get(reports.get, True, 600)
            assert kind == "connected", kind
            connected += opened
            in_clients.append(seconds)
            problems.update(trouble)
        out["connected"] = connected
        out["connect_s"] = round(time.monotonic() - started, 2)
        # From each client's first connect to its last socket's first frame (no start-up).
        out["connect_s_in_clients_max"] = round(max(in_clients), 2)
        out["connect_cpu_cores"] = CpuSplit.shares(before, cpu.sample())
        # Past the one-frame-a-second merge of the connect frames, then leave.
        await asyncio.sleep(2.0)
        async with aiohttp.ClientSession() as session:
            before = cpu.sample()
            sent = time.time()
            async with session.delete(
                f"{base}/v1/shows/{show}/waitlist/me", headers=headers(tokens[leaver])
            ) as response:
                body = await response.json()
                answered = time.time()
                assert response.status == 200, body
                entry_id = str(body["entry_id"])
        out["delete_ms"] = ms(answered - sent)
        waited = 0
        deadline = time.monotonic() + args.frame_timeout
        while waited < procs and time.monotonic() < deadline:
            try:
                kind, *_ = await get(reports.get, True, 0.5)
            except Exception:  # queue.Empty: nothing yet
                continue
            waited += kind == "moved"
        out["fan_out_cpu_cores"] = CpuSplit.shares(before, cpu.sample())
    finally:
        stop.set()
    arrivals: list[float] = []
    wrong_first = wrong_moved = frames = 0
    for _ in range(procs):
        kind, moved, bad_first, bad_moved, n_frames, trouble = await get(reports.get, True, 120)
        assert kind == "done", kind
        arrivals.extend(moved)
        wrong_first += bad_first
        wrong_moved += bad_moved
        frames += n_frames
        problems.update(trouble)
    for worker in workers:
        await get(worker.join, 30)
    lags = [t - answered for t in arrivals]
    decided = await get(decided_at, settings, entry_id)
    since_decided = [t - (decided or float("nan")) for t in arrivals]
    out |= {
        "after_decision_p50_ms": ms(pct(since_decided, 50)),
        "after_decision_p99_ms": ms(pct(since_decided, 99)),
        "after_decision_max_ms": ms(max(since_decided, default=float("nan"))),
        "decision_after_sent_ms": ms((decided or float("nan")) - sent),
        "got_new_position": len(arrivals),
        "after_answer_p50_ms": ms(pct(lags, 50)),
        "after_answer_p99_ms": ms(pct(lags, 99)),
        "after_answer_max_ms": ms(max(lags, default=float("nan"))),
        "after_answer_min_ms": ms(min(lags, default=float("nan"))),
        "after_sent_p99_ms": ms(pct([t - sent for t in arrivals], 99)),
        "first_frame_not_joined_position": wrong_first,
        "new_position_not_one_lower": wrong_moved,
        "frames": frames,
        "problems": dict(problems),
    }
    return out


async def early_joins(
    args: argparse.Namespace, session: aiohttp.ClientSession, org: str, settings: Settings
) -> dict[str, Any]:
    base, n, concurrency = settings.api_url, args.early, args.concurrency
    cpu = CpuSplit(str(settings.var_dir))
    opens_at = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    queue = {"opens_at": opens_at, "admit_per_minute": 600, "pass_seconds": 900}
    show = await create_show(session, base, org, "bench lines room", queue)
    tokens = mint(settings, [f"bench_early_{i}" for i in range(n)])
    stamps: list[float] = [0.0] * n

    async def one(session: aiohttp.ClientSession, i: int) -> str:
        async with session.post(
            f"{base}/v1/shows/{show}/queue", headers=headers(tokens[i])
        ) as response:
            body = await response.json()
            stamps[i] = time.monotonic()
            if response.status == 201 and body["status"] == "early":
                return "201 early"
            return f"{response.status} {body.get('status') or body.get('error', {}).get('code')}"

    loop = await closed_loop(n, concurrency, one, cpu)
    done = sorted(s for s in stamps if s > 0)
    tenth = max(2, len(done) // 10)

    def rate(part: list[float]) -> float:
        return round((len(part) - 1) / max(1e-9, part[-1] - part[0]), 1)

    return loop.figures("201") | {
        "first_tenth_per_s": rate(done[:tenth]),
        "last_tenth_per_s": rate(done[-tenth:]),
    }


async def new_line(
    args: argparse.Namespace,
    session: aiohttp.ClientSession,
    settings: Settings,
    org: str,
    results: dict[str, Any],
) -> tuple[str, list[str], list[int | None]]:
    """A sold-out show and `--fans` fans joined to its line: the show, tokens, positions."""
    base = settings.api_url
    tag = f"{os.getpid()}x{int(time.time()) % 100_000}"
    show = await create_show(session, base, org, "bench lines", None)
    holder = mint(settings, [f"bench_holder_{tag}"])[0]
    async with session.post(
        f"{base}/v1/shows/{show}/holds",
        json={"best_available": {"quantity": SEATS}},
        headers=headers(holder),
    ) as held:
        assert held.status == 201, await held.text()
    results["show_id"] = show

    minted = time.perf_counter()
    tokens = mint(settings, [f"bench_line_{tag}_{i}" for i in range(args.fans)])
    results["tokens_minted_s"] = round(time.perf_counter() - minted, 2)

    cpu = CpuSplit(str(settings.var_dir))
    joined, positions = await joins(base, show, tokens, args.concurrency, cpu)
    results["joins"] = joined.figures("201")
    results["joins"]["answered_after_a_503"] = sum(
        n for label, n in joined.statuses.items() if label.endswith("after a 503")
    )
    got = sorted(p for p in positions if p is not None)
    results["joins"]["positions_are_1_to_n"] = got == list(range(1, args.fans + 1))
    return show, tokens, positions


async def reused_line(settings: Settings, show: str) -> tuple[str, list[str], list[int | None]]:
    """The waiting fans of a line an earlier run filled: tokens, and positions from its rows."""
    from psycopg import AsyncConnection

    from snapshots.database import conninfo
    from snapshots.lines import load_line

    async with await AsyncConnection.connect(conninfo(settings)) as conn:
        stored = await load_line(conn, show)
    assert stored is not None, f"no show {show}"
    users = [row.user for row in stored.entries if row.status == "waiting"]
    positions: list[int | None] = list(range(1, len(users) + 1))
    return show, mint(settings, users), positions


async def run(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    base = settings.api_url
    cpu = CpuSplit(str(settings.var_dir))
    org = await organizer_token(settings)
    results: dict[str, Any] = {"fans": args.fans}
    async with aiohttp.ClientSession() as session:
        if args.reuse_show:
            show, tokens, positions = await reused_line(settings, args.reuse_show)
            results |= {"reused_show": show, "fans": len(tokens)}
        else:
            show, tokens, positions = await new_line(args, session, settings, org, results)

        # Until the views have every row (the line's first read loads them).
        waited = time.monotonic()
        while True:
            async with session.get(f"{base}/v1/shows/{show}") as shown:
                if (await shown.json()).get("waiting") == len(tokens):
                    break
            await asyncio.sleep(0.1)
        results["views_caught_up_s"] = round(time.monotonic() - waited, 2)
        # Measured whenever no instance keeps the line (a reused one is dropped after idling).
        results["first_read"] = await first_read(session, base, show, tokens, settings)

        line = Line(base, show, tokens, positions, cpu)
        one_at_a_time = await lookups(line, args.lookups, 1, 60.0)
        results["lookups_one_at_a_time"] = one_at_a_time.figures("200")
        closed = await lookups(line, 10**9, args.lookup_concurrency, args.lookup_seconds)
        results["lookups_closed_loop"] = closed.figures("200")

        if args.sockets > 0:
            results["fan_out"] = await fan_out(args, line, settings)
        if args.early > 0:
            results["early_joins"] = await early_joins(args, session, org, settings)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--fans", type=int, default=100_000, help="fans in the line")
    parser.add_argument("--concurrency", type=int, default=256, help="joins in flight")
    parser.add_argument("--lookups", type=int, default=2000, help="one-at-a-time lookups")
    parser.add_argument("--lookup-concurrency", type=int, default=64)
    parser.add_argument("--lookup-seconds", type=float, default=15.0)
    parser.add_argument("--sockets", type=int, default=10_000, help="0 skips the fan-out")
    parser.add_argument("--socket-procs", type=int, default=4, help="client processes")
    parser.add_argument("--connect-concurrency", type=int, default=400)
    parser.add_argument("--leave-position", type=int, default=5)
    parser.add_argument("--frame-timeout", type=float, default=60.0)
    parser.add_argument("--early", type=int, default=20_000, help="early queue joins, 0 skips")
    parser.add_argument("--reuse-show", default="", help="an earlier run's line: no joins")
    parser.add_argument("--test-slot", type=int, help="use the test stack of BOXOFFICE_TEST_SLOT=N")
    args = parser.parse_args()
    if args.test_slot is not None:
        os.environ["BOXOFFICE_TEST_SLOT"] = str(args.test_slot)
        from stack.services import settings_env
        from tests.providers import base_settings

        os.environ.update(settings_env(base_settings()))
    settings = get_settings()
    raise_fd_limit()
    import uvloop

    uvloop.install()
    started = datetime.now(UTC)
    results = asyncio.run(run(args, settings))
    results["date"] = started.isoformat(timespec="seconds")
    results["machine"] = f"{platform.node()} {os.cpu_count()} cores, load {os.getloadavg()}"
    results["command"] = "python -m bench.lines " + " ".join(sys.argv[1:])
    print(json.dumps(results, indent=2))
    out = Path(PROJECT_ROOT) / "var" / f"bench-lines-{started:%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
