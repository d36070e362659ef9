"""The fault drill: a hold-and-pay storm while the stack is broken on purpose.

For `--seconds` (default 60) a few dozen fans hold seats (explicit seats, so they collide,
and best-available) and pay for some of them, each command carrying an Idempotency-Key and
retried with that same key on 503, on a dropped connection or a timeout, until it gets a
final answer. Meanwhile the drill kills the deciders, the views, the reconciler and the API
with SIGKILL (each at least twice; the supervisor of each brings it back) and restarts Kafka
and PostgreSQL once each. A canary, on a show of its own, measures after each fault how long
until a command is decided again and until `/readyz` answers 200.

After the storm it waits for the reconciler to settle and checks, from the API and from
PostgreSQL:
- lost: acknowledged holds (201) or payments (200) that the journal does not show,
- doubled: seats in more than one live order, or one Idempotency-Key that made two orders,
- contradicted: a key whose answers disagree, or an order standing that nobody was told of,
- charges that ended neither refunded nor paying for a paid order, or both,
- answers outside 200/201/402/409/429/503.

Run with the stack up (`make run`): `python -m bench.faults [--seconds 60] [--fans 32]`.
It prints one JSON document; RELIABILITY.md records the figures. It only talks to this
machine (the API on loopback, the local Kafka and PostgreSQL).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import signal
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import psycopg

from api.auth import TokenSigner, User
from boxoffice.settings import Settings, get_settings
from producers.envelope import EventRecord
from producers.topics import SHOW_EVENTS
from stack.processes import Daemon
from stack.services import Stack

ROWS, SEATS_PER_ROW = 40, 50
ALLOWED = {200, 201, 402, 409, 429, 503}
# A command that has not been answered finally after this long is given up (and counted).
GIVE_UP_S = 120.0
REQUEST_TIMEOUT_S = 20.0


@dataclass
class Command:
    fan: str
    kind: str  # "hold" | "pay"
    key: str
    answers: list[tuple[int, str | None]] = field(default_factory=list)  # (status, order_id)
    final: tuple[int, dict[str, Any]] | None = None
    order_id: str | None = None


@dataclass
class Recovery:
    fault: str
    at_s: float
    restored_s: float  # when the fault was over (process killed; server back up)
    decided_after_s: float | None = None  # restored -> first canary command decided
    ready_after_s: float | None = None  # restored -> first /readyz 200


@dataclass
class Drill:
    settings: Settings
    base: str
    show_id: str
    canary_show: str
    tokens: dict[str, str]
    started: float = field(default_factory=time.monotonic)
    commands: list[Command] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    transport_errors: Counter[str] = field(default_factory=Counter)
    recoveries: list[Recovery] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def t(self) -> float:
        return time.monotonic() - self.started


# -- the fans ---------------------------------------------------------------------------------


async def call(
    drill: Drill,
    session: aiohttp.ClientSession,
    method: str,
    path: str,
    token: str,
    *,
    key: str | None = None,
    body: dict[str, Any] | None = None,
) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    async with session.request(method, f"{drill.base}{path}", json=body, headers=headers) as r:
        try:
            data = await r.json(content_type=None)
        except (json.JSONDecodeError, aiohttp.ContentTypeError):
            data = {}
        drill.statuses[r.status] += 1
        return r.status, data if isinstance(data, dict) else {}


async def until_final(
    drill: Drill,
    session: aiohttp.ClientSession,
    command: Command,
    *,
    method: str,
    path: str,
    body: dict[str, Any],
) -> None:
    """Send the command, and again with the same key, until it gets a final answer."""
    token = drill.tokens[command.fan]
    began = time.monotonic()
    delay = 0.2
    while time.monotonic() - began < GIVE_UP_S:
        try:
            status, data = await call(
                drill, session, method, path, token, key=command.key, body=body
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            drill.transport_errors[type(exc).__name__] += 1
            status, data = 0, {}
        order_id = data.get("order_id") if isinstance(data.get("order_id"), str) else None
        if status not in (0, 503, 429) and status < 500:
            command.answers.append((status, order_id))
            if command.final is None:
                command.final = (status, data)
                command.order_id = order_id
            # Once in a while ask again with the same key: the answer must not change.
            if random.random() < 0.1:
                await asyncio.sleep(0.05)
                continue
            return
        if status >= 500 and status != 503:
            command.answers.append((status, None))
        await asyncio.sleep(delay)
        delay = min(delay * 2, 2.0)


async def fan_loop(drill: Drill, session: aiohttp.ClientSession, fan: str, seed: int) -> None:
    rng = random.Random(seed)
    while not drill.stop.is_set():
        if rng.random() < 0.6:
            row = rng.randint(1, ROWS)
            first = rng.randint(1, SEATS_PER_ROW - 1)
            body: dict[str, Any] = {"seats": [f"A-{row}-{first}", f"A-{row}-{first + 1}"]}
        else:
            body = {"best_available": {"quantity": rng.randint(1, 2)}}
        hold = Command(fan, "hold", f"drill-{uuid.uuid4().hex}")
        drill.commands.append(hold)
        await until_final(
            drill,
            session,
            hold,
            method="POST",
            path=f"/v1/shows/{drill.show_id}/holds",
            body=body,
        )
        if hold.final is None or hold.final[0] != 201 or hold.order_id is None:
            continue
        if rng.random() < 0.7:
            token = "decline_drill" if rng.random() < 0.1 else f"tok_{uuid.uuid4().hex[:8]}"
            pay = Command(fan, "pay", f"drill-{uuid.uuid4().hex}", order_id=hold.order_id)
            drill.commands.append(pay)
            await until_final(
                drill,
                session,
                pay,
                method="POST",
                path=f"/v1/orders/{hold.order_id}/payment",
                body={"payment_token": token},
            )


# -- faults and the canary --------------------------------------------------------------------


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError, ValueError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def kill_component(stack: Stack, name: str) -> str:
    """SIGKILL the component's worker; its supervisor starts it again. Without a supervised
    child, the whole component is killed and started again, as an operator would."""
    daemon: Daemon = getattr(stack, name)
    pid = daemon.pid()
    if pid is None:
        stack.up((name,), say=lambda _: None)
        return f"{name} was not running; started"
    workers = children(pid)
    if workers:
        for child in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        return f"killed {name} worker(s) {workers} with SIGKILL"
    daemon.kill()
    stack.up((name,), say=lambda _: None)
    return f"killed {name} (pid {pid}) with SIGKILL and started it again"


async def canary(drill: Drill, session: aiohttp.ClientSession, token: str) -> bool:
    """One command through the whole pipe: a hold on the canary show, then its cancel."""
    try:
        status, data = await call(
            drill,
            session,
            "POST",
            f"/v1/shows/{drill.canary_show}/holds",
            token,
            key=f"canary-{uuid.uuid4().hex}",
            body={"best_available": {"quantity": 1}},
        )
    except (aiohttp.ClientError, TimeoutError, OSError):
        return False
    if status == 201:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
            await call(drill, session, "DELETE", f"/v1/orders/{data['order_id']}", token)
        return True
    return status == 409


async def ready(drill: Drill, session: aiohttp.ClientSession) -> bool:
    try:
        async with session.get(f"{drill.base}/readyz") as r:
            return r.status == 200
    except (aiohttp.ClientError, TimeoutError, OSError):
        return False


async def watch_recovery(
    drill: Drill, session: aiohttp.ClientSession, rec: Recovery, token: str
) -> None:
    began = time.monotonic()
    while time.monotonic() - began < 90 and (
        rec.decided_after_s is None or rec.ready_after_s is None
    ):
        if rec.ready_after_s is None and await ready(drill, session):
            rec.ready_after_s = round(time.monotonic() - began, 2)
        if rec.decided_after_s is None and await canary(drill, session, token):
            rec.decided_after_s = round(time.monotonic() - began, 2)
        await asyncio.sleep(0.25)


def schedule(seconds: float) -> list[tuple[float, str]]:
    """Each process killed twice, Kafka and PostgreSQL restarted once, spread over the run."""
    plan = [
        "deciders",
        "views",
        "reconciler",
        "api",
        "kafka",
        "deciders",
        "views",
        "reconciler",
        "api",
        "postgres",
    ]
    step = seconds / (len(plan) + 1)
    return [(step * (i + 1), fault) for i, fault in enumerate(plan)]


async def inject(
    drill: Drill, stack: Stack, session: aiohttp.ClientSession, seconds: float
) -> None:
    token = drill.tokens["canary"]
    watchers: list[asyncio.Task[None]] = []
    for at, fault in schedule(seconds):
        await asyncio.sleep(max(0.0, at - drill.t()))
        began = drill.t()
        if fault == "kafka":
            await asyncio.to_thread(stack.kafka.stop)
            await asyncio.sleep(5)
            await asyncio.to_thread(stack.kafka.start)
            what = "Kafka stopped for 5 s and started again"
        elif fault == "postgres":
            await asyncio.to_thread(stack.postgres.stop)
            await asyncio.to_thread(stack.postgres.start)
            what = "PostgreSQL stopped and started again"
        else:
            what = await asyncio.to_thread(kill_component, stack, fault)
        rec = Recovery(what, round(began, 2), round(drill.t(), 2))
        drill.recoveries.append(rec)
        print(f"[{drill.t():6.1f}s] {what}", file=sys.stderr, flush=True)
        watchers.append(asyncio.create_task(watch_recovery(drill, session, rec, token)))
    await asyncio.gather(*watchers)


# -- setup ------------------------------------------------------------------------------------


async def create_show(drill_base: str, org: str, name: str, rows: int, per_row: int) -> str:
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{drill_base}/v1/shows",
            headers={"Authorization": f"Bearer {org}"},
            json={
                "name": name,
                "starts_at": "2027-06-01T20:00:00Z",
                "hold_seconds": 20,
                "sections": [
                    {"name": "A", "rows": rows, "seats_per_row": per_row, "price_cents": 5000}
                ],
            },
        ) as r:
            body = await r.json()
            assert r.status == 201, body
            show_id: str = body["show_id"]
        for _ in range(200):
            async with session.get(f"{drill_base}/v1/shows/{show_id}/seatmap") as r:
                if r.status == 200:
                    return show_id
            await asyncio.sleep(0.1)
    raise RuntimeError("the show never reached the read side")


# -- the verdict ------------------------------------------------------------------------------


async def orders_of(
    drill: Drill, session: aiohttp.ClientSession, fan: str
) -> dict[str, dict[str, Any]]:
    for _ in range(60):
        try:
            status, data = await call(
                drill, session, "GET", "/v1/users/me/orders", drill.tokens[fan]
            )
        except (aiohttp.ClientError, TimeoutError, OSError):
            status, data = 0, {}
        if status == 200:
            return {o["order_id"]: o for o in data["orders"] if o["show_id"] == drill.show_id}
        await asyncio.sleep(1)
    raise RuntimeError(f"could not read the orders of {fan}")


def show_journal(settings: Settings, show_id: str) -> list[dict[str, Any]]:
    """Every event of one show, in journal order, read straight from its partition."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    topic = SHOW_EVENTS.name(settings)
    reader = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"drill-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "log_level": 0,
        }
    )
    events: list[dict[str, Any]] = []
    try:
        partitions = reader.list_topics(topic, timeout=30).topics[topic].partitions
        reader.assign([TopicPartition(topic, p, 0) for p in partitions])
        ended: set[int] = set()
        while len(ended) < len(partitions):
            for msg in reader.consume(num_messages=5000, timeout=1.0):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        ended.add(int(msg.partition() or 0))
                    continue
                if msg.key() == show_id.encode():
                    events.append(EventRecord.decode(msg.value()).event)
    finally:
        reader.close()
    return events


