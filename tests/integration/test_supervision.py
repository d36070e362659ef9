"""Supervision on the real stack: a process that dies is started again by its supervisor and
`boxoffice status` says so; kill -9 of a whole component is a crash that `boxoffice up` repairs;
status reports each consumer's lag, from Kafka's offsets and from the views' checkpoints."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from typing import TypeVar

import httpx
import psycopg
import pytest

from api.auth import service_token
from boxoffice.settings import Settings
from snapshots.database import conninfo
from stack.lag import Lag
from stack.services import Stack, settings_env
from stack.supervisor import SupervisorState

pytestmark = [pytest.mark.integration, pytest.mark.disruptive]

T = TypeVar("T")


def eventually(get: Callable[[], T | None], what: str, timeout_s: float = 90) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        found = get()
        if found is not None:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def boxoffice_status(settings: Settings) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [".venv/bin/boxoffice", "status"],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def running_state(stack: Stack, name: str) -> SupervisorState | None:
    state = stack.supervisor_state(name)
    return state if state is not None and state.phase == "running" else None


def test_a_child_killed_alone_is_restarted_and_status_says_so(
    settings: Settings, stack: Stack
) -> None:
    before = eventually(lambda: running_state(stack, "views"), "the views to run")
    assert before.child_pid is not None
    os.kill(before.child_pid, signal.SIGKILL)

    after = eventually(
        lambda: (
            s
            if (s := running_state(stack, "views")) is not None
            and s.restarts == before.restarts + 1
            else None
        ),
        "the supervisor to start the views again",
    )
    assert after.supervisor_pid == before.supervisor_pid  # the same supervisor did it
    assert after.child_pid != before.child_pid
    assert after.last_exit() == "killed by SIGKILL"

    done = boxoffice_status(settings)
    [views] = [line for line in done.stdout.splitlines() if line.startswith("views ")]
    assert f"running  pid {after.child_pid} (supervisor {after.supervisor_pid})" in views
    restarted = "restarted once" if after.restarts == 1 else f"restarted {after.restarts} times"
    assert f"{restarted} (last: killed by SIGKILL" in views, done.stdout
    # The restarted views still serve: the pipe is walked end to end.
    response = httpx.post(
        f"{settings.api_url}/ops/probes",
        headers={"Authorization": f"Bearer {service_token(settings)}"},
        timeout=30,
    )
    assert response.status_code == 201, response.text


def test_kill_9_of_the_whole_component_is_a_crash_that_up_repairs(
    settings: Settings, stack: Stack
) -> None:
    before = eventually(lambda: running_state(stack, "chatviews"), "the chat views to run")
    assert stack.chatviews.kill()
    assert not stack.chatviews.running()
    assert stack.status()["chatviews"] is False

    stack.up(("chatviews",), say=lambda _: None)
    after = eventually(lambda: running_state(stack, "chatviews"), "the chat views to run again")
    assert after.supervisor_pid != before.supervisor_pid
    assert after.restarts == 0  # a new supervisor: the crash was the machine's, not a restart


def test_status_reports_each_consumers_lag_down_to_zero(settings: Settings, stack: Stack) -> None:
    # A show makes the deciders decide (offsets committed to Kafka) and the ticketing views
    # project (checkpoints in PostgreSQL); the probe makes the Faust processors commit.
    token = service_token(settings, "supervision_org")
    created = httpx.post(
        f"{settings.api_url}/v1/shows",
        headers={"Authorization": f"Bearer {token}"},
        json={
            "name": "Supervision",
            "starts_at": "2030-01-01T20:00:00Z",
            "sections": [{"name": "A", "rows": 2, "seats_per_row": 5, "price_cents": 1000}],
        },
        timeout=30,
    )
    assert created.status_code == 201, created.text
    probed = httpx.post(
        f"{settings.api_url}/ops/probes",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert probed.status_code == 201, probed.text

    prefix = settings.topic_prefix
    wanted = {("group", f"{prefix}.deciders"), ("group", f"{prefix}-processors")}
    wanted.add(("view", "ticketing.views"))

    seen: list[object] = []

    def caught_up() -> dict[tuple[str, str], Lag] | None:
        # A status call has 3 s by default; after the whole suite the stack holds hundreds of
        # consumer groups and partitions, and on a loaded machine the read that tells a commit
        # marker from an event can need longer (the figure then stays an upper bound).
        report = stack.report(timeout_s=15)
        lags = {(lag.kind, lag.name): lag for lag in report.lags}
        seen[:] = [[lags.get(key) for key in sorted(wanted)], report.problems]
        done = all(key in lags and lags[key].lag == 0 and lags[key].exact for key in wanted)
        return lags if done else None

    try:
        lags = eventually(caught_up, "every consumer to catch up", timeout_s=180)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last seen: {seen}") from None
    assert all(lag.partitions >= 1 for lag in lags.values())

    done = boxoffice_status(settings)
    for kind, name in wanted:
        [line] = [row for row in done.stdout.splitlines() if row.split()[:2] == [kind, name]]
        assert "lag " in line
    every_running = all(stack.status().values())
    assert done.returncode == (0 if every_running else 1), done.stdout + done.stderr


def test_a_checkpoint_on_a_journal_that_is_gone_is_reported_not_fatal(
    settings: Settings, stack: Stack
) -> None:
    gone = f"{settings.topic_prefix}.no.such.journal"
    with psycopg.connect(conninfo(settings), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO projection_offsets (projection, topic, partition, next_offset)"
            " VALUES ('gone-test', %s, 0, 5)",
            (gone,),
        )
        try:
            report = stack.report(timeout_s=15)
        finally:
            conn.execute("DELETE FROM projection_offsets WHERE projection = 'gone-test'")
    assert any(gone in problem for problem in report.problems), report.problems
    # Every other consumer still has a figure.
    deciders = [lag for lag in report.lags if lag.name == f"{settings.topic_prefix}.deciders"]
    assert deciders and deciders[0].lag is not None
