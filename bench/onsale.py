"""The on-sale storm: boxoffice against a PostgreSQL-only baseline, in the same run.

A 20,000-seat show, 1,000 simulated fans without think time (a mix of explicit and
best-available holds; 30% of holds are paid, 10% cancelled), with 500 WebSocket viewers
connected to the live seat map. It reports:

- holds decided per second (closed loop, every fan sends its next request at once),
- hold latency p50/p99 over HTTP at half that rate (open loop, fixed schedule),
- seat change -> viewer latency p50/p99 (decision time -> the viewer first sees the seat
  held), and bytes each viewer received per second,
- double sales (must be zero in both systems).

Viewers of boxoffice hold the live socket; viewers of the baseline poll its seat map every
second, as the viewers of a PostgreSQL-only site would (it caches the map for a second).

The load generator is aiohttp on uvloop (httpx costs ~10x more CPU per request here), and
the viewers run in a process of their own. Both still share this machine's two cores with
the system under test: the figures are for the whole machine, load generator included.

Run: `python -m bench.onsale` with the stack up (`make run`); `--help` for the knobs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import random
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from api.auth import TokenSigner, User
from bench.cpu import CpuSplit, per_decision_ms
from boxoffice.settings import PROJECT_ROOT, Settings, get_settings

ROWS, SEATS_PER_ROW = 100, 200
HOLD_SECONDS = 630


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    decided: int = 0
    held: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    paid_seats: list[str] = field(default_factory=list)
    held_at: dict[str, float] = field(default_factory=dict)  # seat -> decision time
    started: float = 0.0
    ended: float = 0.0
    last_hold_ok: float = 0.0

    @property
    def seconds(self) -> float:
        return max(1e-9, self.ended - self.started)


class Target:
    def __init__(self, name: str, base: str, show_id: str, tokens: list[str]) -> None:
        self.name = name
        self.base = base
        self.show_id = show_id
        self.tokens = tokens


def hold_body(rng: random.Random) -> dict[str, Any]:
    n = rng.randint(1, 4)
    if rng.random() < 0.5:
        row = rng.randint(1, ROWS)
        first = rng.randint(1, SEATS_PER_ROW - n + 1)
        return {"seats": [f"A-{row}-{s}" for s in range(first, first + n)]}
    return {"best_available": {"quantity": n}}


async def one_hold(
    session: aiohttp.ClientSession, target: Target, token: str, rng: random.Random, tally: Tally
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    sent = time.perf_counter()
    async with session.post(
        f"{target.base}/v1/shows/{target.show_id}/holds", json=hold_body(rng), headers=headers
    ) as response:
        body = await response.json()
        status = response.status
    tally.latencies.append(time.perf_counter() - sent)
    if status == 201:
        tally.decided += 1
        tally.held += 1
        tally.last_hold_ok = time.monotonic()
        decided_at = (
            datetime.fromisoformat(body["expires_at"]) - timedelta(seconds=HOLD_SECONDS)
        ).timestamp()
        for seat in body["seats"]:
            tally.held_at.setdefault(seat, decided_at)
        roll = rng.random()
        order = body["order_id"]
        if roll < 0.3:
            async with session.post(
                f"{target.base}/v1/orders/{order}/payment",
                json={"payment_token": "tok_bench"},
                headers=headers,
            ) as paid:
                if paid.status == 200:
                    tally.paid_seats.extend(body["seats"])
                else:
                    tally.errors[f"pay {paid.status}"] += 1
        elif roll < 0.4:
            async with session.delete(
                f"{target.base}/v1/orders/{order}", headers=headers
            ) as cancelled:
                if cancelled.status != 200:
                    tally.errors[f"cancel {cancelled.status}"] += 1
    elif status == 409:
        tally.decided += 1
        tally.rejected[body["error"]["code"]] += 1
    else:
        tally.errors[f"hold {status} {body.get('error', {}).get('code')}"] += 1


async def closed_loop(target: Target, duration_s: float, fans: int) -> Tally:
    """Every fan sends its next request as soon as the last is answered."""
    tally = Tally()
    connector = aiohttp.TCPConnector(limit=fans)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        deadline = time.monotonic() + duration_s
        tally.started = time.monotonic()
        tally.last_hold_ok = tally.started

        async def fan(i: int) -> None:
            rng = random.Random(i)
            token = target.tokens[i % len(target.tokens)]
            while time.monotonic() < deadline:
                # Sold out: nothing more to decide that would say anything about speed.
                if time.monotonic() - tally.last_hold_ok > 3:
                    return
                try:
                    await one_hold(session, target, token, rng, tally)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    tally.errors[type(exc).__name__] += 1

        await asyncio.gather(*(fan(i) for i in range(fans)))
        tally.ended = time.monotonic()
    return tally


async def open_loop(target: Target, rate: float, duration_s: float) -> Tally:
    """Holds on a fixed schedule at `rate` per second, whatever the answers take."""
    tally = Tally()
    connector = aiohttp.TCPConnector(limit=2000)
    timeout = aiohttp.ClientTimeout(total=60)
    rng = random.Random(7)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tally.started = time.monotonic()
        tasks = []
        n = int(rate * duration_s)
        for i in range(n):
            at = tally.started + i / rate
            delay = at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            token = target.tokens[i % len(target.tokens)]
            tasks.append(asyncio.create_task(one_hold(session, target, token, rng, tally)))
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                tally.errors[type(result).__name__] += 1
        tally.ended = time.monotonic()
    return tally


# -- viewers (a process of their own) ------------------------------------------------------


def viewers_main(url: str, count: int, sampled: int, seconds: float, out: str) -> None:
    import uvloop

    uvloop.install()
    result = asyncio.run(_viewers(url, count, sampled, seconds))
    Path(out).write_text(json.dumps(result))


async def _viewers(url: str, count: int, sampled: int, seconds: float) -> dict[str, Any]:
    seen: list[dict[str, float]] = [{} for _ in range(sampled)]
    frames = [0] * count
    received = [0]
    problems: list[str] = []
    snapshots = [0] * count
    connected = [0]
    deadline = time.monotonic() + seconds

    async def viewer(i: int, session: aiohttp.ClientSession) -> None:
        version = 0
        try:
            async with session.ws_connect(url, max_msg_size=0, heartbeat=None) as ws:
                connected[0] += 1
                while time.monotonic() < deadline:
                    try:
                        msg = await ws.receive(timeout=0.5)
                    except TimeoutError:
                        continue
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        break
                    now = time.time()
                    received[0] += len(msg.data)
                    frame = json.loads(msg.data)
                    frames[i] += 1
                    if frame["type"] == "snapshot":
                        snapshots[i] += 1
                        version = frame["version"]
                        continue
                    if frame["from_version"] != version:
                        problems.append(f"viewer {i}: gap {version} -> {frame['from_version']}")
                    version = frame["version"]
                    if i < sampled:
                        mine = seen[i]
                        for seat, status in frame["seats"].items():
                            if status == "held" and seat not in mine:
                                mine[seat] = now
        except aiohttp.ClientError as exc:
            problems.append(f"viewer {i}: {exc!r}")

    connector = aiohttp.TCPConnector(limit=0)
    lag = asyncio.create_task(loop_lag(seconds))
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(viewer(i, session) for i in range(count)))
    return {
        "loop_lag_p99_ms": round(pct(await lag, 99) * 1000, 1),
        "seen": seen,
        "frames": sum(frames),
        "snapshots": sum(snapshots),
        "connected": connected[0],
        "problems": problems[:20],
        "problem_count": len(problems),
        "bytes": received[0],
        "seconds": seconds,
    }


def pollers_main(url: str, count: int, sampled: int, seconds: float, out: str) -> None:
    import uvloop

    uvloop.install()
    result = asyncio.run(_pollers(url, count, sampled, seconds))
    Path(out).write_text(json.dumps(result))


async def _pollers(url: str, count: int, sampled: int, seconds: float) -> dict[str, Any]:
    """Viewers of a polling site: each GETs the seat map every second (spread over the
    second), and the sampled ones note when each seat first shows as held."""
    seen: list[dict[str, float]] = [{} for _ in range(sampled)]
    polls = [0]
    received = [0]
    problems: list[str] = []
    deadline = time.monotonic() + seconds

    async def poller(i: int, session: aiohttp.ClientSession) -> None:
        await asyncio.sleep(i / count)
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                async with session.get(url) as response:
                    data = await response.read()
                    if response.status != 200:
                        problems.append(f"poller {i}: {response.status} {data[:100]!r}")
                        data = b""
            except (aiohttp.ClientError, TimeoutError) as exc:
                problems.append(f"poller {i}: {exc!r}")
                data = b""
            now = time.time()
            polls[0] += 1
            received[0] += len(data)
            if i < sampled and data:
                mine = seen[i]
                for seat, status in json.loads(data)["seats"].items():
                    if status == "held" and seat not in mine:
                        mine[seat] = now
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))

    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=30)
    lag = asyncio.create_task(loop_lag(seconds))
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(poller(i, session) for i in range(count)))
    return {
        "loop_lag_p99_ms": round(pct(await lag, 99) * 1000, 1),
        "seen": seen,
        "frames": polls[0],
        "snapshots": polls[0],
        "connected": count,
        "problems": problems[:20],
        "problem_count": len(problems),
        "bytes": received[0],
        "seconds": seconds,
    }


# -- setup ------------------------------------------------------------------------------------


def tokens_for(settings: Settings, n: int) -> list[str]:
    # The load generator mints tokens with the stack's own secret instead of signing in a
    # thousand fans: argon2 verification would dominate the setup, not the storm.
    signer = TokenSigner(settings.token_secret, 6 * 3600)
    return [signer.issue(User(f"bench_fan_{i}", False)).token for i in range(n)]


async def create_show(base: str, organizer_token: str, name: str) -> str:
    # One key for every try: a 503 (the deciders still rebuilding after `make run`, say) is
    # asked again, as a client would, and cannot create the show twice.
    key = uuid.uuid4().hex  # per show: the names repeat from run to run
    headers = {"Authorization": f"Bearer {organizer_token}", "Idempotency-Key": key}
    async with aiohttp.ClientSession() as session:
        for _ in range(30):
            async with session.post(
                f"{base}/v1/shows",
                headers=headers,
                json={
                    "name": name,
                    "starts_at": "2027-06-01T20:00:00Z",
                    "hold_seconds": HOLD_SECONDS,
                    "sections": [
                        {
                            "name": "A",
                            "rows": ROWS,
                            "seats_per_row": SEATS_PER_ROW,
                            "price_cents": 5000,
                        }
                    ],
                },
            ) as response:
                body = await response.json()
                if response.status != 503:
                    break
            await asyncio.sleep(1)
        assert response.status == 201, body
        show_id: str = body["show_id"]
        # Wait until the catalogue has it: viewers connect right after.
        for _ in range(100):
            async with session.get(f"{base}/v1/shows/{show_id}/seatmap") as seatmap:
                if seatmap.status == 200:
                    return show_id
            await asyncio.sleep(0.1)
    raise RuntimeError("the show never reached the read side")


def start_baseline(settings: Settings, port: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.pg_baseline",
            "--port",
            str(port),
            "--hold-seconds",
            str(HOLD_SECONDS),
        ],
        cwd=PROJECT_ROOT,
        env=env,
    )
    import urllib.error
    import urllib.request

    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/docs", timeout=1)
            return proc
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the baseline did not start")


def double_sales_in(tally: Tally) -> int:
    counts = Counter(tally.paid_seats)
    return sum(c - 1 for c in counts.values() if c > 1)


async def boxoffice_double_sales(settings: Settings, show_id: str) -> int:
    """From the orders projection: seats in more than one paid order."""
    import psycopg

    async with await psycopg.AsyncConnection.connect(settings.pg_dsn) as conn:
        rows = await (
            await conn.execute(
                "SELECT seat, count(*) FROM orders, jsonb_array_elements_text(seats) AS seat"
                " WHERE show_id = %s AND status = 'paid' GROUP BY seat HAVING count(*) > 1",
                (show_id,),
            )
        ).fetchall()
    return len(rows)


def viewer_summary(seen: dict[str, Any], lags: list[float]) -> dict[str, Any]:
    return {
        "connected": seen["connected"],
        "frames": seen["frames"],
        "snapshots": seen["snapshots"],
        "chain_problems": seen["problem_count"],
        "samples": len(lags),
        "p50_ms": round(pct(lags, 50) * 1000, 1),
        "p99_ms": round(pct(lags, 99) * 1000, 1),
        "bytes_per_viewer_per_s": round(
            seen["bytes"] / max(1, seen["connected"]) / max(1e-9, seen["seconds"])
        ),
        "viewer_loop_lag_p99_ms": seen["loop_lag_p99_ms"],
    }


async def loop_lag(seconds: float) -> list[float]:
    """How late a 50 ms sleep wakes up, all along: a viewer process's own backlog."""
    lags: list[float] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        before = time.monotonic()
        await asyncio.sleep(0.05)
        lags.append(time.monotonic() - before - 0.05)
    return lags