async def charges_verdict(settings: Settings, show_id: str) -> dict[str, int]:
    """Every charge of the show ends paying for a paid order or refunded: never both, never
    neither. The journal says which charge pays for which order; the provider's ledger says
    where the money is."""
    events = await asyncio.to_thread(show_journal, settings, show_id)
    keys = [e["charge_key"] for e in events if e.get("type") == "PaymentStarted"]
    paying: dict[str, str] = {}  # order -> the charge that pays for it now
    for e in events:
        if e.get("type") == "OrderPaid":
            paying[e["order_id"]] = e["charge_id"]
        elif e.get("type") == "OrderRefunded":
            paying.pop(e["order_id"], None)
    paid_by = set(paying.values())
    out = Counter[str]()
    async with await psycopg.AsyncConnection.connect(settings.pg_dsn) as conn:
        await conn.execute(f"SET search_path TO {settings.pg_schema}")
        rows = await (
            await conn.execute(
                "SELECT charge_id, status FROM payment_charges WHERE idempotency_key = ANY(%s)",
                (keys,),
            )
        ).fetchall()
    out["intents"] = len(keys)
    for charge_id, status in rows:
        if status == "charged":
            out["paying_for_ticket" if charge_id in paid_by else "kept_without_ticket"] += 1
        elif status == "refunded":
            out["both_paid_and_refunded" if charge_id in paid_by else "refunded"] += 1
        else:
            out[str(status)] += 1
    known = {r[0] for r in rows}
    out["paid_orders_without_charge"] = sum(1 for c in paid_by if c not in known)
    return dict(out)


