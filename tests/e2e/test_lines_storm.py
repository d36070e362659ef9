"""Lines under load, against the real API, deciders, views, Kafka and PostgreSQL (issue 9's
storms): 7,000 fans through one waiting room, and a waitlist storm during which the deciders
are killed -9.

Thousands of fans sign up here, and argon2 would spend minutes on them: their tokens are
signed with the API's secret instead. That is all the API checks of a caller (the token's
signature and expiry, never the users table), so a minted token is a fan like any other.
The requests go through aiohttp rather than httpx, which costs about ten times the CPU per
request on this machine and would make the test measure the client.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from api.auth import TokenSigner, User
from boxoffice.settings import Settings
from stack.services import Stack
from tests.e2e.ticketing import unique

pytestmark = [pytest.mark.e2e, pytest.mark.storm]

# Requests in flight at once from a storm: enough to keep the API and the decider busy, few
# enough that a loaded 2-core machine answers each within the timeouts.
CONCURRENCY = 64
PASS_SECONDS = 900


@dataclass(frozen=True)
class Answer:
    """One HTTP answer and when it happened on the wall clock the servers also read."""

    status: int
    body: Any
    sent: float
    answered: float


class Api:
    """A thin aiohttp client. Storm calls share `CONCURRENCY` slots; `now=True` calls (the
    probes timed against admission) skip the line of slots so their timing holds."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session
        self._slots = asyncio.Semaphore(CONCURRENCY)

    async def call(
        self,
        method: str,
        path: str,
        token: str | None = None,
        body: Any = None,
        *,
        key: str | None = None,
        now: bool = False,
    ) -> Answer:
        headers = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if key is not None:
            headers["Idempotency-Key"] = key
        if now:
            return await self._send(method, path, headers, body)
        async with self._slots:
            return await self._send(method, path, headers, body)

    async def _send(self, method: str, path: str, headers: dict[str, str], body: Any) -> Answer:
        sent = time.time()
        async with self._session.request(method, path, headers=headers, json=body) as response:
            found = await response.json(content_type=None)
            return Answer(response.status, found, sent, time.time())

    async def until_decided(
        self,
        method: str,
        path: str,
        token: str,
        body: Any = None,
        *,
        failures: list[float] | None = None,
        within_s: float = 180,
    ) -> Answer:
        """A command retried under one Idempotency-Key while it is 503 or unanswered, as a
        client should: the key makes every try the same command. The answer's `sent` is the
        first try's, since the journal may have taken the command then."""
        key = uuid.uuid4().hex
        first: float | None = None
        deadline = time.monotonic() + within_s
        while True:
            try:
                answer = await self.call(method, path, token, body, key=key)
            except (aiohttp.ClientError, TimeoutError) as error:
                failure = repr(error)
            else:
                first = answer.sent if first is None else first
                if answer.status != 503:
                    return replace(answer, sent=first)
                failure = str(answer.body)
            if failures is not None:
                failures.append(time.time())
            assert time.monotonic() < deadline, f"{method} {path}: still {failure}"
            await asyncio.sleep(0.5)


@pytest.fixture
async def api(settings: Settings, stack: Stack) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession(
        base_url=settings.api_url,
        timeout=aiohttp.ClientTimeout(total=60),
        # Unlimited here: the storms bound themselves with Api's slots, and the probes must
        # not wait behind them for a connection.
        connector=aiohttp.TCPConnector(limit=0),
    ) as session:
        yield Api(session)


def mint(settings: Settings, n: int, prefix: str = "fan") -> dict[str, str]:
    """n new fans, username -> token (see the module docstring for why no sign-up)."""
    signer = TokenSigner(settings.token_secret, settings.token_ttl_s)
    names = [unique(prefix) for _ in range(n)]
    return {name: signer.issue(User(name, False)).token for name in names}


def organizer(settings: Settings) -> str:
    signer = TokenSigner(settings.token_secret, settings.token_ttl_s)
    return signer.issue(User(unique("org"), True)).token