async def watched(
    tally_of: Callable[[], Awaitable[Tally]],
    viewers_target: Callable[[str, int, int, float, str], None],
    url: str,
    *,
    args: argparse.Namespace,
    seconds: float,
    out: str,
) -> tuple[Tally, dict[str, Any]]:
    """Run a load phase with viewers attached, spread over `--viewer-procs` processes of their
    own (one Python process cannot read 500 busy sockets without falling behind them itself);
    the tally and the viewers' summary (staleness of the seats this phase held, bytes per
    viewer, and how late the viewers' own event loops ran, to tell their lag from ours)."""
    procs = max(1, args.viewer_procs)
    paths = [PROJECT_ROOT / "var" / f"{i}-{out}" for i in range(procs)]
    viewers = [
        multiprocessing.Process(
            target=viewers_target,
            args=(
                url,
                args.viewers // procs + (i < args.viewers % procs),
                args.sampled // procs + (i < args.sampled % procs),
                seconds + 15,
                str(path),
            ),
        )
        for i, path in enumerate(paths)
    ]
    for viewer in viewers:
        viewer.start()
    await asyncio.sleep(min(10, 2 + args.viewers / 100))  # let them connect
    tally = await tally_of()
    for viewer in viewers:
        viewer.join()
    parts = [json.loads(path.read_text()) for path in paths]
    seen: dict[str, Any] = {
        "seen": [v for part in parts for v in part["seen"]],
        "problems": [p for part in parts for p in part["problems"]][:20],
        "seconds": parts[0]["seconds"],
        "loop_lag_p99_ms": max(part["loop_lag_p99_ms"] for part in parts),
    }
    for key in ("frames", "snapshots", "connected", "problem_count", "bytes"):
        seen[key] = sum(part[key] for part in parts)
    lags = [
        t - tally.held_at[seat]
        for per_viewer in seen["seen"]
        for seat, t in per_viewer.items()
        if seat in tally.held_at
    ]
    return tally, viewer_summary(seen, lags)


