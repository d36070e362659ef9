"""The whole local stack: PostgreSQL, Kafka, the processors and the API, up and down.

Every app process but the deciders runs under `stack.supervisor`, which starts it again when it
dies; the deciders have a supervisor of their own (`processors.deciders.main`). `up` counts a
process as started only once it has stayed alive for STABLE_S, so one that dies a moment after
starting fails `up` with the end of its log instead of passing unnoticed.
"""

from __future__ import annotations

import os
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from boxoffice.settings import PROJECT_ROOT, Settings
from producers.topics import ensure_topics
from snapshots.database import migrate
from stack import supervisor
from stack.broker import KafkaServer
from stack.database import PostgresServer
from stack.lag import Lag, measure_lags
from stack.processes import Daemon, started_at, wait_until

COMPONENTS = (
    "postgres",
    "kafka",
    "deciders",
    "views",
    "chatviews",
    "reconciler",
    "processors",
    "api",
)

# What each app component runs (after `python`), and the string that identifies it in a
# command line. The order is the order `up` starts them in.
PROCESSES: dict[str, tuple[tuple[str, ...], str]] = {
    "deciders": (("-m", "processors.deciders"), "processors.deciders"),
    # The projectors: the Faust engine (processors/engine.py), one app per component.
    "views": (
        ("-m", "processors", "views", "worker", "-l", "info", "--without-web"),
        "processors views worker",
    ),
    "chatviews": (
        ("-m", "processors", "chatviews", "worker", "-l", "info", "--without-web"),
        "processors chatviews worker",
    ),
    "reconciler": (("-m", "processors.reconciler"), "processors.reconciler"),
    "processors": (
        ("-m", "processors", "worker", "-l", "info", "--without-web"),
        "processors worker",
    ),
    "api": (("-m", "boxoffice.cli", "api"), "boxoffice.cli api"),
}
# The deciders restart their own worker (processors/deciders.py); the others get ours.
SUPERVISED = frozenset(PROCESSES) - {"deciders"}