async def new_show(
    api: Api, org: str, *, rows: int, seats_per_row: int, queue: dict[str, Any] | None = None
) -> str:
    body: dict[str, Any] = {
        "name": "The Storm Night",
        "starts_at": "2027-06-01T20:00:00Z",
        "hold_seconds": 630,
        "sections": [
            {"name": "A", "rows": rows, "seats_per_row": seats_per_row, "price_cents": 5000}
        ],
        "zones": [],
    }
    if queue is not None:
        body["queue"] = queue
    created = await api.until_decided("POST", "/v1/shows", org, body, within_s=60)
    assert created.status == 201, created.body
    show: str = created.body["show_id"]
    return show


async def until(condition: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"no {what} after {timeout_s} s"
        await asyncio.sleep(0.01)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def admission(opens_at: datetime, admit_per_minute: int, position: int) -> datetime:
    """The contract's `opens_at + (P - 1) * 60 / admit_per_minute`."""
    return opens_at + timedelta(seconds=(position - 1) * 60 / admit_per_minute)


def same_instant(a: datetime, b: datetime) -> bool:
    # The servers keep whole microseconds; the formula may not come out whole.
    return abs(a - b) <= timedelta(microseconds=1)


def early_order(seed: str, names: list[str]) -> list[str]:
    return sorted(names, key=lambda name: hashlib.sha256(f"{seed}:{name}".encode()).hexdigest())


def check_journal_order(rows: list[tuple[str, Answer, int]]) -> None:
    """rows: (fan, join answer, rank in the line now). A join answered before another was sent
    was journaled first, so it must rank ahead of it."""
    by_answer = sorted(rows, key=lambda row: row[1].answered)
    ahead: tuple[str, int] = ("nobody", 0)
    i = 0
    for fan, answer, rank in sorted(rows, key=lambda row: row[1].sent):
        while i < len(by_answer) and by_answer[i][1].answered < answer.sent:
            if by_answer[i][2] > ahead[1]:
                ahead = (by_answer[i][0], by_answer[i][2])
            i += 1
        assert rank > ahead[1], f"{fan} ranks {rank}, behind {ahead} joined before it"


# -- the waiting room ------------------------------------------------------------------------

EARLY = 2_000
LATE = 5_000


@dataclass(frozen=True)
class Probe:
    """Holds tried by one fan just before and just after its admission time."""

    fan: str
    position: int
    admitted_at: datetime
    before: Answer | None
    after: Answer


async def probe(
    api: Api, show: str, fan: str, token: str, *, position: int, admitted: datetime
) -> Probe:
    hold = {"best_available": {"quantity": 1}}
    path = f"/v1/shows/{show}/holds"
    before = None
    # A second ahead: time enough for the hold to be decided before admission, even loaded.
    wait_s = admitted.timestamp() - 1.0 - time.time()
    if wait_s > 0:
        await asyncio.sleep(wait_s)
        before = await api.call("POST", path, token, hold, now=True)
    await asyncio.sleep(max(0.0, admitted.timestamp() + 0.002 - time.time()))
    after = await api.call("POST", path, token, hold, now=True)
    return Probe(fan, position, admitted, before, after)


async def join_rate(api: Api, settings: Settings, org: str) -> float:
    """Queue joins per second on this machine now, measured on a room that opens in an hour."""
    later = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    room = await new_show(
        api,
        org,
        rows=1,
        seats_per_row=1,
        queue={"opens_at": later.isoformat(), "admit_per_minute": 60, "pass_seconds": 60},
    )
    tokens = list(mint(settings, 200, "warm").values())
    started = time.monotonic()
    answers = await asyncio.gather(
        *(api.call("POST", f"/v1/shows/{room}/queue", token) for token in tokens)
    )
    elapsed = time.monotonic() - started
    assert all(a.status == 201 for a in answers), [a.body for a in answers if a.status != 201]
    return len(tokens) / elapsed


# 7,000 joins at the stack's pace: on a loaded 2-core machine that can pass the default 300 s.
@pytest.mark.timeout(600)
async def test_a_storm_of_7000_fans_goes_through_the_waiting_room_in_order(
    settings: Settings, api: Api
) -> None:
    started = time.monotonic()
    org = organizer(settings)
    rate = await join_rate(api, settings, org)
    # Time enough for the early joins half again over, and admission about as fast as fans join,
    # so that most later joiners are admitted after they join (and can be probed before).
    early_s = EARLY / rate * 1.5 + 3
    admit_per_minute = max(6_000, int(rate * 60) // 100 * 100)
    opens_at = (datetime.now(UTC) + timedelta(seconds=early_s + 1)).replace(microsecond=0)
    print(f"joins {rate:.0f}/s: opens in {early_s:.0f} s, {admit_per_minute} admitted a minute")
    show = await new_show(
        api,
        org,
        rows=10,
        seats_per_row=20,
        queue={
            "opens_at": opens_at.isoformat(),
            "admit_per_minute": admit_per_minute,
            "pass_seconds": PASS_SECONDS,
        },
    )
    queue = f"/v1/shows/{show}/queue"
    early = mint(settings, EARLY)
    late = mint(settings, LATE)
    tokens = {**early, **late}

    # Before opens_at: every early join is answered, with no position yet.
    joined_early = await asyncio.gather(*(api.call("POST", queue, t) for t in early.values()))
    for answer in joined_early:
        assert answer.status == 201, answer.body
        assert answer.body == {
            "show_id": show,
            "status": "early",
            "position": None,
            "admitted_at": None,
            "pass_expires_at": None,
        }
    some_early = next(iter(early))
    mine = await api.call("GET", f"{queue}/me", early[some_early])
    refused = await api.call(
        "POST", f"/v1/shows/{show}/holds", early[some_early], {"seats": ["A-1-1"]}
    )
    described = await api.call("GET", f"/v1/shows/{show}")
    assert described.answered < opens_at.timestamp(), "the early joins took past opens_at"
    assert mine.body["status"] == "early" and mine.body["position"] is None, mine.body
    assert refused.status == 403 and refused.body["error"]["code"] == "queue_pass_required"
    assert refused.body["error"]["details"]["status"] == "early"
    assert described.body["queue"]["seed"] is None, "the seed is published before opens_at"

    # At opens_at the seed is published, and no sooner.
    await asyncio.sleep(max(0.0, opens_at.timestamp() - 0.5 - time.time()))
    while True:
        described = await api.call("GET", f"/v1/shows/{show}", now=True)
        seed = described.body["queue"]["seed"]
        if described.answered < opens_at.timestamp():
            assert seed is None, "the seed is published before opens_at"
        if described.sent >= opens_at.timestamp() or seed is not None:
            break
        await asyncio.sleep(0.02)
    assert isinstance(seed, str) and len(seed) == 64, described.body
    expected = {
        name: position for position, name in enumerate(early_order(seed, list(early)), start=1)
    }

    # One fan in a hundred, spread over all positions, tries to hold just before and just
    # after its admission time.
    sampled = set(range(50, EARLY + LATE + 1, 100))
    probes = [
        asyncio.create_task(
            probe(
                api,
                show,
                name,
                early[name],
                position=position,
                admitted=admission(opens_at, admit_per_minute, position),
            )
        )
        for name, position in expected.items()
        if position in sampled
    ]

    async def join_late(name: str) -> Answer:
        answer = await api.call("POST", queue, late[name])
        assert answer.status == 201, answer.body
        position = answer.body["position"]
        if position in sampled:
            admitted = at(answer.body["admitted_at"])
            probes.append(
                asyncio.create_task(
                    probe(api, show, name, late[name], position=position, admitted=admitted)
                )
            )
        return answer

    joined_late = dict(zip(late, await asyncio.gather(*map(join_late, late)), strict=True))
    for name, answer in joined_late.items():
        position = answer.body["position"]
        assert answer.body["status"] in ("waiting", "admitted"), answer.body
        # Admitted by the formula, or on joining when the formula's time had passed by then.
        admitted = at(answer.body["admitted_at"])
        formula = admission(opens_at, admit_per_minute, position)
        assert same_instant(admitted, formula) or (
            admitted > formula
            and answer.sent - 0.001 <= admitted.timestamp() <= answer.answered + 0.001
        ), (name, answer.body, formula)
        assert at(answer.body["pass_expires_at"]) == admitted + timedelta(seconds=PASS_SECONDS)
    # Later joiners follow the early ones, in the order the journal took them.
    assert sorted(a.body["position"] for a in joined_late.values()) == list(
        range(EARLY + 1, EARLY + LATE + 1)
    )
    check_journal_order([(n, a, a.body["position"]) for n, a in joined_late.items()])

    # Every fan's place as the line answers it: a permutation, the early in the seed's order.
    places = dict(
        zip(
            tokens,
            await asyncio.gather(*(api.call("GET", f"{queue}/me", t) for t in tokens.values())),
            strict=True,
        )
    )
    assert all(p.status == 200 for p in places.values()), [
        p.body for p in places.values() if p.status != 200
    ][:3]
    assert sorted(p.body["position"] for p in places.values()) == list(range(1, EARLY + LATE + 1))
    for name, place in places.items():
        body = place.body
        if name in early:
            assert body["position"] == expected[name], (name, body)
            assert same_instant(
                at(body["admitted_at"]), admission(opens_at, admit_per_minute, expected[name])
            ), (name, body)
        else:
            late_answer = joined_late[name].body
            assert (body["position"], body["admitted_at"], body["pass_expires_at"]) == (
                late_answer["position"],
                late_answer["admitted_at"],
                late_answer["pass_expires_at"],
            ), (name, body, late_answer)
        admitted_s = at(body["admitted_at"]).timestamp()
        assert at(body["pass_expires_at"]) == at(body["admitted_at"]) + timedelta(
            seconds=PASS_SECONDS
        )
        if place.answered < admitted_s:
            assert body["status"] == "waiting", (name, body)
        elif place.sent >= admitted_s:
            assert body["status"] == "admitted", (name, body)

    # Nobody holds before their admission time; everybody can from then on.
    done = await asyncio.wait_for(asyncio.gather(*probes), timeout=180)
    assert len(done) == len(sampled), len(done)
    refused_in_time = 0
    for p in done:
        if p.before is not None and p.before.answered < p.admitted_at.timestamp():
            refused_in_time += 1
            assert p.before.status == 403, (p.fan, p.position, p.before.body)
            error = p.before.body["error"]
            assert error["code"] == "queue_pass_required", error
            details = error["details"]
            assert (details["status"], details["position"]) == ("waiting", p.position), details
            assert same_instant(at(details["admitted_at"]), p.admitted_at), details
        assert p.after.sent >= p.admitted_at.timestamp()
        assert p.after.status == 201, (p.fan, p.position, p.after.body)
    # Early positions admitted within a second of opening could not be probed before.
    assert refused_in_time >= len(sampled) // 2, f"only {refused_in_time} probes in time"
    print(
        f"{EARLY + LATE} fans, {refused_in_time}/{len(done)} refused before admission, "
        f"{time.monotonic() - started:.1f} s"
    )


# -- kill -9 of the deciders mid-storm -------------------------------------------------------

SEATS = 8
BEFORE = 100  # fans in line before the storm
STORM = 200  # fans joining during it, half of them after the kill
ROOM_EARLY = 10
ROOM_LATE = 40


async def entries(api: Api, show: str, tokens: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Each fan's waitlist entry as GET .../waitlist/me answers it."""
    path = f"/v1/shows/{show}/waitlist/me"
    answers = await asyncio.gather(*(api.call("GET", path, t) for t in tokens.values()))
    assert all(a.status == 200 for a in answers), [a.body for a in answers if a.status != 200]
    return {name: a.body for name, a in zip(tokens, answers, strict=True)}


async def places(api: Api, show: str, tokens: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Each fan's place in the queue, without its status (which moves with the clock)."""
    path = f"/v1/shows/{show}/queue/me"
    answers = await asyncio.gather(*(api.call("GET", path, t) for t in tokens.values()))
    assert all(a.status == 200 for a in answers), [a.body for a in answers if a.status != 200]
    return {
        name: {k: v for k, v in a.body.items() if k != "status"}
        for name, a in zip(tokens, answers, strict=True)
    }


@pytest.mark.disruptive
async def test_positions_and_offers_survive_a_kill_9_of_the_deciders_mid_storm(
    settings: Settings, stack: Stack, api: Api
) -> None:
    started = time.monotonic()
    org = organizer(settings)
    show = await new_show(api, org, rows=1, seats_per_row=SEATS)
    opens_at = (datetime.now(UTC) + timedelta(seconds=12)).replace(microsecond=0)
    room = await new_show(
        api,
        org,
        rows=1,
        seats_per_row=1,
        queue={"opens_at": opens_at.isoformat(), "admit_per_minute": 600, "pass_seconds": 900},
    )
    waitlist = f"/v1/shows/{show}/waitlist"
    queue = f"/v1/shows/{room}/queue"
    one = {"quantity": 1}

    room_early = mint(settings, ROOM_EARLY, "early")
    early_joins = await asyncio.gather(
        *(api.until_decided("POST", queue, t) for t in room_early.values())
    )
    assert all(a.status == 201 and a.body["status"] == "early" for a in early_joins), [
        a.body for a in early_joins
    ]

    # Sold out: every seat held, one by each holder.
    holders = mint(settings, SEATS, "holder")
    holds = {
        name: await api.until_decided("POST", f"/v1/shows/{show}/holds", t, {"seats": [f"A-1-{i}"]})
        for i, (name, t) in enumerate(holders.items(), start=1)
    }
    assert all(h.status == 201 for h in holds.values()), [h.body for h in holds.values()]
    holder_names = list(holders)

    async def cancel(holder: str) -> None:
        order_id = holds[holder].body["order_id"]
        cancelled = await api.until_decided("DELETE", f"/v1/orders/{order_id}", holders[holder])
        assert cancelled.status == 200, cancelled.body

    # A line of BEFORE, each answered before any place came back: positions exactly 1..BEFORE.
    first = mint(settings, BEFORE)
    joined: dict[str, Answer] = dict(
        zip(
            first,
            await asyncio.gather(
                *(api.until_decided("POST", waitlist, t, one) for t in first.values())
            ),
            strict=True,
        )
    )
    assert all(a.status == 201 for a in joined.values()), [a.body for a in joined.values()]
    assert sorted(a.body["position"] for a in joined.values()) == list(range(1, BEFORE + 1))
    by_join = {a.body["position"]: name for name, a in joined.items()}
    # Two places come back: offered to the first two in line.
    await asyncio.gather(cancel(holder_names[0]), cancel(holder_names[1]))

    # The storm: STORM fans join the waitlist and ROOM_LATE the queue, half of each only once
    # the deciders are dead; a place comes back while the first half is joining.
    await until(lambda: time.time() > opens_at.timestamp(), "opening")
    storm = mint(settings, STORM)
    room_late = mint(settings, ROOM_LATE, "late")
    failures: list[float] = []
    killed = asyncio.Event()
    answered: dict[str, Answer] = {}
    queued: dict[str, Answer] = {}

    async def storm_join(
        path: str, token: str, body: Any, name: str, *, into: dict[str, Answer], wait: bool
    ) -> None:
        if wait:
            await killed.wait()
        into[name] = await api.until_decided("POST", path, token, body, failures=failures)

    storming = asyncio.gather(
        *(
            storm_join(waitlist, t, one, n, into=answered, wait=i >= STORM // 2)
            for i, (n, t) in enumerate(storm.items())
        ),
        *(
            storm_join(queue, t, None, n, into=queued, wait=i >= ROOM_LATE // 2)
            for i, (n, t) in enumerate(room_late.items())
        ),
    )
    try:
        await until(lambda: len(answered) >= STORM // 8, "storm joins answered")
        await cancel(holder_names[2])
        await until(lambda: len(answered) >= STORM // 4, "storm joins answered")
        assert stack.deciders.kill()
        killed.set()
        # What was answered before the kill, read while the deciders are down.
        in_line = {**first, **{n: storm[n] for n in answered}}
        before_kill = await entries(api, show, in_line)
        in_room = {**room_early, **{n: room_late[n] for n in queued}}
        room_before_kill = await places(api, room, in_room)
        # Some join in flight met the outage before the deciders come back.
        await until(lambda: bool(failures), "join refused during the outage", timeout_s=60)
    finally:
        await asyncio.to_thread(stack.up, ("deciders",), say=lambda _: None)
    await asyncio.wait_for(storming, timeout=240)
    print(f"{len(failures)} joins retried across the outage")

    for name, answer in {**answered, **queued}.items():
        assert answer.status == 201, (name, answer.body)
    # Nothing answered before the kill moved.
    assert await entries(api, show, in_line) == before_kill
    assert await places(api, room, in_room) == room_before_kill
    offered_before = {n for n, e in before_kill.items() if e["status"] == "offered"}
    assert offered_before == {by_join[1], by_join[2], by_join[3]}, before_kill

    # Two more places come back after the outage.
    await asyncio.gather(cancel(holder_names[3]), cancel(holder_names[4]))
    joined.update(answered)
    fans = {**first, **storm}
    final = await entries(api, show, fans)
    # Every join answered is in the line exactly once: the entry it was answered.
    for name, entry in final.items():
        assert entry["entry_id"] == joined[name].body["entry_id"], (name, entry, joined[name].body)

    # The offers are the first five in line, each an ordinary held order of its fan.
    offers = {n: e for n, e in final.items() if e["status"] == "offered"}
    assert set(offers) == {by_join[p] for p in range(1, 6)}, sorted(offers)
    for name, entry in before_kill.items():
        if entry["status"] == "offered":
            assert final[name] == entry, (name, final[name], entry)
    orders = await asyncio.gather(
        *(api.call("GET", f"/v1/orders/{e['order_id']}", fans[n]) for n, e in offers.items()),
        *(
            api.call("GET", f"/v1/orders/{holds[n].body['order_id']}", holders[n])
            for n in holder_names[5:]
        ),
    )
    assert all(o.status == 200 and o.body["status"] == "held" for o in orders), [
        o.body for o in orders
    ]
    seats = [seat for o in orders for seat in o.body["seats"]]
    assert sorted(seats) == sorted(f"A-1-{i}" for i in range(1, SEATS + 1)), seats

    # Waiting: positions a permutation, in join order.
    waiting = {n: e["position"] for n, e in final.items() if e["status"] == "waiting"}
    assert sorted(waiting.values()) == list(range(1, len(waiting) + 1))
    assert len(waiting) == BEFORE + STORM - 5
    for name in first:
        if name in waiting:
            assert waiting[name] == joined[name].body["position"] - 5, name
    check_journal_order([(n, answered[n], waiting[n]) for n in storm])
    # Each storm join moved up by the offers made after it: two or three, fewer for later joins.
    moved = [
        joined[n].body["position"] - waiting[n] for n in sorted(storm, key=waiting.__getitem__)
    ]
    assert set(moved) <= {2, 3} and moved == sorted(moved, reverse=True), moved
    await until_waiting(api, show, len(waiting))

    # The queue: a permutation, the early in the seed's order, the later as answered.
    room_all = {**room_early, **room_late}
    now_places = await places(api, room, room_all)
    assert sorted(p["position"] for p in now_places.values()) == list(range(1, len(room_all) + 1))
    seed = (await api.call("GET", f"/v1/shows/{room}")).body["queue"]["seed"]
    for position, name in enumerate(early_order(seed, list(room_early)), start=1):
        assert now_places[name]["position"] == position, (name, now_places[name])
    for name, answer in queued.items():
        assert now_places[name]["position"] == answer.body["position"], name
    check_journal_order([(n, a, a.body["position"]) for n, a in queued.items()])
    print(f"kill -9 storm: {time.monotonic() - started:.1f} s")


async def until_waiting(api: Api, show: str, count: int) -> None:
    """GET /v1/shows/{id} says `count` waiting, once its view catches up."""
    deadline = time.monotonic() + 60
    while True:
        described = await api.call("GET", f"/v1/shows/{show}")
        if described.body["waiting"] == count:
            return
        assert time.monotonic() < deadline, described.body
        await asyncio.sleep(0.2)