def summary(name: str, storm: Tally, steady: Tally | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "system": name,
        "storm_seconds": round(storm.seconds, 2),
        "holds_decided_per_s": round(storm.decided / storm.seconds, 1),
        "holds_ok_per_s": round(storm.held / storm.seconds, 1),
        "storm_p50_ms": round(pct(storm.latencies, 50) * 1000, 1),
        "storm_p99_ms": round(pct(storm.latencies, 99) * 1000, 1),
        "rejections": dict(storm.rejected),
        "errors": dict(storm.errors),
        "double_sales_in_responses": double_sales_in(storm),
    }
    if steady is not None:
        out |= {
            "half_load_rate": round(len(steady.latencies) / steady.seconds, 1),
            "half_load_p50_ms": round(pct(steady.latencies, 50) * 1000, 1),
            "half_load_p99_ms": round(pct(steady.latencies, 99) * 1000, 1),
            "half_load_errors": dict(steady.errors),
        }
    return out


async def organizer_token(settings: Settings) -> str:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "boxoffice.cli",
            "user",
            "add",
            "bench_org",
            "--password",
            "bench-organizer",
            "--organizer",
        ],
        check=True,
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
    )
    return TokenSigner(settings.token_secret, 6 * 3600).issue(User("bench_org", True)).token


