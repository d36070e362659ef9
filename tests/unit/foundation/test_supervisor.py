"""The supervisor as processes see it: a dead child comes back (and the state file says how it
died), a stop is not a death, kill -9 of the group is a machine crash, and `up` refuses a
process that dies a moment after it started."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from boxoffice.settings import Settings
from stack import services, supervisor
from stack.processes import Daemon
from stack.services import ProcessStatus, Stack
from stack.supervisor import SupervisorState, read_state

MARKER = "boxoffice-test-supervised"
SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)", MARKER]


def poll(check: Callable[[], bool], what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Supervised:
    def __init__(self, tmp_path: Path, argv: list[str]) -> None:
        self.daemon = Daemon("sleeper", tmp_path / "run", tmp_path / "log", marker=MARKER)
        self.state_file = tmp_path / "run" / "sleeper.state"
        self.daemon.start(supervisor.command("sleeper", self.state_file, argv))

    def state(self) -> SupervisorState:
        state = read_state(self.state_file)
        assert state is not None
        return state

    def restarts(self) -> int:
        """How many restarts so far; -1 before the supervisor has written anything."""
        state = read_state(self.state_file)
        return -1 if state is None else state.restarts

    def child(self) -> int:
        """The pid of the running child, once there is one."""
        poll(
            lambda: (s := read_state(self.state_file)) is not None and s.phase == "running",
            "a running child",
        )
        pid = self.state().child_pid
        assert pid is not None
        return pid


@pytest.fixture
def sleeper(tmp_path: Path) -> Iterator[Supervised]:
    supervised = Supervised(tmp_path, SLEEPER)
    try:
        yield supervised
    finally:
        supervised.daemon.kill()


def test_a_child_killed_with_sigkill_is_started_again_and_the_state_says_so(
    sleeper: Supervised,
) -> None:
    first = sleeper.child()
    assert sleeper.state().supervisor_pid == sleeper.daemon.pid()
    os.kill(first, signal.SIGKILL)
    poll(lambda: sleeper.restarts() == 1 and sleeper.state().phase == "running", "restart")
    state = sleeper.state()
    assert state.child_pid != first and state.child_pid is not None and alive(state.child_pid)
    assert state.last_exit() == "killed by SIGKILL"
    assert state.last_exit_at is not None and state.last_restart_at is not None
    assert f"pid {first} killed by SIGKILL" in sleeper.daemon.log_tail()


def test_stop_stops_the_child_and_does_not_restart_it(sleeper: Supervised) -> None:
    child = sleeper.child()
    assert sleeper.daemon.stop(timeout_s=20)
    assert not alive(child)
    assert sleeper.state().phase == "stopped"
    assert sleeper.state().restarts == 0


def test_kill_9_of_the_group_takes_supervisor_and_child_down_together(
    sleeper: Supervised,
) -> None:
    child = sleeper.child()
    assert sleeper.daemon.kill()
    poll(lambda: not alive(child), "the child to die with its supervisor")
    assert not sleeper.daemon.running()


def test_a_supervisor_killed_alone_takes_its_child_with_it(sleeper: Supervised) -> None:
    child = sleeper.child()
    supervisor_pid = sleeper.daemon.pid()
    assert supervisor_pid is not None
    os.kill(supervisor_pid, signal.SIGKILL)
    # Not left running unsupervised, where `up` would start a second one beside it.
    poll(lambda: not alive(child), "the orphaned child to stop")


def test_a_child_that_keeps_dying_is_restarted_with_growing_pauses(tmp_path: Path) -> None:
    started = time.monotonic()
    crasher = Supervised(tmp_path, [sys.executable, "-c", "raise SystemExit(7)", MARKER])
    try:
        poll(lambda: crasher.restarts() >= 4, "four restarts")
        assert crasher.state().last_exit() == "exited with code 7"
        # Pauses of 0.5 s, 1 s and 2 s come before the fourth start: not a busy loop.
        assert time.monotonic() - started >= 3.5
    finally:
        crasher.daemon.kill()


def test_up_fails_with_the_log_when_a_process_dies_just_after_starting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dies = "import sys, time; print('cannot go on', flush=True); time.sleep(0.5); sys.exit(3)"
    monkeypatch.setitem(services.PROCESSES, "reconciler", (("-c", dies, MARKER), MARKER))
    stack = Stack(Settings(var_dir=tmp_path, token_secret="unit-test-secret-value"))
    try:
        with pytest.raises(RuntimeError) as failed:
            stack.up(("reconciler",), say=lambda _: None)
        message = str(failed.value)
        assert "reconciler" in message and "exited with code 3" in message
        assert "cannot go on" in message
    finally:
        stack.down(("reconciler",), say=lambda _: None)


def test_up_waits_for_a_process_to_stay_alive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(services.PROCESSES, "reconciler", ((*SLEEPER[1:],), MARKER))
    stack = Stack(Settings(var_dir=tmp_path, token_secret="unit-test-secret-value"))
    said: list[str] = []
    try:
        started = time.monotonic()
        stack.up(("reconciler",), say=said.append)
        assert time.monotonic() - started >= services.STABLE_S
        assert said and said[0].startswith("reconciler ok  pid ") and "(supervisor " in said[0]
        [status] = [p for p in stack.processes() if p.name == "reconciler"]
        assert status.running and status.supervisor_pid == stack.reconciler.pid()
        assert status.describe().startswith(f"running  pid {status.pid} (supervisor ")
    finally:
        stack.down(("reconciler",), say=lambda _: None)


def test_status_words() -> None:
    now = 10_000.0
    assert ProcessStatus("views", None).describe(now) == "stopped"
    crashed = ProcessStatus(
        "views",
        123,
        now - 125,
        supervisor_pid=120,
        restarts=3,
        last_exit="killed by SIGKILL",
        last_exit_at=now - 40,
    )
    assert crashed.describe(now) == (
        "running  pid 123 (supervisor 120), up 2m 5s, restarted 3 times "
        "(last: killed by SIGKILL 40s ago)"
    )
    between = ProcessStatus(
        "api",
        None,
        supervisor_pid=7,
        restarts=1,
        last_exit="exited with code 1",
        last_exit_at=now - 1,
        restarting=True,
    )
    assert between.running
    assert between.describe(now) == (
        "restarting (supervisor pid 7), restarted once (last: exited with code 1 1s ago)"
    )


def test_status_answers_quickly_when_kafka_and_postgres_are_down(tmp_path: Path) -> None:
    settings = Settings(
        var_dir=tmp_path,
        token_secret="unit-test-secret-value",
        kafka_bootstrap="127.0.0.1:9",
        pg_port=9,
    )
    started = time.monotonic()
    report = Stack(settings).report(timeout_s=2)
    assert time.monotonic() - started < 10
    assert not report.all_running and report.lags == []
    assert any("Kafka is not reachable" in p for p in report.problems)
    assert any("PostgreSQL" in p for p in report.problems)