# How long a just-started process must stay alive (a supervised one: without its child being
# restarted) before `up` counts it as started.
STABLE_S = 3.0
STABLE_TIMEOUT_S = 90.0


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a child process exactly these settings."""
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        env[f"BOXOFFICE_{name.upper()}"] = str(value)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


@dataclass(frozen=True)
class ProcessStatus:
    """One component as `boxoffice status` shows it."""

    name: str
    pid: int | None  # the working process: the supervised child, if there is a supervisor
    started_at: float | None = None  # Unix time the working process started
    supervisor_pid: int | None = None
    restarts: int = 0
    last_exit: str | None = None  # "killed by SIGKILL", "exited with code 1"
    last_exit_at: float | None = None
    restarting: bool = False  # the child is dead and its supervisor is about to start it again

    @property
    def running(self) -> bool:
        return self.pid is not None or self.restarting

    def describe(self, now: float | None = None) -> str:
        at = time.time() if now is None else now
        if self.restarting:
            text = f"restarting (supervisor pid {self.supervisor_pid})"
        elif self.pid is None:
            return "stopped"
        else:
            text = f"running  pid {self.pid}"
            if self.supervisor_pid is not None:
                text += f" (supervisor {self.supervisor_pid})"
            if self.started_at is not None:
                text += f", up {_duration(at - self.started_at)}"
        if self.restarts:
            times = "once" if self.restarts == 1 else f"{self.restarts} times"
            text += f", restarted {times}"
            if self.last_exit is not None and self.last_exit_at is not None:
                text += f" (last: {self.last_exit} {_duration(at - self.last_exit_at)} ago)"
        return text


@dataclass(frozen=True)
class StatusReport:
    processes: list[ProcessStatus]
    lags: list[Lag]
    # Why some lags could not be measured (Kafka or PostgreSQL not answering).
    problems: list[str]

    @property
    def all_running(self) -> bool:
        return all(p.running for p in self.processes)


def _duration(seconds: float) -> str:
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60}s"
    return f"{s // 3600}h {s % 3600 // 60}m"


@dataclass(frozen=True)
class _Launch:
    """A process `up` has just started (or found running), watched until it proves stable."""

    name: str
    daemon: Daemon
    state_file: Path | None
    pid: int
    restarts: int  # the supervisor's restart count when `up` looked first

    def state(self) -> supervisor.SupervisorState | None:
        if self.state_file is None:
            return None
        state = supervisor.read_state(self.state_file)
        # A state left by an earlier supervisor (killed with the machine) is not this one's.
        return state if state is not None and state.supervisor_pid == self.pid else None

    def check(self) -> None:
        """Raise, quoting the log, if the process died or its supervisor had to restart it."""
        if not self.daemon.running():
            raise RuntimeError(
                f"{self.name} exited within seconds of starting; the end of "
                f"{self.daemon.log_file}:\n{self.daemon.log_tail()}"
            )
        state = self.state()
        if state is not None and state.restarts > self.restarts:
            raise RuntimeError(
                f"{self.name}: its process {state.last_exit() or 'died'} within seconds of "
                f"starting, and its supervisor keeps restarting it (`boxoffice down "
                f"{self.name}` stops it); the end of {self.daemon.log_file}:\n"
                f"{self.daemon.log_tail()}"
            )

    def describe(self) -> str:
        state = self.state()
        if state is None or state.child_pid is None:
            return f"pid {self.pid}"
        return f"pid {state.child_pid} (supervisor {self.pid})"

    def up_for(self) -> float:
        if self.state_file is None:
            since = started_at(self.pid)
        else:
            state = self.state()
            running = state is not None and state.phase == "running"
            since = state.started_at if running and state is not None else None
        return 0.0 if since is None else time.time() - since


@dataclass
class Stack:
    settings: Settings

    @property
    def postgres(self) -> PostgresServer:
        return PostgresServer(self.settings)

    @property
    def kafka(self) -> KafkaServer:
        return KafkaServer(self.settings)

    def daemon(self, name: str) -> Daemon:
        _, marker = PROCESSES[name]
        return Daemon(name, self.settings.run_dir, self.settings.log_dir, marker=marker)

    def state_file(self, name: str) -> Path:
        return self.settings.run_dir / f"{name}.state"

    @property
    def processors(self) -> Daemon:
        return self.daemon("processors")

    @property
    def deciders(self) -> Daemon:
        return self.daemon("deciders")

    @property
    def views(self) -> Daemon:
        return self.daemon("views")

    @property
    def chatviews(self) -> Daemon:
        return self.daemon("chatviews")

    @property
    def reconciler(self) -> Daemon:
        return self.daemon("reconciler")

    @property
    def api(self) -> Daemon:
        return self.daemon("api")

    def supervisor_state(self, name: str) -> supervisor.SupervisorState | None:
        """The running supervisor's state of a component; None when it has none or is down."""
        if name not in SUPERVISED:
            return None
        pid = self.daemon(name).pid()
        state = supervisor.read_state(self.state_file(name))
        return state if state is not None and state.supervisor_pid == pid else None

    def _launch(self, name: str, env: dict[str, str]) -> _Launch:
        args, _ = PROCESSES[name]
        daemon = self.daemon(name)
        argv = [sys.executable, *args]
        state_file: Path | None = None
        if name in SUPERVISED:
            state_file = self.state_file(name)
            argv = supervisor.command(name, state_file, argv)
        pid = daemon.start(argv, env=env, cwd=PROJECT_ROOT)
        # Started just now, or found running: either way it must not restart from here on,
        # except for a restart already due (its child had died before `up` looked).
        state = supervisor.read_state(state_file) if state_file is not None else None
        restarts = 0
        if state is not None and state.supervisor_pid == pid:
            restarts = state.restarts + (1 if state.phase == "waiting" else 0)
        return _Launch(name, daemon, state_file, pid, restarts)

    def _await_stable(self, launches: list[_Launch], say: Callable[[str], None]) -> None:
        pending = list(launches)
        deadline = time.monotonic() + STABLE_TIMEOUT_S
        while pending:
            for launch in list(pending):
                launch.check()
                if launch.up_for() >= STABLE_S:
                    pending.remove(launch)
                    if launch.name != "api":
                        say(f"{launch.name:<10} ok  {launch.describe()}")
            if pending and time.monotonic() > deadline:
                names = ", ".join(launch.name for launch in pending)
                raise TimeoutError(f"{names} did not come up within {STABLE_TIMEOUT_S:.0f}s")
            if pending:
                time.sleep(0.2)

    def up(self, only: tuple[str, ...] = COMPONENTS, say: Callable[[str], None] = print) -> None:
        s = self.settings
        if "postgres" in only:
            self.postgres.start()
            applied = migrate(s)
            say(
                f"postgres   ok  {s.pg_host}:{s.pg_port}/{s.pg_database}"
                + (f" (migrated: {', '.join(applied)})" if applied else "")
            )
        if "kafka" in only:
            self.kafka.start()
            created = ensure_topics(s)
            say(
                f"kafka      ok  {s.kafka_bootstrap}"
                + (f" (created {len(created)} topics)" if created else "")
            )
        env = settings_env(s)
        launches = [self._launch(name, env) for name in PROCESSES if name in only]
        api = next((launch for launch in launches if launch.name == "api"), None)
        if api is not None:
            wait_until(
                self.api_ready,
                60,
                f"the API's /readyz on {s.api_url}",
                daemon=self.api,
                watch=api.check,
            )
        # Overlapping waits: by the time the API answers the others have usually proved stable.
        self._await_stable(launches, say)
        if api is not None:
            say(f"api        ok  {s.api_url}")
        if "processors" in only and "api" in only:
            # The probe walks producer -> processor -> journal -> reply: the pipe is live.
            wait_until(self.probe, 90, "the pipeline probe", interval_s=1.0, daemon=self.processors)
            say("pipeline   ok  a probe went through Kafka and the processors")

    def down(self, only: tuple[str, ...] = COMPONENTS, say: Callable[[str], None] = print) -> None:
        for name in reversed(COMPONENTS):
            if name not in only:
                continue
            if name == "kafka":
                stopped = self.kafka.stop()
            elif name == "postgres":
                stopped = self.postgres.stop()
            else:
                stopped = self.daemon(name).stop()
            say(f"{name:<10} {'stopped' if stopped else 'was not running'}")

    def status(self) -> dict[str, bool]:
        """Which components are running (a supervised one between restarts counts)."""
        return {p.name: p.running for p in self.processes()}

    def processes(self) -> list[ProcessStatus]:
        out = []
        for name in COMPONENTS:
            if name == "postgres":
                daemon = self.postgres.daemon
            elif name == "kafka":
                daemon = self.kafka.daemon
            else:
                daemon = self.daemon(name)
            pid = daemon.pid()
            if pid is None:
                out.append(ProcessStatus(name, None))
                continue
            state = self.supervisor_state(name)
            if state is None:
                out.append(ProcessStatus(name, pid, started_at(pid)))
                continue
            child_alive = state.phase == "running" and state.child_pid is not None
            out.append(
                ProcessStatus(
                    name,
                    state.child_pid if child_alive else None,
                    state.started_at if child_alive else None,
                    supervisor_pid=pid,
                    restarts=state.restarts,
                    last_exit=state.last_exit(),
                    last_exit_at=state.last_exit_at,
                    restarting=not child_alive,
                )
            )
        return out

    def report(self, timeout_s: float = 3.0) -> StatusReport:
        """Every component, and how far behind each consumer group and projection is."""
        lags, problems = measure_lags(self.settings, timeout_s)
        return StatusReport(self.processes(), lags, problems)

    def api_ready(self) -> bool:
        with urllib.request.urlopen(f"{self.settings.api_url}/readyz", timeout=5) as resp:
            return bool(resp.status == 200)

    def probe_token(self) -> str:
        """An organizer token (/ops/probes is organizer-only) signed with the stack's own
        secret. Tokens are stateless, so the probe needs no account in the database."""
        from api.auth import service_token

        return service_token(self.settings)

    def probe(self) -> bool:
        request = urllib.request.Request(
            f"{self.settings.api_url}/ops/probes",
            method="POST",
            headers={"Authorization": f"Bearer {self.probe_token()}"},
        )
        with urllib.request.urlopen(request, timeout=15) as resp:
            return bool(resp.status == 201)