async def run(args: argparse.Namespace) -> dict[str, Any]:
    settings = get_settings()
    base = settings.api_url
    org = await organizer_token(settings)
    tokens = tokens_for(settings, args.fans)
    results: dict[str, Any] = {"systems": []}

    # boxoffice: storm with viewers on the live socket, then half load on a fresh show.
    ws = base.replace("http://", "ws://")
    show = await create_show(base, org, "bench storm")
    box_target = Target("boxoffice", base, show, tokens)
    storm, seen = await watched(
        lambda: closed_loop(box_target, args.duration, args.fans),
        viewers_main,
        f"{ws}/v1/shows/{show}/live",
        args=args,
        seconds=args.duration,
        out="bench-viewers.json",
    )
    rate = storm.decided / storm.seconds
    show2 = await create_show(base, org, "bench half load")
    box_half = Target("boxoffice", base, show2, tokens)
    steady, seen2 = await watched(
        lambda: open_loop(box_half, max(1.0, rate / 2), args.steady),
        viewers_main,
        f"{ws}/v1/shows/{show2}/live",
        args=args,
        seconds=args.steady,
        out="bench-viewers-half.json",
    )
    box = summary("boxoffice", storm, steady)
    box["double_sales_in_projection"] = await boxoffice_double_sales(settings, show)
    box["viewers_storm"] = seen
    box["viewers_half_load"] = seen2
    results["systems"].append(box)

    if not args.skip_baseline:
        from bench.pg_baseline import create_show_rows

        proc = start_baseline(settings, args.baseline_port)
        try:
            create_show_rows(settings, "bench-storm", ROWS, SEATS_PER_ROW)
            create_show_rows(settings, "bench-half", ROWS, SEATS_PER_ROW)
            pg_base = f"http://127.0.0.1:{args.baseline_port}"
            pg_target = Target("pg", pg_base, "bench-storm", tokens)
            # The baseline's viewers poll its seat map every second (no live socket there).
            pg_storm, pg_seen = await watched(
                lambda: closed_loop(pg_target, args.duration, args.fans),
                pollers_main,
                f"{pg_base}/v1/shows/bench-storm/seatmap",
                args=args,
                seconds=args.duration,
                out="bench-pollers.json",
            )
            pg_rate = pg_storm.decided / pg_storm.seconds
            pg_half = Target("pg", pg_base, "bench-half", tokens)
            pg_steady, pg_seen2 = await watched(
                lambda: open_loop(pg_half, max(1.0, pg_rate / 2), args.steady),
                pollers_main,
                f"{pg_base}/v1/shows/bench-half/seatmap",
                args=args,
                seconds=args.steady,
                out="bench-pollers-half.json",
            )
            pg = summary("postgres-only", pg_storm, pg_steady)
            pg["viewers_storm"] = pg_seen
            pg["viewers_half_load"] = pg_seen2
            results["systems"].append(pg)
        finally:
            proc.terminate()
            proc.wait(10)
        results["speedup_holds_per_s"] = round(
            results["systems"][0]["holds_decided_per_s"]
            / max(1e-9, results["systems"][1]["holds_decided_per_s"]),
            2,
        )
    return results