async def verdict(drill: Drill, session: aiohttp.ClientSession) -> dict[str, Any]:
    holds = [c for c in drill.commands if c.kind == "hold"]
    pays = [c for c in drill.commands if c.kind == "pay"]
    fans = sorted({c.fan for c in drill.commands})
    orders: dict[str, dict[str, Any]] = {}
    owner: dict[str, str] = {}
    for fan in fans:
        for order_id, order in (await orders_of(drill, session, fan)).items():
            orders[order_id] = order
            owner[order_id] = fan
    acked = {c.order_id for c in holds if c.final and c.final[0] == 201}
    unanswered = [c for c in drill.commands if c.final is None]
    lost_holds = [o for o in acked if o not in orders]
    lost_payments = [
        c.key
        for c in pays
        if c.final
        and c.final[0] == 200
        and orders.get(c.order_id or "", {}).get("status") not in ("paid", "refunded")
    ]
    contradicted_keys = [
        c.key for c in drill.commands if len({a for a in c.answers if a[0] < 500}) > 1
    ]
    # An order nobody was told of stands only if a hold of its fan went unanswered.
    unannounced = [
        o
        for o, order in orders.items()
        if o not in acked
        and order["status"] in ("held", "paid")
        and not any(c.fan == owner[o] and c.final is None for c in holds)
    ]
    told_failed_but_paid = [
        c.key
        for c in pays
        if c.final
        and c.final[0] in (402, 409)
        and orders.get(c.order_id or "", {}).get("status") == "paid"
        and not any(p.order_id == c.order_id and p.final and p.final[0] == 200 for p in pays)
    ]
    seat_owners: Counter[str] = Counter()
    for order in orders.values():
        if order["status"] in ("held", "paid") and order["status"] != "expired":
            seat_owners.update(order["seats"])
    doubled_seats = [s for s, n in seat_owners.items() if n > 1]
    per_key = Counter(c.order_id for c in holds if c.order_id)
    doubled_keys = [k for k, n in per_key.items() if n > 1]
    charges = await charges_verdict(drill.settings, drill.show_id)
    outside = {str(s): n for s, n in drill.statuses.items() if s not in ALLOWED}
    return {
        "holds_sent": len(holds),
        "holds_acknowledged": len(acked),
        "holds_refused_409": sum(1 for c in holds if c.final and c.final[0] == 409),
        "payments_sent": len(pays),
        "payments_acknowledged": sum(1 for c in pays if c.final and c.final[0] == 200),
        "payments_declined_402": sum(1 for c in pays if c.final and c.final[0] == 402),
        "payments_refused_409": sum(1 for c in pays if c.final and c.final[0] == 409),
        "unanswered_after_retries": len(unanswered),
        "lost": len(lost_holds) + len(lost_payments),
        "doubled": len(doubled_seats) + len(doubled_keys),
        "contradicted": len(contradicted_keys) + len(unannounced) + len(told_failed_but_paid),
        "charges": charges,
        "answers_outside_allowed": outside,
        "statuses": {str(s): n for s, n in sorted(drill.statuses.items())},
        "transport_errors": dict(drill.transport_errors),
        "examples": {
            "lost_holds": lost_holds[:5],
            "lost_payments": lost_payments[:5],
            "contradicted_keys": contradicted_keys[:5],
            "unannounced_orders": unannounced[:5],
            "told_failed_but_paid": told_failed_but_paid[:5],
            "doubled_seats": doubled_seats[:5],
        },
    }