async def sweep(args: argparse.Namespace) -> dict[str, Any]:
    """Decisions per second at each fan count, both systems, each on a fresh show, no viewers;
    then each system at half its best rate (open loop) for the hold p99 there."""
    settings = get_settings()
    base = settings.api_url
    org = await organizer_token(settings)
    split = CpuSplit(str(settings.var_dir))
    counts = [int(n) for n in args.sweep.split(",")]
    tokens = tokens_for(settings, max(counts))
    rows: list[dict[str, Any]] = []
    box_best = pg_best = 0.0
    for fans in counts:
        show = await create_show(base, org, f"bench sweep {fans}")
        before = split.sample()
        tally = await closed_loop(Target("boxoffice", base, show, tokens), args.duration, fans)
        cpu = per_decision_ms(before, split.sample(), tally.decided)
        rows.append({"fans": fans, **summary("boxoffice", tally, None), "cpu_ms_per_decision": cpu})
        box_best = max(box_best, tally.decided / tally.seconds)
    show = await create_show(base, org, "bench sweep half")
    half = await open_loop(Target("boxoffice", base, show, tokens), box_best / 2, args.steady)
    results: dict[str, Any] = {
        "boxoffice": rows,
        "boxoffice_half_peak": summary("boxoffice", half, half),
    }
    if not args.skip_baseline:
        from bench.pg_baseline import create_show_rows

        proc = start_baseline(settings, args.baseline_port)
        pg_rows: list[dict[str, Any]] = []
        try:
            pg_base = f"http://127.0.0.1:{args.baseline_port}"
            for fans in counts:
                name = f"bench-sweep-{fans}"
                create_show_rows(settings, name, ROWS, SEATS_PER_ROW)
                before = split.sample()
                tally = await closed_loop(Target("pg", pg_base, name, tokens), args.duration, fans)
                cpu = per_decision_ms(before, split.sample(), tally.decided)
                pg_rows.append(
                    {
                        "fans": fans,
                        **summary("postgres-only", tally, None),
                        "cpu_ms_per_decision": cpu,
                    }
                )
                pg_best = max(pg_best, tally.decided / tally.seconds)
            create_show_rows(settings, "bench-sweep-half", ROWS, SEATS_PER_ROW)
            half = await open_loop(
                Target("pg", pg_base, "bench-sweep-half", tokens), pg_best / 2, args.steady
            )
            results["postgres_only"] = pg_rows
            results["postgres_only_half_peak"] = summary("postgres-only", half, half)
        finally:
            proc.terminate()
            proc.wait(10)
        results["ratio_by_fans"] = {
            str(b["fans"]): round(b["holds_decided_per_s"] / max(1e-9, p["holds_decided_per_s"]), 2)
            for b, p in zip(rows, pg_rows, strict=True)
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fans", type=int, default=1000)
    parser.add_argument("--viewers", type=int, default=500)
    parser.add_argument("--sampled", type=int, default=50, help="viewers that record latency")
    parser.add_argument("--viewer-procs", type=int, default=4, help="processes the viewers use")
    parser.add_argument("--duration", type=float, default=30.0, help="storm seconds (max)")
    parser.add_argument("--steady", type=float, default=20.0, help="half-load seconds")
    parser.add_argument("--baseline-port", type=int, default=8100)
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument(
        "--sweep",
        help="fan counts, e.g. 64,256,1000: decisions/s at each (no viewers), then half peak",
    )
    args = parser.parse_args()
    import uvloop

    uvloop.install()
    started = datetime.now(UTC)
    results = asyncio.run(sweep(args) if args.sweep else run(args))
    results["date"] = started.isoformat(timespec="seconds")
    results["machine"] = f"{platform.node()} {os.cpu_count()} cores {platform.processor()}"
    results["command"] = "python -m bench.onsale " + " ".join(sys.argv[1:])
    print(json.dumps(results, indent=2))
    kind = "onsale-sweep" if args.sweep else "onsale"
    out = PROJECT_ROOT / "var" / f"bench-{kind}-{started:%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