async def settle(drill: Drill, seconds: float) -> None:
    """Let the reconciler drive every open payment to its end before judging."""
    await asyncio.sleep(seconds)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    settings = get_settings()
    stack = Stack(settings)
    signer = TokenSigner(settings.token_secret, 6 * 3600)
    org = signer.issue(User("drill_org", True)).token
    tokens = {
        f"drill_fan_{i}": signer.issue(User(f"drill_fan_{i}", False)).token
        for i in range(args.fans)
    }
    tokens["canary"] = signer.issue(User("drill_canary", False)).token
    base = settings.api_url
    stamp = datetime.now(UTC).strftime("%H%M%S")
    show = await create_show(base, org, f"drill {stamp}", ROWS, SEATS_PER_ROW)
    canary_show = await create_show(base, org, f"canary {stamp}", 10, 10)
    drill = Drill(settings, base, show, canary_show, tokens)
    connector = aiohttp.TCPConnector(limit=args.fans + 8)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        fans = [
            asyncio.create_task(fan_loop(drill, session, f"drill_fan_{i}", i))
            for i in range(args.fans)
        ]
        faults = asyncio.create_task(inject(drill, stack, session, args.seconds))
        await asyncio.sleep(max(0.0, args.seconds - drill.t()))
        drill.stop.set()
        print(
            f"[{drill.t():6.1f}s] storm over; finishing in-flight commands",
            file=sys.stderr,
            flush=True,
        )
        await asyncio.gather(*fans)
        await faults
        print(
            f"[{drill.t():6.1f}s] settling {args.settle_s:.0f}s for the reconciler",
            file=sys.stderr,
            flush=True,
        )
        await settle(drill, args.settle_s)
        result = await verdict(drill, session)
    decided = [r.decided_after_s for r in drill.recoveries]
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.node()} {os.cpu_count()} cores, {platform.python_version()}",
        "command": f"python -m bench.faults --seconds {args.seconds:g} --fans {args.fans}",
        "seconds": args.seconds,
        "fans": args.fans,
        **result,
        "recoveries": [r.__dict__ for r in drill.recoveries],
        "worst_decided_after_s": max((d for d in decided if d is not None), default=None),
        "never_recovered": sum(1 for d in decided if d is None),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--fans", type=int, default=32)
    parser.add_argument("--settle-s", type=float, default=45.0)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args)), indent=2))


if __name__ == "__main__":
    main()
